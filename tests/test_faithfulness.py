"""MIB's circuit scores (utils.faithfulness): areas, the ratio of means, pairs resampled whole."""

import numpy as np
import pandas as pd
import pytest

from utils import faithfulness as F


def test_areas_of_a_perfect_and_an_empty_curve():
    x = F.MIB_FRACTIONS
    assert F.areas(x, np.ones(len(x))) == pytest.approx((0.999, 0.0))
    assert F.areas(x, np.zeros(len(x))) == pytest.approx((0.0, 0.999))
    cpr, cmd = F.areas([0.0, 0.5, 1.0], [0.0, 2.0, 1.0])  # overshoot counts against CMD
    assert cpr == pytest.approx(0.5 * 1 + 0.5 * 1.5) and cmd == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    with pytest.raises(ValueError, match="increasing"):
        F.areas([0.1, 0.1], [1, 1])


def test_mib_sizes_round_down_as_mib_does():
    assert F.mib_sizes(2000) == [2, 4, 10, 20, 40, 100, 200, 400, 1000, 2000]
    with pytest.raises(ValueError):
        F.mib_sizes(0)


def _raw(values: dict[str, tuple[list[float], float, float]]) -> pd.DataFrame:
    """pair -> (metric at sizes 1, 2, 3; empty; full)."""
    return pd.DataFrame([{"pair": p, "n_edges": n, "metric": m, "metric_empty": e, "metric_full": f}
                         for p, (ms, e, f) in values.items() for n, m in zip((1, 2, 3), ms, strict=True)])


def test_means_are_normalised_so_a_near_zero_denominator_cannot_dominate():
    raw = _raw({"a": ([0, 5, 10], 0, 10), "b": ([0, 5, 10], 0, 10),
                "tiny": ([0, 1, 0.001], 0, 0.001)})  # its own ratio at size 2 would be 100000%
    c = F.curve(raw).set_index("n_edges")
    assert c.faithfulness_pct.loc[2] == pytest.approx(100 * (11 / 3) / (20.001 / 3))
    assert c.metric.loc[2] == pytest.approx(11 / 3) and c.metric_full.loc[3] == pytest.approx(20.001 / 3)
    assert (c.ci_low <= c.faithfulness_pct + 1e-9).all() and (c.faithfulness_pct <= c.ci_high + 1e-9).all()
    flags = F.denominators(raw).set_index("pair").flagged
    assert flags.to_dict() == {"a": False, "b": False, "tiny": True}


def test_intervals_resample_whole_pairs_and_areas_follow_them():
    rng = np.random.default_rng(0)
    n = 1000
    sizes = F.mib_sizes(n)
    rows = []
    for p in range(8):
        level = rng.uniform(0.2, 0.8)
        for k in sizes:
            rows.append({"pair": f"p{p}", "n_edges": k, "metric": 100 * min(1.0, level + k / n),
                         "metric_empty": 0.0, "metric_full": 100.0})
    raw = pd.DataFrame(rows)
    t = F.area_table(raw, n).iloc[0]
    f = F.curve(raw).sort_values("n_edges").faithfulness_pct.to_numpy() / 100
    assert (t.cpr, t.cmd) == pytest.approx(F.areas(F.MIB_FRACTIONS, f))
    assert t.cpr_ci_low < t.cpr < t.cpr_ci_high and t.n_pairs == 8
    assert t.cpr + t.cmd == pytest.approx(0.999)  # f never exceeds 1 here
    with pytest.raises(ValueError, match="MIB's sizes"):
        F.area_table(raw[raw.n_edges != sizes[3]], n)
    with pytest.raises(ValueError, match="every pair needs"):
        F.curve(raw.drop(index=0))


def test_choose_size_takes_the_first_size_over_the_threshold():
    c = pd.DataFrame({"n_edges": [8, 1, 2, 4], "faithfulness_pct": [99, 10, 85, 70]})
    assert F.choose_size(c, 80) == 2 and F.choose_size(c, 99.5) == -1
