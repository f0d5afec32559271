"""The ablation tables of notebook 05, assembled from ``utils.ablation``.

* ``token_ablation_table`` - Tables 1 and 2 for one clip: the top-fraction token ablation in
  every mode (``faithful``: the author's indexing; ``corrected``: whole tubelets), both from
  one clean run, and a control that zeroes as many random patches (corrected indexing).
* ``component_ablation_table`` - every layer's attention and MLP output (and, optionally,
  each head) zero- and mean-ablated, for several runs, as one tidy table.
* ``target_changes`` - the target class's row of a token-ablation table, by mode, and
  whether the target stays the top class after the corrected ablation.
"""

from __future__ import annotations

import pandas as pd
import torch

from utils.ablation import (
    MODES,
    ablated_logits,
    before_after,
    component_ablation,
    component_names,
    random_tokens,
    reference_means,
    top_fraction_ablation,
)
from utils.hooks import HookedVideoTransformer

CONTROL = "random control"  # the mode name of the random-patch control


def token_ablation_table(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int, fraction: float = 0.1,
                         control_seed: int = 0, modes=MODES, k: int = 5) -> pd.DataFrame:
    """Top-k classes before / after ablating the top ``fraction`` of patches in each of
    ``modes``, then the random control: columns ``mode``, ``score``, ``n_ablated``, ``rank``,
    ``class``, ``class_index``, ``logit_before``, ``logit_after``, ``change`` (the target
    always has a row, ``utils.ablation.before_after``)."""
    parts, clean = [], None
    for mode in modes:  # one clean run serves every mode
        res = top_fraction_ablation(hooked, pixel_values, target, mode=mode, fraction=fraction, k=k, run=clean)
        clean = res["run"]
        parts.append(res["table"])
    n = res["n_ablated"]
    after = ablated_logits(hooked, pixel_values, random_tokens(hooked, n, control_seed), "corrected")
    ctrl = before_after(res["logits_before"], after, hooked.loaded.id2label, k, include=target)
    ctrl.insert(0, "mode", CONTROL)
    ctrl.insert(1, "score", "random")
    ctrl.insert(2, "n_ablated", n)
    return pd.concat(parts + [ctrl], ignore_index=True)


def component_ablation_table(hooked: HookedVideoTransformer, pixels_by_run: dict[str, torch.Tensor], target: int,
                             reference_pixels: torch.Tensor, heads: bool = False, layers=None) -> pd.DataFrame:
    """``utils.ablation.component_ablation`` of every run in ``pixels_by_run`` (name ->
    ``(1, frame, 3, H, W)``), zero- then mean-ablated (means over ``reference_pixels``, computed
    once; a reference clip that is one of ``pixels_by_run`` reuses its clean run), with a
    ``run`` column; per-head rows (``heads``) for the mean ablation only. ``layers``: the
    layers ablated (default: all)."""
    means = reference_means(hooked, reference_pixels, component_names(hooked, heads, layers),
                            shared=tuple(pixels_by_run.values()))
    parts = [component_ablation(hooked, px, target, how=how, heads=heads and how == "mean", layers=layers,
                                reference=means if how == "mean" else None).assign(run=name)
             for name, px in pixels_by_run.items() for how in ("zero", "mean")]
    return pd.concat(parts, ignore_index=True)


def target_changes(table: pd.DataFrame, target: int) -> dict:
    """From a ``token_ablation_table``: ``logit_before`` of the target, its ``change`` per
    mode (``{mode: change}``), and ``stays_top``: whether it is still the top class after
    the corrected ablation."""
    rows = table[table.class_index == target].set_index("mode")
    corrected = table[table["mode"] == "corrected"]
    return {"logit_before": float(rows.logit_before.iloc[0]),
            "change": {mode: float(v) for mode, v in rows.change.items()},
            "stays_top": bool(corrected.loc[corrected.logit_after.idxmax(), "class_index"] == target)}
