"""Every path the project uses, rooted at the repository (never at the working directory)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository checkout
DATA_DIR = REPO_ROOT / "data"  # rendered clips, tensors and manifests (per profile)
MODELS_DIR = DATA_DIR / "models"  # shipped checkpoints
TOY_MODEL_DIR = MODELS_DIR / "toy-vivit"  # the toy ViViT trained by `make toy-model`
KINETICS_LABELS = DATA_DIR / "kinetics400_labels.txt"  # the 400 class names, index order
VIVIT_HUB_PROCESSOR = DATA_DIR / "vivit-b-16x2-kinetics400_preprocessor_config.json"  # hub copy
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"  # the ordered analysis notebooks
FIGURES_DIR = REPO_ROOT / "figures"  # figures and tables, one folder per profile
BUILD_DIR = REPO_ROOT / "build"  # executed notebooks and their HTML, per profile
BENCH_DIR = REPO_ROOT / "benchmarks"  # `make bench` results
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"  # small files the tests load


def figures_dir(profile: str) -> Path:
    """Output folder of one profile's figures and tables (a local model path maps to 'local')."""
    return FIGURES_DIR / profile_slug(profile)


def data_dir(profile: str) -> Path:
    return DATA_DIR / profile_slug(profile)


def profile_slug(profile: str) -> str:
    """A folder-safe name for a profile: a named profile as it is ('toy', 'paper', 'paper-shape',
    'toy-timesformer', ...), a checkpoint folder as 'local-<dirname>'."""
    from utils.profiles import PROFILES  # the one profile list

    if profile in PROFILES:
        return profile
    return "local-" + Path(profile).name.replace(" ", "_")
