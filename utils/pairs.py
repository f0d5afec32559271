"""The paper's analyses repeated over many pairs (notebook 06), as tidy per-pair tables.

For each (strike, gutter) pair: delta norms per layer, the attention-vs-MLP patching sweep
in both directions (strike into gutter, as the paper; gutter into strike), the logit lens
(first layer at which the target class ranks top), and the top-10% token ablation of both
clips. ``kind`` tags matched pairs (same seed: only the outcome differs) and unmatched
pairs (different seeds: every nuisance factor differs too, as in the paper's two videos).
"""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from utils.ablation import top_fraction_ablation
from utils.attribution import logit_lens_cls
from utils.deltas import delta_names, delta_norms
from utils.hooks import HookedViViT
from utils.patching import (
    component_sweep,
    frame_patches,
    head_patches,
    needed_target_names,
    patch_table,
    position_patches,
)

DIRECTIONS = {"strike->gutter": ("strike", "gutter"), "gutter->strike": ("gutter", "strike")}


def _names(hooked: HookedViViT) -> set[str]:
    L = hooked.n_layers
    names = set(delta_names(hooked)) | set(needed_target_names(hooked))
    return names | {f"blocks.{i}.{s}" for i in range(L) for s in ("hook_attn_out", "hook_mlp_out")}


def analyse_pair(hooked: HookedViViT, pixels: dict, target: int, pair: str, kind: str,
                 ablation: bool = True) -> dict[str, pd.DataFrame]:
    """``pixels``: {"strike": (1, frame, 3, H, W), "gutter": ...}. Returns tidy DataFrames."""
    runs = {k: hooked.run(v, names=_names(hooked)) for k, v in pixels.items()}
    tag = {"pair": pair, "kind": kind}
    out = {"deltas": delta_norms(hooked, runs["strike"], runs["gutter"]).assign(**tag)}
    sweeps = []
    for direction, (src, tgt) in DIRECTIONS.items():
        sweeps.append(component_sweep(hooked, None, None, target, runs=(runs[src], runs[tgt]))
                      .assign(direction=direction, **tag))
    out["patching"] = pd.concat(sweeps, ignore_index=True)
    lens = []
    for k, r in runs.items():
        d = logit_lens_cls(hooked, r, target)
        top = d[d["rank"] == 0].layer
        lens.append({"run": k, "first_top_layer": int(top.min()) if len(top) else -1,
                     "final_logit": float(d.logit.iloc[-1]), **tag})
    out["lens"] = pd.DataFrame(lens)
    if ablation:
        rows = []
        for k, px in pixels.items():
            clean = None  # one clean run serves both modes
            for mode in ("faithful", "corrected"):
                res = top_fraction_ablation(hooked, px, target, mode=mode, run=clean)
                clean = res["run"]
                before, after = float(res["logits_before"][target]), float(res["logits_after"][target])
                rows.append({"run": k, "mode": mode, "logit_before": before, "logit_after": after,
                             "delta_target_logit": after - before,
                             "still_top": int(res["logits_after"].argmax()) == target, **tag})
        out["ablation"] = pd.DataFrame(rows)
    return out


def analyse_pairs(hooked: HookedViViT, data, pairs: list[tuple[str, str]], target: int, kind: str,
                  progress: bool = True, ablation: bool = True) -> dict[str, pd.DataFrame]:
    """``analyse_pair`` over ``pairs`` of prepared clip ids; tables concatenated."""
    parts: dict[str, list] = {}
    for s, g in tqdm(pairs, desc=f"{kind} pairs", disable=not progress):
        res = analyse_pair(hooked, {"strike": data.pixels(s), "gutter": data.pixels(g)}, target,
                           s.rsplit("_", 1)[0], kind, ablation)
        for k, v in res.items():
            parts.setdefault(k, []).append(v)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


@torch.inference_mode()
def cls_features(hooked: HookedViViT, data, ids: list[str], batch: int = 16) -> torch.Tensor:
    """``(clip, layer, d_model)``: the CLS residual after every block, for probes."""
    site = [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    feats = []
    for i in range(0, len(ids), batch):
        px = torch.cat([data.pixels(c) for c in ids[i : i + batch]])
        r = hooked.run(px, names=site)
        feats.append(torch.stack([r[s][:, 0] for s in site], 1))
    return torch.cat(feats)


def fine_grained_patching(hooked: HookedViViT, data, strike_id: str, gutter_id: str, target: int,
                  position_layer: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Strike-into-gutter patching of one pair at fine grain: every head (``attn.hook_z``),
    every tubelet time step at every layer (``resid_pre``), and every spatial position at
    ``position_layer`` (``resid_pre``, all time steps). Three tidy tables, tagged by pair."""
    L = hooked.n_layers
    names = {f"blocks.{i}.{s}" for i in range(L) for s in ("attn.hook_z", "hook_resid_pre")}
    src = hooked.run(data.pixels(strike_id), names=names | {f"blocks.{L - 1}.hook_resid_post"})
    tgt = hooked.run(data.pixels(gutter_id), names=needed_target_names(hooked))
    runs = (src, tgt)
    heads = patch_table(hooked, None, None, target, lambda c: head_patches(hooked, c), runs=runs)
    frames = pd.concat([patch_table(hooked, None, None, target, lambda c, lay=lay: frame_patches(hooked, c, lay),
                                    runs=runs) for lay in range(L)], ignore_index=True)
    positions = patch_table(hooked, None, None, target,
                            lambda c: position_patches(hooked, c, position_layer), runs=runs)
    tag = strike_id.rsplit("_", 1)[0]
    return tuple(t.assign(pair=tag) for t in (heads, frames, positions))
