"""Rank statistics that float noise cannot move: ``utils.stats.quantize``, ``spearman``, ``top_indices``."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from utils.stats import RANK_RESOLUTION, quantize, spearman, top_indices


def test_quantize_merges_values_closer_than_the_resolution_only():
    v = np.array([10.0, 10.0 + 1e-7, 5.0, 1e-9, -1e-9, 0.0, np.nan])
    q = quantize(v)
    assert q[0] == q[1] and q[3] == q[4] == q[5] == 0 and np.isnan(q[6])
    assert q[2] != q[0] and q[2] != q[3]
    assert quantize(v, resolution=1e-12)[0] != quantize(v, resolution=1e-12)[1]
    assert np.array_equal(quantize(np.zeros(3)), np.zeros(3))
    assert np.abs(quantize(v) - v)[:6].max() <= RANK_RESOLUTION * 10 / 2 + 1e-12


def test_spearman_is_blind_to_the_order_of_float_noise():
    exact = np.array([9.0, 7.0, 5.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    rng = np.random.default_rng(0)
    a = exact + 1e-9 * rng.standard_normal(8)  # one machine's float noise ...
    b = exact + 1e-9 * rng.standard_normal(8)  # ... and another's
    assert spearman(exact, a) == spearman(exact, b) == pytest.approx(1.0)
    assert spearmanr(a, b).statistic < 1.0  # scipy alone ranks the noise among the zeros
    assert spearman(exact, exact[::-1]) < 0


def test_top_indices_break_ties_by_index_and_ignore_noise():
    v = np.array([1.0, 3.0, 3.0 + 1e-9, 2.0, 3.0 - 1e-9])
    assert top_indices(v, 2).tolist() == [1, 2]  # 1, 2 and 4 tie; the lowest indices win
    assert top_indices(v, 4).tolist() == [1, 2, 4, 3]
    assert top_indices(-v, 1).tolist() == [0]
