"""Build, offline, the files the HuggingFace hub serves for the paper's model and clips.

The hub cannot be reached from tests, so the `paper` route is tested on a cache (and a
folder) that holds exactly what the hub serves, in the hub's formats:

* ``google/vivit-b-16x2-kinetics400``: ``config.json`` with the generic class names
  ``LABEL_0`` ... ``LABEL_399`` and the transformers 4.x key layout of ``model.safetensors``
  (``vivit.encoder.layer.N.attention.attention.query``), and the hub's
  ``preprocessor_config.json`` (pixels in [-3, 1]). The weights are a small random ViViT with
  the hub's tubelets, image size and 400 classes, but few frames and a narrow width.
* TimeSformer and VideoMAE checkpoints as transformers 4.x saved them (``small_hub_like``,
  ``save_tf4_checkpoint``): 400 generic classes, the 4.x key layout. transformers 5 has no
  conversion entry for TimeSformer (``conversion_mapping.py``): its 4.x names are its 5.x names
  (``timesformer.encoder.layer.N.temporal_attention.attention.qkv``). VideoMAE 4.x kept
  ``query`` / ``key`` / ``value`` without bias plus separate ``attention.attention.q_bias`` and
  ``v_bias`` parameters and wrote ``qkv_bias`` in ``config.json``; transformers 5 renames the
  biases to ``query.bias`` / ``value.bias`` on load (the ``"videomae"`` entry of
  ``conversion_mapping.py``) and reads ``qkv_bias`` as ``qv_bias``.
* ``chereddysaivreddy/kinetics-400`` (a dataset): ``bowling/bowling_plain.mp4`` and
  ``bowling/bowling_gutter.mp4``, here short synthetic clips.

``fill_hub_cache`` lays both out as ``HF_HUB_CACHE`` does (``models--org--name/refs/main``
and ``snapshots/<commit>/...``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import TimesformerConfig, VideoMAEConfig, VivitConfig, VivitForVideoClassification

from utils import paths
from utils.arch import ADAPTERS
from utils.data import PAPER_DATASET, PAPER_FILES
from utils.models import PAPER_CHECKPOINT
from utils.synthetic import render_pair
from utils.video import write_video

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex snapshot name

# transformers 5 name -> the 4.x name the hub's file uses
TF4_RENAMES = [
    (r"^vivit\.layers\.(\d+)\.attention\.q_proj\.", r"vivit.encoder.layer.\1.attention.attention.query."),
    (r"^vivit\.layers\.(\d+)\.attention\.k_proj\.", r"vivit.encoder.layer.\1.attention.attention.key."),
    (r"^vivit\.layers\.(\d+)\.attention\.v_proj\.", r"vivit.encoder.layer.\1.attention.attention.value."),
    (r"^vivit\.layers\.(\d+)\.attention\.o_proj\.", r"vivit.encoder.layer.\1.attention.output.dense."),
    (r"^vivit\.layers\.(\d+)\.mlp\.fc1\.", r"vivit.encoder.layer.\1.intermediate.dense."),
    (r"^vivit\.layers\.(\d+)\.mlp\.fc2\.", r"vivit.encoder.layer.\1.output.dense."),
    (r"^vivit\.layers\.(\d+)\.", r"vivit.encoder.layer.\1."),
]


# VideoMAE: 5.x name -> 4.x name (query/value biases were separate parameters)
TF4_RENAMES_VIDEOMAE = [
    (r"\.attention\.attention\.query\.bias$", ".attention.attention.q_bias"),
    (r"\.attention\.attention\.value\.bias$", ".attention.attention.v_bias"),
]


def tf4_name(name: str, arch: str = "vivit") -> str:
    """The transformers 4.x key of a 5.x state-dict key (TimeSformer: unchanged)."""
    renames = {"vivit": TF4_RENAMES, "videomae": TF4_RENAMES_VIDEOMAE, "timesformer": []}[arch]
    for pattern, repl in renames:
        new, n = re.subn(pattern, repl, name)
        if n:
            return new
    return name


def small_hub_like_vivit(seed: int = 0, num_frames: int = 4) -> VivitForVideoClassification:
    """A random ViViT with the hub checkpoint's tubelets, 224 px input, 12 x 12 heads and 400
    generic classes, but ``num_frames`` frames and width 48 (cheap to run)."""
    torch.manual_seed(seed)
    cfg = VivitConfig(image_size=224, num_frames=num_frames, tubelet_size=[2, 16, 16], hidden_size=48,
                      num_hidden_layers=12, num_attention_heads=12, intermediate_size=96,
                      hidden_act="gelu_fast", layer_norm_eps=1e-6, qkv_bias=True, num_labels=400)
    model = VivitForVideoClassification(cfg).eval()
    with torch.no_grad():
        model.vivit.embeddings.position_embeddings.normal_(0, 0.02)
        model.vivit.embeddings.cls_token.normal_(0, 0.02)
    return model


def small_hub_like(arch: str, seed: int = 0):
    """A random TimeSformer or VideoMAE with its hub checkpoint's patches, 224 px input and 400
    generic classes, but 4 frames, 2 layers and width 48 (cheap to run)."""
    torch.manual_seed(seed)
    common = dict(image_size=224, patch_size=16, num_frames=4, hidden_size=48, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=96, hidden_act="gelu", num_labels=400)
    if arch == "timesformer":
        cfg = TimesformerConfig(**common, layer_norm_eps=1e-6, qkv_bias=True, attention_type="divided_space_time")
    else:
        cfg = VideoMAEConfig(**common, tubelet_size=2, qv_bias=True, use_mean_pooling=True)
    model = ADAPTERS[arch].hf_class(cfg).eval()
    with torch.no_grad():  # nonzero everywhere, so that a weight left at its init would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def save_tf4_checkpoint(model, folder: Path) -> Path:
    """Write ``model`` (ViViT, TimeSformer or VideoMAE) as the hub serves its checkpoint: 4.x keys
    and config fields, LABEL_n names, the public checkpoint's processor."""
    arch = model.config.model_type
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    n = model.config.num_labels
    cfg.update(id2label={str(i): f"LABEL_{i}" for i in range(n)}, label2id={f"LABEL_{i}": i for i in range(n)},
               architectures=[type(model).__name__], transformers_version="4.57.6")
    if arch == "videomae":
        cfg["qkv_bias"] = cfg.pop("qv_bias")
    for key in ("_attn_implementation_autoset", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    state = {tf4_name(k, arch): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if arch == "vivit":
        shutil.copy(paths.VIVIT_HUB_PROCESSOR, folder / "preprocessor_config.json")
    else:
        ADAPTERS[arch].hub_processor().save_pretrained(folder)
    return folder


def write_clips(folder: Path, seed: int, num_frames: int = 40, size: int = 112) -> dict[str, Path]:
    """The author's two clip files, here a short synthetic matched pair."""
    strike, gutter = render_pair(seed, num_frames=num_frames, size=size)
    out = {}
    for outcome, frames in (("strike", strike), ("gutter", gutter)):
        out[outcome] = write_video(folder / PAPER_FILES[outcome], frames, fps=8)
    return out


def _snapshot(cache: Path, kind: str, repo_id: str) -> Path:
    root = cache / f"{kind}--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def fill_hub_cache(cache: Path, model: VivitForVideoClassification, clip_seed: int) -> Path:
    """An ``HF_HUB_CACHE`` folder holding the paper's checkpoint and its two clips."""
    save_tf4_checkpoint(model, _snapshot(cache, "models", PAPER_CHECKPOINT))
    write_clips(_snapshot(cache, "datasets", PAPER_DATASET), clip_seed)
    return cache
