"""The controls of notebook 09 (utils.controls): contrasts paired by seed, the verdict rules with
their inconclusive case, and the null pairs notebook 00 prepares (utils.data)."""

import json

import numpy as np
import pandas as pd
import pytest

from utils import controls as C
from utils import reading
from utils.data import PAIR_SEED_BASE, load_prepared, pair_kind, prepare, synthetic_clips, synthetic_specs
from utils.findings import NOT_SUPPORTED, SUPPORTED
from utils.synthetic import pair_pixel_difference, render_clip

N_SEEDS = 16


def made_up(effects: dict[tuple[str, str], float], noise: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A ``pair_measures``-like table for both models and pair sets: per seed a baseline that varies
    a lot between seeds (N(10, 5)), the null pair at the baseline, the outcome pair at baseline +
    ``effects[(model, measure)]`` + a noise of +-``noise`` (alternating, so it averages to 0).
    Rows come shuffled, the null pairs in another order than the outcome pairs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(10, 5, N_SEEDS)
    measures = sorted({m for _, m in effects})
    rows = []
    for model in (C.ACTION, C.CONTROL):
        for i in range(N_SEEDS):
            seed_i = PAIR_SEED_BASE + i
            jitter = noise * (1 if i % 2 else -1)
            rows.append({"model": model, "pairs": C.OUTCOME, "seed": seed_i, "pair": f"pair{i:03d}",
                         **{m: base[i] + effects.get((model, m), 0.0) + jitter for m in measures}})
            rows.append({"model": model, "pairs": C.NULL, "seed": seed_i, "pair": f"null{i:03d}",
                         **{m: base[i] for m in measures}})
    return pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)


# ---------------------------------------------------------------------------- contrasts
def test_a_planted_contrast_is_detected_and_the_pairing_is_by_seed():
    table = made_up({(C.ACTION, "m"): 1.0, (C.CONTROL, "m"): 0.0})
    out = C.contrast(table, "m").set_index("model")
    action = out.loc[C.ACTION]
    assert action.estimate == pytest.approx(1.0, abs=1e-9)  # the alternating noise cancels over 16 seeds
    # paired by seed, the between-seed spread (sd 5) cancels: the interval is as narrow as the noise
    assert action.ci_high - action.ci_low < 0.2 and C.detects(action.ci_low)
    assert action.n_seeds == N_SEEDS and action.share_outcome_gt_null == 1.0
    # the same values paired by row position instead of seed: the interval would reach far below 0
    o = table[(table.model == C.ACTION) & (table.pairs == C.OUTCOME)].m.to_numpy()
    n = table[(table.model == C.ACTION) & (table.pairs == C.NULL)].m.to_numpy()
    assert (o - n).std() > 3


def test_a_null_contrast_is_not_detected():
    out = C.contrast(made_up({(C.ACTION, "m"): 0.0}), "m").set_index("model")
    for model in (C.ACTION, C.CONTROL):
        r = out.loc[model]
        assert r.estimate == pytest.approx(0.0, abs=1e-9)
        assert r.ci_low < 0 < r.ci_high and not C.detects(r.ci_low)


def test_a_contrast_uses_the_seeds_that_have_both_pairs_and_refuses_two_rows_per_seed():
    table = made_up({(C.ACTION, "m"): 1.0})
    missing = table.drop(index=table[(table.pairs == C.NULL) & (table.seed == PAIR_SEED_BASE)].index)
    assert C.contrast(missing, "m").set_index("model").loc[C.ACTION].n_seeds == N_SEEDS - 1
    twice = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="aggregate per seed"):
        C.contrast(twice, "m")


# ---------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("action_low, control_low, verdict", [
    (0.1, 0.1, SUPPORTED),
    (-0.1, 0.1, NOT_SUPPORTED),
    (0.0, 0.1, NOT_SUPPORTED),  # an interval that touches 0 does not detect
    (0.1, 0.0, C.INCONCLUSIVE),
    (0.1, -0.1, C.INCONCLUSIVE),
    (-0.1, -0.1, C.INCONCLUSIVE),
    (-0.1, float("nan"), C.INCONCLUSIVE),  # no positive control: nothing to rely on
])
def test_the_verdict_rule_on_both_sides_of_zero(action_low, control_low, verdict):
    assert C.rule_outcome_beyond_pixels(action_low, control_low) == verdict


def test_a_method_that_fails_the_positive_control_is_never_not_supported():
    for action_low in np.linspace(-2, 2, 41):
        for control_low in np.linspace(-2, 0, 21):
            assert C.rule_outcome_beyond_pixels(action_low, control_low) == C.INCONCLUSIVE


def test_the_controls_table_gives_each_measure_its_verdict():
    effects = {(C.ACTION, "both"): 1.0, (C.CONTROL, "both"): 1.0,  # seen in both models
               (C.ACTION, "control_only"): 0.0, (C.CONTROL, "control_only"): 1.0,  # the toy has no outcome
               (C.ACTION, "action_only"): 1.0, (C.CONTROL, "action_only"): 0.0}  # the method fails the control
    t22 = C.controls_table(made_up(effects), measures=("both", "control_only", "action_only")).set_index(
        ["measure", "model"])
    want = {("both", C.ACTION): SUPPORTED, ("control_only", C.ACTION): NOT_SUPPORTED,
            ("action_only", C.ACTION): C.INCONCLUSIVE,
            ("both", C.CONTROL): "detects the outcome", ("control_only", C.CONTROL): "detects the outcome",
            ("action_only", C.CONTROL): "misses the outcome (fails the positive control)"}
    assert t22.verdict.to_dict() == want
    assert t22.loc[("both", C.ACTION), "contrast"] == pytest.approx(1.0)
    both = t22.loc[("both", C.ACTION)]
    assert both.outcome - both.null == pytest.approx(both.contrast)  # paired mean = difference of means
    assert both.null_over_outcome == pytest.approx(both.null / both.outcome)
    text = reading.what_we_see(t22.reset_index())
    assert "inconclusive (the method fails the positive control) for action_only" in text


def test_outcome_and_null_pairs_are_lined_up_by_seed(prepared):
    _, data = prepared
    outcome = [("pair001_strike", "pair001_gutter"), ("pair000_strike", "pair000_gutter")]
    assert C.paired_by_seed(data, outcome, data.null_pairs()) == (
        outcome, [("null001_a", "null001_b"), ("null000_a", "null000_b")])
    assert C.paired_by_seed(data, outcome, data.null_pairs(), n=1) == ([outcome[0]], [("null001_a", "null001_b")])
    assert C.paired_by_seed(data, data.pairs("pair"), data.null_pairs()[1:]) == (
        [("pair001_strike", "pair001_gutter")], [("null001_a", "null001_b")])


def test_the_positive_controls_labels_are_counted_per_pair_set():
    table = pd.DataFrame({"pairs": [C.OUTCOME] * 2 + [C.NULL] * 2, "top_a": [0, 0, 0, 2], "top_b": [1, 0, 0, 0]})
    got = C.outcome_classification(table, strike=0, gutter=1).set_index("pairs")
    assert got.first_clip_called_strike.to_dict() == {C.OUTCOME: 1.0, C.NULL: 0.5}
    assert got.second_clip_called_right.to_dict() == {C.OUTCOME: 0.5, C.NULL: 1.0}  # gutter, resp. strike


def test_the_output_metric_is_one_logit_or_a_logit_difference():
    import torch

    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 1.0]])  # (clip, classes)
    assert C.metric_values(logits, 1).tolist() == [1.0, 2.0]
    assert C.metric_values(logits, (0, 1)).tolist() == [2.0, -1.5]


def test_the_positive_controls_metric_comes_from_its_checkpoint_unless_given():
    from conftest import tiny_loaded

    control = tiny_loaded()  # target class 1
    assert C.control_metric(control, "class3") == (1, 3)
    with pytest.raises(ValueError, match="names no contrast class"):
        C.control_metric(control)
    control.config.contrast_class = "class2"  # as toy-outcome's config.json says "bowling gutter"
    assert C.control_metric(control) == (1, 2)
    assert C.output_metric(control) == 1


def test_pixel_sizes_are_paired_by_seed():
    manifest = {"num_frames": 16, "image_size": 96, "pairs": [
        {"name": "pair000", "kind": "matched", "seed": 1, "pixel_difference": 2.0},
        {"name": "pair001", "kind": "matched", "seed": 2, "pixel_difference": 4.0},
        {"name": "null000", "kind": "null", "seed": 1, "pixel_difference": 1.0},
        {"name": "null001", "kind": "null", "seed": 2, "pixel_difference": 4.0},
    ]}
    sizes = C.pair_pixel_sizes(manifest, [1, 2], gutter_nulls=False)
    t23 = C.pixel_size_table(sizes).set_index("kind")
    assert list(t23.index) == ["matched", "strike null"]
    assert t23.loc["strike null", "pixel_difference"] == pytest.approx(2.5)
    assert t23.loc["strike null", "ratio_to_matched"] == pytest.approx(0.75)  # mean of 0.5 and 1.0


# ---------------------------------------------------------------------------- availability
def test_the_notebook_skips_what_it_cannot_control(toy):
    assert "positive control itself" in C.skip_reason("toy-outcome", "toy-outcome")
    assert "not one" in C.skip_reason("paper-shape", "toy-outcome")
    # another architecture than the positive control's (here the shipped toy ViViT stands in for it)
    assert "timesformer" in C.skip_reason("toy-timesformer", "toy")
    assert C.skip_reason("toy", "/no/such/checkpoint") is not None
    assert C.input_mismatch(toy, toy) is None


def test_a_model_that_reads_other_inputs_is_refused(toy, tiny):
    assert "frames" in C.input_mismatch(toy, tiny) and "image size" in C.input_mismatch(toy, tiny)


# ---------------------------------------------------------------------------- null pairs in the data
def test_null_pairs_follow_every_other_pair_with_the_matched_seeds():
    specs = synthetic_specs(3, 2, 2)
    assert [s[3] for s in specs] == ["canonical", "pair000", "pair001", "pair002", "unmatched000", "unmatched001",
                                     "null000", "null001"]
    assert [s[0] for s in specs] == [-1, 0, 1, 2, 3, 4, 5, 6]
    nulls = {name: (a, b) for _, a, b, name in specs if name.startswith("null")}
    assert nulls == {"null000": (PAIR_SEED_BASE, PAIR_SEED_BASE), "null001": (PAIR_SEED_BASE + 1, PAIR_SEED_BASE + 1)}
    assert synthetic_specs(3, 2) == specs[:-2]  # the other pairs are as they were
    assert [pair_kind(s[3]) for s in specs] == ["canonical", "matched", "matched", "matched", "unmatched",
                                                "unmatched", "null", "null"]


@pytest.fixture(scope="module")
def prepared(toy, tmp_path_factory):
    """Notebook 00's work on the toy model with 2 matched, 1 unmatched and 2 null pairs."""
    folder = tmp_path_factory.mktemp("controls_data")
    clips = synthetic_clips(toy, 2, 1, 2)
    prepare(toy, clips, folder)
    return clips, load_prepared(folder)


def test_null_pairs_are_appended_and_leave_every_other_clip_as_it_was(toy, prepared):
    clips, data = prepared
    before = synthetic_clips(toy, 2, 1)
    assert [c.id for c in clips[: len(before)]] == [c.id for c in before]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(clips, before, strict=False))
    assert data.ids[len(before):] == ["null000_a", "null000_b", "null001_a", "null001_b"]
    assert data.null_pairs() == [("null000_a", "null000_b"), ("null001_a", "null001_b")]
    assert data.pairs("pair") == [("pair000_strike", "pair000_gutter"), ("pair001_strike", "pair001_gutter")]
    # the first clip of null pair i is the strike clip of matched pair i; both clips are strikes
    assert np.array_equal(data.model_frames("null001_a"), data.model_frames("pair001_strike"))
    assert np.array_equal(clips[data.index("null000_a")].frames,
                          render_clip("bowling", PAIR_SEED_BASE, "strike", toy.num_frames, toy.image_size))
    assert not np.array_equal(data.model_frames("null000_a"), data.model_frames("null000_b"))
    outcome = {c["id"]: c["outcome"] for c in data.manifest["clips"]}
    assert outcome["null000_a"] == outcome["null000_b"] == "strike"


def test_the_manifest_records_every_pair_and_its_pixel_size(prepared):
    clips, data = prepared
    by_id = {c.id: c for c in clips}
    pairs = json.loads((data.folder / "manifest.json").read_text())["pairs"]
    assert [(p["name"], p["kind"]) for p in pairs] == [
        ("canonical", "canonical"), ("pair000", "matched"), ("pair001", "matched"), ("unmatched000", "unmatched"),
        ("null000", "null"), ("null001", "null")]
    for p in pairs:
        a, b = (by_id[c] for c in p["clips"])
        assert p["seed"] == a.seed
        assert p["pixel_difference"] == round(pair_pixel_difference(a.frames, b.frames), 4) > 0
    size = {p["name"]: p["pixel_difference"] for p in pairs}
    assert size["unmatched000"] > 5 * size["pair000"]  # another seed: every pixel differs


# ---------------------------------------------------------------------------- measures on the toy model
def test_a_pair_of_identical_clips_measures_zero(toy_hooked, prepared):
    _, data = prepared
    m = C.pair_measures(toy_hooked, data, [("pair000_strike", "pair000_strike")] * 2, 0, 0).table
    cols = ["delta_final", "readout_delta", "output_delta", "patch_output_effect", "probe_accuracy", "atp_head_effect"]
    assert (m[cols].abs().to_numpy() < 1e-4).all()  # patched runs batch differently: float noise only


def test_measures_agree_with_notebook_06s_patching_and_the_models_own_logits(toy, toy_hooked, prepared):
    _, data = prepared
    pairs = data.pairs("pair")
    light = C.pair_measures(toy_hooked, data, pairs, (0, 1), 0)
    shared = C.pair_measures(toy_hooked, data, pairs[:1], (0, 1), 0, shared_kind="matched")  # via analyse_pair
    same = ["delta_final", "delta_growth", "readout_delta", "output_delta", "metric_a", "metric_b", "top_a"]
    pd.testing.assert_frame_equal(light.table[same].iloc[:1], shared.table[same])
    assert light.table.patch_output_effect[0] == pytest.approx(shared.table.patch_output_effect[0], rel=1e-4)
    assert light.features.shape == (2, 2, toy.n_layers, toy.config.hidden_size)
    logits = toy.logits(data.pixels("pair001_gutter")).double()[0]
    assert light.table.metric_b.iloc[1] == pytest.approx(float(logits[0] - logits[1]), abs=1e-4)
    assert light.table.seed.tolist() == [PAIR_SEED_BASE, PAIR_SEED_BASE + 1]
    # AtP over heads as notebook 08 computes it (utils.discovery: cached runs, the target's own prefix)
    from utils import discovery as D
    from utils.patching import head_patches

    s, t = D._runs(toy_hooked, {k: data.pixels(k) for k in pairs[0]}, *pairs[0])
    est = D._estimates(toy_hooked, head_patches(toy_hooked, s.cache), s, t, 0, star=False)["atp_logit"]
    assert light.table.atp_head_effect[0] == pytest.approx(float(np.abs(est).mean()), rel=1e-4)
    assert 0 <= light.table.delta_before_divergence.min() <= light.table.delta_before_divergence.max() < 1
    summary = C.probe_summary(light.features, n_perm=50, model=C.ACTION, pairs=C.OUTCOME)
    assert summary["n_pairs"] == 2 and 0 <= summary["accuracy"] <= 1 and summary["model"] == C.ACTION
