"""Which of the paper's claims the toy world supports: each verdict from an explicit rule.

Every row of ``claims_table`` names the claim, the toy evidence (numbers from notebook 06's
per-pair tables) and a verdict: ``supported``, ``not supported`` or ``not testable in the
toy world``. Each rule is a small function below (``rule_*``), its wording is quoted in the
row's evidence, and ``tests/test_findings.py`` checks both sides of every threshold.

Intervals are 95% bootstrap intervals over pairs (``utils.stats.summarise``): values measured
on both clips of a pair are averaged per pair first, so every interval resamples pairs.

The README's claims table is this table, word for word: ``readme_block`` renders it from
``figures/toy/findings.md`` and ``python -m utils.findings`` rewrites the README between the
markers ``<!-- findings:start -->`` and ``<!-- findings:end -->`` (``--check`` only compares).
Notebook 07's findings (``across_findings``: sentences built from its Table 17, comparing
the toy model of every architecture) go between ``<!-- across:start -->`` and
``<!-- across:end -->`` in the same run, when the README holds those markers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from utils import paper, paths
from utils.stats import holm, per_unit, sign_flip_p, summarise

GROWTH_FROM = paper.GROWTH_FROM

ALPHA = 0.05  # significance level of permutation tests
SUPPORTED, NOT_SUPPORTED, UNTESTABLE = "supported", "not supported", "not testable in the toy world"
INCONCLUSIVE = "inconclusive"  # the method misses the outcome in the positive control
ACTION, CONTROL = "action-only", "positive control"  # the two models of notebook 09 (its ``model`` column)
COLUMNS = ["claim", "toy evidence", "p (Holm)", "null pairs", "positive control", "verdict"]
SEEDS_COLUMN = "other seeds"  # added when other seeds' findings were compared
README_START = "<!-- findings:start -->"  # README markers around the generated claims table
README_END = "<!-- findings:end -->"


# ---------------------------------------------------------------------------- rules
def rule_classified(share_strike: float, share_gutter: float) -> str:
    """Both outcomes are called the action in at least 95% of clips."""
    return SUPPORTED if min(share_strike, share_gutter) >= 0.95 else NOT_SUPPORTED


def rule_probe(p_best: float, alpha: float = ALPHA) -> str:
    """The best layer's held-out accuracy beats the max-over-layers permutation null."""
    return SUPPORTED if p_best < alpha else NOT_SUPPORTED


def rule_layer0_surface(layer0_accuracy: float) -> str:
    """The paper's 100% at layer 0 does not transfer: held-out-pair accuracy there < 90%."""
    return SUPPORTED if layer0_accuracy < 0.9 else NOT_SUPPORTED


def rule_ci_above(ci_low: float, threshold: float) -> str:
    """The interval lies wholly above ``threshold``."""
    return SUPPORTED if ci_low > threshold else NOT_SUPPORTED


def rule_ci_below(ci_high: float, threshold: float) -> str:
    """The interval lies wholly below ``threshold``."""
    return SUPPORTED if ci_high < threshold else NOT_SUPPORTED


def rule_difference(ci_low: float, ci_high: float) -> str:
    """A difference is supported when its interval lies above 0; when it straddles 0, the
    claim is not supported and the verdict says there is no clear difference."""
    if ci_low > 0:
        return SUPPORTED
    return NOT_SUPPORTED if ci_high < 0 else f"{NOT_SUPPORTED} (no clear difference)"


def rule_unsigned_metric(ci_low: float, margin: float = 5.0) -> str:
    """The unsigned metric measures recovery toward strike unless it exceeds the directional
    projection by more than ``margin`` points (interval wholly above)."""
    return NOT_SUPPORTED if ci_low > margin else SUPPORTED


def rule_ablation_redundant(change_ci_high: float, share_still_top: float) -> str:
    """Removing the top 10% changes the logit by < 10% and keeps the action top-1 in >= 90%."""
    return SUPPORTED if change_ci_high < 10 and share_still_top >= 0.9 else NOT_SUPPORTED


def rule_late(mean_first_layer: float, n_layers: int) -> str:
    """The action becomes readable late: mean first top layer at >= 2/3 of the depth."""
    return SUPPORTED if mean_first_layer >= 2 * n_layers / 3 else NOT_SUPPORTED


# ---------------------------------------------------------------------------- notebooks 02 and 04
PROXY_RHO = 0.5  # a token score is a fair proxy of token DLA when Spearman's rho exceeds this
FULL_RECOVERY = 99.0  # a component "reaches 100%" of the difference from this projection recovery on


def proxy_words(rank_corr: float, threshold: float = PROXY_RHO) -> str:
    """Notebook 02: how well the notebook's token score stands in for token DLA, from their
    Spearman rank correlation over patches."""
    if rank_corr > threshold:
        return "a fair proxy for what the last layer reads."
    if rank_corr < -threshold:
        return "anti-correlated with what the last layer reads: it ranks tokens nearly in reverse."
    return "a poor proxy for what the last layer reads."


def mlp_ahead_layers(recovery: pd.DataFrame, attention: list[str]) -> int:
    """Notebook 04: at how many layers the MLP recovers more than every attention component
    (``recovery``: layer x component; TimeSformer: more than both attention steps)."""
    return int((recovery["mlp"] > recovery[attention].max(axis=1)).sum())


def single_component_words(best_projection_pct: float, full: float = FULL_RECOVERY) -> str:
    """Notebook 04: whether one component alone carries the whole difference."""
    return "a single component reaches 100%" if best_projection_pct >= full else "no single component reaches 100%"


# ---------------------------------------------------------------------------- controls
def rule_controlled(verdict: str, action_detects: bool, control_detects: bool) -> str:
    """A verdict about the outcome, decided with notebook 09's controls (``utils.controls``):
    **inconclusive** whenever the method misses the outcome in the positive control (it is blind
    where the answer is known, so its "not supported" would mean nothing and its "supported"
    could be a pixel difference); a "supported" whose method does not tell outcome pairs from
    null pairs in the analysed model becomes not supported (the null pairs show it too: a pixel
    difference); otherwise ``verdict`` stands."""
    if not control_detects:
        return INCONCLUSIVE
    if verdict == SUPPORTED and not action_detects:
        return f"{NOT_SUPPORTED} (null pairs show it too)"
    return verdict


def rule_holm(verdict: str, p_holm: float, alpha: float = ALPHA) -> str:
    """A "supported" whose test is not significant after Holm's correction across the table is
    not supported (a descriptive rule, ``p_holm`` NaN, keeps its verdict)."""
    if verdict == SUPPORTED and p_holm == p_holm and p_holm >= alpha:
        return f"{NOT_SUPPORTED} (p >= {alpha} after Holm)"
    return verdict


def magnitude(est: float, lo: float, hi: float, paper_value: float, null_value: float, unit: str = "") -> str:
    """How our interval compares with the paper's number, in words: the direction (the side of
    ``null_value`` the paper is on) and the size (the paper's value inside our interval)."""
    side = 1 if paper_value > null_value else -1
    if side * (lo - null_value) > 0 and side * (hi - null_value) > 0:
        if lo <= paper_value <= hi:
            return f"direction and size reproduced (paper {paper_value:.2f}{unit})"
        return f"direction reproduced, size not (ours {est:.2f}{unit}, paper {paper_value:.2f}{unit})"
    if side * (lo - null_value) < 0 and side * (hi - null_value) < 0:
        return f"opposite direction (ours {est:.2f}{unit}, paper {paper_value:.2f}{unit})"
    return f"direction not reproduced: our interval contains {null_value:g} (paper {paper_value:.2f}{unit})"


# ---------------------------------------------------------------------------- helpers
def _fmt(est, lo, hi, unit=""):
    return f"{est:.2f}{unit} [95% CI {lo:.2f}, {hi:.2f}]"


def _ci(df: pd.DataFrame, value: str, unit: str = "pair") -> tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``value`` over units (one row per unit required)."""
    r = summarise(df, [], value, unit).iloc[0]
    return float(r.estimate), float(r.ci_low), float(r.ci_high)


def _matched(d: pd.DataFrame | None) -> pd.DataFrame | None:
    return d[d.kind == "matched"] if d is not None and "kind" in d else d


@dataclass(frozen=True)
class Claim:
    """One row of the claims table before Holm's correction and the controls."""

    key: str  # stable name (the seed comparison and the controls refer to it)
    claim: str
    evidence: str
    verdict: str  # the rule's verdict on the outcome pairs
    p: float = float("nan")  # one-sided p-value of the rule's test; NaN: a descriptive rule
    measure: str | None = None  # the controls measure (utils.reading.MEASURES) of the same method


# ---------------------------------------------------------------------------- claims
def claim_classified(pred: pd.DataFrame) -> Claim:
    mp = pred[pred.clip_id.str.startswith("pair")]
    share = {o: float(mp[mp.outcome == o].is_target.mean()) for o in ("strike", "gutter")}
    n = mp.clip_id.str.rsplit("_", n=1).str[0].nunique()
    return Claim("classified", "Both outcomes are classified as the action ('bowling')",
                 f"{100 * share['strike']:.0f}% of strike and {100 * share['gutter']:.0f}% of gutter clips of "
                 f"{n} matched pairs (rule: both >= 95%)", rule_classified(share["strike"], share["gutter"]))


def claim_probe(probes: dict) -> Claim:
    """``probes``: ``utils.pairs.probe_pairs`` output. The paired probe is the test; the grouped
    logistic probe (the paper's probe on held-out pairs) is reported beside it."""
    s = probes["summary"].set_index(["kind", "feature"])
    bp = probes["by_pair"]
    r = s.loc[("matched", "readout")]
    g = bp[(bp.kind == "matched") & (bp.feature == "readout") & (bp.layer == r.best_layer)]
    gest, glo, ghi = _ci(g, "accuracy")
    n_layers = bp[bp.feature == "readout"].layer.nunique()
    grouped = (f"the grouped logistic probe (5 folds by pair): best layer {int(r.best_layer)}, "
               f"{_fmt(100 * gest, 100 * glo, 100 * ghi, '%')}, p = {r.p_best:.3f}")
    if "paired_p_best" not in r.index or "paired_by_pair" not in probes:  # inputs saved before the paired probe
        return Claim("probe", "The model represents the outcome internally (linear probe)",
                     f"readout (CLS) token, held-out matched pairs: {grouped} (rule: best-layer p < {ALPHA})",
                     rule_probe(float(r.p_best)), float(r.p_best), "probe_accuracy")
    pp = probes["paired_by_pair"]
    pg = pp[(pp.kind == "matched") & (pp.feature == "readout") & (pp.layer == r.paired_best_layer)]
    est, lo, hi = _ci(pg, "accuracy")
    return Claim("probe", "The model represents the outcome internally (linear probe)",
                 f"paired probe on the readout (CLS) token (each held-out pair's strike-minus-gutter difference "
                 f"against the other pairs' mean difference), best layer {int(r.paired_best_layer)}: "
                 f"{_fmt(100 * est, 100 * lo, 100 * hi, '%')} of pairs, p = {r.paired_p_best:.3f} for the best "
                 f"of {n_layers} layers ({int(r.n_perm)} sign flips of whole pairs, max over layers); {grouped} "
                 f"(rule: the paired probe's p < {ALPHA})",
                 rule_probe(float(r.paired_p_best)), float(r.paired_p_best), "probe_accuracy")


def claim_layer0(probes: dict) -> Claim:
    bp = probes["by_pair"]
    l0 = {k: _ci(d, "accuracy") for k, d in bp[(bp.feature == "readout") & (bp.layer == 0)].groupby("kind")}
    txt = ", ".join(f"{k} pairs {100 * v[0]:.0f}% [{100 * v[1]:.0f}, {100 * v[2]:.0f}]" for k, v in l0.items())
    return Claim("layer0", "(Ours) The paper's 100% probe accuracy from layer 0 (its 'fingerprint' of surface "
                 "differences) does not transfer to held-out pairs",
                 f"grouped readout-token probe at layer 0 on held-out pairs: {txt}; the paper's single-pair probes "
                 "are 100% by construction (rule: held-out accuracy on matched pairs < 90%)",
                 rule_layer0_surface(l0["matched"][0]) if "matched" in l0 else NOT_SUPPORTED)


def claim_cascade(deltas: pd.DataFrame, n_layers: int) -> Claim:
    d = deltas.pivot_table(index="pair", columns="layer", values="mean_token_norm")
    mid = min(GROWTH_FROM, n_layers - 1)
    ratio = (d[n_layers - 1] / d[mid]).rename("ratio").reset_index()
    est, lo, hi = _ci(ratio, "ratio")
    paper_ratio = paper.FIG5[11] / paper.FIG5[GROWTH_FROM]
    return Claim("cascade", f"Amplification cascade: the strike-gutter delta grows with depth (paper: ~75 at layer "
                 f"{GROWTH_FROM} to >250 at layer 11, x{paper_ratio:.1f})",
                 f"matched pairs, mean token delta layer {n_layers - 1} / layer {mid}: {_fmt(est, lo, hi, 'x')}; "
                 f"{magnitude(est, lo, hi, paper_ratio, 1.0, 'x')} (rule: ratio > 1, CI and sign-flip test over pairs)",
                 rule_ci_above(lo, 1.0), sign_flip_p(ratio.ratio, 1.0), "delta_growth")


def _strike_to_gutter(patching: pd.DataFrame) -> pd.DataFrame:
    return patching[patching.direction == "strike->gutter"]


def claim_mlp_vs_attention(patching: pd.DataFrame, n_layers: int) -> Claim:
    p = _strike_to_gutter(patching)
    w = p.pivot_table(index=["pair", "layer"], columns="component", values="recovery_notebook_pct").reset_index()
    layers = range(4, min(10, n_layers - 1) + 1)
    mid = w[w.layer.isin(layers)]
    # TimeSformer has two attention steps: MLP against their sum (what one ViViT attention step does)
    steps = [c for c in mid.columns if str(c).startswith("attention")]
    attention = mid[steps].sum(axis=1)
    per_pair = (mid.mlp - attention).groupby(mid.pair).mean().rename("diff").reset_index()
    est, lo, hi = _ci(per_pair, "diff")
    versus = "attention" if len(steps) == 1 else f"attention ({' + '.join(steps)})"
    paper_diff = float(np.mean([paper.TABLE3[(lay, "mlp")] - paper.TABLE3[(lay, "attention")]
                                for lay in range(4, 11)]))
    return Claim("mlp_vs_attention", "MLPs recover more than attention (paper: MLP 42-60% vs attention 37-54%, "
                 "layers 4-10)",
                 f"matched pairs, MLP minus {versus} recovery (notebook metric), mean over layers 4-10: "
                 f"{_fmt(est, lo, hi, ' points')}; MLP ahead in {100 * float((per_pair['diff'] > 0).mean()):.0f}% of "
                 f"pairs; {magnitude(est, lo, hi, paper_diff, 0.0, ' points')} (rule: difference > 0, CI and "
                 "sign-flip test over pairs)", rule_difference(lo, hi), sign_flip_p(per_pair["diff"], 0.0),
                 "patch_output_effect")


def claim_distributed(patching: pd.DataFrame) -> Claim:
    best = per_unit(_strike_to_gutter(patching), [], "recovery_projection_pct", how="max")
    est, lo, hi = _ci(best, "recovery_projection_pct")
    return Claim("distributed", "No single component recovers the whole difference (distributed, redundant)",
                 f"matched pairs, best single-component projection recovery: {_fmt(est, lo, hi, '%')} "
                 "(rule: < 90%, CI and sign-flip test over pairs)", rule_ci_below(hi, 90.0),
                 sign_flip_p(best.recovery_projection_pct, 90.0, alternative="less"), "patch_output_effect")


def claim_unsigned_metric(patching: pd.DataFrame) -> Claim:
    p = _strike_to_gutter(patching)
    gap = per_unit(p.assign(gap=p.recovery_notebook_pct - p.recovery_projection_pct), [], "gap")
    est, lo, hi = _ci(gap, "gap")
    return Claim("unsigned_metric", "(Ours) The notebook's unsigned metric measures recovery toward the strike run",
                 f"notebook metric minus projection, mean over layers and components: {_fmt(est, lo, hi, ' points')} "
                 "(rule: not supported if the CI lies above 5 points)", rule_unsigned_metric(lo))


def claim_ablation(ablation: pd.DataFrame, random: pd.DataFrame | None) -> Claim:
    """Redundant evidence: the top 10% of tokens by a score that picks tokens which matter. The
    notebook's score does not (``claim_score_beats_random``), so with the random-draw table the
    claim rests on the token-DLA set, which beats every random draw; without it, on the
    notebook's set (as the paper)."""
    a = ablation[ablation["mode"] == "corrected"]
    if "score" in a:
        a = a[a.score == "notebook"]
    top = float(a.still_top.mean())
    if random is not None and len(random) and "dla" in set(random.score):
        r = random[random.score == "dla"].merge(a[["pair", "run", "logit_before"]], on=["pair", "run"])
        rel = per_unit(r.assign(rel=100 * r.top_delta.abs() / r.logit_before.abs()), [], "rel")
        est, lo, hi = _ci(rel, "rel")
        share = float(r.share_random_lower.mean())
        nb = _ci(per_unit(a.assign(rel=100 * a.delta_target_logit.abs() / a.logit_before.abs()), [], "rel"), "rel")
        return Claim("ablation", "Removing the top 10% of tokens barely changes the action logit (redundant "
                     "evidence)",
                     f"removing the top 10% of patches by token DLA (a set that matters: a share {share:.2f} of "
                     f"{int(r.n_draws.iloc[0])} random sets of as many patches lower the logit as much) changes it by "
                     f"{_fmt(est, lo, hi, '%')}, {r.pair.nunique()} matched pairs; the paper's score (no better than "
                     f"random, next row) {_fmt(*nb, '%')}, still top-1 in {100 * top:.0f}% of clips (rule: the "
                     f"token-DLA set's change < 10%)", rule_ci_below(hi, 10.0))
    rel = per_unit(a.assign(rel=100 * a.delta_target_logit.abs() / a.logit_before.abs()), [], "rel")
    est, lo, hi = _ci(rel, "rel")
    return Claim("ablation", "Removing the top 10% of tokens barely changes the action logit (redundant evidence)",
                 f"matched pairs, corrected ablation: absolute change = {_fmt(est, lo, hi, '%')} of the logit; still "
                 f"top-1 in {100 * top:.0f}% of clips (rule: change < 10% and top-1 kept in >= 90%)",
                 rule_ablation_redundant(hi, top))


def claim_score_beats_random(random: pd.DataFrame) -> Claim:
    """``random``: ``utils.pairs.top_vs_random_pairs`` output (matched pairs)."""
    shares = {}
    for score, d in random.groupby("score"):
        shares[score] = _ci(per_unit(d, [], "share_random_lower"), "share_random_lower")
    n_draws = int(random.n_draws.iloc[0])
    txt = "; ".join(f"{'notebook score' if k == 'notebook' else 'token DLA'}: {_fmt(*v)}"
                    for k, v in sorted(shares.items(), reverse=True))
    return Claim("score_beats_random",
                 "(Ours) The notebook's top-10% score picks the patches whose removal lowers the logit most",
                 f"share of {n_draws} random draws of as many patches that lower the logit at least as much as the "
                 f"top-scored set (0 = the score beats every draw), {random.pair.nunique()} matched pairs: {txt} "
                 "(rule: CI upper bound of the notebook score's share < 0.05)",
                 rule_ci_below(shares["notebook"][2], 0.05))


def claim_late(lens: pd.DataFrame, n_layers: int) -> Claim:
    first = lens.assign(first_top_layer=lens.first_top_layer.where(lens.first_top_layer >= 0))
    est, lo, hi = _ci(per_unit(first, [], "first_top_layer"), "first_top_layer")
    return Claim("late", "The action becomes readable late in depth (paper: from layer 9 of 12)",
                 f"logit lens, first layer at which the target ranks top (mean of a pair's two clips): "
                 f"{_fmt(est, lo, hi)} of {n_layers} (rule: mean >= 2/3 of the depth)", rule_late(est, n_layers))


def claim_head(heads: pd.DataFrame | None) -> Claim:
    if heads is None or not len(heads):
        best_head = "per-head patching was not run (fine_patching off)"
    else:
        h = heads.sort_values("recovery_projection_pct", ascending=False).iloc[0]
        layer, head = paper.FIG1_HEAD
        h108 = heads[(heads.layer == layer) & (heads["head"] == head)].recovery_projection_pct
        where = f" ({h.site})" if "site" in heads else ""  # TimeSformer: which attention step
        l108 = " and ".join(f"{v:.1f}%" for v in h108) if len(h108) else "nan%"
        best_head = (f"in the toy the best single head (canonical pair, projection) is "
                     f"L{int(h.layer)}H{int(h['head'])}{where} ({h.recovery_projection_pct:.1f}%), "
                     f"L{layer}H{head} gives {l108}")
    return Claim("head", "Layer 10 head 8 is an 'outcome detector'",
                 f"the toy's heads are not ViViT-B's, so the index cannot transfer; {best_head}", UNTESTABLE)


def claim_ig(ig: pd.DataFrame) -> Claim:
    """``ig``: ``utils.pairs.ig_vs_dla_pairs`` output (matched pairs)."""
    rho = per_unit(ig, [], "spearman_ig_dla")
    est, lo, hi = _ci(rho, "spearman_ig_dla")
    att = float(ig.spearman_dla_attention.mean())
    err = float(ig.completeness_error.abs().max())
    return Claim("ig", "(Ours) Integrated gradients and token DLA agree on which tokens matter",
                 f"both on the patch tokens entering the last block, {ig.pair.nunique()} matched pairs: Spearman rho "
                 f"{_fmt(est, lo, hi)} (mean of a pair's two clips; IG complete within {err:.0e} logits); token DLA "
                 f"follows the last layer's CLS attention (rho {att:.2f}) (rule: rho > 0.5, CI and sign-flip test "
                 "over pairs)", rule_ci_above(lo, 0.5), sign_flip_p(rho.spearman_ig_dla, 0.5))


def claims(pred: pd.DataFrame, deltas: pd.DataFrame, patching: pd.DataFrame, probes: dict,
           ablation: pd.DataFrame, lens: pd.DataFrame, heads: pd.DataFrame | None, n_layers: int,
           ig: pd.DataFrame | None = None, random: pd.DataFrame | None = None) -> list[Claim]:
    """Every claim with its rule's verdict on the matched (outcome) pairs, before Holm's correction
    and the controls; arguments as ``claims_table``'s."""
    deltas, patching, ablation, lens = (_matched(d) for d in (deltas, patching, ablation, lens))
    random, ig = _matched(random), _matched(ig)
    rows = [claim_classified(pred), claim_probe(probes), claim_layer0(probes), claim_cascade(deltas, n_layers),
            claim_mlp_vs_attention(patching, n_layers), claim_distributed(patching), claim_unsigned_metric(patching),
            claim_ablation(ablation, random)]
    if random is not None and len(random):
        rows.append(claim_score_beats_random(random))
    rows += [claim_late(lens, n_layers), claim_head(heads)]
    if ig is not None and len(ig):
        rows.append(claim_ig(ig))
    return rows


def tested_verdicts(rows: list[Claim]) -> tuple[list[str], np.ndarray]:
    """Each claim's verdict after Holm's correction over the table's tests, and the adjusted p-values."""
    p_holm = holm(np.array([c.p for c in rows], dtype=float))
    return [rule_holm(c.verdict, p) for c, p in zip(rows, p_holm, strict=True)], p_holm


def seed_verdicts(profiles: list[str], figures_dir: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Other seeds' verdicts, claim -> verdict per profile, read from their committed findings
    (``figures/<profile>/findings.csv``, written by their own notebook 09: ``make seeds``). A
    profile whose findings are missing is left out (the table's cell says which were compared)."""
    out = {}
    for profile in profiles:
        f = Path(figures_dir or paths.FIGURES_DIR) / profile / "findings.csv"
        if f.is_file():
            t = pd.read_csv(f, keep_default_na=False)
            out[profile] = dict(zip(t.claim, t.verdict, strict=True))
    return out


CLAIM_INPUTS = ("pred", "deltas", "patching", "probes", "ablation", "lens", "heads", "n_layers", "ig", "random")
NOT_RUN = "not run"  # control cells of a table built without notebook 09's controls


def _control_cells(c: Claim, controls: pd.DataFrame | None, control_probes: pd.DataFrame | None
                   ) -> tuple[str, str, bool | None, bool | None]:
    """``(null pairs cell, positive control cell, action detects, control detects)`` of claim ``c``."""
    if c.measure is None:
        return "-", "-", None, None
    if controls is None or not len(controls):
        return NOT_RUN, NOT_RUN, None, None
    t = controls[controls.measure == c.measure].set_index("model")
    a, k = t.loc[ACTION], t.loc[CONTROL]
    what = f"{c.measure}: outcome {a.outcome:.3g} vs null {a.null:.3g}, contrast {_ci3(a)}"
    if c.key == "probe" and control_probes is not None and len(control_probes):
        pr = control_probes.set_index(["model", "pairs"])
        if (ACTION, "null") in pr.index:
            n = pr.loc[(ACTION, "null")]
            what = (f"paired probe on null pairs: layer {int(n.best_layer)}, {100 * n.accuracy:.0f}%, "
                    f"p = {n.p_value:.3f}; " + what)
    action_detects, control_detects = bool(a.contrast_ci_low > 0), bool(k.contrast_ci_low > 0)  # utils.controls.detects
    ctrl = f"{c.measure}: contrast {_ci3(k)}, {'detects' if control_detects else 'misses'} the outcome"
    if c.key == "probe" and control_probes is not None and (CONTROL, "outcome") in \
            control_probes.set_index(["model", "pairs"]).index:
        o = control_probes.set_index(["model", "pairs"]).loc[(CONTROL, "outcome")]
        ctrl = (f"paired probe on outcome pairs: layer {int(o.best_layer)}, {100 * o.accuracy:.0f}%, "
                f"p = {o.p_value:.3f}; " + ctrl)
    return what, ctrl, action_detects, control_detects


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ci3(r) -> str:
    return f"{r.contrast:.3g} [{r.contrast_ci_low:.3g}, {r.contrast_ci_high:.3g}]"


def _head(verdict: str) -> str:
    """A verdict without its reason: 'not supported (null pairs show it too)' -> 'not supported'."""
    return verdict.split(" (")[0]


def _seed_cell(c: Claim, verdict: str, seeds: dict[str, dict[str, str]] | None) -> str:
    if c.verdict == UNTESTABLE:
        return "-"
    other = {name: v.get(c.claim, "missing") for name, v in seeds.items()}
    differ = {name: v for name, v in other.items() if _head(v) != _head(verdict)}  # the reason may differ
    if not differ:
        return f"same on all {len(seeds)} other seeds ({', '.join(seeds)})"
    return "differs: " + "; ".join(f"{name} {v}" for name, v in differ.items())


def claims_table(pred: pd.DataFrame, deltas: pd.DataFrame, patching: pd.DataFrame, probes: dict,
                 ablation: pd.DataFrame, lens: pd.DataFrame, heads: pd.DataFrame | None, n_layers: int,
                 ig: pd.DataFrame | None = None, random: pd.DataFrame | None = None,
                 controls: pd.DataFrame | None = None, control_probes: pd.DataFrame | None = None,
                 seeds: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """The claims table. ``pred``: table0 predictions (``clip_id``, ``outcome``, ``is_target``);
    ``deltas``, ``patching``, ``ablation``, ``lens``: ``utils.pairs.analyse_pairs`` tables (only
    ``kind == "matched"`` rows are used); ``probes``: ``utils.pairs.probe_pairs``; ``heads``: the
    head-patching table of the canonical pair, or None; ``ig``: ``ig_vs_dla_pairs``;
    ``random``: ``top_vs_random_pairs``; ``controls``, ``control_probes``: notebook 09's Tables
    22 and 24 (``utils.controls``), or None; ``seeds``: other seeds' verdicts (``seed_verdicts``).

    Columns (``COLUMNS``): the claim, the evidence, the p-value of the rule's test (one-sided;
    Holm-adjusted over the table's tests, the raw value in brackets), the same method on null
    pairs, the method in the positive control, the verdict and, when ``seeds`` holds any, whether
    the other seeds' models reach the same verdict (``SEEDS_COLUMN``). The verdict: the rule's, then ``rule_holm``,
    then, for a claim about the outcome with controls, ``rule_controlled``."""
    rows = claims(pred, deltas, patching, probes, ablation, lens, heads, n_layers, ig, random)
    after_holm, p_holm = tested_verdicts(rows)
    out = []
    for c, verdict, ph in zip(rows, after_holm, p_holm, strict=True):
        null_cell, control_cell, action_detects, control_detects = _control_cells(c, controls, control_probes)
        final = verdict if control_detects is None else rule_controlled(verdict, action_detects, control_detects)
        p_cell = "-" if c.p != c.p else f"{_p(ph)} ({_p(c.p)})"
        out.append([c.claim, c.evidence, p_cell, null_cell, control_cell, final]
                   + ([_seed_cell(c, final, seeds)] if seeds else []))
    table = pd.DataFrame(out, columns=COLUMNS + ([SEEDS_COLUMN] if seeds else []))
    bad = table.apply(lambda col: col.str.contains("|", regex=False)).to_numpy().any()
    if bad:
        raise ValueError("a findings cell contains '|', which would break the Markdown table")
    return table


# ---------------------------------------------------------------------------- robustness
INPUTS_FILE = "findings_inputs.pkl"  # claims_table's inputs, beside the prepared clips (data/<profile>/)


def save_inputs(folder: str | Path, **inputs) -> Path:
    """Keep ``claims_table``'s keyword inputs (DataFrames, dicts of DataFrames, numbers) in
    ``folder/INPUTS_FILE``, so that the verdicts can be recomputed, and perturbed, without the model."""
    from utils.io import atomic_path

    path = Path(folder) / INPUTS_FILE
    with atomic_path(path) as tmp:
        pd.to_pickle(inputs, tmp)
    return path


def drop_inputs(folder: str | Path) -> None:
    """Remove inputs an earlier run kept (a run without matched pairs has none: notebook 09 must
    not judge claims on a previous run's tables)."""
    (Path(folder) / INPUTS_FILE).unlink(missing_ok=True)


def has_inputs(folder: str | Path) -> bool:
    """Whether notebook 06 kept the claims' inputs in ``folder`` (it does when matched pairs exist)."""
    return (Path(folder) / INPUTS_FILE).is_file()


def load_inputs(folder: str | Path) -> dict:
    """What ``save_inputs`` kept (a pickle this project wrote itself)."""
    return pd.read_pickle(Path(folder) / INPUTS_FILE)


def input_frames(inputs: dict) -> dict[str, pd.DataFrame]:
    """Every DataFrame among the inputs, by name (``probes`` holds several: ``probes.summary``, ...)."""
    out = {}
    for key, value in inputs.items():
        if isinstance(value, pd.DataFrame):
            out[key] = value
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, pd.DataFrame)})
    return out


def perturb_inputs(inputs: dict, scale, rng=None, shift: float = 0.0) -> dict:
    """A copy of ``inputs`` with every float column moved, cell by cell, by uniform noise in
    ``[-s, s]`` drawn from ``rng`` or, without ``rng``, all by ``shift * s``; ``s = scale(frame
    name, column)`` (frame names as ``input_frames`` gives them)."""

    def moved(name: str, df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for col in df.columns:
            if pd.api.types.is_float_dtype(df[col]):
                s = float(scale(name, col))
                df[col] = df[col] + (rng.uniform(-s, s, len(df)) if rng is not None else shift * s)
        return df

    out = {}
    for key, value in inputs.items():
        if isinstance(value, pd.DataFrame):
            out[key] = moved(key, value)
        elif isinstance(value, dict):
            out[key] = {k: moved(f"{key}.{k}", v) if isinstance(v, pd.DataFrame) else v for k, v in value.items()}
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------- notebook 07
ACROSS_START = "<!-- across:start -->"  # README markers around the generated across-architectures findings
ACROSS_END = "<!-- across:end -->"


def _across(t: pd.DataFrame, question: str, measure: str) -> pd.DataFrame:
    """Rows of Table 17 (``utils.across.summary_table``) for ``question`` whose measure starts
    with ``measure``, one per model, in the table's order."""
    return t[(t.question == question) & t.measure.str.startswith(measure)]


def _models(rows: pd.DataFrame, verdict, unit: str = "", scale: float = 1.0) -> tuple[str, list[str]]:
    """``"ViViT 1.23 [95% CI ...]; ..."`` and the models whose row ``verdict(row)`` is supported."""
    txt = "; ".join(f"{r.model} {_fmt(scale * r.estimate, scale * r.ci_low, scale * r.ci_high, unit)}"
                    for r in rows.itertuples())
    return txt, [r.model for r in rows.itertuples() if verdict(r) == SUPPORTED]


_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _which(models: list[str], total: int) -> str:
    """``models`` among ``total``, in words: "neither" / "both" of two, "none of the three" ..."""
    word = _COUNT_WORDS.get(total)
    if not models:
        return "neither" if total == 2 else f"none of the {word}" if word else "none"
    if len(models) == total and word:
        return "both" if total == 2 else f"all {word}"
    return ", ".join(models)


def per_layer_leads(per_layer: pd.DataFrame, measure: str = "recovery_notebook_pct") -> str:
    """Per model, the layers where MLP and attention recovery have intervals that do not overlap,
    and which leads there (Table 17's per-layer companion; TimeSformer: the MLP leads where its
    interval lies above both attention steps', attention where a step's lies above the MLP's)."""
    d = per_layer[per_layer.measure == measure]
    parts = []
    for model, g in d.groupby("model", sort=True):
        mlp_ahead, attn_ahead = [], []
        for layer, gl in g.groupby("layer", sort=True):
            m = gl[gl.component == "mlp"]
            a = gl[gl.component.str.startswith("attention")]
            if m.empty or a.empty:
                continue
            m = m.iloc[0]
            if m.ci_low > a.ci_high.max():
                mlp_ahead.append(str(layer))
            elif a.ci_low.max() > m.ci_high:
                attn_ahead.append(str(layer))
        text = []
        if mlp_ahead:
            text.append(f"MLP ahead at layer {', '.join(mlp_ahead)}")
        if attn_ahead:
            text.append(f"attention ahead at layer {', '.join(attn_ahead)}")
        parts.append(f"{model}: {'; '.join(text) if text else 'no layer apart'}")
    return "; ".join(parts)


def across_findings(t: pd.DataFrame, per_layer: pd.DataFrame | None = None) -> list[str]:
    """Notebook 07's findings, one Markdown bullet per question, every number read from Table 17
    (``t``: ``utils.across.summary_table``, or its CSV read back). The rules are this module's:
    a difference counts when its interval excludes 0 (``rule_difference``), growth when the
    ratio's interval lies above 1 (``rule_ci_above``), a probe when its max-over-sites
    permutation p-value is below ``ALPHA`` (``rule_probe``)."""
    t = t.reset_index(drop=True)
    n_models = t.model.nunique()
    n = int(t.n_pairs.max())
    count = _COUNT_WORDS.get(n_models, str(n_models))
    out = [f"{count.capitalize()} toy architectures over the same {n} matched pairs (95% bootstrap intervals over "
           "pairs):"]
    d = _across(t, "patching", "MLP minus attention")
    where = d["where"].iloc[0] if len(d) else ""
    txt, ahead = _models(d, lambda r: rule_difference(r.ci_low, r.ci_high), " points")
    behind = [r.model for r in d.itertuples() if r.ci_high < 0]
    paper_diff = d.paper.dropna()
    paper_txt = f"; the paper (ViViT-B, one pair): {paper_diff.iloc[0]:+.2f} points at the same layers" \
        if len(paper_diff) else ""
    out.append(f"* **Attention vs MLP** (strike into gutter, notebook metric, mean over {where}; TimeSformer: "
               f"MLP against the sum of its two attention steps): MLP minus attention {txt}{paper_txt}. "
               f"MLPs recover more than attention in {_which(ahead, n_models)}; attention recovers more in "
               f"{_which(behind, n_models)}."
               + (f" Layer by layer (intervals apart): {per_layer_leads(per_layer)}." if per_layer is not None
                  else ""))
    ts = _across(t, "patching", "time minus space")
    if len(ts):
        r = ts.iloc[0]
        side = "temporal" if r.ci_low > 0 else "spatial" if r.ci_high < 0 else "neither"
        out.append(f"* **TimeSformer's attention steps**: temporal minus spatial attention recovery "
                   f"{_fmt(r.estimate, r.ci_low, r.ci_high, ' points')} ({r['where']}); "
                   f"{'the ' + side + ' step carries more' if side != 'neither' else 'no clear difference'}.")
    g = _across(t, "growth", "delta norm")
    txt, grows = _models(g, lambda r: rule_ci_above(r.ci_low, 1.0), "x")
    paper_g = g.paper.dropna()
    out.append(f"* **Delta-norm growth** ({g.measure.iloc[0].replace(' (x)', '')}): {txt}"
               + (f"; the paper: about {paper_g.iloc[0]:.1f}x" if len(paper_g) else "")
               + f". The delta grows with depth (interval above 1) in {_which(grows, n_models)}.")
    pre = _across(t, "time", "share of the layer")
    before = pre[pre.measure.str.contains("before the divergence")]
    peak = pre[pre.measure.str.contains("largest time step")]
    txt, _ = _models(before, lambda r: SUPPORTED, "%", scale=100)
    peaks = ", ".join(f"{r.model} {r['where']} ({100 * r.estimate:.0f}%)" for _, r in peak.iterrows())
    out.append(f"* **Where in time**: the clips are identical before the divergence, so the delta starts there "
               f"with 0% in earlier time steps; after the last block, the share in the earlier time steps is "
               f"{txt}. The largest share sits in {peaks}.")
    pr = _across(t, "probe", "readout-token probe")
    if len(pr):
        txt = "; ".join(f"{r.model} {100 * r.estimate:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] at "
                        f"{r['where']} (p = {r.p_value:.3f})" for _, r in pr.iterrows())
        sig = [r.model for r in pr.itertuples() if rule_probe(r.p_value) == SUPPORTED]
        tp = _across(t, "probe", "time-step probe")
        tp_sig = [r.model for r in tp.itertuples() if rule_probe(r.p_value) == SUPPORTED]
        out.append(f"* **Probe** (the readout the classifier reads, held-out pairs, best layer; p against the maximum "
                   "over layers): "
                   f"{txt}. The outcome is linearly readable (p < {ALPHA}) in {_which(sig, n_models)}; "
                   f"by the mean patch token of one time step (best layer and time step) in "
                   f"{_which(tp_sig, n_models)}.")
    bad = [line for line in out if "|" in line]
    if bad:
        raise ValueError(f"a findings line contains '|': {bad[0]}")
    return out


def across_block(table_csv: str | Path | None = None) -> str:
    """What the README holds between ``ACROSS_START`` and ``ACROSS_END``: ``across_findings`` of
    ``table_csv`` (default: ``figures/toy/table17_across_architectures.csv``), with the markers."""
    table_csv = Path(table_csv or paths.FIGURES_DIR / "toy" / "table17_across_architectures.csv").resolve()
    src = table_csv.relative_to(paths.REPO_ROOT) if table_csv.is_relative_to(paths.REPO_ROOT) else table_csv
    note = f"<!-- generated from {src} by `python -m utils.findings`; do not edit by hand -->"
    per_layer_csv = table_csv.with_name(table_csv.stem + "_per_layer.csv")
    per_layer = pd.read_csv(per_layer_csv) if per_layer_csv.is_file() else None
    lines = across_findings(pd.read_csv(table_csv, keep_default_na=False, na_values=[""]), per_layer)
    return "\n".join([ACROSS_START, note, *lines, ACROSS_END])


# ---------------------------------------------------------------------------- README
def read_findings_md(path: str | Path) -> pd.DataFrame:
    """The table of a ``findings.md`` written by ``utils.io.save_table`` (caption, blank line,
    pipe table), cells stripped of their padding."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError(f"{path} holds no Markdown table")
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, rows = cells[0], cells[2:]  # cells[1]: the |:---| separator
    return pd.DataFrame(rows, columns=header)


def readme_table(findings: pd.DataFrame) -> str:
    """The findings as a compact Markdown table (no padding), every cell word for word."""
    out = ["| " + " | ".join(findings.columns) + " |", "|" + "---|" * len(findings.columns)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in findings.itertuples(index=False)]
    return "\n".join(out)


def readme_block(findings_md: str | Path | None = None) -> str:
    """What the README holds between its markers: the table of ``findings_md`` (default:
    ``figures/toy/findings.md``), with the markers."""
    findings_md = Path(findings_md or paths.FIGURES_DIR / "toy" / "findings.md").resolve()
    src = findings_md.relative_to(paths.REPO_ROOT) if findings_md.is_relative_to(paths.REPO_ROOT) else findings_md
    note = f"<!-- generated from {src} by `python -m utils.findings`; do not edit by hand -->"
    return f"{README_START}\n{note}\n{readme_table(read_findings_md(findings_md))}\n{README_END}"


def readme_current_block(readme: str | Path, start_marker: str = README_START,
                         end_marker: str = README_END) -> str:
    """The README's text from ``start_marker`` to ``end_marker`` (both included)."""
    text = Path(readme).read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"{readme} lacks the markers {start_marker} ... {end_marker}")
    return text[start : end + len(end_marker)]


def has_block(readme: str | Path, start_marker: str, end_marker: str) -> bool:
    """Whether the README holds both markers."""
    text = Path(readme).read_text()
    return start_marker in text and end_marker in text


def update_block(readme: str | Path, start_marker: str, end_marker: str, new: str) -> bool:
    """Replace the README's text from ``start_marker`` to ``end_marker`` (both included) by
    ``new``; True if it changed. A README without the markers is left alone (False)."""
    readme = Path(readme)
    if not has_block(readme, start_marker, end_marker):
        return False
    old = readme_current_block(readme, start_marker, end_marker)
    if old == new:
        return False
    readme.write_text(readme.read_text().replace(old, new))
    return True


CIRCUITS_START = "<!-- circuits:start -->"  # README markers around notebook 08's generated findings
CIRCUITS_END = "<!-- circuits:end -->"
CIRCUIT_TABLES = ("table18_atp_vs_exact", "table19_ig_convergence", "table26_circuit_size",
                  "table25_circuit_scores", "table21_circuit_composition", "table20_faithfulness")


def circuit_metric_of(folder: Path, sizes: pd.DataFrame | None) -> tuple[str, str]:
    """The metric notebook 08 sized its circuits by (Table 26's ``metric`` column) and its words
    (from Table 26's caption, ``Metric: ...``)."""
    if sizes is None or "metric" not in sizes:
        return "readout", ""
    md = folder / "table26_circuit_size.md"
    caption = md.read_text().split("\n", 1)[0] if md.is_file() else ""
    words = caption.split("Metric: ", 1)[1].split(". ", 1)[0] if "Metric: " in caption else ""
    return str(sizes.metric.iloc[0]), words


def _circuit_lines(folder: Path) -> list[str]:
    """Notebook 08's sentences (``utils.reading.summary_lines``) from its tables in ``folder``;
    a missing table leaves its sentences out."""
    from utils.reading import summary_lines  # the text alone: no torch to import

    def read(name):
        f = folder / f"{name}.csv"
        return pd.read_csv(f, keep_default_na=False, na_values=[""]) if f.is_file() else None

    agree, ig, sizes, scores, comp, curve = (read(n) for n in CIRCUIT_TABLES)
    threshold = float(comp.threshold_pct.iloc[0]) if comp is not None else 80.0
    n_edges = int(curve.n_edges.max()) if curve is not None else 0
    metric, text = circuit_metric_of(folder, sizes)
    return summary_lines(agree, ig, sizes, scores, comp, n_edges, threshold, metric, text)


def circuits_block(folder: str | Path | None = None, control: str | Path | None = None) -> str:
    """What the README holds between ``CIRCUITS_START`` and ``CIRCUITS_END``: notebook 08's
    findings from its tables in ``folder`` (default ``figures/toy``) and, where notebook 08 ran on
    the positive control (``control``, default ``figures/toy-outcome``), the circuit sentences of
    that model beside them: a method that cannot find a faithful circuit where one exists by
    construction says so there."""
    folder = Path(folder or paths.FIGURES_DIR / "toy")
    control = Path(control or paths.FIGURES_DIR / "toy-outcome")
    lines = [f"* {line}" for line in _circuit_lines(folder)]
    if (control / "table26_circuit_size.csv").is_file():
        lines.append("* **The positive control** (`toy-outcome`, where the outcome is the task), the same pipeline:")
        node_lines = ("AtP", "On the", "Time", "Where AtP")  # node validation: the action-only toy's alone
        lines += [f"  * {line}" for line in _circuit_lines(control) if not line.startswith(node_lines)]
    else:
        from utils.profiles import TOY_DIRS

        shipped = (TOY_DIRS["toy-outcome"] / "config.json").is_file()
        lines.append("* The positive control (`toy-outcome`): " + (
            "notebook 08 has not run on it (`make figures PROFILE=toy-outcome`)." if shipped else
            "not shipped yet, so no circuit found here is compared with one found where the outcome matters by "
            "construction: nothing yet tells whether these circuits carry an outcome or a pixel difference."))

    def rel(f):
        return f.resolve().relative_to(paths.REPO_ROOT) if f.resolve().is_relative_to(paths.REPO_ROOT) else f

    note = (f"<!-- generated from {rel(folder)}/table18..table26 and {rel(control)}/table20..table26 by "
            f"`python -m utils.findings`; do not edit by hand -->")
    return "\n".join([CIRCUITS_START, note, *lines, CIRCUITS_END])


CONTROLS_START = "<!-- controls:start -->"  # README markers around notebook 09's generated "What we see"
CONTROLS_END = "<!-- controls:end -->"
CONTROL_TABLES = ("table22_controls", "table23_pair_pixel_difference", "table24_paired_probe")


def controls_block(folder: str | Path | None = None) -> str:
    """What the README holds between ``CONTROLS_START`` and ``CONTROLS_END``: notebook 09's
    "What we see" (``utils.reading.what_we_see``) from its Tables 22-24 in ``folder`` (default
    ``figures/toy``)."""
    from utils.reading import what_we_see

    folder = Path(folder or paths.FIGURES_DIR / "toy")

    def read(name):
        f = folder / f"{name}.csv"
        return pd.read_csv(f, keep_default_na=False, na_values=[""]) if f.is_file() else None

    t22, t23, t24 = (read(n) for n in CONTROL_TABLES)
    rel = folder.resolve().relative_to(paths.REPO_ROOT) if folder.resolve().is_relative_to(paths.REPO_ROOT) else folder
    note = f"<!-- generated from {rel}/table22..table24 by `python -m utils.findings`; do not edit by hand -->"
    text = what_we_see(t22, t23, t24) if t22 is not None else "Notebook 09 wrote no controls table."
    return "\n".join([CONTROLS_START, note, text, CONTROLS_END])


def blocks(findings_md=None, across_csv=None, circuits_folder=None) -> list[tuple[str, str, str, Callable]]:
    """Every generated README block: ``(what, start marker, end marker, () -> its text)``."""
    return [("claims table", README_START, README_END, lambda: readme_block(findings_md)),
            ("controls", CONTROLS_START, CONTROLS_END, lambda: controls_block(circuits_folder)),
            ("across-architectures findings", ACROSS_START, ACROSS_END, lambda: across_block(across_csv)),
            ("circuit findings", CIRCUITS_START, CIRCUITS_END, lambda: circuits_block(circuits_folder))]


def update_readme(readme: str | Path | None = None, findings_md: str | Path | None = None) -> bool:
    """Rewrite the README's claims block from ``findings_md``; True if it changed."""
    readme = Path(readme or paths.REPO_ROOT / "README.md")
    readme_current_block(readme)  # raises when the claims markers are missing
    return update_block(readme, README_START, README_END, readme_block(findings_md))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite README.md's generated blocks: the claims table from "
                                     "figures/toy/findings.md, notebook 07's findings from its table 17, notebook "
                                     "08's from tables 18-21.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the README differs")
    parser.add_argument("--readme", default=None)
    parser.add_argument("--findings", default=None, help="findings.md (default: figures/toy/findings.md)")
    parser.add_argument("--across", default=None,
                        help="notebook 07's table (default: figures/toy/table17_across_architectures.csv)")
    args = parser.parse_args(argv)
    readme = Path(args.readme or paths.REPO_ROOT / "README.md")
    readme_current_block(readme)  # the claims markers are required; the others are optional
    same = True
    for what, start, end, make in blocks(args.findings, args.across):
        if not has_block(readme, start, end):
            continue
        text = make()
        if args.check:
            ok = readme_current_block(readme, start, end) == text
            print(f"README {what} {'match' if ok else 'differ from'} the tables")
            same = same and ok
        else:
            changed = update_block(readme, start, end, text)
            print(f"README {what} {'rewritten' if changed else 'already up to date'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
