"""Named activations of a HuggingFace video transformer, in the TransformerLens style.

``HookedVideoTransformer`` (``utils.arch.core``) runs the HF model's
own submodules one step at a time and exposes every intermediate under the names
interpretability readers know. It takes a loaded ViViT, TimeSformer or VideoMAE; an adapter per
architecture (``utils.arch``) says how each one embeds, attends, and reads out. The ViViT names
(``hook_embed``, ``blocks.{l}.hook_resid_pre``, ``attn.hook_z``, ``attn.hook_pattern``,
``attn.hook_pattern_cls``, ``hook_attn_out``, ``hook_resid_mid``, ``hook_mlp_out``,
``hook_resid_post``, ``ln_final.hook_normalized``) and their shapes are tabled in
``utils/arch/vivit.py``.

VideoMAE has the same names except ``attn.hook_pattern_cls`` (no CLS token; its
``ln_final.hook_normalized`` is ``fc_norm`` of the token mean, ``(batch, d_model)``).
TimeSformer has two attention sites per block, ``attn_time.*`` / ``hook_attn_time_out`` /
``hook_resid_mid_time`` (temporal) and ``attn_space.*`` / ``hook_attn_space_out`` (spatial);
``hook_attn_out`` is their sum. The tables with shapes are in ``utils/arch/vivit.py``,
``utils/arch/timesformer.py`` and ``utils/arch/videomae.py``; ``hooked.components`` lists each
block's components and output hooks.

Why step-by-step instead of ``register_forward_hook``: a run can start mid-network from a
cached state (``start=``), which is what makes patching sweeps cheap; no hook ever stays
registered on the model, whatever goes wrong; and the attention pattern is computed only
where asked (the CLS row costs O(tokens) per head, never tokens^2). ``tests/test_hooks.py`` and
``tests/test_architectures.py`` check every name against the HF forward pass and plain PyTorch
forward hooks.

A hook function has the TransformerLens signature ``fn(activation, name) -> activation | None``
(``None`` keeps the activation, edits made in place included; a returned tensor replaces it and
must have its shape). Every site's edit flows downstream, ``attn.hook_pattern_cls`` included: an
edited CLS row becomes the CLS query's attention weights, so the CLS entry of ``attn.hook_z``
is recomputed as ``row @ V`` (the other queries keep theirs). ViViT token 0 is CLS; patch tokens
follow in the order of the HF tubelet embedding: time step, then row, then column
(``token_index``; TimeSformer orders row, column, frame; VideoMAE has no CLS).

Runs need the model in eval mode (``HookedVideoTransformer`` puts it there; a module switched back to
training raises, since dropout would act on some steps and not others). Inputs
(``pixel_values``, a ``start=`` tensor) move to the model's device; cached activations stay
there (``utils.plotting.to_numpy`` brings them to the CPU). A ``grad=True`` run may start from
a cache made under ``torch.inference_mode`` (the default run): such tensors are cloned first.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from utils import memo
from utils.arch.core import HookedVideoTransformer, HookFn, Run, call_hook, parse_name

__all__ = ["HookFn", "HookedVideoTransformer", "Run", "call_hook", "clean_run", "parse_name", "shared_names"]


def shared_names(hooked: HookedVideoTransformer) -> frozenset[str]:
    """What ``clean_run`` keeps of a clean run: every site but the full attention patterns
    (tokens x tokens per head) and the final norm's output."""
    return frozenset(n for n in hooked.hook_names()
                     if not n.endswith(".hook_pattern") and n != "ln_final.hook_normalized")


def clean_run(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, names: Iterable[str] = ()) -> Run:
    """``hooked.run(pixel_values, names=names)``, shared between the notebooks of one kernel.

    The canonical pair's clean runs are needed by notebooks 01 to 06, each asking for other
    activations. The first call runs the clip once caching ``shared_names`` (a run caches
    what it is asked for without computing anything differently, so every activation is
    bitwise what a run asking for it alone gives; the logits are those of a run that computes
    its last block in full) and stores it in ``utils.memo`` (keyed on the
    model's weights and the input); later calls, in this notebook or the next, take their
    ``names`` from it. Names outside ``shared_names`` (full attention patterns) run afresh.
    At ViViT-B scale the stored run of one clip holds ~0.6 GB (5 sites x 12 layers x 9.6 MB).
    """
    names = frozenset(names)
    if not names <= shared_names(hooked):
        return hooked.run(pixel_values, names=names)
    key = ("clean_run", memo.model_fingerprint(hooked.model), str(hooked.device),
           memo.tensor_fingerprint(pixel_values))
    full = memo.memoized(key, lambda: hooked.run(pixel_values, names=shared_names(hooked)))
    return Run(full.logits, {n: full.cache[n] for n in names})
