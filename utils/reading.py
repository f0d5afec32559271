"""What we see: the reader's paragraph that closes notebooks 00-05, generated from the run's own
numbers (as ``utils.findings`` generates the findings), so that the words change when the
numbers do and a reader who runs nothing still gets the answer with its evidence.

Each function takes what its notebook computed (plain numbers and its tables) and returns
Markdown: the question, the answer in words chosen by stated thresholds, the numbers behind it,
and the paper's value beside ours (from ``utils.paper``, never typed into a notebook).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils import paper
from utils.findings import mlp_ahead_layers, proxy_words, single_component_words

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
