"""Statistics over matched pairs: bootstrap confidence intervals, tidy summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_BOOT = 2000  # bootstrap resamples
SEED = 0  # bootstrap seed: reruns give identical intervals


def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = SEED, level: float = 0.95):
    """Mean of ``values`` and its percentile bootstrap interval ``(mean, low, high)``."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(v.mean()), float(lo), float(hi)


def summarise(df: pd.DataFrame, by: list[str], value: str, unit: str = "pair") -> pd.DataFrame:
    """One row per group of ``by``: ``estimate`` (mean of ``value`` over units), ``ci_low``,
    ``ci_high`` (95% bootstrap) and ``n_pairs``."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        est, lo, hi = bootstrap_ci(g[value].values)
        rows.append({**dict(zip(by, key, strict=True)), "measure": value, "estimate": est,
                     "ci_low": lo, "ci_high": hi, f"n_{unit}s": g[unit].nunique()})
    return pd.DataFrame(rows)


def paired_difference(df: pd.DataFrame, index: list[str], column: str, a: str, b: str,
                      value: str, unit: str = "pair") -> pd.DataFrame:
    """Per ``index`` group: mean over units of ``value[column == a] - value[column == b]``,
    with its bootstrap CI and the share of units where the difference is positive."""
    wide = df.pivot_table(index=index + [unit], columns=column, values=value).reset_index()
    wide["diff"] = wide[a] - wide[b]
    out = summarise(wide, index, "diff", unit)
    share = wide.groupby(index)["diff"].apply(lambda d: float((d > 0).mean())).reset_index(name=f"share_{a}_gt_{b}")
    out["measure"] = f"{value}: {a} - {b}"
    return out.merge(share, on=index)
