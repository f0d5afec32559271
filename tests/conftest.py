"""Shared fixtures. Tests never touch the network and load models only from the repo or a config."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import VivitConfig, VivitForVideoClassification  # noqa: E402

from utils.arch import ADAPTERS  # noqa: E402
from utils.hooks import HookedVideoTransformer  # noqa: E402
from utils.models import LoadedModel, load_model  # noqa: E402


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
    return run_all(sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")), "toy", html=False,
                   figures_root=root / "figures", data_root=root / "data", build_root=root / "build")
