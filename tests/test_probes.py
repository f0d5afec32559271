import numpy as np
import pytest

from utils.probes import grouped_probe, token_split_probe, two_vector_probe


def test_grouped_probe_is_at_chance_on_pair_identity_and_perfect_on_a_real_signal():
    rng = np.random.default_rng(0)
    pairs, d = 20, 16
    pair_code = rng.normal(0, 5, (pairs, d))  # each pair has its own look
    x = np.repeat(pair_code, 2, axis=0) + rng.normal(0, 0.1, (2 * pairs, d))
    labels = np.tile([1, 0], pairs)
    groups = np.repeat(np.arange(pairs), 2)
    noise = grouped_probe(x[:, None], labels, groups)  # nothing encodes the label
    assert noise.accuracy.iloc[0] <= 0.7
    x_sig = x.copy()
    x_sig[:, 0] += np.where(labels == 1, 30.0, -30.0)  # one direction encodes the outcome
    signal = grouped_probe(x_sig[:, None], labels, groups)
    assert signal.accuracy.iloc[0] == pytest.approx(1.0)
    assert signal.n_pairs.iloc[0] == pairs


def test_paper_probes_are_trivially_perfect_on_one_pair():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    assert (two_vector_probe(a, b).accuracy == 1.0).all()
    ta = rng.normal(0, 1, (2, 50, 8)) + 2.0  # tokens of video a share an offset
    tb = rng.normal(0, 1, (2, 50, 8))
    assert (token_split_probe(ta, tb).accuracy > 0.9).all()


def test_grouped_probe_needs_two_pairs():
    with pytest.raises(ValueError, match="two pairs"):
        grouped_probe(np.zeros((2, 1, 3)), np.array([1, 0]), np.array([0, 0]))


def _pairs_data(pairs=24, layers=4, d=12, signal_layer=None, strength=3.0, seed=0):
    """Features ``(clip, layer, d)`` of matched-like pairs: a per-pair look shared by both clips,
    small clip noise, and (at ``signal_layer``) one direction that encodes the outcome."""
    rng = np.random.default_rng(seed)
    look = np.repeat(rng.normal(0, 3, (pairs, layers, d)), 2, axis=0)
    x = look + rng.normal(0, 1, (2 * pairs, layers, d))
    labels = np.tile([1, 0], pairs)
    if signal_layer is not None:
        x[:, signal_layer, 0] += np.where(labels == 1, strength, -strength)
    return x, labels, np.repeat(np.arange(pairs), 2)


def test_closed_form_ridge_probe_equals_scikit_learn():
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from utils.probes import folds, held_out_correct

    x, labels, groups = _pairs_data(pairs=15, layers=3, d=40, signal_layer=1, strength=1.0)
    x[:, :, 5] = 2.0  # a constant feature (StandardScaler leaves its scale at 1)
    ours = held_out_correct(x, labels[None], groups, alpha=1.0)[0]  # (layer, clip)
    for layer in range(3):
        want = np.zeros(len(labels), bool)
        for train, test in folds(groups):
            model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0)).fit(x[train, layer], labels[train])
            want[test] = model.predict(x[test, layer]) == labels[test]
        np.testing.assert_array_equal(ours[layer], want)


def test_within_pair_flips_keep_one_strike_per_pair():
    from utils.probes import within_pair_flips

    labels, groups = np.tile([1, 0], 50), np.repeat(np.arange(50), 2)
    flips = within_pair_flips(labels, groups, n_perm=400, seed=3)
    assert flips.shape == (400, 100)
    assert (flips.reshape(400, 50, 2).sum(-1) == 1).all()  # every pair: one strike, one gutter
    swapped = flips[:, ::2] == 0  # (perm, pair) strike clip relabelled gutter
    assert swapped.mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(flips, within_pair_flips(labels, groups, n_perm=400, seed=3))
    with pytest.raises(ValueError, match="one strike"):
        within_pair_flips(np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1]))


def test_permutation_test_finds_a_real_signal_and_its_layer():
    from utils.probes import permutation_test

    x, labels, groups = _pairs_data(signal_layer=2, strength=6.0)
    res = permutation_test(x, labels, groups, n_perm=200)
    t = res.table
    assert t.loc[t.is_best, "layer"].tolist() == [2]
    assert t.loc[2, "accuracy"] > 0.9
    assert res.p_best == pytest.approx(1 / 201)  # beats every permutation's best layer
    assert (t.p_value >= t.p_uncorrected).all()  # the max statistic is never less strict
    assert res.p_mean_above < 0.05


def test_permutation_test_corrects_the_choice_of_layer_on_noise():
    """Pure noise over 12 layers: the best layer's own (uncorrected) p-value looks small, the
    max-over-layers p-value does not, and the null is centred on 50%."""
    from utils.probes import permutation_test

    x, labels, groups = _pairs_data(pairs=16, layers=12, d=10, seed=5)
    res = permutation_test(x, labels, groups, n_perm=300)
    best = res.table[res.table.is_best].iloc[0]
    assert best.p_value > 0.05
    assert best.p_value > 2 * best.p_uncorrected
    np.testing.assert_allclose(res.null_mean, 0.5, atol=0.02)
    assert 0.05 < res.p_mean_below < 0.95 or 0.05 < res.p_mean_above < 0.95


def test_unmatched_noise_is_centred_on_chance_but_varies_widely():
    """The held-out-pair null is centred on 50% whether or not the two clips of a pair look
    alike; for unrelated clips (unmatched pairs) it is several times wider."""
    from utils.probes import permutation_test

    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (32, 6, 20))  # 16 pairs of unrelated clips, no outcome signal
    labels, groups = np.tile([1, 0], 16), np.repeat(np.arange(16), 2)
    unmatched = permutation_test(x, labels, groups, n_perm=400)
    matched = permutation_test(*_pairs_data(pairs=16, layers=6, d=20, seed=7), n_perm=400)
    for res in (unmatched, matched):
        np.testing.assert_allclose(res.null_mean, 0.5, atol=0.02)
    assert unmatched.null.std(0).mean() > 2 * matched.null.std(0).mean()


def test_grouped_probe_by_pair_with_time_steps():
    from utils.probes import grouped_probe_by_pair

    x, labels, groups = _pairs_data(pairs=10, layers=6, d=8, signal_layer=4, strength=8.0)
    x = x.reshape(20, 3, 2, 8)  # (clip, layer, time step, d): the signal sits at layer 2, step 0
    out = grouped_probe_by_pair(x, labels, groups, site_names=("layer", "time_step"))
    assert len(out) == 3 * 2 * 10 and set(out.columns) == {"layer", "time_step", "pair", "accuracy"}
    acc = out.groupby(["layer", "time_step"]).accuracy.mean()
    assert acc.idxmax() == (2, 0) and acc.max() > 0.9


# ----------------------------------------------------------------------------- the paired probe


def _paired_data(pairs=20, layers=12, d=16, signal_layer=None, strength=1.0, seed=0):
    """Features ``(pair, 2, layer, d)`` (strike at index 0) of matched-like pairs: a large per-pair
    look shared by both clips, clip noise, and (at ``signal_layer``) a direction along which the
    strike clip sits ``strength`` higher than its gutter clip."""
    rng = np.random.default_rng(seed)
    look = rng.normal(0, 5, (pairs, 1, layers, d))
    x = look + rng.normal(0, 1, (pairs, 2, layers, d))
    if signal_layer is not None:
        direction = rng.normal(0, 1, d)
        x[:, 0, signal_layer] += strength * direction / np.linalg.norm(direction)
    return x


def _direct_paired_correct(features, signs):
    """Reference: a loop over permutations, sites and held-out pairs, as the definition reads."""
    diff = features[:, 0] - features[:, 1]  # (pair, layer, d)
    out = np.zeros((len(signs), diff.shape[1], len(diff)), bool)
    for p, s in enumerate(signs):
        flipped = s[:, None, None] * diff
        for site in range(diff.shape[1]):
            for i in range(len(diff)):
                direction = np.delete(flipped[:, site], i, axis=0).mean(0)
                out[p, site, i] = flipped[i, site] @ direction > 0
    return out


def test_paired_probe_equals_a_direct_leave_one_pair_out_loop(monkeypatch):
    from utils import probes
    from utils.probes import pair_sign_flips, paired_differences, paired_held_out_correct

    x = _paired_data(pairs=9, layers=3, d=5, signal_layer=1, strength=1.5, seed=2)
    signs = np.concatenate([np.ones((1, 9)), pair_sign_flips(9, n_perm=40, seed=1)])
    ours = paired_held_out_correct(paired_differences(x), signs)
    np.testing.assert_array_equal(ours, _direct_paired_correct(x, signs))
    assert 0.1 < ours.mean() < 0.9  # a test of both outcomes, not of a constant
    monkeypatch.setattr(probes, "PAIRED_CHUNK", 50)  # blocks of 50 // (3 x 9) = 1 permutation
    np.testing.assert_array_equal(paired_held_out_correct(paired_differences(x), signs), ours)


def test_paired_probe_finds_a_planted_direction_at_its_layer():
    from utils.probes import paired_probe

    x = _paired_data(signal_layer=7, strength=4.0)
    res = paired_probe(x, n_perm=500)
    t = res.table
    assert t.columns[0] == "layer" and len(t) == 12 and (t.n_perm == 500).all()
    assert t.loc[t.is_best, "layer"].tolist() == [7] and t.loc[7, "accuracy"] == 1.0
    # accuracy comes in steps of 1/20 and a random sign pattern now and then scores 100% at
    # some layer (here 2 of 500), so the p-value stops short of 1 / 501
    assert res.p_best <= 0.01 and t.loc[7, "p_uncorrected"] == pytest.approx(1 / 501)
    assert (t.drop(index=7).p_value > 0.05).all()
    assert (t.p_value >= t.p_uncorrected).all()  # the max statistic is never less strict
    np.testing.assert_allclose(res.null_mean, 0.5, atol=0.05)


def test_paired_probe_on_noise_is_not_significant_and_centred_on_chance():
    """No consistent direction (each pair's difference is noise): over many data sets the best
    layer's corrected p-value is rarely small (at least as often as a uniform p-value would be:
    ties of the coarse accuracy make it conservative), while its uncorrected p-value is small
    far more often."""
    from utils.probes import paired_probe

    best_p, best_p_uncorrected, null_means, accuracies = [], [], [], []
    for seed in range(30):
        res = paired_probe(_paired_data(pairs=16, seed=100 + seed), n_perm=300, seed=seed)
        best = res.table[res.table.is_best].iloc[0]
        best_p.append(best.p_value)
        best_p_uncorrected.append(best.p_uncorrected)
        null_means.append(res.null_mean)
        accuracies.append(res.table.accuracy.mean())
    best_p = np.array(best_p)
    assert (best_p <= 0.05).mean() <= 0.1
    assert best_p.mean() > 0.4
    assert (np.array(best_p_uncorrected) <= 0.05).mean() > 2 * max((best_p <= 0.05).mean(), 0.1)
    np.testing.assert_allclose(np.mean(null_means, 0), 0.5, atol=0.02)
    assert np.mean(accuracies) == pytest.approx(0.5, abs=0.05)


def test_paired_probe_flips_every_site_alike():
    """The same sign flips at every site: with the same features at every site, every site has
    the same null, so the max over sites is each site's own null and the two p-values agree."""
    from utils.probes import paired_probe

    one = _paired_data(pairs=14, layers=1, d=8, signal_layer=0, strength=1.0, seed=4)
    res = paired_probe(np.repeat(one, 4, axis=2), n_perm=300)
    for site in range(1, 4):
        np.testing.assert_array_equal(res.null[:, site], res.null[:, 0])
    np.testing.assert_array_equal(res.table.p_value, res.table.p_uncorrected)


def test_paired_probe_by_pair_and_with_time_steps():
    from utils.probes import paired_probe, paired_probe_by_pair
    from utils.stats import summarise

    x = _paired_data(pairs=12, layers=6, d=8, signal_layer=4, strength=6.0, seed=3)
    x = x.reshape(12, 2, 3, 2, 8)  # (pair, clip, layer, time step, d): the signal at layer 2, step 0
    names = ("layer", "time_step")
    by_pair = paired_probe_by_pair(x, site_names=names)
    assert len(by_pair) == 3 * 2 * 12 and set(by_pair.columns) == {"layer", "time_step", "pair", "accuracy"}
    acc = by_pair.groupby(["layer", "time_step"]).accuracy.mean()
    assert acc.idxmax() == (2, 0) and acc.max() == 1.0
    table = paired_probe(x, n_perm=100, site_names=names).table
    np.testing.assert_allclose(table.set_index(list(names)).accuracy, acc)
    assert len(summarise(by_pair, list(names), "accuracy")) == 6  # one row per pair: a CI over pairs


def test_paired_probe_refuses_bad_shapes():
    from utils.probes import paired_probe

    with pytest.raises(ValueError, match=r"\(pair, 2, \*sites, d\)"):
        paired_probe(np.zeros((5, 3, 2, 4)))
    with pytest.raises(ValueError, match="two pairs"):
        paired_probe(np.zeros((1, 2, 2, 4)))
    res = paired_probe(np.zeros((5, 2, 2, 4)), n_perm=20)  # no difference at all: ties count as wrong
    assert (res.table.accuracy == 0).all() and (res.table.p_value == 1).all()
