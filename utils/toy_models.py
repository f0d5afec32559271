"""Toy TimeSformer and toy VideoMAE: configs, processors and the training fast path.

Each toy model mirrors one hub checkpoint's architecture at the toy ViViT's scale (12 layers
x 12 heads, width 96, MLP 384, 96 x 96 frames, 288 patch tokens), so the three architectures
can be compared on the same synthetic world (``utils.synthetic``):

- ``timesformer``: ``TimesformerForVideoClassification`` as ``facebook/timesformer-base-finetuned-k400``
  (divided space-time attention, 2-D 16 x 16 patches per frame, 8 frames, CLS token, pre-norm,
  GELU, qkv bias). It reads 8 of a clip's 16 frames: frames 0, 2, ..., 14 (``frame_indices``),
  so its frame t is the first frame of the toy ViViT's tubelet t. 8 x 36 = 288 patches + CLS.
- ``videomae``: ``VideoMAEForVideoClassification`` as ``MCG-NJU/videomae-base-finetuned-kinetics``
  (tubelet 2 x 16 x 16 on 16 frames, fixed sin-cos position table, no CLS, query/value bias but
  no key bias, mean pooling + ``fc_norm`` before the classifier). 8 x 6 x 6 = 288 tokens.

Both save a ``VideoMAEImageProcessorPil`` (as both hub checkpoints do): no resize change at 96 x 96,
no crop, ``x / 255`` then normalise with mean 0.5 and std 0.5, i.e. ``x / 127.5 - 1`` like the
toy ViViT. ``fast_preprocess`` is the training-time equivalent on uint8 clip batches.

The toy ViViT's builders stay in ``utils.models`` (``toy_config``, ``toy_processor``); this
module does not import ``utils.models``, so ``utils.models`` can import from it.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import (
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEImageProcessorPil,
)

IMAGE_SIZE = 96  # pixels per side, as every toy model
CLIP_FRAMES = 16  # frames per rendered clip (utils.synthetic.DEFAULT_NUM_FRAMES)
TIMESFORMER_FRAMES = 8  # frames the toy TimeSformer reads (as facebook/timesformer-base-finetuned-k400)

MODEL_CLASSES = {
    "timesformer": TimesformerForVideoClassification,
    "videomae": VideoMAEForVideoClassification,
}


def _labels(id2label: dict[int, str]) -> dict:
    return {"id2label": dict(id2label), "label2id": {v: k for k, v in id2label.items()}}


TOY_WIDTH = dict(  # shared by both toy models: ViViT-B's depth and heads, 96 wide, no dropout
    hidden_size=96,
    num_hidden_layers=12,
    num_attention_heads=12,  # d_head = 8
    intermediate_size=384,
    hidden_act="gelu",  # as the hub checkpoints
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def timesformer_config(num_labels: int, id2label: dict[int, str]) -> TimesformerConfig:
    """The toy TimeSformer: 12 x 12 heads, 96 wide, divided space-time attention on 8 x 96 x 96."""
    return TimesformerConfig(
        image_size=IMAGE_SIZE,
        patch_size=16,  # -> 6 x 6 = 36 patches per frame, 8 x 36 = 288 + CLS = 289 tokens
        num_channels=3,
        num_frames=TIMESFORMER_FRAMES,
        **TOY_WIDTH,
        drop_path_rate=0,  # int in the config schema
        layer_norm_eps=1e-6,
        qkv_bias=True,
        attention_type="divided_space_time",
        num_labels=num_labels,
        **_labels(id2label),
    )


def videomae_config(num_labels: int, id2label: dict[int, str]) -> VideoMAEConfig:
    """The toy VideoMAE: 12 x 12 heads, 96 wide, tubelet 2 x 16 x 16 on 16 x 96 x 96, mean pooling."""
    return VideoMAEConfig(
        image_size=IMAGE_SIZE,
        patch_size=16,
        num_channels=3,
        num_frames=CLIP_FRAMES,
        tubelet_size=2,  # -> 8 x 6 x 6 = 288 tokens, no CLS
        **TOY_WIDTH,
        layer_norm_eps=1e-12,  # the transformers default, as the hub checkpoint's config
        qv_bias=True,  # bias on query and value, none on key (VideoMAE's qkv_bias)
        use_mean_pooling=True,  # mean over tokens + fc_norm -> classifier (the Kinetics checkpoint)
        num_labels=num_labels,
        **_labels(id2label),
    )


def _processor() -> VideoMAEImageProcessorPil:
    """96 x 96 RGB, x / 255 then (x - 0.5) / 0.5, i.e. x / 127.5 - 1; no crop."""
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


def timesformer_processor() -> VideoMAEImageProcessorPil:
    """The toy TimeSformer's preprocessing (frames already sampled to 8, see ``frame_indices``)."""
    return _processor()


def videomae_processor() -> VideoMAEImageProcessorPil:
    """The toy VideoMAE's preprocessing (16 frames)."""
    return _processor()


def sample_frame_indices(clip_frames: int, model_frames: int) -> np.ndarray:
    """``model_frames`` frame indices of a ``clip_frames`` clip: all of them when the lengths
    agree, every k-th frame from frame 0 when ``clip_frames = k * model_frames``, else evenly
    spaced (``linspace``, rounded). The rule the toy TimeSformer and VideoMAE were trained with."""
    if clip_frames == model_frames:
        return np.arange(model_frames)
    if clip_frames % model_frames == 0:
        return np.arange(0, clip_frames, clip_frames // model_frames)
    return np.linspace(0, clip_frames - 1, model_frames).round().astype(int)


def frame_indices(arch: str, num_frames: int = CLIP_FRAMES) -> np.ndarray:
    """Which frames of a ``num_frames`` clip the toy ``arch`` reads, as in training.

    TimeSformer: every second frame of a 16-frame clip (0, 2, ..., 14). Other lengths are
    sampled to 8 evenly spaced frames starting at frame 0 (the same rule at 16 frames).
    VideoMAE: all 16 frames of a 16-frame clip, otherwise 16 evenly spaced frames.
    """
    target = TIMESFORMER_FRAMES if arch == "timesformer" else CLIP_FRAMES
    if arch not in MODEL_CLASSES:
        raise ValueError(f"unknown toy architecture {arch!r}; choose one of {tuple(MODEL_CLASSES)}")
    return sample_frame_indices(num_frames, target)


def fast_preprocess(clips: torch.Tensor, arch: str) -> torch.Tensor:
    """Training-time equivalent of the toy ``arch``'s processor for clips already at 96 x 96:
    uint8 ``(batch, frame, row, col, 3)`` -> float ``(batch, frame', 3, row, col)``, with the
    frames sampled by ``frame_indices`` (TimeSformer: 16 -> 8)."""
    idx = torch.from_numpy(frame_indices(arch, clips.shape[1]))
    return clips[:, idx].permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


BUILDERS = {
    "timesformer": (timesformer_config, timesformer_processor),
    "videomae": (videomae_config, videomae_processor),
}
