"""Class names, the analysed class, the device and the preprocessing mode of a run: what a user
types (``TARGET=``, ``DEVICE=``, ``PREPROCESS=``) resolved once, with one clear error naming the
input and the fix (``ModelLoadError``).

The hub's ``config.json`` names its 400 classes ``LABEL_0`` ... ``LABEL_399``. A checkpoint
with such generic names and 400 classes gets the Kinetics-400 names of
``data/kinetics400_labels.txt`` (``name_classes``). The analysed class (``target``: a name or an
index, default "bowling") is resolved for every profile; a class that cannot be found stops with
the nearest names, never a silent fallback.
"""

from __future__ import annotations

import difflib
import re

import torch

from utils import paths


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the input and the fix."""


DEFAULT_TARGET = "bowling"  # the class whose logit is analysed, unless TARGET= says otherwise
PREPROCESS_MODES = {
    "checkpoint": "the checkpoint's own processor",
    "original": "[-1, 1] (x / 127.5 - 1), as the original ViViT was trained",
}
DEVICES = ("auto", "cpu", "cuda")
GENERIC_LABEL = re.compile(r"LABEL_\d+")


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
