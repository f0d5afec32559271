"""Notebook 08's pipeline: attribution patching checked against exact patching over pairs, the
integrated-gradients remedy, edge attribution, and circuits judged by faithfulness.

Estimates come from ``utils.atp`` and ``utils.circuit``; the exact effects they are judged
against come from notebook 06's per-pair component sweep (``utils.pairs.analyse_pair``, shared
through ``utils.memo`` when 06 ran in the same kernel and computed afresh otherwise) and, for
heads, time steps and positions, from ``exact_readout_effects`` (the nodes of 06's
``fine_grained_patching``, computed for the readout's rows only: all that the two metrics
read). Metrics: ``readout`` = ``recovery_readout_pct`` (percent of the way from target to source
along what the classifier reads) and ``logit`` = the change in the target logit. Every interval
resamples pairs (``utils.stats``).
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.lines import Line2D
from tqdm.auto import tqdm

from utils import atp, memo
from utils import faithfulness as F
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
    readout_recovery,
    run_patches,
    time_step_patches,
)
from utils.plotting import COMPONENT_COLOURS, axis_window
from utils.reading import ESTIMATES
from utils.stats import small_sample_ci, spearman, summarise, top_indices

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




def _estimates(hooked, patches, s, t, target: int, star: bool = True, deltas=None) -> dict[str, np.ndarray]:
    """Estimates of ``patches`` on both metrics, keyed ``<estimate>_<metric>``: AtP (one forward
    pass of the target, a backward each) and, with ``star``, AtP with the QK fix
    (``atp.atp_qk_fix``) and AtP* (``atp.atp_star``: the QK fix under GradDrop, unsigned), all
    three from one gradient sweep (``atp.atp_family``; ``deltas``: its ``atp.qk_fix_deltas`` when
    computed already)."""
    final = atp.final_site(hooked)
    metrics = {"readout": atp.readout_projection(hooked, s[final], t[final]),
               "logit": atp.target_logit(hooked, target, t[final])}
    ms = list(metrics.values())
    if not star:
        return {f"atp_{name}": a.numpy() for name, a in zip(metrics, atp.atp(hooked, patches, ms, target_cache=t.cache),
                                                            strict=True)}
    family = atp.atp_family(hooked, patches, ms, t.cache, deltas)  # AtP, the QK fix and AtP* from one gradient sweep
    return {f"{prefix}_{name}": values[i].numpy() for prefix, values in family.items()
            for i, name in enumerate(metrics)}


def _tidy(exact: pd.DataFrame, est: dict, node_type: str, **tag) -> pd.DataFrame:
    labels = [c for c in LABEL_COLUMNS if c in exact]
    out = exact[labels].copy()
    for metric, col in EXACT_COLUMNS.items():
        out[f"exact_{metric}"] = exact[col].to_numpy()
        for prefix in ESTIMATES:
            if f"{prefix}_{metric}" in est:
                out[f"{prefix}_{metric}"] = est[f"{prefix}_{metric}"]
    return out.assign(node_type=node_type, **tag)


def component_validation(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int,
                         progress: bool = True) -> pd.DataFrame:
    """AtP beside exact patching of every layer x component, both directions, over ``pairs``
    (exact: notebook 06's sweep of the pair, ``analyse_pair``, free when 06 ran in this kernel)."""
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
            rows.append(_tidy(ex, _estimates(hooked, patches, s, t, target, star=False), "component",
                              pair=_name(s_id), direction=direction))
    return pd.concat(rows, ignore_index=True)


def exact_readout_effects(hooked: HookedVideoTransformer, patches: list[Patch], s, t, target: int,
                          deltas=None) -> pd.DataFrame:
    """Exact patching of ``patches`` (source run ``s`` into target run ``t``) on the two metrics
    the validation compares (``EXACT_COLUMNS``), one row per patch with its label. Both metrics read
    the readout's rows only, so the last block runs for those rows alone where the adapter allows
    (``run_patches(readout_only=True)``): the same numbers as notebook 06's full tables up to float
    rounding, in about 80% of the time. ``deltas`` (``atp.qk_fix_deltas``: each ``resid_pre`` patch's
    exact change to its block's ``resid_mid``, which AtP*'s QK fix computes anyway) let those
    patches start at ``resid_mid``, their own attention step already run."""
    final = atp.final_site(hooked)
    runs = list(patches)
    for i, (p, d) in enumerate(zip(patches, deltas or [None] * len(patches), strict=True)):
        if d is not None:
            mid = f"blocks.{p.layer}.hook_resid_mid"
            runs[i] = Patch(mid, t.cache[mid][0] + d.to(t.cache[mid].device), label=p.label)
    acts, logits = run_patches(hooked, t.cache, runs, readout_only=True)
    table = pd.DataFrame([p.label for p in patches])
    table["recovery_readout_pct"] = readout_recovery(hooked, acts, t[final][0], s[final][0]).numpy()
    table["delta_target_logit"] = (logits[:, target] - t.logits[0, target]).double().cpu().numpy()
    return table


def fine_validation(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], target: int,
                    position_layer: int, progress: bool = True, shared: int = 0) -> pd.DataFrame:
    """AtP, AtP + QK fix and AtP* beside exact strike-into-gutter patching of every head, every
    time step (``resid_pre``, each layer) and every spatial position (``resid_pre`` of
    ``position_layer``), per pair (the nodes of notebook 06's ``fine_grained_patching``). Exact: for
    the first ``shared`` pairs, 06's own tables (free when 06 ran in this kernel: its ``head_pairs``
    are the canonical pair and the first matched ones); for the others ``exact_readout_effects``
    (the same numbers up to float rounding). Which pairs are shared depends on ``shared`` only,
    never on what the kernel holds, so a run in Jupyter writes the same table."""
    rows = []
    for k, (s_id, g_id) in enumerate(tqdm(pairs, desc="AtP vs exact: heads, time steps, positions",
                                          disable=not progress)):
        s, t = _runs(hooked, {"strike": data.pixels(s_id), "gutter": data.pixels(g_id)}, "strike", "gutter")
        groups = {"head": head_patches(hooked, s.cache),
                  "time_step": [p for la in range(hooked.n_layers) for p in time_step_patches(hooked, s.cache, la)],
                  "position": position_patches(hooked, s.cache, position_layer)}
        every = [p for patches in groups.values() for p in patches]
        deltas = atp.qk_fix_deltas(hooked, every, t.cache)  # the QK fix's attention steps, shared with exact
        if k < shared:
            exact = pd.concat(fine_grained_patching(hooked, data, s_id, g_id, target, position_layer),
                              ignore_index=True)
            if len(exact) != len(every):
                raise ValueError(f"notebook 06's fine-grained tables of {_name(s_id)} hold {len(exact)} nodes, "
                                 f"not {len(every)}")
        else:
            exact = exact_readout_effects(hooked, every, s, t, target, deltas)
        est = _estimates(hooked, every, s, t, target, deltas=deltas)
        start = 0
        for node_type, patches in groups.items():
            part = {k: v[start:start + len(patches)] for k, v in est.items()}
            rows.append(_tidy(exact.iloc[start:start + len(patches)].reset_index(drop=True), part, node_type,
                              pair=_name(s_id), direction="strike->gutter"))
            start += len(patches)
    return pd.concat(rows, ignore_index=True)


def top_overlap(exact: np.ndarray, estimate: np.ndarray, k: int) -> float:
    """Share of the ``k`` nodes of largest ``|exact|`` that are among the ``k`` of largest ``|estimate|``."""
    k = min(k, len(exact))
    a = set(top_indices(np.abs(exact), k))
    b = set(top_indices(np.abs(estimate), k))
    return len(a & b) / k


def agreement(validation: pd.DataFrame, top_k: int = 10, estimate: str = "atp") -> pd.DataFrame:
    """Per node type, metric and direction, over pairs (mean and 95% CI: Student t below
    ``MIN_BOOTSTRAP_UNITS`` pairs, bootstrap from there on, cut to the statistic's range;
    ``small_sample_ci``): the Spearman rank
    correlation of ``estimate`` with exact patching, the top-``top_k`` overlap (by magnitude),
    and the median absolute error relative to the largest exact effect. AtP* is an unsigned
    score: it is ranked against ``|exact|`` and has no error (NaN)."""
    unsigned = estimate == "atp_star"
    per_pair = []
    for (node_type, direction, pair), d in validation.groupby(["node_type", "direction", "pair"], sort=False):
        for metric in EXACT_COLUMNS:
            ex, es = d[f"exact_{metric}"].to_numpy(), d[f"{estimate}_{metric}"].to_numpy()
            scale = np.abs(ex).max()
            if unsigned:
                ex = np.abs(ex)
            per_pair.append({"node_type": node_type, "direction": direction, "metric": metric, "pair": pair,
                             "n_nodes": len(d), "spearman": spearman(ex, es),
                             "top_k_overlap": top_overlap(ex, es, top_k),
                             "median_rel_error": np.median(np.abs(es - ex)) / scale if scale > 0 and not unsigned
                             else np.nan})
    per_pair = pd.DataFrame(per_pair)
    keys = ["node_type", "direction", "metric"]
    out = None
    for value, bounds in (("spearman", (-1, 1)), ("top_k_overlap", (0, 1)), ("median_rel_error", (0, np.inf))):
        s = summarise(per_pair, keys, value, ci=partial(small_sample_ci, bounds=bounds))
        s = s.rename(columns={"estimate": value, "ci_low": f"{value}_ci_low",
                              "ci_high": f"{value}_ci_high"}).drop(columns="measure")
        s = s.drop(columns=[c for c in s.columns if c == "n_pairs" and out is not None])
        out = s if out is None else out.merge(s, on=keys)
    out["n_nodes"] = out.node_type.map(per_pair.groupby("node_type").n_nodes.first())
    order = {t: i for i, t in enumerate(NODE_TYPES)}
    return out.sort_values(["node_type", "direction", "metric"], key=lambda c: c.map(order) if c.name == "node_type"
                           else c, kind="stable").reset_index(drop=True)


def agreement_table(validation: pd.DataFrame, top_k: int = 10) -> pd.DataFrame:
    """Table 18: ``agreement`` of every estimate the validation holds (``ESTIMATES``; the QK fix
    and AtP* on the nodes they were computed for), one block each, labelled in an ``estimate`` column."""
    parts = []
    for prefix, label in ESTIMATES.items():  # AtP everywhere; the QK fix and AtP* where they were computed
        rows = validation.dropna(subset=[f"{prefix}_readout"]) if f"{prefix}_readout" in validation else None
        if rows is not None and len(rows):
            parts.append(agreement(rows, top_k, prefix).assign(estimate=label))
    out = pd.concat(parts, ignore_index=True)
    return out[["estimate", *[c for c in out.columns if c != "estimate"]]]


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
SCORE_METRICS = ("readout", "logit")  # what edges can be scored by (KL's gradient vanishes on the clean run)
METHODS = {"EAP": 0, "EAP-IG": -1}  # method -> IG steps (-1: the notebook's ig_steps); "random" is the baseline


def _metric(h, name: str, clean_final, cf_final, classes):
    """The scoring metric ``name`` (``SCORE_METRICS``) of one pair."""
    if name == "readout":
        return atp.readout_projection(h, clean_final, cf_final)
    return atp.logit_difference(h, classes)


def discovery_scores(graph: Graph, data, pairs: list[tuple[str, str]], classes: int | tuple[int, int],
                     metric: str = "readout", ig_steps: int = 0, progress: bool = True) -> torch.Tensor:
    """Edge scores (strike clean, gutter counterfactual) averaged over ``pairs``: EAP
    (``ig_steps = 0``) or EAP-IG with ``ig_steps`` input interpolations (``utils.circuit.edge_scores``),
    by ``metric`` (``readout`` or ``logit``; ``classes``: its class, or class and contrast class)."""
    if metric not in SCORE_METRICS:
        raise ValueError(f"edges are scored by one of {SCORE_METRICS}, not {metric!r} (the KL divergence to the "
                         f"clean run has zero gradient there)")
    h = graph.hooked
    total = torch.zeros(graph.valid.shape, dtype=torch.float64)
    desc = "edge scores" + (f" (EAP-IG, m = {ig_steps})" if ig_steps else " (EAP)")
    for s_id, g_id in tqdm(pairs, desc=desc, disable=not progress):
        clean_final, cf_final, cf_out = _pair_state(graph, data, s_id, g_id)
        m = _metric(h, metric, clean_final, cf_final, classes)
        total += edge_scores(graph, data.pixels(s_id), cf_out, m, counterfactual_pixels=data.pixels(g_id),
                             ig_steps=ig_steps)
    return total / len(pairs)


def random_scores(graph: Graph, seed: int = 0) -> torch.Tensor:
    """Random edge scores (uniform, seeded): the baseline circuit of each size is a random set of edges."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(graph.valid.shape, generator=gen, dtype=torch.float64) * graph.valid.cpu()


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
                       classes: int | tuple[int, int], mean_ref: torch.Tensor | None = None, batch_size: int = 8,
                       progress: bool = True) -> pd.DataFrame:
    """Every pair's metrics (``readout``, ``logit``, ``kl``; ``utils.atp.output_metrics``) for the
    top-``n`` circuit of each ``n`` in ``sizes`` (strike clean; dropped edges carry the pair's
    gutter run, and, with ``mean_ref``, separately the mean sender outputs). Columns: ``pair``,
    ``ablation``, ``metric_name``, ``n_edges``, ``metric``, ``metric_empty``, ``metric_full``,
    ``faithfulness_pct`` (the pair's own ratio; ``utils.faithfulness`` normalises means)."""
    h = graph.hooked
    rows = []
    for s_id, g_id in tqdm(pairs, desc="circuit runs", disable=not progress, leave=False):
        clean_final, cf_final, cf_out = _pair_state(graph, data, s_id, g_id)
        metrics = atp.output_metrics(h, clean_final, cf_final, classes)
        refs = {"counterfactual": cf_out}
        if mean_ref is not None:
            refs["mean"] = mean_ref
        for ablation, ref in refs.items():
            f = faithfulness(graph, data.pixels(s_id), ref, cf_final, clean_final, scores, sizes, batch_size,
                             counterfactual=ablation == "counterfactual", metrics=metrics)
            rows.append(f.assign(pair=_name(s_id), ablation=ablation))
    cols = ["pair", "ablation", "metric_name", "n_edges", "metric", "metric_empty", "metric_full", "faithfulness_pct"]
    return pd.concat(rows, ignore_index=True)[cols]


def select_size(curves: pd.DataFrame, threshold: float, metric: str, method: str,
                ablation: str = "counterfactual") -> int:
    """The circuit size of ``method``: the fewest edges whose faithfulness on the **discovery**
    pairs (``split == "discovery"``; MIB's ratio of means) reaches ``threshold`` percent under
    ``metric`` and ``ablation``. Held-out rows are never read: they only judge the size chosen."""
    d = curves[(curves.split == "discovery") & (curves.method == method) & (curves.metric_name == metric)
               & (curves.ablation == ablation)]
    if d.empty:
        raise ValueError(f"no discovery-pair curve for method={method!r}, metric={metric!r}, ablation={ablation!r}")
    return F.choose_size(F.curve(d, n_boot=1), threshold)


def refine_size(graph: Graph, data, pairs, scores, curves: pd.DataFrame, threshold: float, metric: str,
                method: str, classes, refine: int = 6) -> tuple[int, pd.DataFrame]:
    """``select_size``, narrowed by bisection between the size it finds and the size before,
    with new curve points on the discovery ``pairs`` only (``refine`` more sizes at most).
    Returns ``(size, curves with the new discovery rows)``."""
    n = select_size(curves, threshold, metric, method)
    if n < 0:
        return n, curves
    mine = curves[(curves.split == "discovery") & (curves.method == method) & (curves.ablation == "counterfactual")]
    below = sorted(k for k in set(mine.n_edges) if k < n)
    lo, hi = (below[-1] if below else 0), n
    for _ in range(refine):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        new = faithfulness_curve(graph, data, pairs, scores, [mid], classes, progress=False).assign(
            split="discovery", method=method)
        curves = pd.concat([curves, new], ignore_index=True)
        hi, lo = (mid, lo) if select_size(curves, threshold, metric, method) == mid else (hi, mid)
    return hi, curves


def output_classes(loaded) -> int | tuple[int, int]:
    """The logit metric's classes: the analysed class, and the contrast class where the checkpoint
    names one (``config.contrast_class``: toy-outcome's ``bowling gutter``)."""
    from utils.controls import output_metric

    contrast = getattr(loaded.config, "contrast_class", "") or None
    return output_metric(loaded, contrast)


def circuit_metric(metric: str, loaded) -> str:
    """Notebook 08's ``metric`` parameter resolved: ``auto`` is ``logit`` for a model that names a
    contrast class (its output then holds the strike-vs-gutter decision) and ``readout`` otherwise
    (the action-only models' output barely depends on the outcome: 0.01-0.03 in the logit)."""
    if metric == "auto":
        return "logit" if isinstance(output_classes(loaded), tuple) else "readout"
    if metric not in SCORE_METRICS:
        raise ValueError(f"metric = {metric!r}: circuits are scored and sized by one of {SCORE_METRICS} (or auto); "
                         f"the KL divergence is reported beside them in every table")
    return metric


METRIC_WORDS = {"readout": "the readout projection (percent of the way from the gutter to the strike readout)",
                "kl": "minus the KL divergence from the full model's class distribution"}


def metric_label(metric: str, loaded) -> str:
    """What ``metric`` measures on ``loaded``, for captions."""
    classes = output_classes(loaded)
    if metric in ("readout", "kl"):
        return METRIC_WORDS[metric]
    if isinstance(classes, tuple):
        return f"the logit difference '{loaded.id2label[classes[0]]}' minus '{loaded.id2label[classes[1]]}'"
    return f"the '{loaded.id2label[classes]}' logit"


def circuit_curves(graph: Graph, data, splits: dict[str, list], scores: dict[str, torch.Tensor], sizes: list[int],
                   classes, mean_ref: torch.Tensor | None = None, mean_splits: tuple[str, ...] = ("held-out",),
                   progress: bool = True) -> pd.DataFrame:
    """``faithfulness_curve`` for every split (name -> pairs) and method (name -> edge scores),
    with ``split`` and ``method`` columns; mean ablation only on ``mean_splits``."""
    parts = []
    for split, pairs in splits.items():
        for method, sc in tqdm(scores.items(), desc=f"circuits ({split} pairs)", disable=not progress):
            ref = mean_ref if split in mean_splits else None
            parts.append(faithfulness_curve(graph, data, pairs, sc, sizes, classes, mean_ref=ref,
                                            progress=False).assign(split=split, method=method))
    return pd.concat(parts, ignore_index=True)


def judged_sizes(graph: Graph, data, splits: dict[str, list], scores: dict[str, torch.Tensor],
                 curves: pd.DataFrame, threshold: float, metric: str, classes, mean_ref=None,
                 refine: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method's circuit size, chosen on the discovery pairs (``refine_size``), judged on the
    held-out pairs: one row per method and ablation with ``n_edges``, the discovery pairs'
    faithfulness and the held-out faithfulness with its interval (``metric``, MIB's ratio of
    means). Returns ``(table, curves with every new row)``."""
    rows = []
    for method, sc in scores.items():
        n, curves = refine_size(graph, data, splits["discovery"], sc, curves, threshold, metric, method, classes,
                                refine)
        if n < 0:
            rows.append({"method": method, "metric": metric, "ablation": "counterfactual", "n_edges": -1})
            continue
        held = curves[(curves.split == "held-out") & (curves.method == method)]
        if n not in set(held.n_edges):
            new = faithfulness_curve(graph, data, splits["held-out"], sc, [n], classes, mean_ref=mean_ref,
                                     progress=False).assign(split="held-out", method=method)
            curves = pd.concat([curves, new], ignore_index=True)
        disc = F.curve(curves[(curves.split == "discovery") & (curves.method == method)
                              & (curves.metric_name == metric) & (curves.ablation == "counterfactual")], n_boot=1)
        found = float(disc.set_index("n_edges").faithfulness_pct[n])
        judged = curves[(curves.split == "held-out") & (curves.method == method) & (curves.metric_name == metric)]
        for ablation, g in judged.groupby("ablation", sort=True):
            r = F.curve(g).set_index("n_edges").loc[n]
            rows.append({"method": method, "metric": metric, "ablation": ablation, "n_edges": n,
                         "edge_fraction_pct": 100 * n / graph.n_edges, "discovery_pct": found,
                         "held_out_pct": r.faithfulness_pct, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "n_pairs": int(r.n_pairs)})
    order = ["split", "method", "ablation", "metric_name", "pair", "n_edges"]
    return pd.DataFrame(rows), curves.sort_values(order, kind="stable").reset_index(drop=True)


def area_scores(curves: pd.DataFrame, n_edges: int) -> pd.DataFrame:
    """CPR and CMD (``utils.faithfulness.area_table``) on the held-out pairs, per method, ablation
    and metric, with the number of pairs whose denominator is near zero (``flagged_pairs``)."""
    held = curves[curves.split == "held-out"]
    by = ["method", "ablation", "metric_name"]
    table = F.area_table(held, n_edges, by=by)
    flags = F.denominators(held, by=by).groupby(by).flagged.sum().rename("flagged_pairs").reset_index()
    return table.merge(flags, on=by, how="left")


def reference_pixels(loaded, data, exclude: set[str], n: int) -> tuple[torch.Tensor, str]:
    """The mean-ablation reference set, apart from every analysed pair: for a profile whose
    clips come from the synthetic world, ``n`` fresh bowling clips (seeds ``REFERENCE_SEED_BASE
    + i``, strike and gutter alternating, rendered and preprocessed as notebook 00 does); for any
    other profile, its prepared clips outside ``exclude``. Returns the pixels and a sentence
    saying what they are."""
    from utils.data import REFERENCE_SEED_BASE, is_synthetic, reference_clips

    if is_synthetic(data.manifest):
        with torch.inference_mode():
            px = torch.cat([loaded.preprocess(c.frames) for c in reference_clips(loaded, n)])
        seeds = f"{REFERENCE_SEED_BASE}-{REFERENCE_SEED_BASE + n - 1}"
        return px, (f"the mean over {n} fresh bowling clips (seeds {seeds}, strike and gutter alternating), "
                    f"none of them analysed")
    ids = [i for i in data.ids if i not in exclude]
    if not ids:
        raise ValueError("mean ablation needs reference clips outside the analysed pairs; prepare more pairs "
                         "(00_data_prep) or set mean_clips = 0")
    return (torch.cat([data.pixels(i) for i in ids]),
            f"the mean over the {len(ids)} prepared clips outside the analysed pairs (fewer than {n})"
            if len(ids) < n else f"the mean over the {len(ids)} prepared clips outside the analysed pairs")


def circuit_edges(graph: Graph, scores: torch.Tensor, n: int) -> pd.DataFrame:
    """The top-``n`` circuit's edges, one row each in the graph's order (sender, then receiver:
    a fixed order, where one by ``|score|`` could swap near-ties between machines): ``sender``,
    ``receiver``, their layers and components (``head``: -1 for a whole component), ``score``
    (what the interactive explorer draws; ``circuit_graph_figure`` aggregates the same edges)."""
    keep = top_edges(scores, graph, n).cpu()
    edges = graph.edges()
    kept = keep[torch.as_tensor(edges.s.values), torch.as_tensor(edges.r.values)].numpy()
    edges = edges[kept].sort_values(["s", "r"], kind="stable").copy()
    edges["score"] = scores.cpu().double().numpy()[edges.s.values, edges.r.values]
    return edges.drop(columns=["s", "r"]).reset_index(drop=True)


def circuit_composition(graph: Graph, scores: torch.Tensor, n: int) -> pd.DataFrame:
    """Who the top-``n`` circuit's edges come from and go to: per sender kind (embedding,
    each attention step's heads, MLP) its edges, its share of the circuit's total |score| and
    that share divided by the kind's number of senders in the graph (``share_per_sender_pct``)."""
    keep = top_edges(scores, graph, n)
    s_idx, r_idx = torch.nonzero(keep, as_tuple=True)
    w = scores[s_idx, r_idx].abs().numpy()
    kinds = [graph.senders[i].component for i in s_idx.tolist()]
    recv = [graph.receivers[j].component for j in r_idx.tolist()]
    d = pd.DataFrame({"sender": kinds, "receiver": recv, "abs_score": w})
    out = d.groupby("sender").agg(edges=("abs_score", "size"), abs_score=("abs_score", "sum")).reset_index()
    out["score_share_pct"] = 100 * out.abs_score / out.abs_score.sum()
    # per sender: 144 heads against 12 MLPs is no contest of kinds, so divide by how many there are
    in_graph = pd.Series([node.component for node in graph.senders]).value_counts()
    out["senders_in_graph"] = out.sender.map(in_graph).astype(int)
    out["share_per_sender_pct"] = out.score_share_pct / out.senders_in_graph
    out["circuit_edges"], out["graph_edges"] = n, graph.n_edges
    for receiver in ("mlp", "readout"):
        into = d[d.receiver == receiver].groupby("sender").size()
        out[f"edges_into_{receiver}"] = out.sender.map(into).fillna(0).astype(int)
    return out.drop(columns="abs_score")


# ---------------------------------------------------------------------------- figures
def atp_scatter_figure(validation: pd.DataFrame, metric: str = "readout"):
    """Fig. 15: AtP against exact patching, one panel per node type (all pairs and directions),
    coloured by layer; the diagonal is perfect agreement. A panel whose range a few isolated
    outliers would stretch shows the rest (``axis_window``): the outliers are drawn at the edge as
    crosses and counted in the panel, and the Spearman rho counts every point."""
    types = [t for t in NODE_TYPES if t in set(validation.node_type)]
    # constrained layout keeps the suptitle, the two-line panel titles and the colour bar apart
    fig, axes = plt.subplots(1, len(types), figsize=(3.6 * len(types) + 1, 3.9), layout="constrained")
    axes = np.atleast_1d(axes)
    colour = dict(cmap="viridis", vmin=0, vmax=validation.layer.max())
    for ax, node_type in zip(axes, types, strict=True):
        d = validation[validation.node_type == node_type]
        x, y = d[f"exact_{metric}"].to_numpy(float), d[f"atp_{metric}"].to_numpy(float)
        lo, hi = axis_window(np.concatenate([x, y]))
        beyond = (x < lo) | (x > hi) | (y < lo) | (y > hi)
        sc = ax.scatter(x[~beyond], y[~beyond], c=d.layer[~beyond], s=10, alpha=0.7, **colour)
        if beyond.any():
            inside = (lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo))
            ax.scatter(np.clip(x[beyond], *inside), np.clip(y[beyond], *inside), c=d.layer[beyond], marker="X", s=40,
                       edgecolors="black", linewidths=0.5, **colour)
            ax.text(0.03, 0.97, f"{int(beyond.sum())} beyond the axes,\ndrawn at the edge (X)", transform=ax.transAxes,
                    fontsize=7, va="top")
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
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


METHOD_STYLES = {"EAP": ("tab:blue", "o-"), "EAP-IG": ("tab:green", "s-"), "random": ("grey", "^:")}


def faithfulness_figure(curve: pd.DataFrame, sizes: pd.DataFrame, n_total: int, threshold: float, metric_text: str):
    """Fig. 17: held-out faithfulness (MIB's ratio of means, 95% CI over pairs) against the share of
    edges kept, one line per method, counterfactual and mean ablation side by side; the dotted
    line is ``threshold``, the ticks each method's size chosen on the discovery pairs."""
    ablations = [a for a in ("counterfactual", "mean") if a in set(curve.ablation)]
    # each panel its own y scale: mean ablation's intervals are far wider than counterfactual ablation's
    fig, axes = plt.subplots(1, len(ablations), figsize=(5.2 * len(ablations), 4.4), squeeze=False,
                             layout="constrained")
    for ax, ablation in zip(axes[0], ablations, strict=True):
        for method, (colour, style) in METHOD_STYLES.items():
            d = curve[(curve.ablation == ablation) & (curve.method == method)].sort_values("n_edges")
            d = d[d.n_edges > 0]
            if d.empty:
                continue
            x = 100 * d.n_edges / n_total
            ax.plot(x, d.faithfulness_pct, style, color=colour, ms=4, label=method)
            ax.fill_between(x, d.ci_low, d.ci_high, color=colour, alpha=0.15)
            chosen = sizes[(sizes.method == method) & (sizes.ablation == ablation)]
            if len(chosen) and chosen.n_edges.iloc[0] > 0:
                ax.axvline(100 * chosen.n_edges.iloc[0] / n_total, color=colour, ls=":", lw=1)
        ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.axhline(100, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(f"edges kept (% of {n_total}, top by |score|)")
        n_pairs = int(curve[curve.ablation == ablation].n_pairs.max())
        ax.set_title(f"{ablation} ablation ({n_pairs} held-out pairs)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    axes[0, 0].set_ylabel("faithfulness (%): 0 = empty circuit, 100 = full model")
    fig.suptitle(f"How much does the top-n circuit recover? Metric: {metric_text}.\n"
                 f"Dotted verticals: each method's size, chosen on the discovery pairs.", fontsize=9)
    return fig


def circuit_graph_figure(graph: Graph, scores: torch.Tensor, n: int, title: str = ""):
    """Fig. 18: the top-``n`` circuit as a reader can follow it. Layers run left to right, one row
    per component (each attention step, the MLP); a node is one component of one layer, its
    heads aggregated (the number inside: heads with an edge in the circuit); an arrow joins two
    nodes when circuit edges join them, its width the summed |score| of those edges, its colour
    the sign of their sum (blue: dropping them lowers the metric). Every circuit edge is drawn."""
    h = graph.hooked
    keep = top_edges(scores, graph, n)
    comps = list(graph.components)
    rows = {c: len(comps) - 1 - i for i, c in enumerate(comps)}  # the first component on top
    mid = (len(comps) - 1) / 2

    def xy(component, layer):
        if component == "embed":
            return -2.2, mid
        if component == "readout":
            return h.n_layers + 0.2, mid
        return layer + 0.35 * comps.index(component), rows[component]

    s_idx, r_idx = torch.nonzero(keep, as_tuple=True)
    flows: dict[tuple, float] = {}
    heads: dict[tuple, set] = {}
    for si, ri in zip(s_idx.tolist(), r_idx.tolist(), strict=True):
        snd, rcv = graph.senders[si], graph.receivers[ri]
        a = ("embed", -1) if snd.component == "embed" else (snd.component, snd.layer)
        b = ("readout", h.n_layers) if rcv.component == "readout" else (rcv.component, rcv.layer)
        flows[(a, b)] = flows.get((a, b), 0.0) + float(scores[si, ri])
        if snd.head is not None:
            heads.setdefault(a, set()).add(snd.head)
    used = {k for pair in flows for k in pair}
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * h.n_layers + 3), 1.5 + 1.3 * len(comps)), layout="constrained")
    wmax = max((abs(v) for v in flows.values()), default=1.0) or 1.0
    for (a, b), v in sorted(flows.items(), key=lambda kv: abs(kv[1])):
        (x0, y0), (x1, y1) = xy(*a), xy(*b)
        rad = -0.35 if y0 == y1 else 0.12  # along a row: arc above it
        ax.annotate("", (x1, y1), (x0, y0),
                    arrowprops=dict(arrowstyle="-|>", mutation_scale=6, lw=0.3 + 4 * abs(v) / wmax,
                                    alpha=0.25 + 0.6 * abs(v) / wmax, shrinkA=7, shrinkB=7,
                                    color="tab:blue" if v < 0 else "tab:orange", connectionstyle=f"arc3,rad={rad}"))
    for layer in range(h.n_layers):
        for comp in comps:
            x, y = xy(comp, layer)
            on = (comp, layer) in used
            colour = COMPONENT_COLOURS.get(comp, "grey")
            ax.plot(x, y, "s" if comp == "mlp" else "o", ms=15 if on else 8, color=colour, alpha=1.0 if on else 0.2,
                    zorder=3)
            if comp in h.head_sites and (comp, layer) in heads:
                ax.text(x, y, str(len(heads[(comp, layer)])), ha="center", va="center", fontsize=7, color="white",
                        zorder=4, fontweight="bold")
    for comp in comps:
        ax.text(-0.45, rows[comp], comp.replace("_", " "), ha="right", va="center", fontsize=8)
    for key, marker, label in ((("embed", -1), "o", "embedding"), (("readout", h.n_layers), "D", "readout")):
        x, y = xy(*key)
        ax.plot(x, y, marker, color="black", ms=9, zorder=3)
        ax.text(x, y + 0.22, label, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(h.n_layers), [f"L{i}" for i in range(h.n_layers)], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-2.9, h.n_layers + 0.8)
    ax.set_ylim(-0.45, len(comps) + 0.9)  # room for the arcs above the top row, none below the bottom one
    ax.grid(False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], color="tab:blue", lw=2, label="dropping these edges lowers the metric"),
               Line2D([], [], color="tab:orange", lw=2, label="dropping them raises it")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    ax.set_title((title or f"Top-{n} edges") + f"\n{len(flows)} component-to-component links; number in a node: "
                 f"its heads in the circuit (of {h.n_heads}); width: summed |edge score|", fontsize=9)
    return fig
