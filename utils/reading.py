"""What we see: the reader's paragraphs that close the notebooks, generated from the run's own
numbers (as ``utils.findings`` generates the findings), so that the words change when the
numbers do and a reader who runs nothing still gets the answer with its evidence: notebooks
00-05 (one function each), 08 (``summary_lines``) and 09 (``what_we_see``). Text only: no
torch to import, so ``python -m utils.findings`` reads the tables in a second.

Each function takes what its notebook computed (plain numbers and its tables) and returns
Markdown: the question, the answer in words chosen by stated thresholds, the numbers behind it,
and the paper's value beside ours (from ``utils.paper``, never typed into a notebook).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils import paper
from utils.findings import (
    ACTION,
    CONTROL,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    mlp_ahead_layers,
    proxy_words,
    single_component_words,
)

# Notebook 01: a total-variation distance between two attention maps under SAME_MAP reads as "the
# same map", under SIMILAR_MAP as "similar"; the maps "part" where the clips do when the mean
# distance after the divergence is at least PARTS times the mean before it.
SAME_MAP, SIMILAR_MAP, PARTS = 0.1, 0.3, 2.0
# Notebook 01: a peak patch weight under DIFFUSE x uniform reads as diffuse, from PEAKED x as peaked.
DIFFUSE, PEAKED = 2.0, 5.0
# Notebook 03: "100% from layer 0" (the paper's Fig. 6) for a probe is an accuracy of at least this.
PERFECT_PROBE = 0.995
UNTRAINED = "**This model is untrained** (random weights at hub scale): the numbers check shapes and exactness only."


def _paragraph(*sentences: str | None, untrained: bool = False) -> str:
    text = " ".join(s for s in sentences if s)
    return text + ("\n\n" + UNTRAINED if untrained else "")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# ---------------------------------------------------------------------------- 00
def data_reading(pred: pd.DataFrame, target_label: str, first_diff: int | None = None,
                 tubelet_frames: int | None = None) -> str:
    """Notebook 00: does the paper's premise hold, and where do the canonical clips differ?
    ``pred``: ``utils.data.prediction_table`` (``clip_id``, ``outcome``, ``is_target``);
    ``first_diff``: the canonical pair's first different frame (None for real clips)."""
    n, ok = len(pred), int(pred.is_target.sum())
    per = ", ".join(f"{outcome} {int(g.is_target.sum())} of {len(g)}" for outcome, g in pred.groupby("outcome"))
    premise = ("the premise holds for every clip" if ok == n
               else f"the premise fails for {n - ok} clip(s), flagged in the notes of every later table")
    where = None
    if first_diff is not None:
        step = f" (time step {first_diff // tubelet_frames} of the model's tubelets)" if tubelet_frames else ""
        where = (f"The canonical strike and gutter clips are identical up to frame {first_diff - 1} and differ from "
                 f"frame {first_diff}{step} on: whatever a method finds before that is not about the outcome.")
    return _paragraph(
        f"**Does the model call every clip '{target_label}'?** {ok} of {n} prepared clips ({per}): {premise}.",
        where)


# ---------------------------------------------------------------------------- 01
def attention_reading(layer: int, head: int, distance: np.ndarray, divergence_step: int | None,
                      peak_weight: dict[str, float], n_patches: int, untrained: bool = False) -> str:
    """Notebook 01: is the head an outcome detector? ``distance``: the total-variation distance
    between the strike and the gutter map per time step (``utils.attention.total_variation``);
    ``divergence_step``: the first time step whose frames differ (None for real clips);
    ``peak_weight``: run -> mean weight of the most attended patch per time step."""
    distance = np.asarray(distance, dtype=float)
    lo, hi = float(distance.min()), float(distance.max())
    alike = ("nearly the same map" if hi < SAME_MAP else "similar maps" if hi < SIMILAR_MAP else "different maps")
    follows = None
    if divergence_step is not None and 0 < divergence_step < len(distance):
        before, after = float(distance[:divergence_step].mean()), float(distance[divergence_step:].mean())
        parts = after >= PARTS * max(before, 1e-12)
        follows = (f"The clips first differ at time step {divergence_step}; the mean distance is {before:.3f} "
                   f"before and {after:.3f} from then on, so the maps "
                   + ("part where the clips do: the head looks at what tells the outcomes apart."
                      if parts else f"part no more than {PARTS:g}x after the clips diverge than before: nothing "
                                    "here says the head watches the outcome."))
    uniform = 1 / n_patches
    ratio = {k: v / uniform for k, v in peak_weight.items()}
    worst = min(ratio.values())
    lo_r, hi_r = f"{min(ratio.values()):.1f}", f"{max(ratio.values()):.1f}"
    span = lo_r if lo_r == hi_r else f"{lo_r}-{hi_r}"
    shape = ("close to uniform: no patch stands out" if max(ratio.values()) < DIFFUSE
             else "peaked on a few patches" if worst >= PEAKED else "mildly peaked")
    weights = " and ".join(f"{v:.3f} ({k})" for k, v in peak_weight.items())
    claim = ("its CLS attention" if (layer, head) == paper.FIG1_HEAD
             else f"the CLS attention of layer {paper.FIG1_HEAD[0]} head {paper.FIG1_HEAD[1]}")
    return _paragraph(
        f"**Is layer {layer} head {head} an outcome detector?** The paper says {claim} tracks the ball, "
        "then snaps to the pins at impact in the strike clip and watches the gutter in the gutter clip.",
        f"Here, within each time step, the strike and the gutter maps (each normalised over the step's patches) "
        f"differ by a total-variation distance of {lo:.3f} to {hi:.3f} (0: the same map, 1: disjoint): {alike}.",
        follows,
        f"The most attended patch holds on average {weights} of the weight, against {uniform:.4f} for uniform "
        f"attention ({span}x uniform): {shape}.",
        untrained=untrained)


# ---------------------------------------------------------------------------- 02
def logit_lens_reading(target_label: str, n_layers: int, lens: pd.DataFrame, dla: pd.DataFrame,
                       components: list[str], rank_corr: float, n_patches: int, readout: str = "CLS",
                       untrained: bool = False) -> str:
    """Notebook 02: where does the model decide? ``lens``: the logit lens (``run``, ``layer``,
    ``logit``, ``rank``; its last layer is the model's own logit); ``dla``: direct logit attribution
    (``run``, ``component``, ``layer``, ``logit``), of which the three largest terms of
    ``components`` in the strike run are quoted; ``rank_corr``: Spearman's rho of the notebook's
    token score against token DLA."""
    top = lens[lens["rank"] == 0].groupby("run").layer.min()  # the first layer that ranks the target top
    first_top = {run: top.get(run) for run in ("strike", "gutter")}
    final_logit = lens.sort_values("layer").groupby("run").logit.last()
    d_s = dla[(dla.run == "strike") & dla.component.isin(components)]
    top_terms = d_s.loc[d_s.logit.abs().nlargest(3).index]

    def at(run):
        layer = first_top.get(run)
        return "never" if layer is None or pd.isna(layer) else f"at layer {int(layer)}"

    depth = [int(v) / n_layers for v in first_top.values() if v is not None and not pd.isna(v)]
    paper_depth = paper.LENS_RISES_FROM / paper.N_LAYERS
    when = None
    if depth:
        late = min(depth) >= paper_depth
        when = (f"That is {'as late as' if late else 'earlier than'} the paper's real model, whose confidence rises "
                f"from layer {paper.LENS_RISES_FROM} of {paper.N_LAYERS} on: "
                + ("the class is read off the last layers." if late else "the class is readable before the last "
                                                                      "layers."))
    terms = ", ".join(f"{r.component} {int(r.layer)} ({r.logit:+.2f})" for r in top_terms.itertuples())
    return _paragraph(
        f"**When does the model know it sees '{target_label}'?** The {readout} logit lens first ranks it top "
        f"{at('strike')} (strike) and {at('gutter')} (gutter) of {n_layers}; the final logits are "
        f"{final_logit['strike']:.2f} and {final_logit['gutter']:.2f}.",
        when,
        f"The largest direct contributions to the strike logit are {terms}; the direct terms and the token terms "
        "each add up to the model's logit (checked above).",
        f"The notebook's token score (the last residual dotted with the class row, no LayerNorm) ranks the "
        f"{n_patches} patches with Spearman's rho {rank_corr:.2f} against token DLA: it is {proxy_words(rank_corr)}",
        untrained=untrained)


# ---------------------------------------------------------------------------- 03
def delta_norms_reading(deltas: pd.DataFrame, probes: pd.DataFrame, n_layers: int, paper_profile: bool = False,
                        untrained: bool = False) -> str:
    """Notebook 03: is there an amplification cascade, and what do the probes read? ``deltas``:
    ``utils.deltas.delta_norms`` (layer -1 = embedding; ``mean_token_norm``, ``relative``);
    ``probes``: ``probe``, ``scored_on``, ``layer``, ``accuracy`` (0-1)."""
    d = deltas.set_index("layer")
    last = n_layers - 1
    frm = min(paper.GROWTH_FROM, last)
    growth = d.mean_token_norm.loc[last] / max(d.mean_token_norm.loc[frm], 1e-12)
    paper_growth = paper.FIG5[11] / paper.FIG5[paper.GROWTH_FROM]
    cascade = ("grows as the paper's does" if growth >= paper_growth else
               "grows, but less than the paper's" if growth > 1 else "does not grow")
    embed = None
    if not paper_profile and -1 in d.index:
        embed = (f"At the embedding it is {d.mean_token_norm.loc[-1]:.3f}: the matched clips differ only where the "
                 "ball and the pins do.")
    probe_words = []
    for name, g in probes.groupby("probe", sort=False):
        g = g.set_index("layer")
        best = g.accuracy.idxmax()
        first = g.accuracy.loc[g.index.min()]
        probe_words.append(f"{name} (scored on {g.scored_on.iloc[0]}): {100 * first:.0f}% at layer {g.index.min()}, "
                           f"{100 * g.accuracy.loc[best]:.0f}% at best (layer {best})")
    perfect = [name for name, g in probes.groupby("probe", sort=False) if g.accuracy.min() >= PERFECT_PROBE]
    paper_probe = ("The paper's probes score 100% from layer 0 on"
                   + (f"; here so do: {'; '.join(perfect)}, which is what a probe scored on its own training "
                      "vectors, or on tokens of the same two clips, must do whatever the model computes"
                      if perfect else "; none of ours does"))
    return _paragraph(
        f"**Is there an amplification cascade?** The mean token norm of strike minus gutter goes from "
        f"{d.mean_token_norm.loc[0]:.3f} after layer 0 and {d.mean_token_norm.loc[frm]:.3f} after layer {frm} to "
        f"{d.mean_token_norm.loc[last]:.3f} after layer {last}, x{growth:.2f} from layer {frm}: it {cascade} (ViViT-B: "
        f"about {paper.FIG5[paper.GROWTH_FROM]:g} at layer {paper.GROWTH_FROM} and over {paper.FIG5[11]:g} at layer "
        f"11, x{paper_growth:.1f}; absolute norms depend on the model's width). Relative to the stream it goes from "
        f"{d.relative.loc[0]:.3f} to {d.relative.loc[last]:.3f}.",
        embed,
        "**What do the probes read?** " + "; ".join(probe_words) + ".",
        paper_probe + ".",
        untrained=untrained)


# ---------------------------------------------------------------------------- 04
def patching_reading(table3: pd.DataFrame, components: list[str], untrained: bool = False) -> str:
    """Notebook 04: do attention gather and MLPs compose? ``table3``: one row per patched layer and
    component with ``recovery_notebook_pct`` and ``recovery_projection_pct``."""
    attention = [c for c in components if c != "mlp"]
    piv = table3.pivot(index="layer", columns="component", values=["recovery_notebook_pct",
                                                                    "recovery_projection_pct"])
    ranges = {m: ", ".join(f"{c} {piv[m][c].min():.1f} to {piv[m][c].max():.1f}%" for c in components)
              for m in ("recovery_notebook_pct", "recovery_projection_pct")}
    paper_att = [v for (_, c), v in paper.TABLE3.items() if c == "attention"]
    paper_mlp = [v for (_, c), v in paper.TABLE3.items() if c == "mlp"]
    wins, n_layers = mlp_ahead_layers(piv["recovery_notebook_pct"], attention), len(piv)
    lead = ("the MLP leads at most layers, as in the paper" if wins > n_layers / 2
            else "the MLP does not lead at most layers")
    excess = float(np.nanmean((piv["recovery_notebook_pct"] - piv["recovery_projection_pct"]).values))
    best = table3.loc[table3.recovery_projection_pct.idxmax()]
    return _paragraph(
        "**Do attention layers gather and MLPs compose?** Patching one component of the strike run into the gutter "
        f"run recovers {ranges['recovery_notebook_pct']} of the difference by the notebook's unsigned metric (the "
        f"paper, layers 4-10: attention {min(paper_att):.0f}-{max(paper_att):.0f}%, MLP "
        f"{min(paper_mlp):.0f}-{max(paper_mlp):.0f}%), and {ranges['recovery_projection_pct']} by the signed "
        "projection.",
        f"The MLP recovers more than {' and '.join(attention)} at {wins} of the {n_layers} layers patched: {lead}.",
        f"The unsigned metric exceeds the projection by {excess:.1f} points on average: part of what it counts as "
        "recovery is movement that does not point from gutter toward strike.",
        f"The largest single projection is {best.recovery_projection_pct:.1f}% ({best.component} "
        f"{int(best.layer)}): {single_component_words(best.recovery_projection_pct)}.",
        untrained=untrained)


# ---------------------------------------------------------------------------- 05
def ablation_reading(target_label: str, changes: dict[str, dict], control: str,
                     components: pd.DataFrame | None = None, n_layers: int | None = None,
                     untrained: bool = False) -> str:
    """Notebook 05: does removing the top tokens remove the class? ``changes``: run -> the
    ``utils.ablation_tables.target_changes`` dict (``change`` per method, ``logit_before``,
    ``stays_top``); ``control``: the random-patch method's name; ``components``: the component
    ablation table (``how``, ``component``, ``layer``, ``run``, ``delta_target_logit``), whose most
    damaging single component under mean ablation (the classifier head aside) is quoted, with the
    layers it covers when they are not all ``n_layers``."""
    paper_change = {"strike": paper.TABLE1_STRIKE[0][2] - paper.TABLE1_STRIKE[0][1],
                    "gutter": paper.TABLE2_GUTTER[0][2] - paper.TABLE2_GUTTER[0][1]}
    runs = []
    for run, t in changes.items():
        c = t["change"]
        beyond = abs(c["faithful"]) > abs(c[control])
        runs.append(f"in the {run} clip the '{target_label}' logit moves by {c['faithful']:+.3f} (faithful), "
                    f"{c['corrected']:+.3f} (corrected) and {c[control]:+.3f} (random patches) from "
                    f"{t['logit_before']:.3f}, {'more' if beyond else 'no more'} than random patches move it, and it "
                    f"{'stays' if t['stays_top'] else 'is no longer'} the top class"
                    + (f" (the paper: {paper_change[run]:+.3f})" if run in paper_change else ""))
    damage = None
    if components is not None and len(components):
        mean = components[(components.how == "mean") & ~components.component.str.endswith("head")]
        worst = mean.sort_values("delta_target_logit").iloc[0]
        layers = sorted(mean.layer.unique())
        among = "" if n_layers is None or len(layers) == n_layers else \
            f" among layers {layers[0]}-{layers[-1]} (component_layers)"
        damage = (f"The most damaging single component under mean ablation{among} is {worst.component} "
                  f"{int(worst.layer)} ({worst.run}, {worst.delta_target_logit:+.3f}).")
    return _paragraph(
        "**Does removing the most attributed tokens remove the class?** " + _sentence("; ".join(runs)),
        damage,
        untrained=untrained)


# ---------------------------------------------------------------------------- 08
ESTIMATES = {"atp": "AtP", "atp_qk": "AtP + QK fix", "atp_star": "AtP*"}  # validation column prefix -> label


def summary_lines(agree: pd.DataFrame | None, ig_summary: pd.DataFrame | None, sizes: pd.DataFrame | None,
                  scores: pd.DataFrame | None, composition: pd.DataFrame | None, n_edges: int, threshold: float,
                  metric: str = "readout", metric_text: str = "") -> list[str]:
    """Notebook 08's findings, one sentence each, from its tables (nothing typed by hand)."""
    lines = []
    star = None
    if agree is not None and "estimate" in agree:  # Table 18 holds AtP, AtP + QK fix and AtP*
        star, agree = agree, agree[agree.estimate == ESTIMATES["atp"]]
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
    if star is not None:
        d = star[(star.metric == "readout") & (star.direction == "strike->gutter")
                 & star.node_type.isin(["time_step", "position"])]
        parts = []
        for node_type, g in d.groupby("node_type", sort=False):
            r = g.set_index("estimate")
            parts.append(f"{node_type.replace('_', ' ')}s " + ", ".join(
                f"{label} {r.loc[label].spearman:.2f} [{r.loc[label].spearman_ci_low:.2f}, "
                f"{r.loc[label].spearman_ci_high:.2f}]" for label in ESTIMATES.values() if label in r.index)
                + f" (n = {int(r.n_pairs.iloc[0])} pairs)")
        if parts:
            lines.append("Where AtP fails, Kramár et al.'s remedies (Spearman over nodes; AtP* ranked against "
                         "|exact|): " + "; ".join(parts) + ".")
    if ig_summary is not None:
        for node_type, d in ig_summary.groupby("node_type", sort=False):
            first, last = d.iloc[0], d.iloc[-1]
            lines.append(f"{node_type.replace('_', ' ').capitalize()}s, AtP -> integrated gradients with m = "
                         f"{int(last.m)} steps: Spearman over nodes {first.spearman:.3f} -> {last.spearman:.3f}; "
                         f"median error {100 * first.median_rel_error:.2f}% -> {100 * last.median_rel_error:.2f}% "
                         f"of the largest exact effect; the whole sites' worst error "
                         f"{first.max_error_whole_site:.2f} -> {last.max_error_whole_site:.3f} points.")
    if sizes is not None and len(sizes):
        for method, d in sizes.groupby("method", sort=False):
            cf = d[d.ablation == "counterfactual"].iloc[0]
            if cf.n_edges < 0:
                lines.append(f"{method}: no circuit reaches {threshold:g}% on the discovery pairs.")
                continue
            text = (f"{method}: the size chosen on the discovery pairs ({cf.discovery_pct:.1f}% there) keeps "
                    f"{int(cf.n_edges)} of {n_edges} edges ({cf.edge_fraction_pct:.1f}%); on {int(cf.n_pairs)} "
                    f"held-out pairs it recovers {cf.held_out_pct:.1f}% [{cf.ci_low:.1f}, {cf.ci_high:.1f}] with the "
                    f"gutter run as counterfactual")
            mean = d[d.ablation == "mean"]
            if len(mean):
                m = mean.iloc[0]
                text += f", {m.held_out_pct:.1f}% [{m.ci_low:.1f}, {m.ci_high:.1f}] with mean ablation"
            lines.append(text + (f"; metric: {metric_text}." if metric_text else "."))
    if scores is not None and len(scores):
        d = scores[(scores.ablation == "counterfactual") & (scores.metric_name == metric)].set_index("method")
        parts = [f"{m} {r.cpr:.2f} [{r.cpr_ci_low:.2f}, {r.cpr_ci_high:.2f}]" for m, r in d.iterrows()]
        lines.append("MIB's CPR (area under the held-out faithfulness curve over edge fractions 0.1-100%, "
                     "counterfactual ablation; 1 is perfect): " + "; ".join(parts) + ".")
        if "random" in d.index:
            better = [m for m, r in d.iterrows() if m != "random" and r.cpr_ci_low > d.loc["random"].cpr_ci_high]
            lines.append("Above the random-circuit baseline (intervals apart): "
                         + (", ".join(better) if better else "no method") + ".")
    if composition is not None:
        share = composition.set_index("sender").score_share_pct
        attn = share[[c for c in share.index if c.startswith("attention")]].sum()
        per = composition.set_index("sender").share_per_sender_pct
        head = per[[c for c in per.index if c.startswith("attention")]].mean()
        lines.append(f"In that circuit attention heads carry {attn:.0f}% of the total |edge score|, MLPs "
                     f"{share.get('mlp', 0.0):.0f}% and the embedding {share.get('embed', 0.0):.0f}%; per sender, "
                     f"an MLP carries {per.get('mlp', 0.0):.1f}% and a head {head:.2f}% "
                     f"({per.get('mlp', 0.0) / head:.1f}x).")
    return lines


# ---------------------------------------------------------------------------- 09
MEASURES = {  # measure -> (what it is, axis label with its unit)
    "delta_final": ("residual delta after the last block", "mean token ‖a − b‖₂ (residual units)"),
    "delta_growth": (f"delta growth, last layer / layer {paper.GROWTH_FROM}", "ratio (x)"),
    "readout_delta": ("delta of the readout, what the classifier reads", "‖LN(a) − LN(b)‖₂ (LayerNorm units)"),
    "output_delta": ("output difference |m(a) − m(b)|", "|Δ output metric| (logits)"),
    "patch_output_effect": ("patching a into b: effect on the target logit",
                            "mean |Δ target logit| (logits)"),
    "probe_accuracy": ("paired probe on held-out pairs, mean over layers", "accuracy (share of pairs)"),
    "atp_head_effect": ("attribution patching of heads a into b: |estimated effect on the target logit|",
                        "mean |AtP estimate| over heads (logits)"),
    "delta_before_divergence": ("time profile: share of the last layer's delta in the time steps before the "
                                "divergence", "share of the delta"),
}


def _ci(est, lo, hi) -> str:
    """``est [95% CI lo, hi]`` with three significant digits (the toy's patching effects are ~1e-3 logits)."""
    return f"{est:.3g} [95% CI {lo:.3g}, {hi:.3g}]"


def what_we_see(t22: pd.DataFrame, t23: pd.DataFrame | None = None, t24: pd.DataFrame | None = None) -> str:
    """The notebook's "What we see", in Markdown, built from Tables 22-24 alone."""
    lines = []
    if t23 is not None and len(t23):
        s = t23.set_index("kind")
        parts = [f"{k} pairs {_ci(r.pixel_difference, r.ci_low, r.ci_high)} levels"
                 + ("" if k == "matched" else f" ({_ci(r.ratio_to_matched, r.ci_low_ratio, r.ci_high_ratio)} "
                                               "of the matched pair's)")
                 for k, r in s.iterrows()]
        lines.append("**Pixel sizes.** The two clips of a pair differ, after the divergence frame, by "
                     + "; ".join(parts) + ". The strike null pairs are the size-matched control; the gutter null "
                     "pairs are reported only.")
    for measure in t22.measure.unique():
        d = t22[t22.measure == measure].set_index("model")
        parts = [f"{model}: outcome pairs {_ci(r.outcome, r.outcome_ci_low, r.outcome_ci_high)}, null pairs "
                 f"{_ci(r.null, r.null_ci_low, r.null_ci_high)}, contrast "
                 f"{_ci(r.contrast, r.contrast_ci_low, r.contrast_ci_high)} ({r.verdict})"
                 for model, r in d.iterrows()]
        what = MEASURES.get(measure, (measure,))[0]
        lines.append(f"* **{measure}** ({what}): " + "; ".join(parts) + ".")
    action = t22[t22.model == ACTION]
    groups = {v: list(action[action.verdict == v].measure) for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)}
    valid = list(t22[(t22.model == CONTROL) & t22.detects].measure)
    lines.append(
        f"**So.** {len(valid)} of {t22.measure.nunique()} methods tell outcome pairs from null pairs in the positive "
        f"control ({', '.join(valid) or 'none'}). In the action-only model, an outcome beyond the pixel difference "
        f"is seen by {', '.join(groups[SUPPORTED]) or 'none of them'}; not seen by "
        f"{', '.join(groups[NOT_SUPPORTED]) or 'none'}; inconclusive (the method fails the positive control) for "
        f"{', '.join(groups[INCONCLUSIVE]) or 'none'}.")
    if t23 is not None and "strike null" in set(t23.kind):
        size = t23.set_index("kind").loc["strike null"]
        # the measures that grow with the size of the difference
        sized = ["delta_final", "readout_delta", "output_delta", "patch_output_effect", "atp_head_effect"]
        a = action.set_index("measure").reindex([m for m in sized if m in set(action.measure)])
        below = [m for m, r in a.iterrows() if r.null_over_outcome < size.ci_low_ratio]
        ratio = _ci(size.ratio_to_matched, size.ci_low_ratio, size.ci_high_ratio)
        lines.append(
            f"**Size.** A strike null pair differs by {ratio} of its outcome pair's pixel difference, so a measure "
            f"that merely grew with the pixel difference would give null pairs that share of the outcome pairs' value, "
            f"and a contrast above 0. In the action-only model the null/outcome ratio of the means lies below that "
            f"interval for {', '.join(below) or 'none of the size-driven measures'} "
            f"({', '.join(f'{m} {r.null_over_outcome:.2f}' for m, r in a.iterrows())}).")
    if t24 is not None and len(t24):
        parts = [f"{r.model}, {r.pairs} pairs: layer {r.best_layer}, {100 * r.accuracy:.0f}% (corrected p = "
                 f"{r.p_value:.3f})" for r in t24.itertuples()]
        lines.append("**Paired probe** (best layer, held-out accuracy, max-over-layers sign-flip p): "
                     + "; ".join(parts) + ".")
    return "\n\n".join(lines)
