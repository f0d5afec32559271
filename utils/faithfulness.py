"""Circuits judged the way the MIB benchmark judges them (Mueller et al., 2025, circuit localisation).

A circuit of ``n`` edges is run on a clean input with every other edge ablated; its *metric*
``M(n)`` (``utils.atp``: the readout projection, the logit difference or minus the KL divergence
to the full model's output) is compared with the full model's ``M(full)`` and the empty
circuit's ``M(empty)``. As MIB does, the metric is **averaged over pairs before it is
normalised**:

    f(n) = (mean M(n) - mean M(empty)) / (mean M(full) - mean M(empty)),

so a pair whose own denominator is near zero cannot dominate the average (the per-pair ratio
can swing to +-1000 %; ``denominators`` flags such pairs and they stay visible in the
unnormalised columns). The curve is read at MIB's edge fractions ``MIB_FRACTIONS`` (0.1 % ...
100 %, ``n = int(fraction * edges)``), and summarised by two areas over the fraction axis
(trapezoid rule, linear axis, MIB's ``evaluate_area_under_curve``):

* **CPR** (circuit performance ratio): the area under ``f``; higher is better;
* **CMD** (circuit-model difference): the area between ``f`` and 1, ``|1 - f|``; lower is better.

Intervals resample *pairs* (``utils.stats``: 2000 resamples, seed 0): every resample recomputes
the ratio of means and the areas from the same resampled pairs.

**Protocol.** The size reported as "the circuit" is chosen on the pairs that scored the edges
(``choose_size`` reads a curve of discovery pairs only); held-out pairs only judge it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.stats import LEVEL, N_BOOT, SEED

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # MIB's edge fractions
NEAR_ZERO = 0.05  # a pair whose |M(full) - M(empty)| is under this share of the median over pairs is flagged
RAW_COLUMNS = ["pair", "n_edges", "metric", "metric_empty", "metric_full"]


def mib_sizes(n_edges: int, fractions=MIB_FRACTIONS) -> list[int]:
    """Edge counts at ``fractions`` of a graph of ``n_edges`` edges, as MIB rounds them (``int``)."""
    if n_edges < 1:
        raise ValueError(f"a graph needs at least one edge, got n_edges={n_edges}")
    return [int(f * n_edges) for f in fractions]


def areas(fractions, faithfulness) -> tuple[float, float]:
    """``(CPR, CMD)`` of a faithfulness curve (fractions of 1, not percent) over ``fractions``:
    the trapezoid areas under ``f`` and between ``f`` and 1."""
    x = np.asarray(fractions, dtype=float)
    f = np.asarray(faithfulness, dtype=float)
    if x.shape != f.shape or len(x) < 2 or np.any(np.diff(x) <= 0):
        raise ValueError(f"areas need increasing fractions and one faithfulness value each "
                         f"(got {len(x)} fractions, {len(f)} values)")
    width = np.diff(x)
    cpr = float(np.sum(width * (f[1:] + f[:-1]) / 2))
    gap = np.abs(1 - f)
    cmd = float(np.sum(width * (gap[1:] + gap[:-1]) / 2))
    return cpr, cmd


def _matrices(raw: pd.DataFrame) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pairs, sizes, M (pair, size), M(empty) (pair,), M(full) (pair,))`` of one group."""
    missing = [c for c in RAW_COLUMNS if c not in raw]
    if missing:
        raise KeyError(f"a faithfulness table needs the columns {RAW_COLUMNS}; missing {missing}")
    wide = raw.pivot_table(index="pair", columns="n_edges", values="metric", aggfunc="first", sort=True)
    if wide.isna().any().any():
        raise ValueError("every pair needs a metric at every circuit size (a resample keeps pairs whole)")
    ends = raw.groupby("pair", sort=True)[["metric_empty", "metric_full"]].first().loc[wide.index]
    return (list(wide.index), wide.columns.to_numpy(), wide.to_numpy(float),
            ends.metric_empty.to_numpy(float), ends.metric_full.to_numpy(float))


def _ratio_of_means(m: np.ndarray, empty: np.ndarray, full: np.ndarray) -> np.ndarray:
    """``f`` per size (fractions of 1) from the pair axis ``-2`` of ``m`` and ``-1`` of the ends."""
    e, f = empty.mean(-1), full.mean(-1)
    return (m.mean(-2) - e[..., None]) / (f - e)[..., None]


def _resamples(n_pairs: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_pairs, (n_boot, n_pairs))


def curve(raw: pd.DataFrame, by: list[str] = (), n_boot: int = N_BOOT, seed: int = SEED,
          level: float = LEVEL) -> pd.DataFrame:
    """Per group of ``by`` and circuit size: ``faithfulness_pct`` (ratio of means, percent) with
    its interval over pairs, the unnormalised means ``metric``, ``metric_empty``, ``metric_full``,
    and ``n_pairs``."""
    rows = []
    groups = raw.groupby(list(by), sort=True) if by else [((), raw)]
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        pairs, sizes, m, empty, full = _matrices(g)
        est = _ratio_of_means(m, empty, full)
        idx = _resamples(len(pairs), n_boot, seed)
        boot = _ratio_of_means(m[idx], empty[idx], full[idx])  # (n_boot, size)
        lo, hi = np.nanquantile(boot, q, axis=0)
        for j, n in enumerate(sizes):
            rows.append({**dict(zip(by, key, strict=True)), "n_edges": int(n),
                         "faithfulness_pct": 100 * est[j], "ci_low": 100 * lo[j], "ci_high": 100 * hi[j],
                         "metric": m[:, j].mean(), "metric_empty": empty.mean(), "metric_full": full.mean(),
                         "n_pairs": len(pairs)})
    return pd.DataFrame(rows)


def area_table(raw: pd.DataFrame, n_total: int, by: list[str] = (), fractions=MIB_FRACTIONS,
               n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL) -> pd.DataFrame:
    """CPR and CMD per group of ``by`` with intervals over pairs: ``raw`` holds every pair's metric
    at ``mib_sizes(n_total, fractions)`` (other sizes are ignored)."""
    sizes = mib_sizes(n_total, fractions)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"{n_total} edges give repeated sizes at MIB's fractions ({sizes}); the graph is too small "
                         f"for the smallest fractions")
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    rows = []
    groups = raw.groupby(list(by), sort=True) if by else [((), raw)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        g = g[g.n_edges.isin(sizes)]
        pairs, have, m, empty, full = _matrices(g)
        if list(have) != sorted(sizes):
            raise ValueError(f"{dict(zip(by, key, strict=True))}: metrics at {list(have)}, MIB's sizes are {sizes}")
        est = areas(fractions, _ratio_of_means(m, empty, full))
        idx = _resamples(len(pairs), n_boot, seed)
        boot = np.array([areas(fractions, f) for f in _ratio_of_means(m[idx], empty[idx], full[idx])])
        lo, hi = np.nanquantile(boot, q, axis=0)
        rows.append({**dict(zip(by, key, strict=True)),
                     "cpr": est[0], "cpr_ci_low": lo[0], "cpr_ci_high": hi[0],
                     "cmd": est[1], "cmd_ci_low": lo[1], "cmd_ci_high": hi[1], "n_pairs": len(pairs)})
    return pd.DataFrame(rows)


def choose_size(discovery_curve: pd.DataFrame, threshold_pct: float) -> int:
    """The fewest edges whose faithfulness reaches ``threshold_pct`` on the curve given, which must
    come from the discovery pairs (the pairs that scored the edges), never from the pairs that
    judge the circuit: columns ``n_edges``, ``faithfulness_pct``. ``-1`` when no size reaches it."""
    c = discovery_curve.sort_values("n_edges")
    above = c[c.faithfulness_pct >= threshold_pct]
    return int(above.n_edges.iloc[0]) if len(above) else -1


def denominators(raw: pd.DataFrame, by: list[str] = (), near_zero: float = NEAR_ZERO) -> pd.DataFrame:
    """Per pair (and group of ``by``): ``M(full) - M(empty)`` and ``flagged`` when its size is under
    ``near_zero`` of the median size over the group's pairs: the per-pair ratio of such a pair is
    noise, which is why ``curve`` normalises means."""
    ends = raw.groupby([*by, "pair"], sort=True)[["metric_empty", "metric_full"]].first().reset_index()
    ends["denominator"] = ends.metric_full - ends.metric_empty
    scale = ends.groupby(list(by))["denominator"].transform(lambda d: d.abs().median()) if by else \
        ends.denominator.abs().median()
    ends["flagged"] = ends.denominator.abs() < near_zero * scale
    return ends
