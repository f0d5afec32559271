"""Load a ViViT for every profile, with the facts the analyses need.

Profiles
--------
``toy``          the small ViViT trained here on the synthetic world (``data/models/toy-vivit``).
``paper``        ``google/vivit-b-16x2-kinetics400`` from the HuggingFace hub (or its cache).
``paper-shape``  the paper's exact ViViT-B configuration with random weights (seed 0):
                 untrained, offline, for checking shapes, indices and costs at paper scale.
a directory      any HuggingFace ViViT checkpoint on disk (``config.json`` + weights).

Labels and target
-----------------
The hub's ``config.json`` names its 400 classes ``LABEL_0`` ... ``LABEL_399``. A checkpoint
with such generic names and 400 classes gets the Kinetics-400 names of
``data/kinetics400_labels.txt`` (``LoadedModel.labels_source`` records which). The analysed
class (``target``: a name or an index, default "bowling") is resolved for every profile; a
class that cannot be found stops with the nearest names, never a silent fallback.

Preprocessing
-------------
``preprocess="checkpoint"`` (default) feeds exactly what the checkpoint's own processor makes:
for the hub's ViViT that is [-3, 1] (rescale 1/127.5 with offset, then normalise with mean
and std 0.5), the input the paper's numbers were computed on. ``preprocess="original"``
feeds [-1, 1] (x / 127.5 - 1), the range the original ViViT was trained on. ``paper-shape``
and folders without a ``preprocessor_config.json`` use the shipped copy of the hub's
processor config (``data/vivit-b-16x2-kinetics400_preprocessor_config.json``), not the
class defaults (which resize to 256).

The hub's checkpoint uses the transformers 4.x key layout
(``vivit.encoder.layer.N.attention.attention.query``); transformers 5 renames it on load
(``vivit.layers.N.attention.q_proj``), which ``tests/test_models.py`` checks on a fixture
saved by transformers 4.x.
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
from transformers import VivitConfig, VivitForVideoClassification, VivitImageProcessor

from utils import paths

PAPER_CHECKPOINT = "google/vivit-b-16x2-kinetics400"  # the paper's model on the hub
PAPER_TARGET_INDEX = 31  # "bowling" in Kinetics-400 (the author's notebook hard-codes it)
PROFILES = ("toy", "paper", "paper-shape")
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
    """A ViViT in eval mode with the facts every analysis needs."""

    model: VivitForVideoClassification
    processor: VivitImageProcessor
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


def resolve_target(id2label: dict[int, str], target: str | int | None, where: str = "the model") -> int:
    """The index of the analysed class: a class name (case and ``_``/space insensitive) or an index.

    Raises ModelLoadError listing the nearest class names when it cannot be found.
    """
    target = DEFAULT_TARGET if target is None or str(target).strip() == "" else target
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
    cfg = processor.to_dict()
    cfg.update(do_rescale=True, rescale_factor=1 / 127.5, offset=True, do_normalize=False)
    cfg.pop("image_processor_type", None)
    cfg.pop("processor_class", None)
    return VivitImageProcessor(**cfg)


def check_loading_info(info: dict, source: str) -> None:
    """Raise unless every weight of the checkpoint found its place and every place got a weight."""
    bad = {k: v for k, v in info.items()
           if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ModelLoadError(
            f"{source}: the checkpoint does not fit VivitForVideoClassification "
            f"({', '.join(f'{k}: {sorted(map(str, v))[:6]}' for k, v in bad.items())}); "
            "is it a ViViT video classifier saved by transformers?")


def pretrained(source) -> tuple[VivitForVideoClassification, dict]:
    """``from_pretrained`` with eager attention; a weight of the wrong shape is a ModelLoadError."""
    try:
        return VivitForVideoClassification.from_pretrained(
            source, attn_implementation="eager", output_loading_info=True)
    except RuntimeError as err:
        if "mismatch" not in str(err):
            raise
        raise ModelLoadError(
            f"{source}: the checkpoint does not fit VivitForVideoClassification (mismatched_keys: a weight "
            "has another shape than its config says; see the load report above); is config.json the one "
            "saved with these weights?") from None


def finish(model: VivitForVideoClassification, processor: VivitImageProcessor, profile: str,
           target, device, preprocess, **kwargs) -> LoadedModel:
    """Name the classes, resolve the target and the device, choose the preprocessing."""
    mode = check_preprocess(preprocess)
    dev = resolve_device(device)
    labels_source = name_classes(model.config)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    index = resolve_target(id2label, target, where=kwargs.get("source") or profile)
    if mode == "original":
        processor = original_range_processor(processor)
    model = model.to(dev).eval()
    return LoadedModel(model, processor, profile, index, labels_source=labels_source,
                       preprocess_mode=mode, **kwargs)


def _from_dir(directory: Path, profile: str, target, device, preprocess) -> LoadedModel:
    check_model_dir(directory)
    check_preprocess(preprocess)
    resolve_device(device)
    model, info = pretrained(directory)
    check_loading_info(info, str(directory))
    if (directory / "preprocessor_config.json").is_file():
        processor = VivitImageProcessor.from_pretrained(directory)
    else:
        processor = hub_processor()  # the hub's processor, not the class defaults
    return finish(model, processor, profile, target, device, preprocess, source=str(directory),
                  extra={"loading_info": info})


def load_model(profile: str = "toy", target: str | int | None = None, device: str = "cpu",
               preprocess: str = "checkpoint") -> LoadedModel:
    """Load the model of ``profile`` (see module docstring) in eval mode on ``device``.

    ``target`` names the analysed class (a class name or an index; default "bowling").
    """
    check_preprocess(preprocess)
    resolve_device(device)
    if profile == "toy":
        if not (paths.TOY_MODEL_DIR / "model.safetensors").is_file():
            raise ModelLoadError(
                f"the toy checkpoint is missing from {paths.TOY_MODEL_DIR}; "
                "restore it with `git checkout data/models` or retrain it with `make toy-model`"
            )
        return _from_dir(paths.TOY_MODEL_DIR, "toy", target, device, preprocess)
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
        return finish(model, hub_processor(), "paper-shape", target, device, preprocess,
                      untrained=True, source="random init, torch seed 0")
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
            "HuggingFace ViViT checkpoint"
        )
    return _from_dir(path, profile, target, device, preprocess)
