"""Shared fixtures. Tests never touch the network and load models only from the repo or a config."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "agg")
# `make test` runs two pytest-xdist workers (`-n 2`): each gets its share of the cores, and so do
# the notebook kernels it starts (they inherit OMP_NUM_THREADS). On 2 cores: 690 s in one process;
# 580 s when the worker with the toy run took both cores (three busy threads on two cores); about
# 520 s with one thread each, since one toy run takes only 1.4x as long on 1 thread as on 2.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import VivitConfig, VivitForVideoClassification  # noqa: E402

from utils.arch import ADAPTERS  # noqa: E402
from utils.hooks import HookedVideoTransformer  # noqa: E402
from utils.models import LoadedModel, load_model  # noqa: E402

if _WORKERS > 1:
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def toy_run_readers(source: str) -> set[str]:
    """The module-level functions of a test module's ``source`` that read the fresh toy run: those
    taking the ``toy_outputs`` fixture, or a fixture of the module that does (to any depth)."""
    import ast

    args = {f.name: {a.arg for a in f.args.args} for f in ast.parse(source).body
            if isinstance(f, ast.FunctionDef)}
    readers = {"toy_outputs"}
    while True:
        more = {name for name, a in args.items() if a & readers} - readers
        if not more:
            return readers - {"toy_outputs"}
        readers |= more


def pytest_xdist_make_scheduler(config, log):
    """Under xdist (``make test``: ``-n 2``), every test that reads the fresh toy run (the
    ``toy_outputs`` fixture: every notebook, about 5 minutes on 2 cores) goes to one worker, so
    that the run is made once, not once per worker; every other test, those of the same modules
    included, is spread one by one over both. The group is the largest unit, so it is handed out
    first and one worker starts the run at once. (xdist's own ``--dist loadgroup`` cannot do it
    under pytest 9: it renames node ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath
    readers: dict[str, set[str]] = {}

    def reads_the_toy_run(nodeid: str) -> bool:
        module, _, rest = nodeid.partition("::")
        if module not in readers:
            path = root / module
            readers[module] = toy_run_readers(path.read_text()) if path.is_file() else set()
        return rest.split("[")[0].split("::")[-1] in readers[module]

    class ToyRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "toy_run" if reads_the_toy_run(nodeid) else nodeid

    return ToyRunScheduling(config, log)


def tiny_loaded(layers: int = 3, seed: int = 0) -> LoadedModel:
    """A random 3-layer ViViT on 4 frames of 32 x 32 (2 x 2 x 2 patches + CLS = 9 tokens)."""
    torch.manual_seed(seed)
    cfg = VivitConfig(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=24,
                      num_hidden_layers=layers, num_attention_heads=3, intermediate_size=48,
                      num_labels=5, id2label={i: f"class{i}" for i in range(5)},
                      label2id={f"class{i}": i for i in range(5)})
    cfg._attn_implementation = "eager"
    model = VivitForVideoClassification(cfg).eval()
    with torch.no_grad():  # HF starts these at zero; random values exercise every path
        model.vivit.embeddings.position_embeddings.normal_(0, 0.5)
        model.vivit.embeddings.cls_token.normal_(0, 0.5)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return LoadedModel(model, ADAPTERS["vivit"].toy_processor(), "tiny", target_index=1)


@pytest.fixture(scope="session")
def tiny():
    return tiny_loaded()


@pytest.fixture(scope="session")
def tiny_hooked(tiny):
    return HookedVideoTransformer(tiny)


@pytest.fixture(scope="session")
def tiny_pixels():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 3, 32, 32, generator=g)


@pytest.fixture(scope="session")
def toy():
    return load_model("toy")


@pytest.fixture(scope="session")
def toy_hooked(toy):
    return HookedVideoTransformer(toy)


@pytest.fixture(scope="session")
def toy_pair(toy):
    """Model inputs (1, frame, 3, H, W) of the canonical matched pair (strike, gutter)."""
    from utils.data import CANONICAL_SEED
    from utils.synthetic import render_pair

    s, g = render_pair(CANONICAL_SEED)
    return toy.preprocess(s), toy.preprocess(g)


@pytest.fixture(scope="session")
def toy_outputs(tmp_path_factory):
    """A fresh toy ``make figures`` (every notebook) into temporary folders: the figures folder;
    its data folder (clips, tensors, the findings' inputs) is ``toy_outputs.parent.parent / "data" / "toy"``."""
    from utils import paths
    from utils.runner import run_all

    root = tmp_path_factory.mktemp("run")
    # two lanes, each kernel on this worker's one thread: the tables of a one-lane run at one thread
    # (tests/test_notebooks.py checks two lanes against one on equal threads), with notebook 08,
    # the longest, beside the others instead of after them
    return run_all(sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")), "toy", html=False,
                   figures_root=root / "figures", data_root=root / "data", build_root=root / "build", lanes=2)

