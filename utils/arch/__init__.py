"""One hooked core, one small adapter per architecture (``utils.arch.core`` has the core).

=============  ===========================================  ===================================
``arch``       HuggingFace class                            adapter
=============  ===========================================  ===================================
vivit          ``VivitForVideoClassification``              ``utils.arch.vivit.VivitAdapter``
timesformer    ``TimesformerForVideoClassification``        ``utils.arch.timesformer.TimesformerAdapter``
videomae       ``VideoMAEForVideoClassification``           ``utils.arch.videomae.VideoMAEAdapter``
vjepa2         ``VJEPA2ForVideoClassification``             ``utils.arch.vjepa2.VJEPA2Adapter``
=============  ===========================================  ===================================

The key is the checkpoint's ``config.model_type``.
"""

from __future__ import annotations

from utils.arch.core import Adapter, HookedVideoTransformer
from utils.arch.timesformer import TimesformerAdapter
from utils.arch.videomae import VideoMAEAdapter
from utils.arch.vivit import VivitAdapter
from utils.arch.vjepa2 import VJEPA2Adapter

ADAPTERS: dict[str, type[Adapter]] = {
    "vivit": VivitAdapter,
    "timesformer": TimesformerAdapter,
    "videomae": VideoMAEAdapter,
    "vjepa2": VJEPA2Adapter,
}


def adapter_for(model) -> Adapter:
    """The adapter of a HuggingFace video classifier, chosen by its ``config.model_type``."""
    arch = getattr(model.config, "model_type", None)
    if arch not in ADAPTERS:
        raise ValueError(f"no hooked adapter for model_type {arch!r}; supported: {', '.join(ADAPTERS)}")
    return ADAPTERS[arch](model)


__all__ = ["ADAPTERS", "Adapter", "HookedVideoTransformer", "adapter_for"]
