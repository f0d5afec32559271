"""What the toy models share: their scale, the processor of the toy TimeSformer and VideoMAE,
the frame-sampling rule and the training fast path.

Each toy model mirrors one hub checkpoint's architecture at the toy ViViT's scale (12 layers
x 12 heads, width 96, MLP 384, 96 x 96 frames, 288 patch tokens), so the architectures can be
compared on the same synthetic world (``utils.synthetic``). Each architecture's own toy
configuration, processor and frame count live in its adapter (``utils/arch/<name>.py``:
``toy_config``, ``toy_processor``, ``toy_frames``); this module holds what they share and the
functions that take an architecture's name (``frame_indices``, ``fast_preprocess``).

The toy TimeSformer and VideoMAE save a ``VideoMAEImageProcessorPil`` (as both hub checkpoints
do): no resize change at 96 x 96, no crop, ``x / 255`` then normalise with mean 0.5 and std
0.5, i.e. ``x / 127.5 - 1`` like the toy ViViT. ``fast_preprocess`` is the training-time
equivalent on uint8 clip batches, for every architecture.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import VideoMAEImageProcessorPil

IMAGE_SIZE = 96  # pixels per side, as every toy model
CLIP_FRAMES = 16  # frames per rendered clip (utils.synthetic.DEFAULT_NUM_FRAMES)

TOY_WIDTH = dict(  # shared by the new toy models: ViViT-B's depth and heads, 96 wide, no dropout
    hidden_size=96,
    num_hidden_layers=12,
    num_attention_heads=12,  # d_head = 8
    intermediate_size=384,
    hidden_act="gelu",  # as the hub checkpoints
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def labels_config(id2label: dict[int, str]) -> dict:
    """``id2label`` and ``label2id`` config fields of a class list."""
    return {"id2label": dict(id2label), "label2id": {v: k for k, v in id2label.items()}}


def toy_processor() -> VideoMAEImageProcessorPil:
    """96 x 96 RGB, x / 255 then (x - 0.5) / 0.5, i.e. x / 127.5 - 1; no crop (the toy
    TimeSformer's and VideoMAE's)."""
    return VideoMAEImageProcessorPil(
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def sample_frame_indices(clip_frames: int, model_frames: int) -> np.ndarray:
    """``model_frames`` frame indices of a ``clip_frames`` clip: all of them when the lengths
    agree, every k-th frame from frame 0 when ``clip_frames = k * model_frames``, else evenly
    spaced (``linspace``, rounded). The rule the toy TimeSformer and VideoMAE were trained with."""
    if clip_frames == model_frames:
        return np.arange(model_frames)
    if clip_frames % model_frames == 0:
        return np.arange(0, clip_frames, clip_frames // model_frames)
    return np.linspace(0, clip_frames - 1, model_frames).round().astype(int)


def _adapter(arch: str):
    from utils.arch import ADAPTERS

    if arch not in ADAPTERS:
        raise ValueError(f"unknown toy architecture {arch!r}; choose one of {tuple(ADAPTERS)}")
    return ADAPTERS[arch]


def frame_indices(arch: str, num_frames: int = CLIP_FRAMES) -> np.ndarray:
    """Which frames of a ``num_frames`` clip the toy ``arch`` reads, as in training: its
    adapter's ``toy_frames`` by its ``frame_indices`` rule (TimeSformer: 0, 2, ..., 14 of 16;
    ViViT and VideoMAE: all 16)."""
    a = _adapter(arch)
    return a.frame_indices(num_frames, a.toy_frames)


def fast_preprocess(clips: torch.Tensor, arch: str = "vivit") -> torch.Tensor:
    """Training-time equivalent of the toy ``arch``'s processor for clips already at 96 x 96:
    uint8 ``(batch, frame, row, col, 3)`` -> float ``(batch, frame', 3, row, col)``, ``x / 127.5 - 1``,
    with the frames sampled by ``frame_indices`` (TimeSformer: 16 -> 8)."""
    idx = torch.from_numpy(frame_indices(arch, clips.shape[1]))
    return clips[:, idx].permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
