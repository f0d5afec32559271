"""Notebook 07: the paper's questions asked of every architecture over the same matched pairs.

The toy models, one per architecture (``MODELS``, from ``utils.arch``: ``toy``: ViViT, joint
space-time attention; ``toy-timesformer``: TimeSformer, divided attention, a temporal then a
spatial step per block; ``toy-videomae``: VideoMAE, joint attention and no CLS token;
``toy-vjepa2``: V-JEPA 2, joint attention with rotary positions, no CLS, an attentive pooler as
readout) read the *same* clips: each matched pair is
rendered once (``utils.synthetic.render_clip``, 16 frames of 96 x 96, seeds
``PAIR_SEED_BASE + i`` as in notebook 00) and every model's own ``preprocess`` turns it into
its input (TimeSformer reads every second frame, as it was trained). All the grids are
8 time steps x 6 x 6 positions, and time step ``t`` covers frames ``2t, 2t + 1`` of the clip
in every model, so "where in time" is comparable as it stands.

Per model and pair (``compare_models``):

* one batched clean run of every clip caches what everything below reads (``run_names``);
* ``deltas``: the mean token norm of strike - gutter after the embedding and every block
  (``utils.deltas.delta_norms``), and its split over time steps (``time_profile``: the share
  of the delta that sits in the patch tokens of each time step);
* ``patching``: strike into gutter (the paper's direction), one component at a time at the
  layers ``patch_layers`` (``utils.patching.component_sweep``: attention and MLP; TimeSformer:
  temporal attention, spatial attention and MLP), recovery at the last layer;
* probe features (``probe_features_from_runs``): the readout (the CLS token; VideoMAE: the token
  mean; V-JEPA 2: the pooled vector) and the mean patch token of each time step, after every block.

Sharing with notebook 06. A pair that notebook 00 prepared for the profile's own model with
the very same pixels goes through ``utils.pairs.analyse_pair`` exactly as notebook 06 calls it
(matched, with ablation), so ``make figures`` hands over 06's result (``utils.memo``) and the
pair costs nothing; run alone, 07 computes it the same way. Which path a pair takes depends
only on the prepared data, never on what is in the memo, so the tables are the same either
way.

Statistics (``summary_table``): every interval is a 95% percentile bootstrap over pairs
(``utils.stats``); the probe's best layer is tested against the maximum over all sites under
within-pair label swaps (``utils.probes.permutation_test``).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from utils import paper
from utils.arch import ADAPTERS
from utils.arch.core import Run
from utils.data import PAIR_SEED_BASE, synthetic_specs
from utils.deltas import delta_names, delta_norms
from utils.features import pair_design
from utils.hooks import HookedVideoTransformer
from utils.pairs import analyse_pair
from utils.patching import component_sweep, needed_target_names
from utils.plotting import COMPONENT_COLOURS
from utils.probes import grouped_probe_by_pair, permutation_test
from utils.stats import per_unit, summarise
from utils.synthetic import DEFAULT_NUM_FRAMES, DEFAULT_SIZE, bowling_divergence_frame, render_clip

MODELS = {a.title: a.toy_profile for a in ADAPTERS.values()}  # name -> profile: every architecture's toy model
MODEL_COLOURS = {a.title: a.colour for a in ADAPTERS.values()}  # one colour per model
DIRECTION = "strike->gutter"  # the paper's patching direction
PROBE_FEATURES = {"readout": ("layer",), "time_step_mean": ("layer", "time_step")}  # feature -> site dims
MID_LAYERS = (4, 10)  # the paper's Table 3 range (MLP 42-60% vs attention 37-54%)
GROWTH_FROM = paper.GROWTH_FROM  # delta growth: last layer / this layer (paper Fig. 5: ~75 at layer 5, >250 at 11)


# ---------------------------------------------------------------------------- clips
def pair_specs(n_pairs: int) -> list[tuple[str, int]]:
    """``(pair name, seed)`` of the first ``n_pairs`` matched pairs, named and seeded as notebook
    00 names them (``pair000`` = seed ``PAIR_SEED_BASE``)."""
    specs = [(name, s_seed) for _, s_seed, _, name in synthetic_specs(n_pairs)[1:]]
    assert all(seed == PAIR_SEED_BASE + i for i, (_, seed) in enumerate(specs))
    return specs


def render_pairs(specs: list[tuple[str, int]], num_frames: int = DEFAULT_NUM_FRAMES,
                 size: int = DEFAULT_SIZE) -> dict[str, np.ndarray]:
    """Clip id (``pair000_strike``, ...) -> uint8 frames ``(frame, H, W, 3)``, strike then gutter."""
    return {f"{name}_{outcome}": render_clip("bowling", seed, outcome, num_frames=num_frames, size=size)
            for name, seed in specs for outcome in ("strike", "gutter")}


def model_pixels(loaded, clips: dict[str, np.ndarray]) -> torch.Tensor:
    """``(clip, frame, 3, H, W)``: every clip through the model's own ``preprocess``, in order."""
    return torch.cat([loaded.preprocess(f) for f in clips.values()])


def shared_pairs(data, pixels: torch.Tensor, ids: list[str]) -> list[str]:
    """Pair names whose two clips notebook 00 prepared (``data``: ``utils.data.Prepared`` or
    None) with exactly these pixels: those go through ``analyse_pair`` as in notebook 06."""
    if data is None:
        return []
    same = {c for i, c in enumerate(ids) if c in data.ids and data.pixels(c).shape == pixels[i : i + 1].shape
            and torch.equal(data.pixels(c), pixels[i : i + 1])}
    names = [c.rsplit("_", 1)[0] for c in ids[::2]]
    return [n for n in names if f"{n}_strike" in same and f"{n}_gutter" in same]


# ---------------------------------------------------------------------------- runs
def run_names(hooked: HookedVideoTransformer, layers) -> set[str]:
    """What one clean run caches: the delta sites (embedding, every ``resid_post``), the
    patched runs' entry states (``resid_pre``, ``resid_mid`` of every layer), and the component
    outputs of ``layers``."""
    names = set(delta_names(hooked)) | set(needed_target_names(hooked))
    return names | {f"blocks.{lay}.{site}" for lay in layers for site in hooked.components.values()}


def clean_runs(hooked: HookedVideoTransformer, pixels: torch.Tensor, names: set[str], batch_size: int = 16) -> Run:
    """One run of every clip of ``pixels`` ``(clip, frame, 3, H, W)`` in batches; logits and the
    cache of ``names`` concatenated over clips, on the CPU."""
    parts = [hooked.run(pixels[i : i + batch_size], names=names) for i in range(0, len(pixels), batch_size)]
    cache = {k: torch.cat([p.cache[k].cpu() for p in parts]) for k in parts[0].cache}
    return Run(torch.cat([p.logits.cpu() for p in parts]), cache)


def clip_run(run: Run, i: int) -> Run:
    """Clip ``i`` of a batched run, as a one-clip run (views, no copies)."""
    return Run(run.logits[i : i + 1], {k: v[i : i + 1] for k, v in run.cache.items()})


# ---------------------------------------------------------------------------- measures
def time_profile(hooked: HookedVideoTransformer, run_s: Run, run_g: Run) -> pd.DataFrame:
    """Where in time the strike - gutter difference sits: per site of ``delta_names`` (``layer``
    -1 = embedding) and tubelet ``time_step``, the mean norm of the difference over that time
    step's patch tokens (``norm``) and its share of the sum over time steps (``share``)."""
    T, R, C = hooked.grid
    order = hooked.patch_order().flatten()  # (t, row, col) -> patch index
    rows = []
    for layer, name in zip(range(-1, hooked.n_layers), delta_names(hooked), strict=True):
        d = (run_s[name][0, hooked.n_prefix:] - run_g[name][0, hooked.n_prefix:])[order]  # (patches, d_model)
        per_t = d.norm(dim=-1).reshape(T, R * C).mean(1).double()  # (time step,)
        share = per_t / per_t.sum() if float(per_t.sum()) > 0 else torch.full_like(per_t, float("nan"))
        rows += [{"layer": layer, "time_step": t, "norm": float(per_t[t]), "share": float(share[t])}
                 for t in range(T)]
    return pd.DataFrame(rows)


def divergence_step(num_frames: int = DEFAULT_NUM_FRAMES, tubelet_frames: int = 2) -> int:
    """The first time step whose frames differ between a pair's clips (every model here: frames
    ``2t, 2t + 1`` form time step ``t`` of the 16-frame clip)."""
    return bowling_divergence_frame(num_frames) // tubelet_frames


@torch.inference_mode()
def probe_features_from_runs(hooked: HookedVideoTransformer, run: Run) -> dict[str, np.ndarray]:
    """``readout`` ``(clip, layer, d_model)`` (what the classifier reads after every block) and
    ``time_step_mean`` ``(clip, layer, time step, d_model)``, from a run caching every
    ``resid_post`` (as ``utils.pairs.probe_features``, without running the clips again)."""
    T, R, C = hooked.grid
    x = torch.stack([run[f"blocks.{i}.hook_resid_post"] for i in range(hooked.n_layers)], 1)  # (clip, layer, tok, d)
    order = hooked.patch_order().flatten()
    patches = x[:, :, hooked.n_prefix:][:, :, order].reshape(*x.shape[:2], T, R * C, x.shape[-1])
    readout = hooked.readout_tokens(x.flatten(0, 1)).reshape(*x.shape[:2], -1)
    return {"readout": readout.numpy(), "time_step_mean": patches.mean(3).numpy()}


@dataclass
class ModelResult:
    """Tidy tables of one model over the pairs (every table has ``model`` and ``pair``)."""

    deltas: pd.DataFrame  # pair, layer, mean_token_norm, ... (utils.deltas.delta_norms)
    time: pd.DataFrame  # pair, layer, time_step, norm, share
    patching: pd.DataFrame  # pair, layer, component, recovery_*, direction (strike->gutter)
    probes: pd.DataFrame  # feature, layer, time_step, pair, accuracy (held-out pairs)
    probe_tests: pd.DataFrame  # feature, layer, time_step, accuracy, p_value, ... (one row per site)
    clips: pd.DataFrame  # pair, run, target_logit, is_target
    shared: list  # pairs whose patching came from utils.pairs.analyse_pair (shared with notebook 06)


def analyse_model(model: str, loaded, clips: dict[str, np.ndarray], layers, data=None, n_perm: int = 1000,
                  n_splits: int = 5, seed: int = 0, batch_size: int = 16) -> ModelResult:
    """Every measure of the module docstring for one model over the pairs of ``clips``
    (``render_pairs`` output; ``data``: the profile's prepared data, for ``shared_pairs``)."""
    hooked = HookedVideoTransformer(loaded)
    target = loaded.target_index
    ids = list(clips)
    pixels = model_pixels(loaded, clips)
    run = clean_runs(hooked, pixels, run_names(hooked, layers), batch_size)
    shared = set(shared_pairs(data, pixels, ids))
    deltas, time, patching, clip_rows = [], [], [], []
    for k in range(0, len(ids), 2):
        pair = ids[k].rsplit("_", 1)[0]
        rs, rg = clip_run(run, k), clip_run(run, k + 1)
        deltas.append(delta_norms(hooked, rs, rg).assign(pair=pair))
        time.append(time_profile(hooked, rs, rg).assign(pair=pair))
        if pair in shared:  # exactly as notebook 06 (utils.memo hands its result over)
            res = analyse_pair(hooked, {"strike": pixels[k : k + 1], "gutter": pixels[k + 1 : k + 2]}, target,
                               pair, "matched", True)["patching"]
            sweep = res[(res.direction == DIRECTION) & res.layer.isin(list(layers))].drop(columns="kind")
        else:
            sweep = component_sweep(hooked, None, None, target, layers=layers, runs=(rs, rg),
                                    batch_size=len(layers) * len(hooked.components)).assign(direction=DIRECTION)
        patching.append(sweep.assign(pair=pair))
        for j, outcome in ((k, "strike"), (k + 1, "gutter")):
            lg = run.logits[j]
            clip_rows.append({"pair": pair, "run": outcome, "target_logit": float(lg[target]),
                              "is_target": int(lg.argmax()) == target})
    feats = probe_features_from_runs(hooked, run)
    names = np.array([c.rsplit("_", 1)[0] for c in ids])
    _, labels, groups = pair_design([(ids[k], ids[k + 1]) for k in range(0, len(ids), 2)])
    by_pair, tests = [], []
    if len(ids) >= 4:  # a probe tested on held-out pairs needs two pairs
        for feature, dims in PROBE_FEATURES.items():
            bp = grouped_probe_by_pair(feats[feature], labels, names, n_splits, site_names=dims)
            t = permutation_test(feats[feature], labels, groups, n_perm, n_splits, seed=seed, site_names=dims).table
            for d in (bp, t):
                d.insert(0, "feature", feature)
                if "time_step" not in d:
                    d.insert(2, "time_step", -1)
            by_pair.append(bp)
            tests.append(t.assign(n_perm=n_perm))
    tag = {"model": model}

    def tidy(parts):
        return pd.concat(parts, ignore_index=True).assign(**tag) if parts else pd.DataFrame()

    patching = tidy(patching)
    cols = ["model", "pair", "direction", "layer", "component"]
    patching = patching[cols + [c for c in patching if c not in cols]]
    return ModelResult(tidy(deltas), tidy(time), patching, tidy(by_pair), tidy(tests),
                       pd.DataFrame(clip_rows).assign(**tag), sorted(shared))


def combine(results: dict[str, ModelResult]) -> dict[str, pd.DataFrame]:
    """The tables of several models, concatenated (models in the order given)."""
    fields = ("deltas", "time", "patching", "probes", "probe_tests", "clips")
    return {f: pd.concat([getattr(r, f) for r in results.values()], ignore_index=True) for f in fields}


# ---------------------------------------------------------------------------- statistics
def growth(deltas: pd.DataFrame, frm: int = GROWTH_FROM) -> pd.DataFrame:
    """Per model and pair: ``ratio`` = mean token delta after the last block / after block ``frm``."""
    rows = []
    for (model, pair), d in deltas.groupby(["model", "pair"], sort=False):
        s = d.set_index("layer").mean_token_norm
        rows.append({"model": model, "pair": pair, "ratio": float(s[s.index.max()] / s[frm])})
    return pd.DataFrame(rows)


def training_steps(profile: str) -> int:
    """The optimiser steps a shipped toy model was trained for (its ``training_log.json``)."""
    import json

    from utils.profiles import TOY_DIRS

    return int(json.loads((TOY_DIRS[profile] / "training_log.json").read_text())["steps"])


def mlp_minus_attention(patching: pd.DataFrame, layers=MID_LAYERS,
                        value: str = "recovery_notebook_pct") -> pd.DataFrame:
    """Per model and pair: MLP minus attention recovery (TimeSformer: the *sum* of its two
    attention steps at each layer, the attention a ViViT block does in one step; the better of
    two would pick the noisier one), averaged over the patched layers within ``layers``
    (inclusive), as ``utils.findings.claim_mlp_vs_attention`` does for the toy ViViT."""
    p = patching[(patching.direction == DIRECTION) & patching.layer.between(*layers)]
    rows = []
    for model, d in p.groupby("model", sort=False):
        w = d.pivot_table(index=["pair", "layer"], columns="component", values=value)
        attn = w[[c for c in w.columns if str(c).startswith("attention")]].sum(axis=1)
        diff = (w["mlp"] - attn).groupby(level="pair").mean()
        rows += [{"model": model, "pair": pair, "diff": float(v)} for pair, v in diff.items()]
    return pd.DataFrame(rows)


def component_means(patching: pd.DataFrame, layers=MID_LAYERS, value: str = "recovery_notebook_pct") -> pd.DataFrame:
    """Per model, component and pair: recovery averaged over the patched layers within ``layers``."""
    p = patching[(patching.direction == DIRECTION) & patching.layer.between(*layers)]
    return p.groupby(["model", "component", "pair"], as_index=False, sort=False)[value].mean()


def pre_divergence_share(time: pd.DataFrame, step: int) -> pd.DataFrame:
    """Per model, pair and layer: the share of the strike - gutter delta in the time steps
    before ``step`` (the first that differs in the pixels; 0 at the embedding by construction)."""
    t = time[time.time_step < step]
    return t.groupby(["model", "pair", "layer"], as_index=False, sort=False)["share"].sum()


def paper_mid_means(layers) -> dict[str, float]:
    """The paper's Table 3 (notebook metric) averaged over ``layers``: attention, mlp, mlp - attention."""
    ls = [lay for lay in layers if (lay, "mlp") in paper.TABLE3]
    if not ls:
        return {"attention": float("nan"), "mlp": float("nan"), "diff": float("nan")}
    att = float(np.mean([paper.TABLE3[(lay, "attention")] for lay in ls]))
    mlp = float(np.mean([paper.TABLE3[(lay, "mlp")] for lay in ls]))
    return {"attention": att, "mlp": mlp, "diff": mlp - att}


def _row(model, question, measure, summary: pd.Series, p=float("nan"), where="", paper_value=float("nan")) -> dict:
    return {"model": model, "question": question, "measure": measure, "estimate": float(summary.estimate),
            "ci_low": float(summary.ci_low), "ci_high": float(summary.ci_high), "n_pairs": int(summary.n_pairs),
            "p_value": float(p), "where": where, "paper": float(paper_value)}


def summary_table(tables: dict[str, pd.DataFrame], layers, step: int) -> pd.DataFrame:
    """Table 17: per model, one row per question (``question``, ``measure``), the estimate over
    pairs with its 95% bootstrap CI, ``n_pairs``, a permutation ``p_value`` where one applies,
    ``where`` (the site it refers to) and the paper's number where it reports one.

    * classified: share of a pair's clips classified as the target (mean of its two clips);
    * patching: attention and MLP recovery (notebook metric) and MLP minus attention (the sum of
      TimeSformer's two steps), each averaged over the patched layers within ``MID_LAYERS``; TimeSformer also time
      minus space attention;
    * growth: delta after the last block / after block ``GROWTH_FROM``;
    * time: share of the last layer's delta before the divergence ``step``; the time step
      holding most of it;
    * probe: the readout probe's best layer and the best (layer, time step) of the time-step
      probe, held-out-pair accuracy with its max-over-sites permutation p-value.
    """
    mid = [lay for lay in layers if MID_LAYERS[0] <= lay <= MID_LAYERS[1]]
    ref = paper_mid_means(mid)
    mids = f"layers {', '.join(map(str, mid))}"
    rows = []
    for model in tables["clips"].model.unique():
        sel = {k: (v[v.model == model] if len(v) else v) for k, v in tables.items()}
        c = per_unit(sel["clips"].assign(is_target=sel["clips"].is_target.astype(float)), [], "is_target")
        rows.append(_row(model, "classified", "share of clips classified as the target",
                         summarise(c, [], "is_target").iloc[0]))
        cm = component_means(sel["patching"])
        for comp in cm.component.unique():
            s = summarise(cm[cm.component == comp], [], "recovery_notebook_pct").iloc[0]
            rows.append(_row(model, "patching", f"{comp} recovery (%)", s, where=mids,
                             paper_value=ref["mlp" if comp == "mlp" else "attention"] if comp in ("mlp", "attention")
                             else float("nan")))
        d = mlp_minus_attention(sel["patching"])
        rows.append(_row(model, "patching", "MLP minus attention recovery (points)",
                         summarise(d, [], "diff").iloc[0], where=mids, paper_value=ref["diff"]))
        steps = next((a.attention_steps for a in ADAPTERS.values()  # TimeSformer: temporal, then spatial
                      if len(a.attention_steps) == 2 and set(a.attention_steps) <= set(cm.component)), None)
        if steps:
            w = cm.pivot_table(index="pair", columns="component", values="recovery_notebook_pct")
            ts = (w[steps[0]] - w[steps[1]]).rename("diff").reset_index()
            first, second = (s.removeprefix("attention_") for s in steps)
            rows.append(_row(model, "patching", f"{first} minus {second} attention recovery (points)",
                             summarise(ts, [], "diff").iloc[0], where=mids))
        g = growth(sel["deltas"])
        last = int(sel["deltas"].layer.max())
        rows.append(_row(model, "growth", f"delta norm, layer {last} / layer {GROWTH_FROM} (x)",
                         summarise(g, [], "ratio").iloc[0],
                         paper_value=paper.FIG5[11] / paper.FIG5[GROWTH_FROM]))
        pre = pre_divergence_share(sel["time"], step)
        s = summarise(pre[pre.layer == last], [], "share").iloc[0]
        rows.append(_row(model, "time", f"share of the layer-{last} delta before the divergence (time step {step})",
                         s, where=f"time steps 0-{step - 1}"))
        peak = sel["time"][sel["time"].layer == last].groupby("time_step").share.mean()
        ps = summarise(sel["time"][(sel["time"].layer == last) & (sel["time"].time_step == int(peak.idxmax()))],
                       [], "share").iloc[0]
        rows.append(_row(model, "time", f"share of the layer-{last} delta in its largest time step", ps,
                         where=f"time step {int(peak.idxmax())}"))
        if len(sel["probe_tests"]):
            for feature, label in (("readout", "readout-token probe, best layer"),
                                   ("time_step_mean", "time-step probe, best layer and time step")):
                t = sel["probe_tests"][sel["probe_tests"].feature == feature]
                best = t.sort_values(["accuracy", "layer", "time_step"], ascending=[False, True, True]).iloc[0]
                bp = sel["probes"]
                bp = bp[(bp.feature == feature) & (bp.layer == best.layer) & (bp.time_step == best.time_step)]
                where = f"layer {int(best.layer)}"
                if best.time_step >= 0:
                    where += f", time step {int(best.time_step)}"
                rows.append(_row(model, "probe", f"{label}: held-out accuracy", summarise(bp, [], "accuracy").iloc[0],
                                 p=float(t.p_value.min()), where=where))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- figure
def across_figure(tables: dict[str, pd.DataFrame], step: int):
    """Fig. 14: (top) strike->gutter recovery per patched layer and component, one panel per
    model; (bottom) delta norm per layer, share of the delta before the divergence per layer,
    and the readout probe's held-out accuracy per layer, the models overlaid. Mean and 95%
    bootstrap CI over pairs everywhere."""
    models = list(tables["clips"].model.unique())
    cols = max(3, len(models))
    fig, axes = plt.subplots(2, cols, figsize=(16 * cols / 3, 8.2))
    letters = "abcdefghijklmnop"  # the top row's panels, then the bottom row's
    pp = summarise(tables["patching"], ["model", "component", "layer"], "recovery_notebook_pct")
    top = max(5.0, float(pp.ci_high.max()) * 1.1)
    for k, (ax, model) in enumerate(zip(axes[0], models, strict=False)):
        d = pp[pp.model == model]
        for comp, col in COMPONENT_COLOURS.items():
            c = d[d.component == comp]
            if len(c):
                ax.errorbar(c.layer, c.estimate, yerr=[c.estimate - c.ci_low, c.ci_high - c.estimate], fmt="o-",
                            color=col, capsize=3, label=comp.replace("_", " "))
        ax.set_ylim(0, top)
        ax.set_title(f"({letters[k]}) {model}: patching strike into gutter")
        ax.set_xlabel("patched layer")
        ax.set_ylabel("recovery, notebook metric (%)")
        ax.legend(fontsize=8)
    n = int(pp.n_pairs.max())
    dn = summarise(tables["deltas"], ["model", "layer"], "mean_token_norm")
    pre = summarise(pre_divergence_share(tables["time"], step), ["model", "layer"], "share")
    ax_d, ax_t, ax_p = axes[1][:3]
    for model in models:
        col = MODEL_COLOURS.get(model, "k")
        for ax, d, scale in ((ax_d, dn, 1), (ax_t, pre, 100)):
            m = d[d.model == model]
            ax.plot(m.layer, scale * m.estimate, "o-", color=col, ms=3, label=model)
            ax.fill_between(m.layer, scale * m.ci_low, scale * m.ci_high, color=col, alpha=0.2)
        if len(tables["probes"]):
            bp = tables["probes"]
            pr = summarise(bp[(bp.model == model) & (bp.feature == "readout")], ["layer"], "accuracy")
            null = tables["probe_tests"]
            null = null[(null.model == model) & (null.feature == "readout")]
            ax_p.plot(pr.layer, 100 * pr.estimate, "o-", color=col, ms=3, label=model)
            ax_p.fill_between(pr.layer, 100 * pr.ci_low, 100 * pr.ci_high, color=col, alpha=0.15)
            ax_p.plot(null.layer, 100 * null.null_q95, ":", color=col, lw=1)
    ld, lt, lp = letters[len(models):len(models) + 3]  # the bottom row's letters
    ax_d.set_title(f"({ld}) delta norm grows with depth?")
    ax_d.set_xlabel("layer (-1 = embedding)")
    ax_d.set_ylabel("mean ||strike − gutter||₂ per token")
    ax_t.set_title(f"({lt}) where in time: delta before time step {step}")
    ax_t.set_xlabel("layer (-1 = embedding)")
    ax_t.set_ylabel("share of the delta in earlier time steps (%)")
    ax_p.axhline(50, color="grey", ls="--", lw=1)
    ax_p.set_ylim(0, 105)
    ax_p.set_title(f"({lp}) readout probe on held-out pairs")
    ax_p.set_xlabel("layer")
    ax_p.set_ylabel("accuracy (%); dotted: 95th pct. of the null")
    for ax in (ax_d, ax_t, ax_p):
        ax.legend(fontsize=8)
    for ax in list(axes[0][len(models):]) + list(axes[1][3:]):
        ax.set_axis_off()
    fig.suptitle(f"{len(models)} architectures, the same {n} matched pairs (mean and 95% CI over pairs)")
    fig.tight_layout()
    return fig
