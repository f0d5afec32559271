import numpy as np
import pandas as pd
import pytest

from utils.stats import (
    bootstrap_ci,
    empirical_quantile,
    holm,
    paired_difference,
    per_unit,
    permutation_p_value,
    summarise,
)


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(2.0, 1.0, 20), rng.normal(2.0, 1.0, 2000)
    m_s, lo_s, hi_s = bootstrap_ci(small)
    m_l, lo_l, hi_l = bootstrap_ci(large)
    assert m_s == pytest.approx(small.mean()) and lo_s < m_s < hi_s
    assert hi_l - lo_l < (hi_s - lo_s) / 5  # ~1/sqrt(100) as wide
    # a 95% interval of a mean: about +-1.96 standard errors
    se = large.std(ddof=1) / np.sqrt(len(large))
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_bootstrap_ci_is_deterministic_and_drops_nans():
    v = [1.0, 2.0, np.nan, 4.0, 8.0]
    assert bootstrap_ci(v) == bootstrap_ci(v)
    assert bootstrap_ci(v)[0] == pytest.approx(3.75)
    w = np.random.default_rng(0).normal(size=30)
    assert bootstrap_ci(w, seed=1) == bootstrap_ci(w, seed=1) != bootstrap_ci(w, seed=2)
    assert all(np.isnan(bootstrap_ci([np.nan])))
    const = bootstrap_ci([5.0] * 10)
    assert const == (5.0, 5.0, 5.0)


def _pairs(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"pair": np.repeat([f"p{i}" for i in range(n)], 2),
                         "layer": np.tile([0, 1], n), "value": rng.normal(0, 1, 2 * n)})


def test_summarise_one_row_per_group_with_unit_count():
    df = _pairs()
    out = summarise(df, ["layer"], "value")
    assert out.layer.tolist() == [0, 1] and (out.n_pairs == 30).all()
    for r in out.itertuples():
        est, lo, hi = bootstrap_ci(df[df.layer == r.layer].value)
        assert (r.estimate, r.ci_low, r.ci_high) == (est, lo, hi)
    whole = summarise(df[df.layer == 0], [], "value")
    assert len(whole) == 1 and whole.estimate.iloc[0] == pytest.approx(df[df.layer == 0].value.mean())


def test_summarise_refuses_several_rows_per_pair_and_names_them():
    df = _pairs()
    clips = pd.concat([df.assign(run="strike"), df.assign(run="gutter")])  # two rows per pair and layer
    with pytest.raises(ValueError, match=r"group layer=0 the pair\(s\) p0, p1, .* aggregate per pair first"):
        summarise(clips, ["layer"], "value")
    with pytest.raises(ValueError, match="appear more than once"):
        summarise(clips, [], "value")
    # aggregated per pair, it is accepted, and the interval is over the 30 pairs
    agg = per_unit(clips, ["layer"], "value")
    assert len(agg) == 60
    assert (summarise(agg, ["layer"], "value").n_pairs == 30).all()
    # with the run in the groups, each group again has one row per pair
    assert len(summarise(clips, ["layer", "run"], "value")) == 4


def test_resampling_clips_as_pairs_would_narrow_the_interval():
    """Why the refusal matters: duplicating each pair's row narrows the interval by ~sqrt(2)."""
    df = _pairs(40)
    one = df[df.layer == 0]
    _, lo1, hi1 = bootstrap_ci(one.value)
    _, lo2, hi2 = bootstrap_ci(np.repeat(one.value.values, 2))
    assert (hi2 - lo2) < 0.8 * (hi1 - lo1)


def test_paired_difference_and_its_refusal():
    rng = np.random.default_rng(3)
    n = 25
    base = rng.normal(0, 1, n)
    df = pd.concat([pd.DataFrame({"pair": range(n), "component": "mlp", "layer": 0, "v": base + 1.0}),
                    pd.DataFrame({"pair": range(n), "component": "attention", "layer": 0, "v": base})])
    out = paired_difference(df, ["layer"], "component", "mlp", "attention", "v")
    assert out.estimate.iloc[0] == pytest.approx(1.0)  # pair effects cancel exactly
    assert out.ci_low.iloc[0] == pytest.approx(1.0) and out.ci_high.iloc[0] == pytest.approx(1.0)
    assert out.share_mlp_gt_attention.iloc[0] == 1.0 and out.n_pairs.iloc[0] == n
    with pytest.raises(ValueError, match="aggregate per pair first"):
        paired_difference(pd.concat([df, df]), ["layer"], "component", "mlp", "attention", "v")


def test_permutation_p_value_and_quantile():
    null = np.arange(100) / 100  # 0.00 .. 0.99
    assert permutation_p_value(2.0, null) == pytest.approx(1 / 101)  # never 0
    assert permutation_p_value(0.95, null) == pytest.approx(6 / 101)
    assert permutation_p_value(-1.0, null) == 1.0
    assert empirical_quantile(0.495, null) == pytest.approx(0.5)
    assert empirical_quantile(-1, null) == 0.0


def test_holm_by_hand():
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005, 0.01, 0.03, 0.04, times 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04; running maximum: 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_known_values():
    """Values R's ``p.adjust(p, "holm")`` and statsmodels' ``multipletests(p, method="holm")``
    give (worked out here by the same rule)."""
    # 5 x 0.01, 4 x 0.02, 3 x 0.03, then the running maximum holds 0.09 over 2 x 0.04 and 1 x 0.05
    np.testing.assert_allclose(holm([0.01, 0.02, 0.03, 0.04, 0.05]), [0.05, 0.08, 0.09, 0.09, 0.09])
    np.testing.assert_allclose(holm([0.3, 0.5, 0.02]), [0.6, 0.6, 0.06])  # 3 x 0.02, 2 x 0.3, max(0.6, 0.5)
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])  # 2 x 0.6 = 1.2, capped at 1
    np.testing.assert_allclose(holm([0.01, 0.01, 0.5]), [0.03, 0.03, 0.5])  # ties share a value
    np.testing.assert_allclose(holm([0.04]), [0.04])  # one test: nothing to correct
    assert holm([]).shape == (0,)


def test_holm_passes_nans_keeps_shape_order_and_index():
    adjusted = holm([0.01, np.nan, 0.04, 0.03, 0.005])
    assert np.isnan(adjusted[1])  # and the NaN is not a test: m = 4, as in the worked example
    np.testing.assert_allclose(adjusted[[0, 2, 3, 4]], [0.03, 0.06, 0.06, 0.02])
    grid = holm(np.array([[0.01, 0.04], [0.03, 0.005]]))
    np.testing.assert_allclose(grid, [[0.03, 0.06], [0.06, 0.02]])
    series = holm(pd.Series([0.04, 0.01], index=["probe", "patching"], name="p_value"))
    assert series.index.tolist() == ["probe", "patching"] and series.name == "p_value"
    np.testing.assert_allclose(series.values, [0.04, 0.02])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.2])


def test_holm_between_raw_and_bonferroni_and_monotone():
    p = np.random.default_rng(0).uniform(0, 0.2, 40)
    adjusted = holm(p)
    assert (adjusted >= p).all() and (adjusted <= np.minimum(1, len(p) * p) + 1e-15).all()
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()  # a smaller raw p-value never gets a larger adjusted one


def test_sign_flip_p_is_exact_for_few_units_and_one_sided():
    from utils.stats import sign_flip_p

    assert sign_flip_p([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1 / 16)  # only the observed signs reach the mean
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0], alternative="less") == 1.0
    assert sign_flip_p([1.2, 1.4, 0.9], null_value=1.0) == pytest.approx(2 / 8)  # +0.2 +0.4 -0.1: also -0.2+0.4+0.1
    assert sign_flip_p([-1.0, 1.0]) == pytest.approx(3 / 4)  # means 0, 0, 1, -1 reach 0 three times in four
    assert np.isnan(sign_flip_p([np.nan]))
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_p([1.0], alternative="two-sided")


def test_sign_flip_p_monte_carlo_for_many_units():
    from utils.stats import sign_flip_p

    rng = np.random.default_rng(1)
    assert sign_flip_p(np.full(40, 0.5), n_perm=999) == pytest.approx(1 / 1000)  # never reached by a flip
    nulls = [sign_flip_p(rng.normal(size=30), n_perm=199, seed=k) for k in range(200)]
    assert 0.03 < np.mean(np.array(nulls) < 0.05) < 0.09  # about 5% under H0


def test_the_paper_reading_of_table3_follows_its_numbers(monkeypatch):
    from utils import paper

    assert paper.table3_reading().endswith("the MLP recovers more than patching attention at layers 4-9, and "
                                           "attention recovers more at layer 10.")
    flipped = dict(paper.TABLE3)
    flipped[(10, "mlp")], flipped[(5, "mlp")] = 50.0, 40.0  # MLP ahead at 10, behind at 5
    monkeypatch.setattr(paper, "TABLE3", flipped)
    assert "at layers 4, 6-10, and attention recovers more at layer 5." in paper.table3_reading()


def test_few_pairs_get_a_t_interval_and_many_the_bootstrap():
    """With 4 pairs a percentile bootstrap is far too narrow; the t interval is mean -/+ t_3 s / 2."""
    from utils.stats import MIN_BOOTSTRAP_UNITS, bootstrap_ci, small_sample_ci, t_interval

    est, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, np.nan])
    half = 3.182446305 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert est == 2.5 and np.isclose(lo, 2.5 - half) and np.isclose(hi, 2.5 + half)
    boot = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert hi - lo > 1.5 * (boot[2] - boot[1])  # the bootstrap claims more certainty than 4 pairs hold
    assert small_sample_ci([1.0, 2.0, 3.0, 4.0]) == t_interval([1.0, 2.0, 3.0, 4.0])
    many = np.arange(MIN_BOOTSTRAP_UNITS, dtype=float)
    assert small_sample_ci(many) == bootstrap_ci(many)
    assert np.isnan(t_interval([5.0])[1]) and t_interval([5.0])[0] == 5.0
    assert all(np.isnan(t_interval([np.nan])))
    # a rank correlation's interval stays within [-1, 1]
    est, lo, hi = small_sample_ci([0.2, 0.9, 1.0, 1.0], bounds=(-1, 1))
    assert t_interval([0.2, 0.9, 1.0, 1.0])[2] > 1 and hi == 1.0 and lo == t_interval([0.2, 0.9, 1.0, 1.0])[1]
