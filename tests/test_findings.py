"""The verdict rules of utils.findings, the claims table on made-up per-pair tables, and the
README's claims block against the committed findings."""

import numpy as np
import pandas as pd
import pytest

from utils import findings as F
from utils import paths
from utils.io import save_table

L = 12


# ---------------------------------------------------------------------------- rules
@pytest.mark.parametrize("rule, args, verdict", [
    (F.rule_classified, (1.0, 0.95), F.SUPPORTED),
    (F.rule_classified, (1.0, 0.94), F.NOT_SUPPORTED),
    (F.rule_probe, (0.049,), F.SUPPORTED),
    (F.rule_probe, (0.05,), F.NOT_SUPPORTED),
    (F.rule_layer0_surface, (0.89,), F.SUPPORTED),
    (F.rule_layer0_surface, (0.9,), F.NOT_SUPPORTED),
    (F.rule_ci_above, (1.01, 1.0), F.SUPPORTED),
    (F.rule_ci_above, (1.0, 1.0), F.NOT_SUPPORTED),
    (F.rule_ci_below, (89.9, 90.0), F.SUPPORTED),
    (F.rule_ci_below, (90.0, 90.0), F.NOT_SUPPORTED),
    (F.rule_difference, (0.1, 2.0), F.SUPPORTED),
    (F.rule_difference, (-2.0, -0.1), F.NOT_SUPPORTED),
    (F.rule_difference, (-1.0, 1.0), "not supported (no clear difference)"),
    (F.rule_difference, (-1.0, 0.01), "not supported (no clear difference)"),
    (F.rule_unsigned_metric, (5.1,), F.NOT_SUPPORTED),
    (F.rule_unsigned_metric, (4.9,), F.SUPPORTED),
    (F.rule_ablation_redundant, (9.9, 0.9), F.SUPPORTED),
    (F.rule_ablation_redundant, (10.0, 1.0), F.NOT_SUPPORTED),
    (F.rule_ablation_redundant, (1.0, 0.89), F.NOT_SUPPORTED),
    (F.rule_late, (8.0, 12), F.SUPPORTED),
    (F.rule_late, (7.9, 12), F.NOT_SUPPORTED),
    (F.rule_holm, (F.SUPPORTED, 0.049), F.SUPPORTED),
    (F.rule_holm, (F.SUPPORTED, 0.05), "not supported (p >= 0.05 after Holm)"),
    (F.rule_holm, (F.SUPPORTED, float("nan")), F.SUPPORTED),  # a descriptive rule
    (F.rule_holm, (F.NOT_SUPPORTED, 0.001), F.NOT_SUPPORTED),
    (F.rule_controlled, (F.SUPPORTED, True, True), F.SUPPORTED),
    (F.rule_controlled, (F.SUPPORTED, False, True), "not supported (null pairs show it too)"),
    (F.rule_controlled, (F.NOT_SUPPORTED, False, True), F.NOT_SUPPORTED),
    (F.rule_controlled, (F.SUPPORTED, True, False), F.INCONCLUSIVE),
    (F.rule_controlled, (F.NOT_SUPPORTED, False, False), F.INCONCLUSIVE),  # never "not supported" if blind
])
def test_rules_on_both_sides_of_their_thresholds(rule, args, verdict):
    assert rule(*args) == verdict


# ---------------------------------------------------------------------------- claims table
def make_tables(n=12, mlp_ahead=True, probe_p=0.001, share_lower=0.5, rho=0.9, seed=0):
    """Per-pair tables shaped like notebook 06's, for ``n`` matched pairs."""
    rng = np.random.default_rng(seed)
    pairs = [f"pair{i:03d}" for i in range(n)]
    tag = {"kind": "matched"}
    pred = pd.DataFrame([{"clip_id": f"{p}_{o}", "outcome": o, "is_target": True}
                         for p in pairs for o in ("strike", "gutter")])
    deltas = pd.DataFrame([{"pair": p, "layer": lay, "mean_token_norm": 1 + 0.1 * lay + rng.normal(0, 0.01), **tag}
                           for p in pairs for lay in range(-1, L)])
    sign = 1 if mlp_ahead else -1
    patching = pd.DataFrame([{"pair": p, "layer": lay, "component": c, "direction": d,
                              "recovery_notebook_pct": 20 + (sign * 5 if c == "mlp" else 0) + rng.normal(0, 1),
                              "recovery_projection_pct": 10 + rng.normal(0, 1), **tag}
                             for p in pairs for lay in range(L) for c in ("attention", "mlp")
                             for d in ("strike->gutter", "gutter->strike")])
    by_pair = pd.DataFrame([{"kind": "matched", "feature": "readout", "layer": lay, "time_step": -1, "pair": p,
                             "accuracy": rng.choice([0.5, 1.0]) if lay == 8 else 0.5}
                            for p in pairs for lay in range(L)])
    summary = pd.DataFrame([{"kind": "matched", "feature": "readout", "n_pairs": n, "best_layer": 8,
                             "best_time_step": -1,
                             "best_accuracy": 0.75, "p_best": 0.5, "mean_accuracy": 0.52,
                             "null_mean_accuracy": 0.5, "p_mean_below": 0.9, "p_mean_above": 0.1,
                             "paired_best_layer": 6, "paired_best_time_step": -1, "paired_accuracy": 0.8,
                             "paired_p_best": probe_p, "n_perm": 200}])
    paired_by_pair = by_pair.assign(accuracy=[1.0 if (lay == 6 and i % 5) else 0.5
                                              for i, lay in enumerate(by_pair.layer)])
    probes = {"by_pair": by_pair, "summary": summary, "paired_by_pair": paired_by_pair}
    ablation = pd.DataFrame([{"pair": p, "run": r, "mode": m, "logit_before": 7.0,
                              "delta_target_logit": -0.1 + rng.normal(0, 0.01), "still_top": True, **tag}
                             for p in pairs for r in ("strike", "gutter") for m in ("faithful", "corrected")])
    lens = pd.DataFrame([{"pair": p, "run": r, "first_top_layer": 1 if r == "strike" else 2, **tag}
                         for p in pairs for r in ("strike", "gutter")])
    ig = pd.DataFrame([{"pair": p, "run": r, "spearman_ig_dla": rho + rng.normal(0, 0.01),
                        "spearman_dla_attention": 0.95, "completeness_error": 1e-5, **tag}
                       for p in pairs for r in ("strike", "gutter")])
    random = pd.DataFrame([{"pair": p, "run": r, "score": s, "top_delta": -0.2, "random_median": -0.3,
                            "share_random_lower": share_lower, "rank": 10, "n_draws": 20, **tag}
                           for p in pairs for r in ("strike", "gutter") for s in ("notebook", "dla")])
    return dict(pred=pred, deltas=deltas, patching=patching, probes=probes, ablation=ablation, lens=lens,
                heads=None, n_layers=L, ig=ig, random=random)


def verdicts(**kw):
    t = F.claims_table(**make_tables(**kw))
    return dict(zip(t.claim, t.verdict, strict=True)), t


def _row(table, start):
    return table[table.claim.str.startswith(start)].iloc[0]


def test_claims_table_verdicts_follow_the_evidence():
    v, t = verdicts()
    assert list(t.columns) == F.COLUMNS and len(t) == 12
    assert (t["null pairs"].isin(["-", F.NOT_RUN])).all() and F.SEEDS_COLUMN not in t
    assert v["Both outcomes are classified as the action ('bowling')"] == F.SUPPORTED
    assert _row(t, "The model represents").verdict == F.SUPPORTED
    assert _row(t, "Amplification cascade").verdict == F.SUPPORTED
    assert _row(t, "MLPs recover more").verdict == F.SUPPORTED
    assert _row(t, "Layer 10 head 8").verdict == F.UNTESTABLE
    assert _row(t, "(Ours) Integrated gradients").verdict == F.SUPPORTED
    assert _row(t, "(Ours) The notebook's top-10% score").verdict == F.NOT_SUPPORTED  # share 0.5
    assert not t["toy evidence"].str.contains("|", regex=False).any()


def test_claims_table_flips_with_the_evidence():
    _, t = verdicts(mlp_ahead=False, probe_p=0.2, share_lower=0.0, rho=0.1)
    assert _row(t, "MLPs recover more").verdict == F.NOT_SUPPORTED
    assert "-5." in _row(t, "MLPs recover more")["toy evidence"]
    assert _row(t, "The model represents").verdict == F.NOT_SUPPORTED
    assert "p = 0.200" in _row(t, "The model represents")["toy evidence"]
    assert "paired probe" in _row(t, "The model represents")["toy evidence"]
    assert _row(t, "(Ours) The notebook's top-10% score").verdict == F.SUPPORTED
    assert _row(t, "(Ours) Integrated gradients").verdict == F.NOT_SUPPORTED


def test_lens_claim_averages_the_two_clips_of_a_pair():
    """first_top_layer is 1 (strike) and 2 (gutter) in every pair: the per-pair mean is 1.5 with
    no spread, so the interval over pairs is [1.5, 1.5] (resampling clips would not change
    that here, but the interval must be over 12 pairs, not 24 clips)."""
    _, t = verdicts()
    ev = _row(t, "The action becomes readable")["toy evidence"]
    assert "1.50 [95% CI 1.50, 1.50] of 12" in ev


def test_claims_use_matched_pairs_only():
    """Unmatched pairs in which attention beats the MLP by 200 points must not sway the verdict."""
    tables = make_tables()
    p = tables["patching"]
    extra = p.assign(kind="unmatched", pair="unmatched" + p.pair.str[4:],
                     recovery_notebook_pct=p.component.map({"attention": 100.0, "mlp": -100.0}))
    tables["patching"] = pd.concat([p, extra])
    t = F.claims_table(**tables)
    assert _row(t, "MLPs recover more").verdict == F.SUPPORTED
    assert "MLP ahead in 100% of pairs" in _row(t, "MLPs recover more")["toy evidence"]


# ---------------------------------------------------------------------------- README
def test_findings_markdown_round_trip(tmp_path):
    _, t = verdicts()
    save_table(t, tmp_path, "findings", caption="Which claims (toy). All clips are classified as 'bowling'.")
    back = F.read_findings_md(tmp_path / "findings.md")
    pd.testing.assert_frame_equal(back, t.astype(str))
    block = F.readme_block(tmp_path / "findings.md")
    assert block.startswith(F.README_START) and block.endswith(F.README_END)
    assert "\n| " + " | ".join(F.COLUMNS) + " |\n" + "|---" * len(F.COLUMNS) + "|\n" in block
    for cell in t.to_numpy().ravel():
        assert f" {cell} |" in block  # word for word


def test_update_readme_rewrites_only_the_block(tmp_path):
    _, t = verdicts()
    save_table(t, tmp_path, "findings")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{F.README_START}\nold table\n{F.README_END}\n\n## next\ntext\n")
    assert F.update_readme(readme, tmp_path / "findings.md") is True
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n") and text.endswith("\n\n## next\ntext\n")
    assert "old table" not in text and F.readme_current_block(readme) == F.readme_block(tmp_path / "findings.md")
    assert F.update_readme(readme, tmp_path / "findings.md") is False
    assert F.main(["--check", "--readme", str(readme), "--findings", str(tmp_path / "findings.md")]) == 0
    readme.write_text(text.replace("supported", "supported (weakly)", 1))
    assert F.main(["--check", "--readme", str(readme), "--findings", str(tmp_path / "findings.md")]) == 1


def test_readme_claims_table_is_the_committed_findings():
    """README.md's claims table must be figures/toy/findings.md word for word; after notebook
    06 rewrites the findings, run `python -m utils.findings` to update the README."""
    assert F.readme_current_block(paths.REPO_ROOT / "README.md") == F.readme_block(), (
        "README's claims table differs from figures/toy/findings.md: run `.venv/bin/python -m utils.findings`")


# ---------------------------------------------------------------------------- robustness
def test_perturbed_inputs_move_every_float_column_and_nothing_else():
    inputs = {"deltas": pd.DataFrame({"pair": ["a", "b"], "layer": [0, 1], "norm": [1.0, 2.0]}),
              "probes": {"summary": pd.DataFrame({"p_best": [0.5]}), "n": 3}, "n_layers": 12}
    moved = F.perturb_inputs(inputs, lambda name, col: {"deltas": 0.1, "probes.summary": 0.01}[name], shift=1.0)
    assert moved["deltas"].norm.tolist() == pytest.approx([1.1, 2.1])
    assert moved["deltas"].layer.tolist() == [0, 1] and moved["deltas"].pair.tolist() == ["a", "b"]
    assert moved["probes"]["summary"].p_best.item() == pytest.approx(0.51) and moved["probes"]["n"] == 3
    assert inputs["deltas"].norm.tolist() == [1.0, 2.0]  # a copy
    noisy = F.perturb_inputs(inputs, lambda name, col: 0.1, rng=np.random.default_rng(0))
    assert 0 < np.abs(noisy["deltas"].norm - inputs["deltas"].norm).max() <= 0.1
    assert set(F.input_frames(inputs)) == {"deltas", "probes.summary"}


@pytest.mark.slow
def test_no_verdict_flips_within_the_measured_spread(toy_outputs):
    """The verdicts of a fresh toy run stay the same when every float the claims table reads moves
    by its measured spread across emulated machines (``tests/tolerances.csv``, rows of kind
    ``input``: SAFETY x the spread, and at least float32 rounding of the column's largest value),
    in 10 random draws and shifted all up or all down."""
    from utils.reproducibility import load_tolerances

    inputs = F.load_inputs(toy_outputs.parent.parent / "data" / "toy")
    tol = load_tolerances(kind="input")
    assert tol, "tests/tolerances.csv holds no findings-input rows: run python -m utils.reproducibility measure"
    frames = F.input_frames(inputs)

    def scale(name, col):
        top = float(frames[name][col].abs().max()) if len(frames[name]) else 0.0
        return max(tol.get((f"findings_inputs:{name}", col), 0.0), 1e-6 * (top if np.isfinite(top) else 0.0))

    want = F.claims_table(**inputs).verdict.tolist()
    rng = np.random.default_rng(0)
    draws = [F.perturb_inputs(inputs, scale, rng=rng) for _ in range(10)]
    draws += [F.perturb_inputs(inputs, scale, shift=s) for s in (-1.0, 1.0)]
    for k, moved in enumerate(draws):
        got = F.claims_table(**moved).verdict.tolist()
        assert got == want, f"draw {k}: verdicts {got} != {want}"


# ---------------------------------------------------------------------------- tests, controls, seeds
def test_holm_decides_the_tested_claims():
    """A probe p of 0.03 is significant alone. Among the table's five tests, with the cascade and
    the distributed claim near p = 0 and MLP-vs-attention and IG near p = 1, it ranks third, so
    Holm multiplies it by 5 - 3 + 1 = 3: 0.09, and the claim is no longer supported; the raw p
    stays in brackets."""
    _, t = verdicts(probe_p=0.03, mlp_ahead=False, rho=0.1)
    row = _row(t, "The model represents")
    assert (t["p (Holm)"] != "-").sum() == 5
    assert row["p (Holm)"] == "0.090 (0.030)"
    assert row.verdict == "not supported (p >= 0.05 after Holm)"
    _, t = verdicts(probe_p=0.001, mlp_ahead=False, rho=0.1)
    assert _row(t, "The model represents").verdict == F.SUPPORTED


def controls_table(action_low: dict, control_low: dict):
    """A made-up Table 22: per measure, the contrast's lower bound in each model (upper bound +1)."""
    rows = []
    for measure in ("probe_accuracy", "delta_growth", "patch_output_effect"):
        for model, low in ((F.ACTION, action_low[measure]), (F.CONTROL, control_low[measure])):
            rows.append({"measure": measure, "model": model, "outcome": 1.0, "null": 0.5, "contrast": low + 0.5,
                         "contrast_ci_low": low, "contrast_ci_high": low + 1, "detects": low > 0})
    return pd.DataFrame(rows)


def test_controls_decide_the_outcome_claims():
    """The cascade is supported on outcome pairs; it stays supported only when the delta's growth
    tells outcome pairs from null pairs in the analysed model, and is inconclusive when the method
    cannot tell them apart in the positive control. The claims without a controls measure keep
    their verdicts."""
    tables = make_tables()
    base = dict(zip(*F.claims_table(**tables)[["claim", "verdict"]].to_numpy().T, strict=True))
    yes = {"probe_accuracy": 0.1, "delta_growth": 0.1, "patch_output_effect": 0.1}
    no_growth = yes | {"delta_growth": -0.1}
    t = F.claims_table(**tables, controls=controls_table(yes, yes))
    assert _row(t, "Amplification cascade").verdict == F.SUPPORTED
    assert "contrast 0.6 [0.1, 1.1]" in _row(t, "Amplification cascade")["null pairs"]
    assert "detects" in _row(t, "Amplification cascade")["positive control"]
    t = F.claims_table(**tables, controls=controls_table(no_growth, yes))
    assert _row(t, "Amplification cascade").verdict == "not supported (null pairs show it too)"
    t = F.claims_table(**tables, controls=controls_table(yes, no_growth))
    assert _row(t, "Amplification cascade").verdict == F.INCONCLUSIVE
    assert "misses" in _row(t, "Amplification cascade")["positive control"]
    for claim in ("Both outcomes are classified", "Layer 10 head 8", "(Ours) Integrated gradients"):
        r = _row(t, claim)
        assert r.verdict == base[r.claim] and r["null pairs"] == "-"


def test_the_seed_column_compares_verdicts_claim_by_claim(tmp_path):
    _, t = verdicts()
    for name, flip in (("toy-seed1", False), ("toy-seed2", True)):
        other = t.copy()
        if flip:
            other.loc[other.claim.str.startswith("Amplification"), "verdict"] = F.NOT_SUPPORTED
        (tmp_path / name).mkdir()
        other.to_csv(tmp_path / name / "findings.csv", index=False)
    seeds = F.seed_verdicts(["toy-seed1", "toy-seed2", "toy-seed3"], tmp_path)  # seed3 missing: left out
    assert list(seeds) == ["toy-seed1", "toy-seed2"]
    t2 = F.claims_table(**make_tables(), seeds=seeds)
    assert _row(t2, "Amplification cascade")["other seeds"] == f"differs: toy-seed2 {F.NOT_SUPPORTED}"
    assert _row(t2, "MLPs recover more")["other seeds"] == "same on all 2 other seeds (toy-seed1, toy-seed2)"
    assert _row(t2, "Layer 10 head 8")["other seeds"] == "-"
    # the same verdict for another reason is the same verdict
    mlp = _row(t2, "MLPs recover more")["verdict"]
    claim = next(k for k in seeds["toy-seed1"] if k.startswith("MLPs recover more"))
    seeds["toy-seed1"][claim] = f"{mlp} (null pairs show it too)"
    t3 = F.claims_table(**make_tables(), seeds=seeds)
    assert _row(t3, "MLPs recover more")["other seeds"] == "same on all 2 other seeds (toy-seed1, toy-seed2)"
    seeds["toy-seed1"][claim] = "supported (null pairs show it too)" if mlp != F.SUPPORTED else F.NOT_SUPPORTED
    t4 = F.claims_table(**make_tables(), seeds=seeds)
    assert _row(t4, "MLPs recover more")["other seeds"].startswith("differs: toy-seed1")


@pytest.mark.parametrize("est, lo, hi, paper_value, words", [
    (1.35, 1.24, 1.47, 3.33, "direction reproduced, size not"),
    (3.0, 2.5, 3.5, 3.33, "direction and size reproduced"),
    (1.0, 0.9, 1.1, 3.33, "direction not reproduced"),
    (0.5, 0.4, 0.6, 3.33, "opposite direction"),
])
def test_magnitudes_in_words(est, lo, hi, paper_value, words):
    assert F.magnitude(est, lo, hi, paper_value, 1.0, "x").startswith(words)


def test_notebook_sentences_follow_their_rules():
    assert F.proxy_words(0.51).startswith("a fair proxy") and F.proxy_words(0.5).startswith("a poor proxy")
    assert F.proxy_words(-0.51).startswith("anti-correlated") and F.proxy_words(-0.5).startswith("a poor")
    rec = pd.DataFrame({"attention_time": [1.0, 5.0, 2.0], "attention_space": [3.0, 1.0, 2.0], "mlp": [2.0, 6.0, 2.0]})
    assert F.mlp_ahead_layers(rec, ["attention_time", "attention_space"]) == 1  # ahead of both at one layer only
    assert F.mlp_ahead_layers(rec.rename(columns={"attention_time": "attention"})[["attention", "mlp"]],
                              ["attention"]) == 2
    assert F.single_component_words(99.0) == "a single component reaches 100%"
    assert F.single_component_words(98.9) == "no single component reaches 100%"


def test_readme_controls_block_is_the_committed_tables():
    """README.md's controls paragraph is notebook 09's "What we see", built from the committed
    Tables 22-24; after notebook 09 rewrites them, run `python -m utils.findings`."""
    assert F.readme_current_block(paths.REPO_ROOT / "README.md", F.CONTROLS_START, F.CONTROLS_END) == \
        F.controls_block(), "README's controls paragraph differs from tables 22-24: run `python -m utils.findings`"
