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
