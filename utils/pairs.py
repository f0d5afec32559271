"""The paper's analyses repeated over many pairs (notebook 06), as tidy per-pair tables.

For each (strike, gutter) pair: delta norms per layer, the attention-vs-MLP patching sweep
in both directions (strike into gutter, as the paper; gutter into strike), the logit lens
(first layer at which the target class ranks top), and the top-10% token ablation of both
clips. ``kind`` tags matched pairs (same seed: only the outcome differs) and unmatched
pairs (different seeds: every nuisance factor differs too, as in the paper's two videos).

Also over pairs: probes of the outcome with a permutation test (``probe_pairs``), integrated
gradients beside token DLA at the same site (``ig_vs_dla_pairs``), and the top-10% ablation
against random draws of as many patches (``top_vs_random_pairs``). The figures of notebook 06
that draw these tables close the module (``*_figure``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from utils import memo
from utils.ablation import ablation_names, top_fraction_ablation, top_vs_random
from utils.attention import readout_attention_names, readout_attention_row
from utils.attribution import complete_residual_ig, logit_lens_readout, residual_ig_names, token_dla, token_dla_names
from utils.data import CANONICAL_GUTTER, CANONICAL_STRIKE
from utils.deltas import delta_names, delta_norms
from utils.features import pair_design
from utils.hooks import HookedVideoTransformer, clean_run
from utils.patching import (
    component_sweep,
    head_patches,
    needed_target_names,
    patch_table,
    position_patches,
    time_step_patches,
)
from utils.plotting import COMPONENT_COLOURS, heatmap
from utils.probes import N_PERM, grouped_probe_by_pair, paired_probe, paired_probe_by_pair, permutation_test
from utils.stats import paired_difference, summarise

KIND_COLOURS = {"matched": "k", "unmatched": "tab:red"}  # the pair sets, as in every figure of notebook 06
DIRECTIONS = {"strike->gutter": ("strike", "gutter"), "gutter->strike": ("gutter", "strike")}


def _clean(hooked: HookedVideoTransformer, data, clip_id: str, names) -> object:
    """The clean run of a prepared clip caching ``names``: the canonical pair's from
    ``utils.hooks.clean_run`` (shared with notebooks 01-05), any other clip's run afresh (so
    that the shared store holds two clips, whatever the number of pairs)."""
    if clip_id in (CANONICAL_STRIKE, CANONICAL_GUTTER):
        return clean_run(hooked, data.pixels(clip_id), names)
    return hooked.run(data.pixels(clip_id), names=names)


def ig_names(hooked: HookedVideoTransformer) -> set[str]:
    """What ``ig_vs_dla_pairs`` (and ``residual_ig_of``) read of a clean run."""
    last = hooked.n_layers - 1
    return set(token_dla_names(hooked)) | set(residual_ig_names(hooked)) | {readout_attention_names(hooked)[last]}


def residual_ig_of(hooked: HookedVideoTransformer, data, clip_id: str, target: int, steps: int = 16, rtol: float = 0.01,
                   atol: float = 1e-3, run=None) -> dict:
    """``complete_residual_ig`` of a prepared clip's clean run (``run``, caching ``ig_names``,
    when the caller has it), shared between the calls of one kernel (``utils.memo``): notebook
    06's table and figure both need the canonical strike's."""
    key = ("residual_ig_of", memo.model_fingerprint(hooked.model), str(hooked.device),
           memo.tensor_fingerprint(data.pixels(clip_id)), target, steps, rtol, atol)

    def compute():
        clean = run if run is not None else _clean(hooked, data, clip_id, ig_names(hooked))
        return complete_residual_ig(hooked, clean, target, steps=steps, rtol=rtol, atol=atol)

    return memo.memoized(key, compute)


def _names(hooked: HookedVideoTransformer) -> set[str]:
    L = hooked.n_layers
    names = set(delta_names(hooked)) | set(needed_target_names(hooked))
    names |= ablation_names(hooked)  # the ablation's scores reuse the clean runs
    return names | {f"blocks.{i}.{s}" for i in range(L) for s in hooked.components.values()}


def analyse_pair(hooked: HookedVideoTransformer, pixels: dict, target: int, pair: str, kind: str,
                 ablation: bool = True) -> dict[str, pd.DataFrame]:
    """``pixels``: {"strike": (1, frame, 3, H, W), "gutter": ...}. Returns tidy DataFrames.
    Shared between the notebooks of one kernel (``utils.memo``): 07 reuses 06's pairs."""
    key = ("analyse_pair", memo.model_fingerprint(hooked.model), str(hooked.device),
           *(memo.tensor_fingerprint(pixels[k]) for k in ("strike", "gutter")), target, pair, kind, ablation)
    return memo.memoized(key, lambda: _analyse_pair(hooked, pixels, target, pair, kind, ablation))


def _analyse_pair(hooked: HookedVideoTransformer, pixels: dict, target: int, pair: str, kind: str,
                  ablation: bool) -> dict[str, pd.DataFrame]:
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
        d = logit_lens_readout(hooked, r, target)
        top = d[d["rank"] == 0].layer
        lens.append({"run": k, "first_top_layer": int(top.min()) if len(top) else -1,
                     "final_logit": float(d.logit.iloc[-1]), **tag})
    out["lens"] = pd.DataFrame(lens)
    if ablation:
        rows = []
        for k, px in pixels.items():
            for mode in ("faithful", "corrected"):
                res = top_fraction_ablation(hooked, px, target, mode=mode, run=runs[k])
                before, after = float(res["logits_before"][target]), float(res["logits_after"][target])
                rows.append({"run": k, "mode": mode, "logit_before": before, "logit_after": after,
                             "delta_target_logit": after - before,
                             "still_top": int(res["logits_after"].argmax()) == target, **tag})
        out["ablation"] = pd.DataFrame(rows)
    return out


def analyse_pairs(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int, kind: str,
                  progress: bool = True, ablation: bool = True) -> dict[str, pd.DataFrame]:
    """``analyse_pair`` over ``pairs`` of prepared clip ids; tables concatenated."""
    parts: dict[str, list] = {}
    for s, g in tqdm(pairs, desc=f"{kind} pairs", disable=not progress):
        res = analyse_pair(hooked, {"strike": data.pixels(s), "gutter": data.pixels(g)}, target,
                           s.rsplit("_", 1)[0], kind, ablation)
        for k, v in res.items():
            parts.setdefault(k, []).append(v)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def mlp_minus_attention(patching: pd.DataFrame, value: str = "recovery_notebook_pct") -> pd.DataFrame:
    """MLP minus attention recovery per direction and layer over pairs (``paired_difference``:
    estimate, 95% CI, ``share_mlp_ahead``), one block of rows per attention component
    (``versus``: ``attention``; TimeSformer: ``attention_time`` and ``attention_space``)."""
    parts = []
    for comp in [c for c in patching.component.unique() if c != "mlp"]:
        d = paired_difference(patching, ["direction", "layer"], "component", "mlp", comp, value)
        parts.append(d.rename(columns={f"share_mlp_gt_{comp}": "share_mlp_ahead"}).assign(versus=comp))
    return pd.concat(parts, ignore_index=True)


PROBE_SITES = {  # probe features -> their site dimensions (before d_model)
    "readout": ("layer",),  # the readout token after each block (the paper's probe: CLS; VideoMAE: the token mean)
    "patch_mean": ("layer",),  # the mean of all patch tokens after each block
    "time_step_mean": ("layer", "time_step"),  # the mean of the patch tokens of each tubelet time step
}


@torch.inference_mode()
def probe_features(hooked: HookedVideoTransformer, data, ids: list[str],
                   batch_size: int = 16) -> dict[str, torch.Tensor]:
    """Features of ``PROBE_SITES`` from the residual stream after every block, on the CPU:
    ``cls`` and ``patch_mean`` ``(clip, layer, d_model)``, ``time_step_mean``
    ``(clip, layer, time step, d_model)``."""
    site = [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    T, R, C = hooked.grid
    parts: dict[str, list] = {k: [] for k in PROBE_SITES}
    for i in range(0, len(ids), batch_size):
        px = torch.cat([data.pixels(c) for c in ids[i : i + batch_size]])
        r = hooked.run(px, names=site)
        x = torch.stack([r[s] for s in site], 1)  # (clip, layer, tokens, d_model)
        order = hooked.patch_order().flatten().to(x.device)  # (t, row, col) -> patch index (TimeSformer: frame last)
        patches = x[:, :, hooked.n_prefix:][:, :, order].reshape(*x.shape[:2], T, R * C, x.shape[-1])
        # what the classifier reads: CLS, or (VideoMAE) the mean of all tokens
        parts["readout"].append(hooked.readout_tokens(x.flatten(0, 1)).reshape(*x.shape[:2], -1).cpu())
        parts["patch_mean"].append(patches.mean((2, 3)).cpu())
        parts["time_step_mean"].append(patches.mean(3).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def clip_readout_features(hooked: HookedVideoTransformer, data, ids: list[str], batch_size: int = 16) -> torch.Tensor:
    """``(clip, layer, d_model)``: the CLS residual after every block, for probes."""
    return probe_features(hooked, data, ids, batch_size)["readout"]


def probe_pairs(hooked: HookedVideoTransformer, data, pair_sets: dict[str, list[tuple[str, str]]], n_splits: int = 5,
                n_perm: int = N_PERM, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Strike-vs-gutter probes on held-out pairs, for every feature of ``PROBE_SITES`` and every
    set of pairs (``pair_sets``: kind -> (strike id, gutter id) list; sets of fewer than two
    pairs are skipped), each with its within-pair permutation test (``utils.probes``).

    Returns three tidy tables, ``time_step`` = -1 where a feature has no time step:
    ``by_pair`` (``kind``, ``feature``, ``layer``, ``time_step``, ``pair``, ``accuracy``; one row
    per pair, for bootstrap intervals), ``sites`` (per site: ``accuracy``, corrected
    ``p_value``, ``p_uncorrected``, ``null_mean``, ``null_q95``, ``is_best``) and ``summary``
    (per kind and feature: the best site, its accuracy and corrected ``p_best``; the mean
    accuracy over sites with its null mean and two one-sided p-values, ``p_mean_below`` and
    ``p_mean_above``: is the whole curve lower or higher than chance?).
    """
    by_pair, sites, summary, paired = [], [], [], []
    for kind, pairs in pair_sets.items():
        if len(pairs) < 2:
            continue
        ids, labels, groups = pair_design(pairs)
        names = np.array([s.rsplit("_", 1)[0] for s, _ in pairs])[groups]  # (clip,) pair names
        feats = probe_features(hooked, data, ids)
        for feature, dims in PROBE_SITES.items():
            x = feats[feature].numpy()
            tag = {"kind": kind, "feature": feature}
            bp = grouped_probe_by_pair(x, labels, names, n_splits, site_names=dims).assign(**tag)
            test = permutation_test(x, labels, groups, n_perm, n_splits, seed=seed, site_names=dims)
            t = test.table.assign(**tag)
            for d in (bp, t):
                if "time_step" not in d:
                    d["time_step"] = -1
            by_pair.append(bp)
            sites.append(t)
            best = t[t.is_best].iloc[0]
            # the paired probe (the primary test): strike-minus-gutter differences, pairs kept whole
            xp = x.reshape(len(pairs), 2, *x.shape[1:])  # (pair, 2, *sites, d): strike at index 0
            pp = paired_probe(xp, n_perm=n_perm, seed=seed, site_names=dims).table
            pbest = pp[pp.is_best].iloc[0]
            pb = paired_probe_by_pair(xp, site_names=dims).assign(**tag)
            pb["pair"] = np.array([s.rsplit("_", 1)[0] for s, _ in pairs])[pb.pair.to_numpy()]
            paired.append(pb)
            summary.append({**tag, "n_pairs": len(pairs), "best_layer": int(best.layer),
                            "best_time_step": int(best.time_step), "best_accuracy": float(best.accuracy),
                            "p_best": test.p_best, "mean_accuracy": test.observed_mean,
                            "null_mean_accuracy": float(test.null_mean.mean()),
                            "p_mean_below": test.p_mean_below, "p_mean_above": test.p_mean_above,
                            "paired_best_layer": int(pbest.layer),
                            "paired_best_time_step": int(pbest.get("time_step", -1)),
                            "paired_accuracy": float(pbest.accuracy), "paired_p_best": float(pbest.p_value),
                            "n_perm": n_perm})
    cols = ["kind", "feature", "layer", "time_step"]
    by_pair = pd.concat(by_pair, ignore_index=True)
    sites = pd.concat(sites, ignore_index=True)
    paired = pd.concat(paired, ignore_index=True)
    if "time_step" not in paired:
        paired["time_step"] = -1
    paired["time_step"] = paired.time_step.fillna(-1).astype(int)
    return {"by_pair": by_pair[cols + ["pair", "accuracy"]],
            "sites": sites[cols + [c for c in sites if c not in cols]],
            "summary": pd.DataFrame(summary),
            "paired_by_pair": paired[cols + ["pair", "accuracy"]]}


def probe_table(probes: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (kind, feature, layer, time step): held-out accuracy over pairs with its
    95% bootstrap interval (``utils.stats.summarise``) beside the permutation test's
    ``p_value`` (corrected for the choice of site), ``p_uncorrected``, ``null_mean`` and
    ``null_q95``. ``probes``: ``probe_pairs`` output."""
    keys = ["kind", "feature", "layer", "time_step"]
    ci = summarise(probes["by_pair"], keys, "accuracy")
    tests = probes["sites"][keys + ["p_value", "p_uncorrected", "null_mean", "null_q95", "n_perm"]]
    return ci.merge(tests, on=keys)


def ig_vs_dla_pairs(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int, steps: int = 32,
                    kind: str = "matched", progress: bool = True, rtol: float = 0.01,
                    atol: float = 1e-3) -> pd.DataFrame:
    """Integrated gradients (``residual_ig``) beside token DLA (``token_dla``), both on the patch
    tokens of the last block's input, for both clips of every pair; one row per clip.

    Columns: ``pair``, ``kind``, ``run``, ``spearman_ig_dla`` (rank correlation over patches),
    ``spearman_dla_attention`` (token DLA against the last layer's CLS attention, mean over
    heads: how much of DLA's map is the attention pattern), ``top_overlap`` (share of the top
    10% patches by IG that are also top 10% by DLA), ``ig_total``, ``logit``,
    ``baseline_logit``, ``gap`` (= logit - baseline_logit), ``completeness_error``
    (``ig_total - gap``) and ``steps`` (``steps``, doubled per clip until completeness holds
    within ``atol + rtol |gap|``: ``complete_residual_ig``).
    """
    last = hooked.n_layers - 1
    names = ig_names(hooked)
    rows = []
    for s, g in tqdm(pairs, desc=f"IG vs DLA, {kind} pairs", disable=not progress):
        for run_name, cid in (("strike", s), ("gutter", g)):
            run = _clean(hooked, data, cid, names)
            ig = residual_ig_of(hooked, data, cid, target, steps=steps, rtol=rtol, atol=atol, run=run)
            dla = token_dla(hooked, run, target)["tokens"][hooked.n_prefix:]  # (patches,)
            attn = readout_attention_row(hooked, run, last)  # (patches,) the readout's attention, mean of heads
            v = pd.DataFrame({"ig": ig["tokens"].cpu().numpy(), "dla": dla.cpu().numpy(),
                              "attn": attn.cpu().numpy()})
            k = max(1, len(v) // 10)
            top = len(set(v.ig.nlargest(k).index) & set(v.dla.nlargest(k).index)) / k
            rows.append({"pair": s.rsplit("_", 1)[0], "kind": kind, "run": run_name,
                         "spearman_ig_dla": v.ig.corr(v.dla, method="spearman"),
                         "spearman_dla_attention": v.dla.corr(v.attn, method="spearman"),
                         "top_overlap": top, "ig_total": ig["total"], "logit": ig["logit"],
                         "baseline_logit": ig["baseline_logit"], "gap": ig["gap"],
                         "completeness_error": ig["total"] - ig["gap"], "steps": ig["steps"]})
    return pd.DataFrame(rows)


def top_vs_random_pairs(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int,
                        n_draws: int = 20, mode: str = "corrected", fraction: float = 0.1, seed: int = 0,
                        kind: str = "matched", progress: bool = True) -> pd.DataFrame:
    """``utils.ablation.top_vs_random`` for both clips of every pair (the same ``n_draws``
    random patch sets, seed ``seed``, in every clip), for the notebook's score and token DLA;
    one row per clip and score, tagged ``pair``, ``kind``, ``run``."""
    parts = []
    for s, g in tqdm(pairs, desc=f"top vs random, {kind} pairs", disable=not progress):
        for run_name, cid in (("strike", s), ("gutter", g)):
            t = top_vs_random(hooked, data.pixels(cid), target, n_draws, mode, fraction=fraction, seed=seed,
                              run=_clean(hooked, data, cid, ablation_names(hooked)))
            parts.append(t.assign(pair=s.rsplit("_", 1)[0], kind=kind, run=run_name))
    out = pd.concat(parts, ignore_index=True)
    return out[["pair", "kind", "run"] + [c for c in out if c not in ("pair", "kind", "run")]]


def fine_grained_patching(hooked: HookedVideoTransformer, data, strike_id: str, gutter_id: str, target: int,
                  position_layer: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Strike-into-gutter patching of one pair at fine grain: every head (``attn.hook_z``),
    every tubelet time step at every layer (``resid_pre``), and every spatial position at
    ``position_layer`` (``resid_pre``, all time steps). Three tidy tables, tagged by pair."""
    key = ("fine_grained_patching", memo.model_fingerprint(hooked.model), str(hooked.device),
           *(memo.tensor_fingerprint(data.pixels(c)) for c in (strike_id, gutter_id)), strike_id, target,
           position_layer)
    return memo.memoized(key, lambda: _fine_grained_patching(hooked, data, strike_id, gutter_id, target,
                                                             position_layer))


def _fine_grained_patching(hooked: HookedVideoTransformer, data, strike_id: str, gutter_id: str, target: int,
                           position_layer: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    L = hooked.n_layers
    names = {f"blocks.{i}.{s}" for i in range(L) for s in (*hooked.head_sites.values(), "hook_resid_pre")}
    src = hooked.run(data.pixels(strike_id), names=names | {f"blocks.{L - 1}.hook_resid_post"})
    tgt = hooked.run(data.pixels(gutter_id), names=needed_target_names(hooked))
    runs = (src, tgt)
    heads = patch_table(hooked, None, None, target, lambda c: head_patches(hooked, c), runs=runs)
    steps = pd.concat([patch_table(hooked, None, None, target, lambda c, lay=lay: time_step_patches(hooked, c, lay),
                                   runs=runs) for lay in range(L)], ignore_index=True)
    positions = patch_table(hooked, None, None, target,
                            lambda c: position_patches(hooked, c, position_layer), runs=runs)
    tag = strike_id.rsplit("_", 1)[0]
    return tuple(t.assign(pair=tag) for t in (heads, steps, positions))


# ---------------------------------------------------------------------------- figures of notebook 06
def delta_norms_pairs_figure(dn: pd.DataFrame, canonical: pd.Series):
    """Fig. 9: mean token delta norm per layer over matched and unmatched pairs (mean and 95%
    CI; ``dn``: ``summarise(deltas, ["kind", "layer"], "mean_token_norm")``) and the canonical
    pair's (``canonical``: layer -> norm)."""
    kinds = [k for k in KIND_COLOURS if (dn.kind == k).any()]
    # (a) matched pairs and the canonical pair on their own linear scale; (b) every kind on a log
    # scale: unmatched pairs differ ~10x more and would flatten the matched curve on one axis
    panels = [("(a) matched pairs (linear)", [k for k in kinds if k == "matched"], False)]
    if len(kinds) > 1:
        panels.append(("(b) every kind of pair (log scale)", kinds, True))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    for ax, (title, shown, log) in zip(axes[0], panels, strict=True):
        for kind in shown:
            d = dn[dn.kind == kind]
            col = KIND_COLOURS[kind]
            ax.plot(d.layer, d.estimate, "o-", color=col, label=f"{kind} pairs (n={int(d.n_pairs.iloc[0])}), 95% CI")
            ax.fill_between(d.layer, d.ci_low, d.ci_high, color=col, alpha=0.2)
        ax.plot(canonical.index, canonical.values, "s--", color="tab:purple", label="canonical pair")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("layer (-1 = embedding)")
        ax.set_ylabel("mean ‖strike − gutter‖₂ per token")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 9 · Delta norms: matched pairs differ only in the outcome; unmatched pairs in everything",
                 fontweight="bold")
    fig.tight_layout()
    return fig


def patching_pairs_figure(pp: pd.DataFrame):
    """Fig. 10: attention and MLP patching recovery per layer over pairs (mean and 95% CI),
    notebook metric and projection, both directions, matched (solid) and unmatched (dotted).
    ``pp``: ``summarise`` of the patching table by kind, direction, layer, component."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), sharex=True)
    for i, direction in enumerate(DIRECTIONS):
        for j, m in enumerate(("recovery_notebook_pct", "recovery_projection_pct")):
            ax = axes[i, j]
            for kind, ls in (("matched", "-"), ("unmatched", ":")):
                for comp, col in COMPONENT_COLOURS.items():
                    d = pp[(pp.kind == kind) & (pp.direction == direction) & (pp.component == comp) & (pp.measure == m)]
                    if len(d):
                        ax.plot(d.layer, d.estimate, ls, marker="o", ms=3, color=col, label=f"{comp}, {kind}")
                        ax.fill_between(d.layer, d.ci_low, d.ci_high, color=col, alpha=0.15)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_title(f"{direction}: {m.replace('_pct', '').replace('_', ' ')}")
            ax.set_ylabel("recovery (%)")
            ax.set_xlabel("patched layer")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Patching over pairs (mean and 95% CI): notebook metric vs projection, both directions")
    fig.tight_layout()
    return fig


def fine_patching_figure(hs: pd.DataFrame, fs: pd.DataFrame, ps: pd.DataFrame, position_layer: int, n_pairs: int):
    """Fig. 11: projection recovery of patching one head (``hs``: by layer, head, and ``site`` for
    TimeSformer's two attention steps), one time step
    (``fs``: by layer, time_step) and one spatial position at ``position_layer`` (``ps``: by
    row, col), strike into gutter, mean over ``n_pairs`` pairs."""
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 0.8]})
    head_rows = ["layer", "site"] if "site" in hs else "layer"  # TimeSformer: a row per layer and attention step
    panels = [(hs, head_rows, "head", "(a) one head at a time", "head", "layer"),
              (fs, "layer", "time_step", "(b) one time step at a time (resid_pre)", "time step (tubelet)", "layer"),
              (ps, "row", "col", f"(c) one position, layer {position_layer}", "patch column", "patch row")]
    for ax, (d, index, columns, title, xlabel, ylabel) in zip(axes, panels, strict=True):
        heatmap(ax, d.pivot(index=index, columns=columns, values="estimate"), title, xlabel, ylabel,
                cmap="RdBu_r", center=0, cbar_label="projection recovery (%)")
    fig.suptitle(f"Where the outcome signal lives: patching strike into gutter, mean over {n_pairs} pairs")
    fig.tight_layout()
    return fig


def probe_figure(table: pd.DataFrame):
    """Probes on held-out pairs: (a) CLS and (b) mean patch token per layer, matched and
    unmatched pairs, mean and 95% bootstrap CI, with the 95th percentile of the permutation
    null; (c) matched pairs, mean patch token of each time step x layer. ``table``:
    ``probe_table`` output."""
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    panels = ((axes[0], "readout", "(a) readout token (CLS)"), (axes[1], "patch_mean", "(b) mean patch token"))
    for ax, feature, title in panels:
        for kind, col in KIND_COLOURS.items():
            d = table[(table.kind == kind) & (table.feature == feature)]
            if not len(d):
                continue
            ax.plot(d.layer, 100 * d.estimate, "o-", color=col, label=f"{kind} pairs (n={int(d.n_pairs.iloc[0])})")
            ax.fill_between(d.layer, 100 * d.ci_low, 100 * d.ci_high, color=col, alpha=0.15)
            ax.plot(d.layer, 100 * d.null_q95, ":", color=col, lw=1, label=f"{kind}: 95th pct. of the null")
        ax.axhline(50, color="grey", ls="--", lw=1, label="chance")
        ax.set_ylim(0, 105)
        ax.set_xlabel("layer")
        ax.set_ylabel("accuracy on held-out pairs (%)")
        ax.set_title(title)
    axes[0].legend(fontsize=7, loc="lower left")
    ts = table[(table.kind == "matched") & (table.feature == "time_step_mean")]
    if len(ts):
        heatmap(axes[2], 100 * ts.pivot(index="layer", columns="time_step", values="estimate"),
                "(c) matched pairs: mean patch token of one time step", "time step (tubelet)", "layer",
                cmap="RdBu_r", center=50, cbar_label="accuracy on held-out pairs (%)")
    else:
        axes[2].set_axis_off()
    fig.suptitle("Where can a linear probe read the outcome? Ridge probes tested on pairs they never saw")
    fig.tight_layout()
    return fig
