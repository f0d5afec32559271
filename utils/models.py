"""Load a video transformer (ViViT, TimeSformer, VideoMAE or V-JEPA 2) for every profile, with
the facts the analyses need.

Profiles (the registry is ``utils.profiles``)
--------
``toy``                the small ViViT trained here on the synthetic world (``data/models/toy-vivit``).
``paper``              ``google/vivit-b-16x2-kinetics400`` from the HuggingFace hub (or its cache).
``paper-shape``        the paper's exact ViViT-B configuration with random weights (seed 0):
                       untrained, offline, for checking shapes, indices and costs at paper scale.
``toy-timesformer``    the small TimeSformer trained on the same world (``data/models/toy-timesformer``).
``toy-videomae``       the small VideoMAE trained on the same world (``data/models/toy-videomae``).
``timesformer-shape``  ``facebook/timesformer-base-finetuned-k400``'s configuration, random weights (seed 0).
``videomae-shape``     ``MCG-NJU/videomae-base-finetuned-kinetics``'s configuration, random weights (seed 0).
``toy-vjepa2``         the small V-JEPA 2 trained on the same world (``data/models/toy-vjepa2``).
``vjepa2-shape``       ``facebook/vjepa2-vitl-fpc16-256-ssv2``'s configuration, random weights (seed 0).
a directory            a HuggingFace ViViT, TimeSformer, VideoMAE or V-JEPA 2 checkpoint on disk (``config.json`` +
                       weights); the architecture comes from ``config.json``'s ``model_type``.

Labels and target
-----------------
``utils.labels``: Kinetics-400 names for generic ``LABEL_n`` checkpoints, the analysed class,
the device and the preprocessing mode, each resolved with one clear error.

Architectures
-------------
Everything this module knows about an architecture comes from its adapter
(``utils/arch/<name>.py``): the HF class, the processor class, the hub checkpoint and its
configuration (for ``*-shape``), the token geometry and the frame-sampling rule.

Preprocessing
-------------
Frames are first sampled to the model's frame count by the adapter's rule: ViViT evenly over the
clip (``linspace``, rounded), TimeSformer and VideoMAE as their toy models were trained
(``utils.toy_models.sample_frame_indices``: every k-th frame when the clip length is a multiple
of the model's, else evenly).
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

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEImageProcessorPil,
    VivitConfig,
    VivitForVideoClassification,
    VivitImageProcessor,
)

from utils.arch import ADAPTERS, Adapter
from utils.labels import (
    PREPROCESS_MODES,
    ModelLoadError,
    check_preprocess,
    name_classes,
    resolve_device,
    resolve_target,
)
from utils.profiles import PAPER_CHECKPOINT, PROFILES, SHAPE_CHECKPOINTS, SHAPE_PROFILES, TOY_DIRS


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
    def adapter(self) -> type[Adapter]:
        """The architecture's adapter class (``utils.arch``), where its facts live."""
        return ADAPTERS[self.arch]

    @property
    def has_cls(self) -> bool:
        """Whether token 0 is a CLS token (ViViT, TimeSformer) or a patch (VideoMAE)."""
        return self.adapter.has_cls

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
        return self.adapter.input_frames(self.config)

    @property
    def image_size(self) -> int:
        return self.adapter.input_size(self.config)

    @property
    def tubelet(self) -> tuple[int, int, int]:
        """Pixels per token (frames, rows, cols): ViViT's ``tubelet_size``, VideoMAE's
        ``(tubelet_size, patch, patch)``, TimeSformer's ``(1, patch, patch)`` (one frame)."""
        return self.adapter.token_geometry(self.config)[0]

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patch grid (time steps, rows, cols): 16 x 14 x 14 for ViViT-B, 8 x 14 x 14 for
        TimeSformer-B (a time step is a frame) and VideoMAE-B (a tubelet of 2 frames)."""
        return self.adapter.token_geometry(self.config)[1]

    @property
    def n_patches(self) -> int:
        t, r, c = self.grid
        return t * r * c

    @property
    def n_tokens(self) -> int:
        """Patch tokens plus CLS where there is one."""
        return self.n_patches + int(self.has_cls)

    def frame_indices(self, clip_frames: int) -> np.ndarray:
        """Which frames of a ``clip_frames`` clip the model reads (its adapter's rule)."""
        return self.adapter.frame_indices(clip_frames, self.num_frames)

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
        return self.model(**{self.model.main_input_name: pixel_values.to(self.device)}).logits.float().cpu()


SUPPORTED = ", ".join(f"{t} ({a.hf_class.__name__})" for t, a in ADAPTERS.items())


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
    if model_type not in ADAPTERS:
        raise ModelLoadError(
            f"{cfg_file} describes a {model_type!r} model; the supported video classifiers are "
            f"(model_type and class): {SUPPORTED}"
        )
    return model_type


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
            f"{source}: the checkpoint does not fit {ADAPTERS[arch].hf_class.__name__} "
            f"({', '.join(f'{k}: {sorted(map(str, v))[:6]}' for k, v in bad.items())}); "
            f"is it a {arch} video classifier saved by transformers?")


def pretrained(source, arch: str = "vivit"):
    """``(model, loading info)``: ``from_pretrained`` of ``arch``'s classifier with eager attention;
    a weight of the wrong shape is a ModelLoadError."""
    cls = ADAPTERS[arch].hf_class
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
        processor = ADAPTERS[arch].processor_class.from_pretrained(directory)
    else:
        processor = ADAPTERS[arch].hub_processor()  # the public checkpoint's processor, not the class defaults
    return finish(model, processor, profile, target, device, preprocess, source=str(directory),
                  extra={"loading_info": info})


def profile_config(profile: str):
    """The profile's model config alone (no weights): shipped folder, code, the HF cache or a folder.

    Any architecture; its adapter's ``input_frames(config)`` is the frame count the model reads.
    """
    if profile in TOY_DIRS:
        if not (TOY_DIRS[profile] / "config.json").is_file():
            raise ModelLoadError(f"the {profile} checkpoint is missing from {TOY_DIRS[profile]}")
        return AutoConfig.from_pretrained(TOY_DIRS[profile])
    if profile in SHAPE_PROFILES:
        return SHAPE_PROFILES[profile].shape_config()
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
            recipe = folder.name.removeprefix("toy-")  # utils.train's recipe: vivit, timesformer, outcome, seed1 ...
            raise ModelLoadError(
                f"the {profile} checkpoint is missing from {folder}; "
                f"restore it with `git checkout data/models` or (re)train it with `make toy-model ARCH={recipe}`"
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
    adapter = SHAPE_PROFILES[profile]
    from transformers.initialization import no_init_weights

    from utils import memo

    cfg = adapter.shape_config()

    def draw() -> tuple[dict, torch.Tensor]:
        torch.manual_seed(0)
        model = adapter.hf_class(cfg).eval()
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name in ("position_embeddings", "cls_token", "time_embeddings"):  # in this order (the RNG stream)
                for key in (k for k in params if k.endswith(f"embeddings.{name}")):  # VideoMAE's table is a buffer
                    params[key].normal_(0.0, 0.02)
        return model.state_dict(), torch.get_rng_state()

    # Drawing ViViT-B's 86M weights takes seconds; the notebooks of one kernel (utils.memo) get a
    # copy of the first draw, and the global torch RNG is left as the draw leaves it.
    state, rng = memo.memoized(("shape_model_weights", profile, cfg.to_json_string()), draw)
    torch.set_rng_state(rng)
    with no_init_weights():
        model = adapter.hf_class(cfg).eval()
    model.load_state_dict(state, assign=True)
    model.config._attn_implementation = "eager"
    return finish(model, adapter.hub_processor(), profile, target, device, preprocess, untrained=True,
                  source=f"random init, torch seed 0 ({SHAPE_CHECKPOINTS[profile]}'s configuration)")
