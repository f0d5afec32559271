"""Statistics over matched pairs: bootstrap confidence intervals, tidy summaries.

A bootstrap interval describes the unit it resamples. Every interval here is "over pairs":
``summarise`` and ``paired_difference`` resample one value per pair, and refuse a table
that holds several rows for one pair in one group (two clips of a pair, say), since
resampling those rows would treat the clips as independent pairs and shrink the interval.
Aggregate per pair first (``per_unit``), then summarise.

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13) with a fixed seed, so reruns give
identical intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RANK_RESOLUTION = 1e-4  # rank statistics: values closer than this share of the largest |value| are ties
N_BOOT = 2000  # bootstrap resamples
SEED = 0  # bootstrap seed: reruns give identical intervals
LEVEL = 0.95  # confidence level of every interval


def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL):
    """Mean of ``values`` (one per unit, NaNs dropped) and its percentile bootstrap interval:
    ``(mean, low, high)``; all NaN when no value is left."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)  # (n_boot,)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(v.mean()), float(lo), float(hi)


MIN_BOOTSTRAP_UNITS = 20  # below this many units a percentile bootstrap is too narrow: Student t instead


def t_interval(values, level: float = LEVEL):
    """Mean of ``values`` (one per unit, NaNs dropped) and its Student t interval
    ``mean -/+ t_{n-1} s / sqrt(n)``: ``(mean, low, high)``. A percentile bootstrap over a few
    units (the min and max of 2 values, say) claims far more certainty than it has; the t interval
    widens with few units as it should. NaN bounds for fewer than two units."""
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(student_t.ppf(1 - (1 - level) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def small_sample_ci(values, level: float = LEVEL, bounds: tuple[float, float] = (-np.inf, np.inf)):
    """``t_interval`` below ``MIN_BOOTSTRAP_UNITS`` units, the percentile bootstrap from there on;
    the interval is cut to ``bounds``, the values the statistic can take (a rank correlation's
    t interval over 4 pairs can otherwise reach past 1)."""
    v = np.asarray(values, dtype=float)
    n = int((~np.isnan(v)).sum())
    est, lo, hi = t_interval(v, level) if n < MIN_BOOTSTRAP_UNITS else bootstrap_ci(v, level=level)
    return est, float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))


def check_one_row_per_unit(df: pd.DataFrame, by: list[str], unit: str = "pair") -> None:
    """Raise ``ValueError`` if any group of ``by`` holds more than one row for a ``unit``."""
    if unit not in df:
        raise ValueError(f"the table has no {unit!r} column to resample")
    dup = df[df.duplicated(list(by) + [unit], keep=False)]
    if not len(dup):
        return
    first = dup.iloc[0]
    in_group = dup
    for k in by:
        in_group = in_group[in_group[k] == first[k]]
    group = ", ".join(f"{k}={first[k]}" for k in by) or "(all rows)"
    units = sorted(map(str, in_group[unit].unique()))
    shown = ", ".join(units[:5]) + (", ..." if len(units) > 5 else "")
    raise ValueError(
        f"{len(dup)} rows share a {unit} with another row of their group; in group "
        f"{group} the {unit}(s) {shown} appear more than once. A bootstrap over "
        f"{unit}s resamples one value per {unit}: aggregate per {unit} first, e.g. "
        f"utils.stats.per_unit(df, {list(by)!r}, value, unit={unit!r})")


def per_unit(df: pd.DataFrame, by: list[str], value: str, unit: str = "pair",
             how: str = "mean") -> pd.DataFrame:
    """One row per (group of ``by``, ``unit``): ``value`` aggregated with ``how`` (mean, min,
    max, ...) over that unit's rows, e.g. the two clips of a pair."""
    return df.groupby(list(by) + [unit], as_index=False, sort=True)[value].agg(how)


def summarise(df: pd.DataFrame, by: list[str], value: str, unit: str = "pair", ci=None) -> pd.DataFrame:
    """One row per group of ``by`` (``[]``: one row for the whole table): ``estimate`` (mean
    of ``value`` over units), ``ci_low``, ``ci_high`` (95% bootstrap over units, or ``ci``:
    ``small_sample_ci`` for tables of a few units) and ``n_<unit>s`` (units with a value).
    Each unit must have one row per group."""
    ci = ci or bootstrap_ci
    by = list(by)
    check_one_row_per_unit(df, by, unit)
    groups = df.groupby(by, sort=True) if by else [((), df)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        est, lo, hi = ci(g[value].values)
        rows.append({**dict(zip(by, key, strict=True)), "measure": value, "estimate": est,
                     "ci_low": lo, "ci_high": hi, f"n_{unit}s": int(g[value].notna().sum())})
    return pd.DataFrame(rows)


def paired_difference(df: pd.DataFrame, index: list[str], column: str, a: str, b: str,
                      value: str, unit: str = "pair") -> pd.DataFrame:
    """Per ``index`` group: mean over units of ``value[column == a] - value[column == b]``,
    with its bootstrap CI and the share of units where the difference is positive.

    Each unit must have one row per (``index`` group, ``column`` value)."""
    check_one_row_per_unit(df[df[column].isin([a, b])], list(index) + [column], unit)
    wide = df.pivot_table(index=index + [unit], columns=column, values=value).reset_index()
    wide["diff"] = wide[a] - wide[b]
    out = summarise(wide, index, "diff", unit)
    share = wide.groupby(index)["diff"].apply(lambda d: float((d > 0).mean())).reset_index(name=f"share_{a}_gt_{b}")
    out["measure"] = f"{value}: {a} - {b}"
    return out.merge(share, on=index)


def empirical_quantile(observed: float, null) -> float:
    """Share of ``null`` draws at or below ``observed`` (0: below every draw, 1: above all)."""
    null = np.asarray(null, dtype=float)
    return float((null <= observed).mean())


def permutation_p_value(observed: float, null) -> float:
    """One-sided p-value ``(1 + #{null >= observed}) / (1 + n)`` (Phipson & Smyth 2010: never 0)."""
    null = np.asarray(null, dtype=float)
    return float((1 + (null >= observed).sum()) / (1 + len(null)))


def sign_flip_p(values, null_value: float = 0.0, alternative: str = "greater", n_perm: int = 10_000,
                seed: int = SEED) -> float:
    """One-sided sign-flip permutation p-value of a mean over units (pairs, seeds).

    ``values`` one per unit (NaNs dropped); H0: the ``values - null_value`` are symmetric about 0.
    ``alternative="greater"`` tests mean > ``null_value``, ``"less"`` mean < ``null_value``. Exact
    (all ``2^n`` sign patterns) up to 16 units, else ``n_perm`` random patterns plus the observed
    one, ``(1 + #{null mean >= observed}) / (1 + n_perm)`` (``permutation_p_value``). NaN when no
    unit is left."""
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)] - null_value
    if len(v) == 0:
        return float("nan")
    if alternative == "less":
        v = -v
    observed = v.mean()
    if len(v) <= 16:  # exact: every sign pattern once (the observed one among them)
        signs = 1 - 2 * ((np.arange(2 ** len(v))[:, None] >> np.arange(len(v))) & 1)  # (2^n, n)
        null = (signs * v).mean(1)
        return float((null >= observed - 1e-12 * max(1.0, abs(observed))).mean())
    signs = np.where(np.random.default_rng(seed).random((n_perm, len(v))) < 0.5, -1.0, 1.0)
    return permutation_p_value(observed - 1e-12 * max(1.0, abs(observed)), (signs * v).mean(1))


def holm(p_values):
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979), for one family of tests.

    With the m p-values sorted, p_(1) <= ... <= p_(m), the k-th adjusted value is
    ``min(1, max_{j <= k} (m - j + 1) p_(j))``: monotone in the raw p-values, never below its
    raw value nor above Bonferroni's ``min(1, m p)``; rejecting every adjusted p-value <= alpha
    controls the family-wise error rate at alpha. ``p_values`` of any shape (a list, an array
    or a pandas Series) -> adjusted values in the same order and shape (a Series keeps its
    index). NaNs pass through and do not count as tests (m = the number of non-NaN values, as
    R's ``p.adjust``); ties get the same adjusted value.
    """
    series = p_values if isinstance(p_values, pd.Series) else None
    p = np.asarray(p_values, dtype=float)
    finite = ~np.isnan(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[finite][(p[finite] < 0) | (p[finite] > 1)]}")
    raw = p[finite]  # (m,)
    order = np.argsort(raw, kind="stable")
    m = len(raw)
    stepped = np.maximum.accumulate((m - np.arange(m)) * raw[order])  # (m,) in ascending raw order
    adjusted = np.full(p.shape, np.nan)
    sorted_back = np.empty(m)
    sorted_back[order] = np.minimum(stepped, 1.0)
    adjusted[finite] = sorted_back
    if series is not None:
        return pd.Series(adjusted, index=series.index, name=series.name)
    return adjusted


def quantize(values, resolution: float = RANK_RESOLUTION) -> np.ndarray:
    """``values`` rounded to a grid of ``resolution * max |values|`` (NaNs kept): what float noise
    cannot reorder. Ranking the rounded values makes effects that differ by less than that (often
    exact zeros and float noise around them) explicit ties, instead of an order that the CPU's
    summation order decides."""
    v = np.asarray(values, dtype=np.float64)
    top = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 0.0
    if not np.isfinite(top) or top == 0:
        return v
    step = resolution * top
    return np.round(v / step) * step


def spearman(x, y, resolution: float = RANK_RESOLUTION) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` after ``quantize`` (ties get their mean rank)."""
    from scipy.stats import spearmanr

    return float(spearmanr(quantize(x, resolution), quantize(y, resolution)).statistic)


def top_indices(values, k: int, resolution: float = RANK_RESOLUTION) -> np.ndarray:
    """Indices of the ``k`` largest ``values`` after ``quantize``; ties go to the lower index, so
    every machine picks the same set."""
    q = quantize(values, resolution)
    return np.lexsort((np.arange(len(q)), -q))[:k]
