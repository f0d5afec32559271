"""Controls that give every verdict a meaning (notebook 09): do the methods see an outcome, or a
pixel difference?

**Question.** The toy ViViT (profile ``toy``) is trained only to name actions: a strike and a
gutter ball are both "bowling". Strike and gutter clips of a matched pair also differ in their
pixels after the divergence frame (the pins fall or stand). A delta norm, a patching effect or a
probe that tells the two clips apart may therefore measure how a *pixel difference* propagates
through the network, not an *outcome concept*. Two controls separate the two readings.

* **Null pairs** (``utils.synthetic.render_null_pair``): two clips of one seed with the *same*
  outcome (two strikes), identical until the divergence frame, whose balls then take different
  paths. The first clip of null pair ``i`` is the strike clip of matched ("outcome") pair ``i``,
  so outcome and null pairs come paired by seed, and a strike null pair differs in its pixels
  about as much as the outcome pair (``pixel_size_table``). Whatever a method finds in null pairs
  is a pixel difference without an outcome difference.
* **A positive control model** (profile ``toy-outcome``): the same ViViT, trained with the
  classes ``bowling strike`` and ``bowling gutter`` among the other actions, so an outcome
  representation exists by construction. A method that cannot tell outcome pairs from null
  pairs in *this* model cannot say anything about outcomes in the action-only one.

**Measures** of one pair ``(a, b)`` of prepared clips (``pair_measures``; nothing but "a vs b"
is used, so the same numbers exist for outcome and null pairs). With ``r^l`` the residual stream
after block ``l`` ``(tokens, d_model)``, ``L`` the last block, ``LN`` the final LayerNorm and
``read`` the readout token (CLS; VideoMAE: the token mean):

* ``delta_final`` = mean_t ||r_a^L[t] - r_b^L[t]||_2 (``utils.deltas.delta_norms``, all tokens);
* ``delta_growth`` = delta_final / the same after block ``GROWTH_FROM`` = 5 (the paper's
  "amplification cascade", its Fig. 5);
* ``readout_delta`` = ||LN(read(r_a^L)) - LN(read(r_b^L))||_2: the difference the classifier reads;
* ``output_delta`` = |m(a) - m(b)|, with the output metric ``m`` the logit of one class (the
  action model: the target class, ``bowling``) or the difference of two (the positive control:
  ``bowling strike`` minus ``bowling gutter``);
* ``patch_output_effect`` = mean over layers and components (attention, MLP) of |delta target
  logit| when that component's output of run ``a`` replaces run ``b``'s (the paper's patching,
  ``strike->gutter``: ``utils.patching.run_patches`` on the logits alone, the last block for the readout);
* ``atp_head_effect`` = mean over layers and heads of |AtP estimate| of the target logit's change
  when that head's output of run ``a`` replaces run ``b``'s (``utils.atp``, notebook 08's method);
* ``delta_before_divergence`` = the share of the last layer's delta (``utils.across.time_profile``)
  in the time steps before the divergence, where the two clips' pixels are identical (the time
  profile: how far the difference spreads back in time through attention);
* ``probe_accuracy`` = the paired probe's held-out correctness of the pair, averaged over layers
  (``utils.probes.paired_probe_by_pair`` on the readout token after every block): pair ``i`` is
  right at a layer when ``(x_a - x_b) . mean_{j != i}(x_a - x_b)_j > 0``. ``probe_summary`` adds
  the best layer and its max-over-layers sign-flip p-value (``utils.probes.paired_probe``).

**Contrast** (``contrast``): per model and measure, the mean over seeds ``i`` of
``measure(outcome pair i) - measure(null pair i)`` with a 95% bootstrap interval over seeds
(``utils.stats``). A method *detects the outcome* in a model when that interval lies above 0
(``detects``). Verdict on the action-only model (``rule_outcome_beyond_pixels``): supported when
the method detects the outcome there *and* in the positive control; not supported when it
detects it in the positive control only; **inconclusive** whenever it misses the outcome in the
positive control, since a method blind to a circuit that exists by construction says nothing
about one that may not.
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from utils.across import GROWTH_FROM, clip_run, divergence_step, probe_features_from_runs, time_profile
from utils.arch.core import Run
from utils.deltas import delta_names, delta_norms
from utils.findings import ACTION, ALPHA, CONTROL, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from utils.hooks import HookedVideoTransformer
from utils.labels import ModelLoadError
from utils.models import LoadedModel, profile_config
from utils.pairs import analyse_pair
from utils.patching import auto_batch_size, component_patches, head_patches, needed_target_names, run_patches
from utils.probes import N_PERM, paired_probe, paired_probe_by_pair
from utils.profiles import TOY_DIRS
from utils.reading import MEASURES
from utils.stats import paired_difference, summarise
from utils.synthetic import pair_pixel_difference, render_null_pair

OUTCOME, NULL = "outcome", "null"  # the two pair sets (the ``pairs`` column): strike vs gutter, strike vs strike
DIRECTION = "strike->gutter"  # patching direction: clip a's components into clip b's run
CONDITION_STYLE = {  # pair set -> (marker, face colour, edge colour, legend label)
    OUTCOME: ("o", "#CC79A7", "#CC79A7", "outcome pairs: strike vs gutter (mean, 95% CI)"),
    NULL: ("o", "white", "#777777", "null pairs: strike vs strike, same seed (mean, 95% CI)"),
}
CONTRAST_COLOUR = "#000000"  # the contrast marker: filled when it detects the outcome, hollow when not


# ---------------------------------------------------------------------------- availability
def skip_reason(profile: str, control_profile: str) -> str | None:
    """Why notebook 09 cannot run its controls for ``profile`` (None: it can). Cheap checks only
    (configs, files): the analysed model must be a toy ViViT other than the control itself, and
    the positive control's checkpoint must exist. ``input_mismatch`` checks the rest once loaded."""
    if profile == control_profile:
        return f"the analysed model {profile!r} is the positive control itself; run the controls for `toy`"
    if profile not in TOY_DIRS:
        return (f"the controls need a toy ViViT trained on the synthetic world (profile `toy`), whose "
                f"prepared clips the positive control can read; {profile!r} is not one")
    try:
        arch = profile_config(profile).model_type
        control_arch = profile_config(control_profile).model_type
        if arch != control_arch:
            return (f"the positive control {control_profile!r} is a {control_arch}; {profile!r} is a {arch} "
                    "(the controls need the same architecture: profile `toy`)")
    except ModelLoadError as err:
        return str(err)
    if control_profile in TOY_DIRS and not (TOY_DIRS[control_profile] / "model.safetensors").is_file():
        return (f"the positive control's weights are missing from {TOY_DIRS[control_profile]} "
                f"(train it with `make toy-model ARCH=outcome`)")
    return None


def input_mismatch(loaded: LoadedModel, control: LoadedModel) -> str | None:
    """Why the clips prepared for ``loaded`` cannot be fed to ``control`` (None: they can): the
    two must read the same frames at the same size through the same processor and preprocessing."""
    facts = {"architecture": (loaded.arch, control.arch), "frames": (loaded.num_frames, control.num_frames),
             "image size": (loaded.image_size, control.image_size),
             "preprocess": (loaded.preprocess_mode, control.preprocess_mode),
             "processor": (loaded.processor.to_dict(), control.processor.to_dict())}
    differ = [k for k, (a, b) in facts.items() if a != b]
    if differ:
        return (f"{control.name} does not read the inputs prepared for {loaded.name} "
                f"(they differ in: {', '.join(differ)})")
    return None


def output_metric(loaded: LoadedModel, contrast_class: str | None = None) -> int | tuple[int, int]:
    """The output metric's classes: ``loaded``'s target class alone, or (target, ``contrast_class``)."""
    if contrast_class is None:
        return loaded.target_index
    from utils.labels import resolve_target

    return loaded.target_index, resolve_target(loaded.id2label, contrast_class, where=loaded.name)


def control_metric(control: LoadedModel, contrast_class: str = "") -> tuple[int, int]:
    """The positive control's output metric: (its target class, ``contrast_class``), or, with
    ``contrast_class`` blank, the class its checkpoint names (``config.contrast_class``:
    ``bowling gutter`` for ``toy-outcome``, whose target is ``bowling strike``)."""
    contrast_class = contrast_class or getattr(control.config, "contrast_class", "")
    if not contrast_class:
        raise ValueError(f"{control.name} names no contrast class (config.contrast_class); pass control_contrast, "
                         "the class whose logit the positive control's target logit is compared with")
    return output_metric(control, contrast_class)


def metric_values(logits: torch.Tensor, metric: int | tuple[int, int]) -> torch.Tensor:
    """``(clip, classes)`` logits -> ``(clip,)``: the logit of class ``metric``, or, for a pair of
    classes ``(c, k)``, the logit difference ``logit_c - logit_k``."""
    if isinstance(metric, int | np.integer):
        return logits[:, int(metric)]
    c, k = metric
    return logits[:, c] - logits[:, k]


# ---------------------------------------------------------------------------- per pair
class PairMeasures(NamedTuple):
    table: pd.DataFrame  # one row per pair: pair, seed, a, b, the MEASURES, metric_a/b, top_a/b
    features: np.ndarray  # (pair, 2, layer, d_model): the readout token after every block (a at index 0)


def pair_seeds(data, pairs: list[tuple[str, str]]) -> list[int]:
    """The seed of each pair's first clip, from notebook 00's manifest (the key that pairs an
    outcome pair with the null pair of the same seed)."""
    seeds = {c["id"]: c["seed"] for c in data.manifest["clips"]}
    missing = [a for a, _ in pairs if seeds.get(a) is None]
    if missing:
        raise ValueError(f"no seed recorded for {', '.join(missing[:3])}: controls pair clips by seed "
                         "(synthetic pairs from notebook 00)")
    return [int(seeds[a]) for a, _ in pairs]


def paired_by_seed(data, outcome_pairs: list[tuple[str, str]], null_pairs: list[tuple[str, str]],
                   n: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The outcome and null pairs whose first clips share a seed, in the outcome pairs' order, at
    most ``n`` of each: position ``i`` of the two lists is one seed (what ``contrast`` pairs)."""
    null_by_seed = dict(zip(pair_seeds(data, null_pairs), null_pairs, strict=True))
    both = [(o, null_by_seed[s]) for o, s in zip(outcome_pairs, pair_seeds(data, outcome_pairs), strict=True)
            if s in null_by_seed][:n]
    return [o for o, _ in both], [u for _, u in both]


def outcome_classification(table: pd.DataFrame, strike: int, gutter: int) -> pd.DataFrame:
    """How a model with outcome classes labels the clips (a sanity check of the positive control):
    per pair set, the share of first clips called ``strike`` and of second clips called what they
    are (``gutter`` in outcome pairs, ``strike`` in null pairs). ``table``: ``pair_measures``
    tables tagged ``pairs``."""
    rows = []
    for pairs, d in table.groupby("pairs", sort=False):
        second = gutter if pairs == OUTCOME else strike
        rows.append({"pairs": pairs, "n_pairs": len(d), "first_clip_called_strike": float((d.top_a == strike).mean()),
                     "second_clip_called_right": float((d.top_b == second).mean())})
    return pd.DataFrame(rows)


def _runs(hooked: HookedVideoTransformer, pixels: torch.Tensor, names: set[str], batch_size: int) -> Run:
    """Clean runs of ``pixels`` ``(clip, frame, 3, H, W)`` in batches of ``batch_size``, caching
    ``names``; logits and cache concatenated over clips (kept on the model's device, where
    patched runs start from them)."""
    parts = [hooked.run(pixels[i : i + batch_size], names=names) for i in range(0, len(pixels), batch_size)]
    return Run(torch.cat([p.logits for p in parts]), {k: torch.cat([p.cache[k] for p in parts]) for k in names})


def pair_measures(hooked: HookedVideoTransformer, data, pairs: list[tuple[str, str]], metric: int | tuple[int, int],
                  target: int, shared_kind: str | None = None, batch_size: int = 16) -> PairMeasures:
    """The module's measures for every pair ``(a, b)`` of prepared clip ids (``data``:
    ``utils.data.Prepared``), ``metric``: ``metric_values``'s classes, ``target``: the class whose
    logit patching reads.

    One batched clean run of every clip caches what the deltas, the readout and the probe read.
    Patching: with ``shared_kind`` each pair goes through ``utils.pairs.analyse_pair`` exactly as
    notebook 06 calls it (``{"strike": a, "gutter": b}``, that kind, named like the clip ids,
    with ablation), so ``make figures`` hands over 06's result and the pair costs nothing here;
    otherwise one ``strike->gutter`` sweep on the batched runs (the same numbers up to float
    rounding; ``tests/test_controls.py``). Returns the table and the readout features
    ``(pair, 2, layer, d_model)``.
    """
    if not pairs:
        raise ValueError("pair_measures needs at least one pair")
    L = hooked.n_layers
    ids = [c for pair in pairs for c in pair]
    pixels = torch.cat([data.pixels(c) for c in ids])  # (clip, frame, 3, H, W)
    names = set(delta_names(hooked))
    if shared_kind is None:  # what a patched run starts from (b) and what it patches in (a)
        names |= set(needed_target_names(hooked))
        names |= {f"blocks.{lay}.{site}" for lay in range(L) for site in hooked.components.values()}
    names |= {f"blocks.{lay}.{site}" for lay in range(L) for site in hooked.head_sites.values()}  # AtP's sources
    run = _runs(hooked, pixels, names, batch_size)
    # a toy model runs every patch of a sweep in one batch_size (measured on 2 cores: 35% faster than 8 at a time)
    sweep_batch = L * len(hooked.components) if auto_batch_size(hooked) > 1 else 1
    last = f"blocks.{L - 1}.hook_resid_post"
    with torch.inference_mode():
        readout = hooked.final_norm(hooked.readout_tokens(run[last])).double()  # (clip, d_model)
        metric_of = metric_values(run.logits.double(), metric)  # (clip,)
        top = run.logits.argmax(-1)  # (clip,)
    features = probe_features_from_runs(hooked, Run(run.logits.cpu(), {
        f"blocks.{lay}.hook_resid_post": run[f"blocks.{lay}.hook_resid_post"].cpu() for lay in range(L)}))["readout"]
    features = features.reshape(len(pairs), 2, *features.shape[1:])  # (pair, 2, layer, d_model)
    probe = (paired_probe_by_pair(features).groupby("pair").accuracy.mean() if len(pairs) >= 2
             else pd.Series(np.nan, index=range(len(pairs))))  # (pair,) mean over layers
    step = divergence_step(int(data.manifest.get("num_frames", hooked.loaded.num_frames)))
    rows = []
    for k, ((a, b), seed) in enumerate(zip(pairs, pair_seeds(data, pairs), strict=True)):
        name = a.rsplit("_", 1)[0]
        ra, rb = clip_run(run, 2 * k), clip_run(run, 2 * k + 1)
        deltas = delta_norms(hooked, ra, rb).set_index("layer").mean_token_norm
        time = time_profile(hooked, ra, rb)
        before = float(time[(time.layer == L - 1) & (time.time_step < step)].share.sum())
        if shared_kind is not None:  # notebook 06's call, memoized (utils.memo)
            sweep = analyse_pair(hooked, {"strike": data.pixels(a), "gutter": data.pixels(b)}, target, name,
                                 shared_kind, ablation=True)["patching"]
            sweep = sweep[sweep.direction == DIRECTION]
        else:
            # only the target logit is read: the last block runs for the readout's rows alone
            _, logits = run_patches(hooked, rb.cache, component_patches(hooked, ra.cache), batch_size=sweep_batch,
                                    logits_only=True)
            change = (logits[:, target] - rb.logits[0, target]).double().cpu().numpy()
            sweep = pd.DataFrame({"delta_target_logit": change})
        rows.append({
            "pair": name, "seed": seed, "a": a, "b": b,
            "delta_final": float(deltas[L - 1]),
            "delta_growth": float(deltas[L - 1] / deltas[GROWTH_FROM]) if deltas[GROWTH_FROM] > 0 else np.nan,
            "readout_delta": float((readout[2 * k] - readout[2 * k + 1]).norm()),
            "output_delta": float((metric_of[2 * k] - metric_of[2 * k + 1]).abs()),
            "patch_output_effect": float(sweep.delta_target_logit.abs().mean()),
            "atp_head_effect": atp_head_effect(hooked, ra, rb, pixels[2 * k + 1 : 2 * k + 2], target),
            "delta_before_divergence": before,
            "probe_accuracy": float(probe.iloc[k]),
            "metric_a": float(metric_of[2 * k]), "metric_b": float(metric_of[2 * k + 1]),
            "top_a": int(top[2 * k]), "top_b": int(top[2 * k + 1]),
        })
    return PairMeasures(pd.DataFrame(rows), features)


def atp_head_effect(hooked: HookedVideoTransformer, source: Run, target: Run, target_pixels: torch.Tensor,
                    target_class: int) -> float:
    """Attribution patching over heads (``utils.atp``, as notebook 08): the mean over every layer
    and head of |first-order estimate of the target logit's change| when that head's output of
    the ``source`` run (clip a, its cached ``hook_z``) replaces the ``target`` run's (clip b: its
    cached final residual defines the metric; one forward and one backward pass from
    ``target_pixels``)."""
    from utils import atp

    metric = atp.target_logit(hooked, target_class, target[atp.final_site(hooked)])
    est = atp.atp(hooked, head_patches(hooked, source.cache), metric, target_pixels=target_pixels)
    return float(est.abs().mean())


def probe_summary(features: np.ndarray, n_perm: int = N_PERM, **tags) -> dict:
    """The paired probe (``utils.probes.paired_probe``) on ``features`` ``(pair, 2, layer, d)``:
    its best layer (the lowest among ties), that layer's held-out accuracy, the corrected
    (max-over-layers) and uncorrected p-values, the null's 95th percentile there, and ``reads``
    (corrected p < ``ALPHA``); ``tags`` (model, pairs) lead the row."""
    table = paired_probe(features, n_perm=n_perm).table
    best = table[table.is_best].sort_values("layer").iloc[0]
    return {**tags, "n_pairs": len(features), "best_layer": int(best.layer), "accuracy": float(best.accuracy),
            "p_value": float(best.p_value), "p_uncorrected": float(best.p_uncorrected),
            "null_q95": float(best.null_q95), "reads": bool(best.p_value < ALPHA), "n_perm": n_perm}


# ---------------------------------------------------------------------------- contrasts and verdicts
def contrast(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per ``model``: the mean over seeds of ``measure`` on the outcome pair minus the null pair of
    the same seed, with its 95% bootstrap interval over seeds (``utils.stats.paired_difference``).

    ``table``: one row per (model, ``pairs`` in {outcome, null}, ``seed``). Columns ``model``,
    ``measure``, ``estimate``, ``ci_low``, ``ci_high``, ``n_seeds`` (seeds with both pairs) and
    ``share_outcome_gt_null`` (share of seeds whose outcome pair has the larger value)."""
    out = paired_difference(table, ["model"], "pairs", OUTCOME, NULL, measure, unit="seed")
    out["measure"] = measure
    return out


def detects(ci_low: float) -> bool:
    """A method detects the outcome in a model when the contrast's interval lies above 0."""
    return bool(ci_low > 0)


def rule_outcome_beyond_pixels(action_ci_low: float, control_ci_low: float) -> str:
    """The action-only model represents the outcome beyond the pixel difference, by one method:
    ``inconclusive`` if the method misses the outcome in the positive control (never "not
    supported": the method cannot see it where it exists by construction); otherwise supported
    when it detects the outcome in the action-only model too, not supported when not."""
    if not detects(control_ci_low):
        return INCONCLUSIVE
    return SUPPORTED if detects(action_ci_low) else NOT_SUPPORTED


def control_verdict(control_ci_low: float) -> str:
    """What the positive control says of a method."""
    return "detects the outcome" if detects(control_ci_low) else "misses the outcome (fails the positive control)"


def controls_table(table: pd.DataFrame, measures=tuple(MEASURES)) -> pd.DataFrame:
    """Table 22: per measure and model (``ACTION``, ``CONTROL``), the outcome-pair and null-pair
    means with their 95% intervals over pairs, the contrast (outcome - null, paired by seed) with
    its interval, ``null_over_outcome`` (the ratio of the two means: compare it with the pixel
    sizes' ratio, ``pixel_size_table``), ``detects`` and ``verdict`` (the action-only row:
    ``rule_outcome_beyond_pixels``; the control row: ``control_verdict``). ``table``:
    ``pair_measures`` tables of both models and both pair sets, tagged ``model`` and ``pairs``."""
    rows = []
    for measure in measures:
        levels = summarise(table, ["model", "pairs"], measure, unit="seed").set_index(["model", "pairs"])
        diffs = contrast(table, measure).set_index("model")
        for model in (ACTION, CONTROL):
            if model not in diffs.index:
                continue
            d = diffs.loc[model]
            row = {"measure": measure, "model": model}
            for pairs in (OUTCOME, NULL):
                s = levels.loc[(model, pairs)]
                row |= {pairs: s.estimate, f"{pairs}_ci_low": s.ci_low, f"{pairs}_ci_high": s.ci_high}
            row |= {"null_over_outcome": row[NULL] / row[OUTCOME] if row[OUTCOME] else np.nan,
                    "contrast": d.estimate, "contrast_ci_low": d.ci_low, "contrast_ci_high": d.ci_high,
                    "n_seeds": int(d.n_seeds), "share_outcome_gt_null": d.share_outcome_gt_null,
                    "detects": detects(d.ci_low)}
            rows.append(row)
    out = pd.DataFrame(rows)
    control_low = out[out.model == CONTROL].set_index("measure").contrast_ci_low
    out["verdict"] = [control_verdict(r.contrast_ci_low) if r.model == CONTROL
                      else rule_outcome_beyond_pixels(r.contrast_ci_low, control_low.get(r.measure, np.nan))
                      for r in out.itertuples()]
    return out


# ---------------------------------------------------------------------------- pixel sizes
def pair_pixel_sizes(manifest: dict, seeds: list[int], gutter_nulls: bool = True) -> pd.DataFrame:
    """Per seed: how far the two clips of its matched pair, its strike null pair (both from
    notebook 00's manifest, ``pairs``) and, with ``gutter_nulls``, its gutter null pair (rendered
    here, ``render_null_pair(seed, "gutter")`` at the manifest's frame count and size) differ:
    ``kind`` (matched, strike null, gutter null), ``seed``, ``pixel_difference`` (mean |difference|
    in levels 0..255 from the divergence frame on, ``utils.synthetic.pair_pixel_difference``)
    and ``ratio_to_matched`` (that over the matched pair's, same seed)."""
    recorded = {(p["kind"], p["seed"]): p["pixel_difference"] for p in manifest.get("pairs", [])}
    rows = []
    for seed in seeds:
        sizes = {"matched": recorded.get(("matched", seed)), "strike null": recorded.get(("null", seed))}
        if gutter_nulls:
            a, b = render_null_pair(seed, "gutter", num_frames=manifest["num_frames"], size=manifest["image_size"])
            sizes["gutter null"] = pair_pixel_difference(a, b)
        for kind, size in sizes.items():
            if size is None or sizes["matched"] is None:
                continue
            rows.append({"kind": kind, "seed": seed, "pixel_difference": float(size),
                         "ratio_to_matched": float(size) / sizes["matched"]})
    return pd.DataFrame(rows)


def pixel_size_table(sizes: pd.DataFrame) -> pd.DataFrame:
    """Table 23: per kind of pair, the mean pixel difference and the mean ratio to the matched
    pair of the same seed, each with its 95% bootstrap interval over seeds. ``sizes``:
    ``pair_pixel_sizes``."""
    parts = [summarise(sizes, ["kind"], value, unit="seed") for value in ("pixel_difference", "ratio_to_matched")]
    wide = parts[0].drop(columns="measure").merge(
        parts[1].drop(columns=["measure", "n_seeds"]), on="kind", suffixes=("", "_ratio"))
    wide = wide.rename(columns={"estimate": "pixel_difference", "estimate_ratio": "ratio_to_matched"})
    order = {"matched": 0, "strike null": 1, "gutter null": 2}
    return wide.sort_values("kind", key=lambda k: k.map(order)).reset_index(drop=True)


# ---------------------------------------------------------------------------- figure and words
def controls_figure(t22: pd.DataFrame, names: dict[str, str], measures=tuple(MEASURES)):
    """Fig. 19: one block per measure, one panel per model (``names``: role -> profile), each on
    its own scale (the positive control's effects are up to 100x the action-only model's): the
    outcome pairs, the null pairs and their contrast (outcome - null, paired by seed), each as a
    mean with its 95% interval over seeds. A filled diamond: the contrast's interval lies above 0."""
    measures = [m for m in measures if (t22.measure == m).any()]
    n = len(measures)
    cols = min(2, n)
    rows_n = -(-n // cols)
    fig = plt.figure(figsize=(6.6 * cols, 3.3 * rows_n + 0.9), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(rows_n, cols, wspace=0.04, hspace=0.04)).ravel()
    for sub, measure in zip(subs, measures, strict=False):
        d = t22[t22.measure == measure].set_index("model")
        models = [m for m in (ACTION, CONTROL) if m in d.index]
        axes = np.atleast_1d(sub.subplots(1, len(models)))
        sub.suptitle(textwrap.fill(f"{measure}: {MEASURES[measure][0]}", 72), fontsize=9, fontweight="bold")
        for k, (ax, model) in enumerate(zip(axes, models, strict=True)):
            r = d.loc[model]
            for j, pairs in enumerate((OUTCOME, NULL)):
                marker, face, edge, _ = CONDITION_STYLE[pairs]
                ax.errorbar(j, r[pairs], yerr=[[r[pairs] - r[f"{pairs}_ci_low"]], [r[f"{pairs}_ci_high"] - r[pairs]]],
                            fmt=marker, ms=7, mfc=face, mec=edge, color=edge, capsize=3)
            ax.errorbar(2, r.contrast, yerr=[[r.contrast - r.contrast_ci_low], [r.contrast_ci_high - r.contrast]],
                        fmt="D", ms=7, color=CONTRAST_COLOUR, mfc=CONTRAST_COLOUR if r.detects else "white",
                        capsize=3)
            ax.axhline(0, color="k", lw=0.8)
            if measure == "probe_accuracy":
                ax.axhline(0.5, color="grey", ls="--", lw=1)
                ax.text(-0.6, 0.5, "chance", va="bottom", fontsize=7, color="grey")
            ax.set_xticks([0, 1, 2], ["outcome", "null", "outcome\n- null"], fontsize=8)
            ax.set_xlim(-0.7, 2.7)
            ax.set_title(f"{model} ({names.get(model, model)})", fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            if k == 0:
                ax.set_ylabel(MEASURES[measure][1], fontsize=8)
    for sub in subs[n:]:
        sub.set_facecolor("none")
    handles = [plt.Line2D([], [], ls="", marker=m, ms=7, mfc=f, mec=e, label=lab)
               for m, f, e, lab in CONDITION_STYLE.values()]
    handles += [plt.Line2D([], [], ls="", marker="D", ms=7, color=CONTRAST_COLOUR,
                           label="contrast: outcome - null, paired by seed; filled: 95% CI above 0 (detects)"),
                plt.Line2D([], [], ls="", marker="D", ms=7, mfc="white", mec=CONTRAST_COLOUR,
                           label="hollow: CI reaches 0 (does not detect)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("Do the methods see an outcome, or a pixel difference?\nOutcome pairs vs null pairs, in the "
                 "action-only model and a positive control (each panel on its own scale)", fontweight="bold")
    return fig


