"""Load a ViViT for every profile, with the facts the analyses need.

Profiles
--------
``toy``          the small ViViT trained here on the synthetic world (``data/models/toy-vivit``).
``paper``        ``google/vivit-b-16x2-kinetics400`` from the HuggingFace hub (or its cache).
``paper-shape``  the paper's exact ViViT-B configuration with random weights (seed 0):
                 untrained, offline, for checking shapes, indices and costs at paper scale.
a directory      any HuggingFace ViViT checkpoint on disk (``config.json`` + weights).

The hub's checkpoint uses the transformers 4.x key layout
(``vivit.encoder.layer.N.attention.attention.query``); transformers 5 renames it on load
(``vivit.layers.N.attention.q_proj``), which ``tests/test_models.py`` checks on a fixture
saved by transformers 4.x.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import VivitConfig, VivitForVideoClassification, VivitImageProcessor

from utils import paths

PAPER_CHECKPOINT = "google/vivit-b-16x2-kinetics400"  # the paper's model on the hub
PAPER_TARGET_INDEX = 31  # "bowling" in Kinetics-400
PROFILES = ("toy", "paper", "paper-shape")


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the input and the fix."""


@dataclass
class LoadedModel:
    """A ViViT in eval mode with the facts every analysis needs."""

    model: VivitForVideoClassification
    processor: VivitImageProcessor
    profile: str
    target_index: int  # the class whose logit is analysed ("bowling")
    untrained: bool = False  # True for paper-shape: random weights, results mean nothing
    source: str = ""  # where the weights came from
    extra: dict = field(default_factory=dict)

    @property
    def config(self) -> VivitConfig:
        return self.model.config

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.config.id2label.items()}

    @property
    def target_label(self) -> str:
        return self.id2label[self.target_index]

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def tubelet(self) -> tuple[int, int, int]:
        return tuple(self.config.tubelet_size)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patch grid (time steps, rows, cols): 16 x 14 x 14 for ViViT-B."""
        t, h, w = self.tubelet
        return self.num_frames // t, self.image_size // h, self.image_size // w

    @property
    def num_patches(self) -> int:
        t, r, c = self.grid
        return t * r * c

    @property
    def name(self) -> str:
        return f"{self.profile} (untrained)" if self.untrained else self.profile

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames ``(frame, row, col, 3)`` -> ``pixel_values (1, frame, 3, H, W)`` float32.

        Frames are first sampled uniformly to the model's frame count, then passed to the
        checkpoint's own ``VivitImageProcessor`` (resize, crop, rescale, normalise).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"preprocess expects uint8 frames (frame, row, col, 3), got {frames.dtype} "
                f"{frames.shape}; decode videos with utils.video.read_video"
            )
        if len(frames) != self.num_frames:
            idx = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)
            frames = frames[idx]
        out = self.processor(list(frames), return_tensors="pt")
        return out["pixel_values"].float()

    @torch.inference_mode()
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, classes)`` logits of the model's own forward pass."""
        return self.model(pixel_values=pixel_values).logits


def toy_config(num_labels: int, id2label: dict[int, str]) -> VivitConfig:
    """The toy ViViT: 12 layers x 12 heads like ViViT-B, but 96 wide on 16 x 96 x 96 clips."""
    return VivitConfig(
        image_size=96,
        num_frames=16,
        tubelet_size=[2, 16, 16],  # -> 8 x 6 x 6 = 288 patches + CLS = 289 tokens
        hidden_size=96,
        num_hidden_layers=12,
        num_attention_heads=12,  # d_head = 8
        intermediate_size=384,
        hidden_act="gelu_fast",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )


def toy_processor() -> VivitImageProcessor:
    """The toy model's preprocessing: 96 x 96 RGB, scaled to [-1, 1] (x / 127.5 - 1)."""
    return VivitImageProcessor(
        do_resize=True,
        size={"height": 96, "width": 96},
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 127.5,
        offset=True,
        do_normalize=False,
    )


def fast_preprocess(frames: torch.Tensor) -> torch.Tensor:
    """Training-time equivalent of ``toy_processor`` for clips already at 96 x 96:
    uint8 ``(batch, frame, row, col, 3)`` -> float ``(batch, frame, 3, row, col)``."""
    return frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def paper_config() -> VivitConfig:
    """ViViT-B/16x2 on Kinetics-400, exactly as ``google/vivit-b-16x2-kinetics400``."""
    labels = paths.KINETICS_LABELS.read_text().splitlines()
    id2label = dict(enumerate(labels))
    return VivitConfig(
        image_size=224,
        num_frames=32,
        tubelet_size=[2, 16, 16],
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu_fast",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        num_labels=400,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )


def check_model_dir(directory: Path) -> None:
    """Raise ModelLoadError unless ``directory`` holds a HuggingFace ViViT checkpoint."""
    cfg_file = directory / "config.json"
    if not directory.is_dir():
        raise ModelLoadError(
            f"model directory {directory} does not exist; pass one of the profiles "
            f"{PROFILES} or a directory holding a HuggingFace ViViT checkpoint"
        )
    if not cfg_file.is_file():
        raise ModelLoadError(
            f"{directory} has no config.json, so it is not a HuggingFace checkpoint; supported: "
            f"the profiles {PROFILES} or a directory with a ViViT (model_type 'vivit')"
        )
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type != "vivit":
        raise ModelLoadError(
            f"{cfg_file} describes a {model_type!r} model; only ViViT checkpoints "
            f"(model_type 'vivit', VivitForVideoClassification) are supported"
        )


def _from_dir(directory: Path, profile: str, target: int | None) -> LoadedModel:
    check_model_dir(directory)
    model, info = VivitForVideoClassification.from_pretrained(
        directory, attn_implementation="eager", output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
    if bad:
        raise ModelLoadError(
            f"{directory}: the checkpoint does not fit VivitForVideoClassification ({bad}); "
            "is it a ViViT video classifier?"
        )
    try:
        processor = VivitImageProcessor.from_pretrained(directory)
    except OSError:
        processor = VivitImageProcessor()  # the ViViT defaults, as on the hub
    model.eval()
    labels = {v.lower(): int(k) for k, v in model.config.id2label.items()}
    if target is None:
        target = labels.get("bowling", 0)
    return LoadedModel(model, processor, profile, target, source=str(directory),
                       extra={"loading_info": info})


def load_model(profile: str = "toy", target_index: int | None = None) -> LoadedModel:
    """Load the model of ``profile`` (see module docstring) in eval mode.

    ``target_index`` overrides the analysed class (default: the class named "bowling").
    """
    if profile == "toy":
        if not (paths.TOY_MODEL_DIR / "model.safetensors").is_file():
            raise ModelLoadError(
                f"the toy checkpoint is missing from {paths.TOY_MODEL_DIR}; "
                "restore it with `git checkout data/models` or retrain it with `make toy-model`"
            )
        return _from_dir(paths.TOY_MODEL_DIR, "toy", target_index)
    if profile == "paper-shape":
        torch.manual_seed(0)
        model = VivitForVideoClassification(paper_config()).eval()
        # HF initialises position embeddings and CLS to zeros; draw them too, so that
        # tokens differ by position as in a trained model
        with torch.no_grad():
            emb = model.vivit.embeddings
            emb.position_embeddings.normal_(0.0, 0.02)
            emb.cls_token.normal_(0.0, 0.02)
        model.config._attn_implementation = "eager"
        return LoadedModel(
            model, VivitImageProcessor(), "paper-shape",
            PAPER_TARGET_INDEX if target_index is None else target_index,
            untrained=True, source="random init, torch seed 0",
        )
    if profile == "paper":
        try:
            model = VivitForVideoClassification.from_pretrained(
                PAPER_CHECKPOINT, attn_implementation="eager"
            )
            processor = VivitImageProcessor.from_pretrained(PAPER_CHECKPOINT)
        except OSError as err:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            raise ModelLoadError(
                f"could not load {PAPER_CHECKPOINT} from the HuggingFace hub or its cache"
                f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {err}\n"
                "Fix: on a machine with internet run `hf download "
                f"{PAPER_CHECKPOINT} --local-dir vivit-b`, copy the folder here and pass "
                "PROFILE=path/to/vivit-b (or fill the HF cache and unset HF_HUB_OFFLINE)."
            ) from None
        model.eval()
        return LoadedModel(
            model, processor, "paper",
            PAPER_TARGET_INDEX if target_index is None else target_index,
            source=PAPER_CHECKPOINT,
        )
    if profile in ("", None):
        raise ModelLoadError(f"empty profile; choose one of {PROFILES} or a checkpoint directory")
    path = Path(profile).expanduser()
    if not path.exists() and os.sep not in profile and not profile.startswith("."):
        raise ModelLoadError(
            f"unknown profile {profile!r}; choose one of {PROFILES} or a directory holding a "
            "HuggingFace ViViT checkpoint"
        )
    return _from_dir(path, profile, target_index)
