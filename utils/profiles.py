"""Every named profile, in one registry (what ``PROFILE=`` and the notebooks' ``profile`` accept).

=====================  ======================================================================
``toy``                the small ViViT trained here on the synthetic world (``data/models/toy-vivit``)
``paper``              ``google/vivit-b-16x2-kinetics400`` from the HuggingFace hub (or its cache)
``paper-shape``        the paper's exact ViViT-B configuration, random weights (seed 0)
``toy-<arch>``         each other architecture's toy model, trained on the same world
                       (``data/models/toy-<arch>``: TimeSformer, VideoMAE, V-JEPA 2)
``toy-outcome``        the positive control: the toy ViViT fine-tuned with strike and gutter as classes
``toy-seed1``, ``-2``  the seed spread: the toy ViViT's recipe with other torch seeds
``<arch>-shape``       each other architecture's hub checkpoint configuration, random weights (seed 0)
a directory            a HuggingFace checkpoint of any supported architecture (``utils.models``)
=====================  ======================================================================

The architecture profiles come from the adapters (``utils/arch/<name>.py``: ``toy_profile``,
``shape_profile``, ``hub_checkpoint``), so a new architecture adds its own without touching
this file; the ViViT variants (the control and the seed spread) are listed here.
"""

from __future__ import annotations

from utils import paths
from utils.arch import ADAPTERS
from utils.arch.vivit import VivitAdapter

PAPER_CHECKPOINT = VivitAdapter.hub_checkpoint  # the paper's model on the hub
VIVIT_VARIANTS = ("toy-outcome", "toy-seed1", "toy-seed2")  # ViViT recipes of utils.train, beside the toy

# profile -> shipped checkpoint folder: every architecture's toy model, then the ViViT variants
TOY_DIRS = {a.toy_profile: paths.MODELS_DIR / f"toy-{arch}" for arch, a in ADAPTERS.items()}
TOY_DIRS |= {name: paths.MODELS_DIR / name for name in VIVIT_VARIANTS}
assert TOY_DIRS["toy"] == paths.TOY_MODEL_DIR

SHAPE_PROFILES = {a.shape_profile: a for a in ADAPTERS.values()}  # untrained profile -> its architecture
SHAPE_CHECKPOINTS = {p: a.hub_checkpoint for p, a in SHAPE_PROFILES.items()}  # ... whose configuration it copies

_ARCH_TOYS = tuple(a.toy_profile for a in ADAPTERS.values() if a.toy_profile != "toy")
_ARCH_SHAPES = tuple(p for p in SHAPE_PROFILES if p != "paper-shape")
PROFILES = ("toy", "paper", "paper-shape", *_ARCH_TOYS, *VIVIT_VARIANTS, *_ARCH_SHAPES)
