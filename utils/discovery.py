"""Notebook 08's pipeline: attribution patching checked against exact patching over pairs, the
integrated-gradients remedy, edge attribution, and circuits judged by faithfulness.

Estimates come from ``utils.atp`` and ``utils.circuit``; the exact effects they are judged
against come from notebook 06's per-pair patching (``utils.pairs.analyse_pair`` and
``fine_grained_patching``), shared through ``utils.memo`` when 06 ran in the same kernel and
computed afresh otherwise. Metrics: ``readout`` = ``recovery_readout_pct`` (percent of the way
from target to source along what the classifier reads) and ``logit`` = the change in the target
logit. Every interval resamples pairs (``utils.stats``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.lines import Line2D
from tqdm.auto import tqdm

from utils import atp, memo
from utils.circuit import Graph, edge_scores, faithfulness, top_edges
from utils.data import CANONICAL_STRIKE
from utils.hooks import HookedVideoTransformer, parse_name
from utils.pairs import DIRECTIONS, analyse_pair, fine_grained_patching
from utils.patching import (
    Patch,
    component_patches,
    head_patches,
    needed_target_names,
    position_patches,
    time_step_patches,
)
from utils.plotting import COMPONENT_COLOURS
from utils.stats import spearman, summarise, top_indices

EXACT_COLUMNS = {"readout": "recovery_readout_pct", "logit": "delta_target_logit"}
NODE_TYPES = ("component", "head", "time_step", "position")
LABEL_COLUMNS = ["layer", "component", "site", "head", "time_step", "row", "col"]


def _name(clip_id: str) -> str:
    return clip_id.rsplit("_", 1)[0]


def _clean_runs(hooked: HookedVideoTransformer, pixels: dict) -> dict:
    """Each clip's run caching what a source (its node activations) and a target (its prefix)
    needs: one run per clip serves both directions."""
    L = hooked.n_layers
    sites = {f"blocks.{i}.{s}" for i in range(L)
             for s in (*hooked.components.values(), *hooked.head_sites.values(), "hook_resid_pre")}
    names = sites | set(needed_target_names(hooked))
    return {k: hooked.run(v, names=names) for k, v in pixels.items()}


def _runs(hooked: HookedVideoTransformer, pixels: dict, src: str, tgt: str):
    runs = _clean_runs(hooked, {k: pixels[k] for k in (src, tgt)})
    return runs[src], runs[tgt]


def _estimates(hooked, patches, s, t, target: int) -> dict[str, np.ndarray]:
    """AtP of ``patches`` on both metrics (one forward pass of the target, a backward each)."""
    final = atp.final_site(hooked)
    metrics = {"readout": atp.readout_projection(hooked, s[final], t[final]),
               "logit": atp.target_logit(hooked, target, t[final])}
    est = atp.atp(hooked, patches, list(metrics.values()), target_cache=t.cache)
    return {k: e.numpy() for k, e in zip(metrics, est, strict=True)}


def _tidy(exact: pd.DataFrame, est: dict, node_type: str, **tag) -> pd.DataFrame:
    labels = [c for c in LABEL_COLUMNS if c in exact]
    out = exact[labels].copy()
    for metric, col in EXACT_COLUMNS.items():
        out[f"exact_{metric}"] = exact[col].to_numpy()
        out[f"atp_{metric}"] = est[metric]
    return out.assign(node_type=node_type, **tag)


def component_validation(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int,
                         progress: bool = True) -> pd.DataFrame:
    """AtP beside exact patching of every layer x component, both directions, over ``pairs``
    (exact: notebook 06's sweep of the pair, which tags the canonical pair ``canonical``)."""
    rows = []
    for s_id, g_id in tqdm(pairs, desc="AtP vs exact: components", disable=not progress):
        px = {"strike": data.pixels(s_id), "gutter": data.pixels(g_id)}
        kind = "canonical" if s_id == CANONICAL_STRIKE else "matched"
        exact = analyse_pair(hooked, px, target, _name(s_id), kind)["patching"]
        runs = _clean_runs(hooked, px)
        for direction, (src, tgt) in DIRECTIONS.items():
            s, t = runs[src], runs[tgt]
            patches = component_patches(hooked, s.cache)
            ex = exact[exact.direction == direction].reset_index(drop=True)
            assert [(p.label["layer"], p.label["component"]) for p in patches] == list(zip(ex.layer, ex.component,
                                                                                          strict=True))
            rows.append(_tidy(ex, _estimates(hooked, patches, s, t, target), "component",
                              pair=_name(s_id), direction=direction))
    return pd.concat(rows, ignore_index=True)


def fine_validation(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int,
                    position_layer: int, progress: bool = True) -> pd.DataFrame:
    """AtP beside exact strike-into-gutter patching of every head, every time step (``resid_pre``,
    each layer) and every spatial position (``resid_pre`` of ``position_layer``), per pair
    (exact: notebook 06's ``fine_grained_patching``)."""
    rows = []
    for s_id, g_id in tqdm(pairs, desc="AtP vs exact: heads, time steps, positions", disable=not progress):
        heads, steps, positions = fine_grained_patching(hooked, data, s_id, g_id, target, position_layer)
        s, t = _runs(hooked, {"strike": data.pixels(s_id), "gutter": data.pixels(g_id)}, "strike", "gutter")
        groups = {"head": (head_patches(hooked, s.cache), heads),
                  "time_step": ([p for la in range(hooked.n_layers) for p in time_step_patches(hooked, s.cache, la)],
                                steps),
                  "position": (position_patches(hooked, s.cache, position_layer), positions)}
        every = [p for patches, _ in groups.values() for p in patches]
        est = _estimates(hooked, every, s, t, target)
        start = 0
        for node_type, (patches, exact) in groups.items():
            part = {k: v[start:start + len(patches)] for k, v in est.items()}
            start += len(patches)
            assert len(exact) == len(patches)
            rows.append(_tidy(exact.reset_index(drop=True), part, node_type, pair=_name(s_id),
                              direction="strike->gutter"))
    return pd.concat(rows, ignore_index=True)


def top_overlap(exact: np.ndarray, estimate: np.ndarray, k: int) -> float:
    """Share of the ``k`` nodes of largest ``|exact|`` that are among the ``k`` of largest ``|estimate|``."""
    k = min(k, len(exact))
    a = set(top_indices(np.abs(exact), k))
    b = set(top_indices(np.abs(estimate), k))
    return len(a & b) / k


def agreement(validation: pd.DataFrame, top_k: int = 10, estimate: str = "atp") -> pd.DataFrame:
    """Per node type, metric and direction, over pairs (mean and 95% CI): the Spearman rank
    correlation of ``estimate`` with exact patching, the top-``top_k`` overlap (by magnitude),
    and the median absolute error relative to the largest exact effect."""
    per_pair = []
    for (node_type, direction, pair), d in validation.groupby(["node_type", "direction", "pair"], sort=False):
        for metric in EXACT_COLUMNS:
            ex, es = d[f"exact_{metric}"].to_numpy(), d[f"{estimate}_{metric}"].to_numpy()
            scale = np.abs(ex).max()
            per_pair.append({"node_type": node_type, "direction": direction, "metric": metric, "pair": pair,
                             "n_nodes": len(d), "spearman": spearman(ex, es),
                             "top_k_overlap": top_overlap(ex, es, top_k),
                             "median_rel_error": np.median(np.abs(es - ex)) / scale if scale > 0 else np.nan})
    per_pair = pd.DataFrame(per_pair)
    keys = ["node_type", "direction", "metric"]
    out = None
    for value in ("spearman", "top_k_overlap", "median_rel_error"):
        s = summarise(per_pair, keys, value).rename(columns={"estimate": value, "ci_low": f"{value}_ci_low",
                                                             "ci_high": f"{value}_ci_high"}).drop(columns="measure")
        s = s.drop(columns=[c for c in s.columns if c == "n_pairs" and out is not None])
        out = s if out is None else out.merge(s, on=keys)
    out["n_nodes"] = out.node_type.map(per_pair.groupby("node_type").n_nodes.first())
    order = {t: i for i, t in enumerate(NODE_TYPES)}
    return out.sort_values(["node_type", "direction", "metric"], key=lambda c: c.map(order) if c.name == "node_type"
                           else c, kind="stable").reset_index(drop=True)


def ig_convergence(hooked: HookedVideoTransformer, data, pair: tuple[str, str], target: int, validation: pd.DataFrame,
                   node_types: tuple[str, ...] = ("time_step",), steps: int = 4,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IG along each site's activation path (``utils.atp.ig``), strike into gutter, readout metric,
    for ``m`` = 0 (AtP), 1, 2, .. ``steps``, for every node of ``node_types``: ``head`` (the site:
    each layer's ``hook_z``; the whole site patched exactly = the attention step, from the
    ``component`` rows of ``validation``) and ``time_step`` (each layer's ``resid_pre``; patching the
    whole site gives the source run: exactly 100). ``validation``: ``component_validation`` and
    ``fine_validation`` rows of this pair. Returns ``(per node, summary)``; summary per node type
    and ``m``: Spearman over nodes, the median error over nodes relative to the largest exact
    effect, and the largest error (percentage points) of the whole sites' estimates, which must
    vanish as ``m`` grows."""
    px = {"strike": data.pixels(pair[0]), "gutter": data.pixels(pair[1])}
    s, t = _runs(hooked, px, "strike", "gutter")
    final = atp.final_site(hooked)
    metric = atp.readout_projection(hooked, s[final], t[final])
    name = _name(pair[0])
    v = validation[(validation.pair == name) & (validation.direction == "strike->gutter")]
    comp = v[v.node_type == "component"]
    nodes, summary = [], []
    for node_type in node_types:
        if node_type == "head":
            patches = head_patches(hooked, s.cache)
        elif node_type == "time_step":
            patches = [p for la in range(hooked.n_layers) for p in time_step_patches(hooked, s.cache, la)]
        else:
            raise ValueError(f"IG convergence covers heads and time steps, not {node_type!r}")
        exact = v[v.node_type == node_type].reset_index(drop=True)
        if len(exact) != len(patches):
            raise ValueError(f"validation holds {len(exact)} exact {node_type} rows of {name}, not {len(patches)}")
        est: dict[int, list] = {}
        whole_est: dict[int, list] = {}
        sites = list(dict.fromkeys(p.hook for p in patches))
        for site in tqdm(sites, desc=f"IG along {node_type} sites", disable=not progress):
            part = [p for p in patches if p.hook == site] + [Patch(site, s[site][0])]  # + the whole site
            for m, e in atp.ig(hooked, part, metric, t.cache, s.cache, steps=steps).items():
                est.setdefault(m, []).append(e[:-1])
                whole_est.setdefault(m, []).append(float(e[-1]))
        table = exact[[c for c in LABEL_COLUMNS if c in exact] + ["exact_readout"]].copy()
        if node_type == "head":  # the whole site, every head of one attention step, patched exactly
            site_of = {v: k for k, v in hooked.head_sites.items()}
            whole = [float(comp[(comp.layer == parse_name(x)[0]) & (comp.component == site_of[parse_name(x)[1]])]
                           .exact_readout.iloc[0]) for x in sites]
        else:  # the whole resid_pre of a layer from the source: the source run itself
            whole = [100.0] * len(sites)
        ex = table.exact_readout.to_numpy()
        scale = np.abs(ex).max()
        for m in sorted(est):
            e = torch.cat(est[m]).numpy()
            table[f"ig_m{m}"] = e
            summary.append({"node_type": node_type, "m": m, "estimator": "AtP" if m == 0 else f"IG, m = {m}",
                            "spearman": spearman(ex, e),
                            "median_rel_error": np.median(np.abs(e - ex)) / scale,
                            "max_error_whole_site": np.max(np.abs(np.array(whole_est[m]) - whole))})
        nodes.append(table.assign(node_type=node_type))
    return pd.concat(nodes, ignore_index=True), pd.DataFrame(summary)


# ---------------------------------------------------------------------------- circuits
def discovery_scores(graph: Graph, data, pairs: list[tuple[str, str]], progress: bool = True) -> torch.Tensor:
    """EAP edge scores (strike clean, gutter counterfactual, readout metric) averaged over ``pairs``."""
    h = graph.hooked
    final = atp.final_site(h)
    total = torch.zeros(graph.valid.shape, dtype=torch.float64)
    for s_id, g_id in tqdm(pairs, desc="edge scores", disable=not progress):
        cf = h.run(data.pixels(g_id), names=graph.cache_names() | {final})
        clean_final = h.run(data.pixels(s_id), names={final})[final]
        metric = atp.readout_projection(h, clean_final, cf[final])
        total += edge_scores(graph, data.pixels(s_id), graph.sender_outputs(cf.cache)[0], metric)
    return total / len(pairs)


def _pair_state(graph: Graph, data, s_id: str, g_id: str):
    """A pair's clean (strike) final residual, counterfactual (gutter) final residual and the
    counterfactual sender outputs, computed once per kernel (``utils.memo``): the circuit search
    asks for them at every step."""
    h = graph.hooked
    final = atp.final_site(h)
    key = ("circuit_pair_state", memo.model_fingerprint(h.model), str(h.device),
           memo.tensor_fingerprint(data.pixels(s_id)), memo.tensor_fingerprint(data.pixels(g_id)))

    def compute():
        cf = h.run(data.pixels(g_id), names=graph.cache_names() | {final})
        clean_final = h.run(data.pixels(s_id), names={final})[final]
        return clean_final, cf[final], graph.sender_outputs(cf.cache)[0]

    return memo.memoized(key, compute)


def faithfulness_curve(graph: Graph, data, pairs: list[tuple[str, str]], scores: torch.Tensor, sizes: list[int],
                       mean_ref: torch.Tensor | None = None, batch_size: int = 8,
                       progress: bool = True) -> pd.DataFrame:
    """Faithfulness (percent) of the top-``n`` circuit for each ``n`` in ``sizes`` on every pair
    (strike clean; dropped edges carry the pair's gutter run, and, with ``mean_ref``, separately
    the mean sender outputs). Columns: ``pair``, ``ablation``, ``n_edges``, ``faithfulness_pct``."""
    rows = []
    for s_id, g_id in tqdm(pairs, desc="circuit runs", disable=not progress):
        clean_final, cf_final, cf_out = _pair_state(graph, data, s_id, g_id)
        refs = {"counterfactual": cf_out}
        if mean_ref is not None:
            refs["mean"] = mean_ref
        for ablation, ref in refs.items():
            f = faithfulness(graph, data.pixels(s_id), ref, cf_final, clean_final, scores, sizes, batch_size,
                             counterfactual=ablation == "counterfactual")
            rows.append(f[["n_edges", "faithfulness_pct"]].assign(pair=_name(s_id), ablation=ablation))
    return pd.concat(rows, ignore_index=True)[["pair", "ablation", "n_edges", "faithfulness_pct"]]


def smallest_circuit(graph: Graph, data, pairs, scores, curve: pd.DataFrame, threshold: float = 80.0,
                     refine: int = 6, mean_ref=None) -> tuple[int, pd.DataFrame]:
    """The fewest top-scored edges whose mean faithfulness over ``pairs`` (counterfactual
    ablation) reaches ``threshold``: the first size of ``curve`` that does, narrowed by bisection
    (``refine`` more sizes, all pairs each) between it and the size before; with ``mean_ref`` the
    size found is also judged under mean ablation. Returns ``(n, curve with the new rows)``."""
    cf = curve[curve.ablation == "counterfactual"]
    mean = cf.groupby("n_edges").faithfulness_pct.mean().sort_index()
    above = mean[mean >= threshold]
    if above.empty:
        return -1, curve
    hi = int(above.index[0])
    below = mean[mean.index < hi]
    lo = int(below.index[-1]) if len(below) else 0
    for _ in range(refine):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        new = faithfulness_curve(graph, data, pairs, scores, [mid], progress=False)
        curve = pd.concat([curve, new], ignore_index=True)
        if new.faithfulness_pct.mean() >= threshold:
            hi = mid
        else:
            lo = mid
    if mean_ref is not None and hi not in set(curve[curve.ablation == "mean"].n_edges):
        new = faithfulness_curve(graph, data, pairs, scores, [hi], mean_ref=mean_ref, progress=False)
        curve = pd.concat([curve, new[new.ablation == "mean"]], ignore_index=True)
    return hi, curve.sort_values(["ablation", "pair", "n_edges"], kind="stable").reset_index(drop=True)


def circuit_composition(graph: Graph, scores: torch.Tensor, n: int) -> pd.DataFrame:
    """Who the top-``n`` circuit's edges come from and go to: per sender kind (embedding,
    each attention step's heads, MLP) its edges and its share of the circuit's total |score|."""
    keep = top_edges(scores, graph, n)
    s_idx, r_idx = torch.nonzero(keep, as_tuple=True)
    w = scores[s_idx, r_idx].abs().numpy()
    kinds = [graph.senders[i].component for i in s_idx.tolist()]
    recv = [graph.receivers[j].component for j in r_idx.tolist()]
    d = pd.DataFrame({"sender": kinds, "receiver": recv, "abs_score": w})
    out = d.groupby("sender").agg(edges=("abs_score", "size"), abs_score=("abs_score", "sum")).reset_index()
    out["score_share_pct"] = 100 * out.abs_score / out.abs_score.sum()
    out["circuit_edges"], out["graph_edges"] = n, graph.n_edges
    for receiver in ("mlp", "readout"):
        into = d[d.receiver == receiver].groupby("sender").size()
        out[f"edges_into_{receiver}"] = out.sender.map(into).fillna(0).astype(int)
    return out.drop(columns="abs_score")


def summary_lines(agree: pd.DataFrame | None, ig_summary: pd.DataFrame | None, curve_ci: pd.DataFrame | None,
                  composition: pd.DataFrame | None, smallest: int, n_edges: int, threshold: float) -> list[str]:
    """Notebook 08's findings, one sentence each, from its tables (nothing typed by hand)."""
    lines = []
    if agree is not None:
        a = agree[(agree.metric == "readout") & (agree.direction == "strike->gutter")]
        parts = [f"{r.node_type.replace('_', ' ')}s ρ = {r.spearman:.2f} [{r.spearman_ci_low:.2f}, "
                 f"{r.spearman_ci_high:.2f}] (top-k overlap {r.top_k_overlap:.2f})" for r in a.itertuples()]
        lines.append("AtP vs exact patching (readout metric, strike into gutter, Spearman over nodes, mean over "
                     f"pairs): {'; '.join(parts)}.")
        lg = agree[(agree.metric == "logit") & (agree.direction == "strike->gutter")]
        if len(lg):
            lines.append("On the change in the target logit: "
                         + "; ".join(f"{r.node_type.replace('_', ' ')}s ρ = {r.spearman:.2f}" for r in lg.itertuples())
                         + ".")
    if ig_summary is not None:
        for node_type, d in ig_summary.groupby("node_type", sort=False):
            first, last = d.iloc[0], d.iloc[-1]
            lines.append(f"{node_type.replace('_', ' ').capitalize()}s, AtP -> integrated gradients with m = "
                         f"{int(last.m)} steps: Spearman over nodes {first.spearman:.3f} -> {last.spearman:.3f}; "
                         f"median error {100 * first.median_rel_error:.2f}% -> {100 * last.median_rel_error:.2f}% "
                         f"of the largest exact effect; the whole sites' worst error "
                         f"{first.max_error_whole_site:.2f} -> {last.max_error_whole_site:.3f} points.")
    if curve_ci is not None:
        cf = curve_ci[curve_ci.ablation == "counterfactual"].set_index("n_edges")
        if smallest > 0:
            r = cf.loc[smallest]
            text = (f"The smallest circuit that recovers {threshold:g}% of the strike readout on held-out pairs keeps "
                    f"{smallest} of {n_edges} edges ({100 * smallest / n_edges:.1f}%): {r.estimate:.1f}% "
                    f"[{r.ci_low:.1f}, {r.ci_high:.1f}] with the gutter run as counterfactual")
            mean = curve_ci[(curve_ci.ablation == "mean") & (curve_ci.n_edges == smallest)]
            if len(mean):
                m = mean.iloc[0]
                text += f", {m.estimate:.1f}% [{m.ci_low:.1f}, {m.ci_high:.1f}] with mean ablation"
            lines.append(text + ".")
        else:
            lines.append(f"No circuit of up to {n_edges} edges reaches {threshold:g}% on average.")
    if composition is not None:
        share = composition.set_index("sender").score_share_pct
        attn = share[[c for c in share.index if c.startswith("attention")]].sum()
        lines.append(f"In that circuit attention heads carry {attn:.0f}% of the total |edge score|, MLPs "
                     f"{share.get('mlp', 0.0):.0f}% and the embedding {share.get('embed', 0.0):.0f}%.")
    return lines


# ---------------------------------------------------------------------------- figures
def atp_scatter_figure(validation: pd.DataFrame, metric: str = "readout"):
    """Fig. 15: AtP against exact patching, one panel per node type (all pairs and directions),
    coloured by layer; the diagonal is perfect agreement."""
    types = [t for t in NODE_TYPES if t in set(validation.node_type)]
    fig, axes = plt.subplots(1, len(types), figsize=(3.6 * len(types), 3.6))
    axes = np.atleast_1d(axes)
    for ax, node_type in zip(axes, types, strict=True):
        d = validation[validation.node_type == node_type]
        x, y = d[f"exact_{metric}"], d[f"atp_{metric}"]
        sc = ax.scatter(x, y, c=d.layer, cmap="viridis", s=10, alpha=0.7, vmin=0, vmax=validation.layer.max())
        lim = [min(x.min(), y.min()), max(x.max(), y.max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        rho = spearman(x, y)
        ax.set_title(f"{node_type.replace('_', ' ')}s (n = {len(d)})\nSpearman ρ = {rho:.2f}", fontsize=9)
        ax.set_xlabel("exact patching effect")
    axes[0].set_ylabel("AtP estimate")
    fig.colorbar(sc, ax=axes, label="layer", shrink=0.8)
    unit = "% of the way to the source readout" if metric == "readout" else "Δ target logit"
    fig.suptitle(f"Attribution patching vs exact activation patching ({unit})", fontsize=10)
    return fig


def ig_figure(summary: pd.DataFrame):
    """Fig. 16: agreement with exact patching as the IG steps grow (m = 0 is AtP), per node type."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    colours = ("tab:blue", "tab:green")
    for (node_type, d), colour in zip(summary.groupby("node_type", sort=False), colours, strict=False):
        label = node_type.replace("_", " ") + "s"
        a.plot(d.m, d.spearman, "o-", color=colour, label=label)
        b.semilogy(d.m, d.max_error_whole_site, "s-", color=colour, label=label)
    a.set_ylabel("Spearman ρ with exact patching")
    a.legend(fontsize=8)
    b.set_ylabel("worst |estimate − exact| of a whole site\n(points of the readout metric)", fontsize=8)
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.set_xlabel("IG steps m (0 = AtP)")
        ax.set_xticks(sorted(summary.m.unique()))
    fig.suptitle("Integrated gradients along each site's activation path approach exact patching", fontsize=10)
    fig.tight_layout()
    return fig


def faithfulness_figure(curve_ci: pd.DataFrame, smallest: int, n_total: int, threshold: float = 80.0):
    """Fig. 17: faithfulness against edges kept (mean and 95% CI over pairs), counterfactual and
    mean ablation; the dotted line is ``threshold``, the marker the smallest circuit reaching it."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for ablation, style in (("counterfactual", "o-"), ("mean", "s--")):
        d = curve_ci[curve_ci.ablation == ablation].sort_values("n_edges")
        if len(d):
            ax.plot(d.n_edges, d.estimate, style, label=f"{ablation} ablation (n = {int(d.n_pairs.iloc[0])} pairs)")
            ax.fill_between(d.n_edges, d.ci_low, d.ci_high, alpha=0.2)
    ax.axhline(threshold, color="grey", ls=":", lw=1)
    if smallest > 0:
        ax.axvline(smallest, color="tab:red", ls=":", lw=1)
        ax.annotate(f"{smallest} of {n_total} edges", (smallest, threshold), textcoords="offset points",
                    xytext=(5, -14), color="tab:red", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"edges kept (top by |EAP score|, of {n_total})")
    ax.set_ylabel("faithfulness (%): 0 = empty circuit, 100 = full model")
    ax.set_title("How much of the strike readout does the top-n circuit recover?")
    ax.legend(fontsize=8)
    return fig


def circuit_graph_figure(graph: Graph, scores: torch.Tensor, n: int, title: str = "", max_drawn: int = 80):
    """Fig. 18: the top-``n`` circuit. Layers run top to bottom; each attention step's heads
    and the MLP are nodes of a row; an edge ends at its receiver's input (a bar over the
    heads of an attention step, the MLP node, or the readout); widths follow |score|, colour
    its sign (blue: dropping the edge lowers the metric). Of a large circuit the ``max_drawn``
    strongest edges are drawn (the title says so); every node with an edge in the circuit is solid."""
    h = graph.hooked
    in_circuit = top_edges(scores, graph, n)
    keep = top_edges(scores, graph, min(n, max_drawn))
    comps = graph.components
    rows_per_layer = len(comps)
    H = h.n_heads

    def y_of(layer, ci):
        return -(layer * rows_per_layer + ci) - 1

    def sender_xy(node):
        if node.component == "embed":
            return (H - 1) / 2, 0.0
        ci = comps.index(node.component)
        return (node.head if node.head is not None else H + 0.5), y_of(node.layer, ci)

    def receiver_xy(node):
        if node.component == "readout":
            return (H - 1) / 2, y_of(h.n_layers, 0)
        ci = comps.index(node.component)
        x = (H - 1) / 2 if node.component in h.head_sites else H + 0.5
        return x, y_of(node.layer, ci) + 0.35

    fig, ax = plt.subplots(figsize=(8, 0.42 * (h.n_layers * rows_per_layer + 2) + 1))
    s_idx, r_idx = torch.nonzero(keep, as_tuple=True)
    w = scores[s_idx, r_idx].numpy()
    wmax = np.abs(w).max() if len(w) else 1.0
    used = set(torch.nonzero(in_circuit.any(1)).flatten().tolist())
    for s, r, v in zip(s_idx.tolist(), r_idx.tolist(), w, strict=True):
        (x0, y0), (x1, y1) = sender_xy(graph.senders[s]), receiver_xy(graph.receivers[r])
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="-", lw=0.3 + 3 * abs(v) / wmax, alpha=0.6,
                                                            color="tab:blue" if v < 0 else "tab:orange",
                                                            connectionstyle="arc3,rad=0.15"))
    for i, node in enumerate(graph.senders):
        x, y = sender_xy(node)
        colour = COMPONENT_COLOURS.get(node.component, "grey") if node.component != "embed" else "black"
        ax.plot(x, y, "s" if node.component == "mlp" else "o", ms=6 if i in used else 3,
                color=colour, alpha=1.0 if i in used else 0.2)
    for layer in range(h.n_layers):
        for ci, comp in enumerate(comps):
            if comp in h.head_sites:
                ax.plot([-0.4, H - 0.6], [y_of(layer, ci) + 0.35] * 2, color="grey", lw=0.5, alpha=0.5)
            ax.text(-1.0, y_of(layer, ci), f"L{layer} {comp.replace('attention', 'attn')}", ha="right",
                    va="center", fontsize=7)
    x, y = receiver_xy(graph.receivers[-1])
    ax.plot(x, y, "D", color="black", ms=7)
    ax.text(x + 0.5, y, "readout", va="center", fontsize=8)
    ax.text((H - 1) / 2 + 0.5, 0.0, "embedding", va="center", fontsize=8)
    ax.set_xlim(-6, H + 2)
    ax.set_xticks(list(range(H)) + [H + 0.5], [str(i) for i in range(H)] + ["MLP"], fontsize=7)
    ax.set_yticks([])
    ax.grid(False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], color="tab:blue", lw=2, label="dropping it lowers the metric"),
               Line2D([], [], color="tab:orange", lw=2, label="dropping it raises the metric")]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    drawn = f"; the {int(keep.sum())} strongest drawn" if int(keep.sum()) < n else ""
    ax.set_title((title or f"Top-{n} edges by |EAP score|") + f"\n(x: head index{drawn})", fontsize=10)
    return fig
