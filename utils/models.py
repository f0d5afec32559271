"""Load a video transformer (ViViT, TimeSformer or VideoMAE) for every profile, with the facts
the analyses need.

Profiles
--------
``toy``                the small ViViT trained here on the synthetic world (``data/models/toy-vivit``).
``paper``              ``google/vivit-b-16x2-kinetics400`` from the HuggingFace hub (or its cache).
``paper-shape``        the paper's exact ViViT-B configuration with random weights (seed 0):
                       untrained, offline, for checking shapes, indices and costs at paper scale.
``toy-timesformer``    the small TimeSformer trained on the same world (``data/models/toy-timesformer``).
``toy-videomae``       the small VideoMAE trained on the same world (``data/models/toy-videomae``).
``timesformer-shape``  ``facebook/timesformer-base-finetuned-k400``'s configuration, random weights (seed 0).
``videomae-shape``     ``MCG-NJU/videomae-base-finetuned-kinetics``'s configuration, random weights (seed 0).
a directory            a HuggingFace ViViT, TimeSformer or VideoMAE checkpoint on disk (``config.json`` +
                       weights); the architecture comes from ``config.json``'s ``model_type``.

Labels and target
-----------------
The hub's ``config.json`` names its 400 classes ``LABEL_0`` ... ``LABEL_399``. A checkpoint
with such generic names and 400 classes gets the Kinetics-400 names of
``data/kinetics400_labels.txt`` (``LoadedModel.labels_source`` records which). The analysed
class (``target``: a name or an index, default "bowling") is resolved for every profile; a
class that cannot be found stops with the nearest names, never a silent fallback.

Preprocessing
-------------
Frames are first sampled to the model's frame count: ViViT evenly over the clip (``linspace``,
rounded), TimeSformer and VideoMAE as their toy models were trained (``utils.toy_models``:
every k-th frame when the clip length is a multiple of the model's, else evenly).
``preprocess="checkpoint"`` (default) feeds exactly what the checkpoint's own processor makes:
for the hub's ViViT that is [-3, 1] (rescale 1/127.5 with offset, then normalise with mean
and std 0.5), the input the paper's numbers were computed on. ``preprocess="original"``
feeds [-1, 1] (x / 127.5 - 1), the range the original ViViT was trained on. ``paper-shape``
and folders without a ``preprocessor_config.json`` use the shipped copy of the hub's
processor config (``data/vivit-b-16x2-kinetics400_preprocessor_config.json``), not the
class defaults (which resize to 256). TimeSformer and VideoMAE use a ``VideoMAEImageProcessorPil``
(rescale 1/255, then mean/std: 0.45/0.225 for ``facebook/timesformer-base-finetuned-k400``,
the ImageNet values for ``MCG-NJU/videomae-base-finetuned-kinetics``; resize the short side to
224, crop 224) where the folder has no ``preprocessor_config.json``; ``preprocess="original"``
applies to ViViT only.

The hub's checkpoint uses the transformers 4.x key layout
(``vivit.encoder.layer.N.attention.attention.query``); transformers 5 renames it on load
(``vivit.layers.N.attention.q_proj``), which ``tests/test_models.py`` checks on a fixture
saved by transformers 4.x. TimeSformer keeps the 4.x names in transformers 5 (no conversion
entry); VideoMAE 4.x files hold ``attention.attention.q_bias`` / ``v_bias`` (renamed on load to
``query.bias`` / ``value.bias``) and ``qkv_bias`` in ``config.json`` (read as ``qv_bias``);
``tests/hubfiles.py`` builds both layouts.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEImageProcessorPil,
    VivitConfig,
    VivitForVideoClassification,
    VivitImageProcessor,
)

from utils import paths
from utils.toy_models import sample_frame_indices

PAPER_CHECKPOINT = "google/vivit-b-16x2-kinetics400"  # the paper's model on the hub
PROFILES = ("toy", "paper", "paper-shape", "toy-timesformer", "toy-videomae", "toy-outcome", "toy-seed1", "toy-seed2",
            "timesformer-shape", "videomae-shape")
MODEL_CLASSES = {  # config.json's model_type -> the HF classifier this repository analyses
    "vivit": VivitForVideoClassification,
    "timesformer": TimesformerForVideoClassification,
    "videomae": VideoMAEForVideoClassification,
}
TOY_DIRS = {  # profile -> shipped checkpoint folder
    "toy": paths.TOY_MODEL_DIR,
    "toy-timesformer": paths.MODELS_DIR / "toy-timesformer",
    "toy-videomae": paths.MODELS_DIR / "toy-videomae",
    "toy-outcome": paths.MODELS_DIR / "toy-outcome",  # the positive control: strike and gutter are classes
    "toy-seed1": paths.MODELS_DIR / "toy-seed1",  # the seed spread: the toy ViViT, torch seeds 1 and 2, 250 steps
    "toy-seed2": paths.MODELS_DIR / "toy-seed2",
}
SHAPE_CHECKPOINTS = {  # untrained profile -> the public checkpoint whose configuration it copies
    "paper-shape": PAPER_CHECKPOINT,
    "timesformer-shape": "facebook/timesformer-base-finetuned-k400",
    "videomae-shape": "MCG-NJU/videomae-base-finetuned-kinetics",
}
DEFAULT_TARGET = "bowling"  # the class whose logit is analysed, unless TARGET= says otherwise
PREPROCESS_MODES = {
    "checkpoint": "the checkpoint's own processor",
    "original": "[-1, 1] (x / 127.5 - 1), as the original ViViT was trained",
}
DEVICES = ("auto", "cpu", "cuda")
GENERIC_LABEL = re.compile(r"LABEL_\d+")


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the input and the fix."""


@dataclass
class LoadedModel:
    """A video classifier (ViViT, TimeSformer or VideoMAE) in eval mode with the facts every
    analysis needs, the token geometry included."""

    model: VivitForVideoClassification | TimesformerForVideoClassification | VideoMAEForVideoClassification
    processor: VivitImageProcessor | VideoMAEImageProcessorPil
    profile: str
    target_index: int  # the class whose logit is analysed ("bowling")
    untrained: bool = False  # True for paper-shape: random weights, results mean nothing
    source: str = ""  # where the weights came from
    extra: dict = field(default_factory=dict)
    labels_source: str = "checkpoint"  # where the class names come from
    preprocess_mode: str = "checkpoint"  # see PREPROCESS_MODES

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def config(self) -> VivitConfig | TimesformerConfig | VideoMAEConfig:
        return self.model.config

    @property
    def arch(self) -> str:
        """``vivit``, ``timesformer`` or ``videomae`` (the config's ``model_type``)."""
        return self.config.model_type

    @property
    def has_cls(self) -> bool:
        """Whether token 0 is a CLS token (ViViT, TimeSformer) or a patch (VideoMAE)."""
        return self.arch != "videomae"

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.config.id2label.items()}

    @property
    def target_label(self) -> str:
        return self.id2label[self.target_index]

    @property
    def n_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def n_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def num_frames(self) -> int:
        return self.config.num_frames

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def tubelet(self) -> tuple[int, int, int]:
        """Pixels per token (frames, rows, cols): ViViT's ``tubelet_size``, VideoMAE's
        ``(tubelet_size, patch, patch)``, TimeSformer's ``(1, patch, patch)`` (one frame)."""
        cfg = self.config
        if self.arch == "vivit":
            return tuple(cfg.tubelet_size)
        frames = cfg.tubelet_size if self.arch == "videomae" else 1
        return int(frames), int(cfg.patch_size), int(cfg.patch_size)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patch grid (time steps, rows, cols): 16 x 14 x 14 for ViViT-B, 8 x 14 x 14 for
        TimeSformer-B (a time step is a frame) and VideoMAE-B (a tubelet of 2 frames)."""
        t, h, w = self.tubelet
        return self.num_frames // t, self.image_size // h, self.image_size // w

    @property
    def n_patches(self) -> int:
        t, r, c = self.grid
        return t * r * c

    @property
    def n_tokens(self) -> int:
        """Patch tokens plus CLS where there is one."""
        return self.n_patches + int(self.has_cls)

    def frame_indices(self, clip_frames: int) -> np.ndarray:
        """Which frames of a ``clip_frames`` clip the model reads (see the module docstring)."""
        if self.arch == "vivit":
            if clip_frames == self.num_frames:
                return np.arange(clip_frames)
            return np.linspace(0, clip_frames - 1, self.num_frames).round().astype(int)
        return sample_frame_indices(clip_frames, self.num_frames)

    @property
    def name(self) -> str:
        return f"{self.profile} (untrained)" if self.untrained else self.profile

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames ``(frame, row, col, 3)`` -> ``pixel_values (1, frame, 3, H, W)`` float32.

        Frames are first sampled to the model's frame count (``frame_indices``), then passed
        to the checkpoint's own processor (resize, crop, rescale, normalise).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"preprocess expects uint8 frames (frame, row, col, 3), got {frames.dtype} "
                f"{frames.shape}; decode videos with utils.video.read_video"
            )
        if len(frames) != self.num_frames:
            frames = frames[self.frame_indices(len(frames))]
        out = self.processor(list(frames), return_tensors="pt")
        return out["pixel_values"].float()

    def input_range(self) -> tuple[float, float]:
        """The pixel values that a black and a white frame become: the range fed to the model."""
        size = max(self.image_size, 8)
        black = np.zeros((self.num_frames, size, size, 3), np.uint8)
        lo = float(self.preprocess(black).min())
        hi = float(self.preprocess(black + 255).max())
        return lo, hi

    def input_note(self) -> str:
        """One line for notes and captions: which preprocessing fed which range."""
        lo, hi = self.input_range()
        mode = self.preprocess_mode
        return f"Input: PREPROCESS={mode} ({PREPROCESS_MODES[mode]}), pixels in [{lo:g}, {hi:g}]."

    @torch.inference_mode()
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, classes)`` logits of the model's own forward pass (on the CPU)."""
        return self.model(pixel_values=pixel_values.to(self.device)).logits.float().cpu()


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


def _vit_b_kinetics400(hidden_act: str) -> dict:
    """What the three Kinetics-400 checkpoints share: a ViT-B trunk (12 layers x 12 heads, 768
    wide, MLP 3072) on 224 px frames, and the 400 Kinetics class names."""
    names = kinetics_labels()
    return dict(image_size=224, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, hidden_act=hidden_act, num_labels=400, id2label=names,
                label2id={v: k for k, v in names.items()})


def paper_config() -> VivitConfig:
    """ViViT-B/16x2 on Kinetics-400, exactly as ``google/vivit-b-16x2-kinetics400``."""
    return VivitConfig(num_frames=32, tubelet_size=[2, 16, 16], layer_norm_eps=1e-6, qkv_bias=True,
                       **_vit_b_kinetics400("gelu_fast"))


def timesformer_shape_config() -> TimesformerConfig:
    """TimeSformer-B on Kinetics-400, as ``facebook/timesformer-base-finetuned-k400``."""
    return TimesformerConfig(
        patch_size=16,  # -> 14 x 14 patches per frame
        num_channels=3,
        num_frames=8,  # -> 8 x 196 = 1568 patch tokens + CLS
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        attention_type="divided_space_time",
        drop_path_rate=0,
        **_vit_b_kinetics400("gelu"),
    )


def videomae_shape_config() -> VideoMAEConfig:
    """VideoMAE-B on Kinetics-400, as ``MCG-NJU/videomae-base-finetuned-kinetics``."""
    return VideoMAEConfig(
        patch_size=16,
        num_channels=3,
        num_frames=16,
        tubelet_size=2,  # -> 8 x 14 x 14 = 1568 tokens, no CLS
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,  # the transformers default, as the checkpoint's config
        qv_bias=True,  # 4.x: qkv_bias (query and value bias, no key bias)
        use_mean_pooling=True,  # mean over tokens -> fc_norm -> classifier
        **_vit_b_kinetics400("gelu"),
    )


def timesformer_hub_processor() -> VideoMAEImageProcessorPil:
    """The k400 TimeSformer's processor: short side 224, crop 224, x / 255, mean 0.45, std 0.225."""
    return VideoMAEImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                  image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])


def videomae_hub_processor() -> VideoMAEImageProcessorPil:
    """The Kinetics VideoMAE's processor: short side 224, crop 224, x / 255, ImageNet mean and std."""
    return VideoMAEImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                  image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def default_processor(arch: str):
    """The processor of ``arch``'s public Kinetics checkpoint (for folders without one)."""
    return {"vivit": hub_processor, "timesformer": timesformer_hub_processor,
            "videomae": videomae_hub_processor}[arch]()


SUPPORTED = ", ".join(f"{t} ({c.__name__})" for t, c in MODEL_CLASSES.items())


def check_model_dir(directory: Path) -> str:
    """The ``model_type`` of the checkpoint in ``directory``; ModelLoadError unless it is a
    HuggingFace ViViT, TimeSformer or VideoMAE checkpoint."""
    cfg_file = directory / "config.json"
    if not directory.is_dir():
        raise ModelLoadError(
            f"model directory {directory} does not exist; pass one of the profiles "
            f"{PROFILES} or a directory holding a HuggingFace checkpoint of: {SUPPORTED}"
        )
    if not cfg_file.is_file():
        raise ModelLoadError(
            f"{directory} has no config.json, so it is not a HuggingFace checkpoint; supported: "
            f"the profiles {PROFILES} or a directory with a checkpoint of: {SUPPORTED}"
        )
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type not in MODEL_CLASSES:
        raise ModelLoadError(
            f"{cfg_file} describes a {model_type!r} model; only ViViT, TimeSformer and VideoMAE video "
            f"classifiers are supported (model_type: {SUPPORTED})"
        )
    return model_type


def resolve_device(device: str | None) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"DEVICE={device}: no CUDA GPU is available to this PyTorch "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}); "
                "use DEVICE=cpu or DEVICE=auto, or install a CUDA build of torch on a GPU machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"DEVICE={device}: only {torch.cuda.device_count()} CUDA device(s) "
                                 f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device(name)
    raise ModelLoadError(f"DEVICE={device!r} is not a device; choose one of {', '.join(DEVICES)} (or cuda:N)")


def check_preprocess(preprocess: str | None) -> str:
    mode = (preprocess or "checkpoint").strip().lower()
    if mode not in PREPROCESS_MODES:
        raise ModelLoadError(
            f"PREPROCESS={preprocess!r} is not a preprocessing mode; choose "
            + " or ".join(f"{k} ({v})" for k, v in PREPROCESS_MODES.items()))
    return mode


def kinetics_labels() -> dict[int, str]:
    """The 400 Kinetics-400 class names in index order (``data/kinetics400_labels.txt``)."""
    return dict(enumerate(paths.KINETICS_LABELS.read_text().splitlines()))


def has_generic_labels(id2label: dict) -> bool:
    """True when every class name is HF's placeholder ``LABEL_n``."""
    return bool(id2label) and all(GENERIC_LABEL.fullmatch(str(v)) for v in id2label.values())


def name_classes(config) -> str:
    """Give a 400-class checkpoint with generic ``LABEL_n`` names the Kinetics-400 names.

    Returns where the names come from: ``"checkpoint"`` or the labels file.
    """
    id2label = {int(k): v for k, v in config.id2label.items()}
    if has_generic_labels(id2label) and len(id2label) == 400:
        names = kinetics_labels()
        config.id2label = names
        config.label2id = {v: k for k, v in names.items()}
        return str(paths.KINETICS_LABELS.relative_to(paths.REPO_ROOT))
    return "checkpoint"


def resolve_target(id2label: dict[int, str], target: str | int | None, where: str = "the model",
                   default: str | None = None) -> int:
    """The index of the analysed class: a class name (case and ``_``/space insensitive) or an index.

    ``default``: the checkpoint's own analysed class (``config.default_target``; the positive
    control's is ``bowling strike``), taken when no target is given or the target is the
    generic ``DEFAULT_TARGET`` that the checkpoint has no class for.
    Raises ModelLoadError listing the nearest class names when it cannot be found.
    """
    target = DEFAULT_TARGET if target is None or str(target).strip() == "" else target
    names = {re.sub(r"[\s_]+", " ", str(v).strip().lower()) for v in id2label.values()}
    if default and str(target).strip().lower() == DEFAULT_TARGET and DEFAULT_TARGET not in names:
        target = default
    n = len(id2label)
    text = str(target).strip()
    if isinstance(target, int) or re.fullmatch(r"-?\d+", text):
        index = int(text)
        if not 0 <= index < n:
            raise ModelLoadError(f"TARGET={target}: {where} has {n} classes, numbered 0..{n - 1}")
        return index

    def norm(name):
        return re.sub(r"[\s_]+", " ", str(name).strip().lower())

    by_name = {norm(v): int(k) for k, v in id2label.items()}
    if norm(text) in by_name:
        return by_name[norm(text)]
    near = difflib.get_close_matches(norm(text), list(by_name), n=5, cutoff=0.0)
    hint = ""
    if has_generic_labels(id2label):
        hint = (" Its classes have only generic names (LABEL_n) and it does not have 400 classes, so the "
                "Kinetics-400 names do not apply: pass the class index, e.g. TARGET=31.")
    raise ModelLoadError(
        f"TARGET={target!r}: {where} has no class of that name. Nearest class names: "
        + ", ".join(f"{by_name[m]} {id2label[by_name[m]]!r}" for m in near)
        + f". Pass TARGET=<name> or TARGET=<index 0..{n - 1}>.{hint}")


def hub_processor() -> VivitImageProcessor:
    """The processor of ``google/vivit-b-16x2-kinetics400`` from the shipped copy of its config."""
    return VivitImageProcessor.from_dict(json.loads(paths.VIVIT_HUB_PROCESSOR.read_text()))


def original_range_processor(processor: VivitImageProcessor) -> VivitImageProcessor:
    """``processor`` with its resize and crop, but pixels scaled to [-1, 1] (x / 127.5 - 1)."""
    if not isinstance(processor, VivitImageProcessor):
        raise ModelLoadError(f"PREPROCESS=original applies to ViViT only ({PREPROCESS_MODES['original']}); "
                             f"use PREPROCESS=checkpoint for a {type(processor).__name__}")
    cfg = processor.to_dict()
    cfg.update(do_rescale=True, rescale_factor=1 / 127.5, offset=True, do_normalize=False)
    cfg.pop("image_processor_type", None)
    cfg.pop("processor_class", None)
    return VivitImageProcessor(**cfg)


def check_loading_info(info: dict, source: str, arch: str = "vivit") -> None:
    """Raise unless every weight of the checkpoint found its place and every place got a weight."""
    bad = {k: v for k, v in info.items()
           if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ModelLoadError(
            f"{source}: the checkpoint does not fit {MODEL_CLASSES[arch].__name__} "
            f"({', '.join(f'{k}: {sorted(map(str, v))[:6]}' for k, v in bad.items())}); "
            f"is it a {arch} video classifier saved by transformers?")


def pretrained(source, arch: str = "vivit"):
    """``(model, loading info)``: ``from_pretrained`` of ``arch``'s classifier with eager attention;
    a weight of the wrong shape is a ModelLoadError."""
    cls = MODEL_CLASSES[arch]
    try:
        return cls.from_pretrained(source, attn_implementation="eager", output_loading_info=True)
    except RuntimeError as err:
        if "mismatch" not in str(err):
            raise
        raise ModelLoadError(
            f"{source}: the checkpoint does not fit {cls.__name__} (mismatched_keys: a weight "
            "has another shape than its config says; see the load report above); is config.json the one "
            "saved with these weights?") from None


def finish(model, processor, profile: str, target, device, preprocess, **kwargs) -> LoadedModel:
    """Name the classes, resolve the target and the device, choose the preprocessing."""
    mode = check_preprocess(preprocess)
    dev = resolve_device(device)
    labels_source = name_classes(model.config)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    index = resolve_target(id2label, target, where=kwargs.get("source") or profile,
                           default=getattr(model.config, "default_target", None))
    if mode == "original":
        processor = original_range_processor(processor)
    model = model.to(dev).eval()
    return LoadedModel(model, processor, profile, index, labels_source=labels_source,
                       preprocess_mode=mode, **kwargs)


def _from_dir(directory: Path, profile: str, target, device, preprocess) -> LoadedModel:
    arch = check_model_dir(directory)
    check_preprocess(preprocess)
    resolve_device(device)
    model, info = pretrained(directory, arch)
    check_loading_info(info, str(directory), arch)
    if (directory / "preprocessor_config.json").is_file():
        loader = VivitImageProcessor if arch == "vivit" else AutoImageProcessor
        processor = loader.from_pretrained(directory)
    else:
        processor = default_processor(arch)  # the public checkpoint's processor, not the class defaults
    return finish(model, processor, profile, target, device, preprocess, source=str(directory),
                  extra={"loading_info": info})


def profile_config(profile: str):
    """The profile's model config alone (no weights): shipped folder, code, the HF cache or a folder.

    Any of the three architectures; ``config.num_frames`` is the frame count the model reads.
    """
    if profile in TOY_DIRS:
        if not (TOY_DIRS[profile] / "config.json").is_file():
            raise ModelLoadError(f"the {profile} checkpoint is missing from {TOY_DIRS[profile]}")
        return AutoConfig.from_pretrained(TOY_DIRS[profile])
    shapes = {"paper-shape": paper_config, "timesformer-shape": timesformer_shape_config,
              "videomae-shape": videomae_shape_config}
    if profile in shapes:
        return shapes[profile]()
    if profile == "paper":
        try:
            return VivitConfig.from_pretrained(PAPER_CHECKPOINT)
        except OSError as err:
            raise ModelLoadError(
                f"could not read the config of {PAPER_CHECKPOINT} from the HuggingFace hub or its cache "
                f"({type(err).__name__}); on a machine with internet run `hf download {PAPER_CHECKPOINT} "
                "--local-dir vivit-b`, copy the folder here and pass PROFILE=path/to/vivit-b "
                "(or fill the HF cache)") from None
    path = Path(profile).expanduser()
    check_model_dir(path)
    return AutoConfig.from_pretrained(path)


def load_model(profile: str = "toy", target: str | int | None = None, device: str = "cpu",
               preprocess: str = "checkpoint") -> LoadedModel:
    """Load the model of ``profile`` (see module docstring) in eval mode on ``device``.

    ``target`` names the analysed class (a class name or an index; default "bowling").
    """
    check_preprocess(preprocess)
    resolve_device(device)
    if profile in TOY_DIRS:
        folder = TOY_DIRS[profile]
        if not (folder / "model.safetensors").is_file():
            arch = profile.removeprefix("toy").lstrip("-") or "vivit"
            raise ModelLoadError(
                f"the {profile} checkpoint is missing from {folder}; "
                f"restore it with `git checkout data/models` or (re)train it with `make toy-model ARCH={arch}`"
            )
        return _from_dir(folder, profile, target, device, preprocess)
    if profile in SHAPE_CHECKPOINTS:
        return _shape_model(profile, target, device, preprocess)
    if profile == "paper":
        try:
            model, info = pretrained(PAPER_CHECKPOINT)
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
        check_loading_info(info, PAPER_CHECKPOINT)
        return finish(model, processor, "paper", target, device, preprocess,
                      source=PAPER_CHECKPOINT, extra={"loading_info": info})
    if profile in ("", None):
        raise ModelLoadError(f"empty profile; choose one of {PROFILES} or a checkpoint directory")
    path = Path(profile).expanduser()
    if not path.exists() and os.sep not in profile and not profile.startswith("."):
        raise ModelLoadError(
            f"unknown profile {profile!r}; choose one of {PROFILES} or a directory holding a "
            f"HuggingFace checkpoint of: {SUPPORTED}"
        )
    return _from_dir(path, profile, target, device, preprocess)


def _shape_model(profile: str, target, device, preprocess) -> LoadedModel:
    """A public checkpoint's exact configuration with random weights (torch seed 0), offline.

    HF initialises the CLS token and the learned position (and time) embeddings to zeros; they
    are drawn too (normal, std 0.02), so that tokens differ by position as in a trained model.
    """
    config, processor = {
        "paper-shape": (paper_config, hub_processor),
        "timesformer-shape": (timesformer_shape_config, timesformer_hub_processor),
        "videomae-shape": (videomae_shape_config, videomae_hub_processor),
    }[profile]
    from transformers.initialization import no_init_weights

    from utils import memo

    cfg = config()

    def draw() -> tuple[dict, torch.Tensor]:
        torch.manual_seed(0)
        model = MODEL_CLASSES[cfg.model_type](cfg).eval()
        base = getattr(model, cfg.model_type)
        with torch.no_grad():
            for name in ("position_embeddings", "cls_token", "time_embeddings"):
                param = getattr(base.embeddings, name, None)
                if isinstance(param, torch.nn.Parameter):  # VideoMAE's sin-cos table is a fixed buffer
                    param.normal_(0.0, 0.02)
        return model.state_dict(), torch.get_rng_state()

    # Drawing ViViT-B's 86M weights takes seconds; the notebooks of one kernel (utils.memo) get a
    # copy of the first draw, and the global torch RNG is left as the draw leaves it.
    state, rng = memo.memoized(("shape_model_weights", profile, cfg.to_json_string()), draw)
    torch.set_rng_state(rng)
    with no_init_weights():
        model = MODEL_CLASSES[cfg.model_type](cfg).eval()
    model.load_state_dict(state, assign=True)
    model.config._attn_implementation = "eager"
    return finish(model, processor(), profile, target, device, preprocess, untrained=True,
                  source=f"random init, torch seed 0 ({SHAPE_CHECKPOINTS[profile]}'s configuration)")
