"""Linear probes for strike vs gutter, per layer (the paper's Fig. 6).

The paper's probes cannot tell "knows the outcome" from "tells these two videos apart":
fitted on the two CLS vectors of one pair (trivially separable), or on patch tokens
labelled by video with a random 70/30 token split (tokens of one video are near-duplicates
of each other). With many matched pairs we can do better: cross-validation *grouped by
pair*, so a probe is always tested on pairs it never saw (``grouped_probe``).

scikit-learn's ``LogisticRegression`` and ``GroupKFold`` are used rather than hand-written
code: well-tested solvers, standard regularisation, and the grouped splitter we need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _probe(C: float = 1.0):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def grouped_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                  n_splits: int = 5, C: float = 1.0) -> pd.DataFrame:
    """Held-out accuracy per layer with folds grouped by pair.

    ``features`` ``(clip, layer, d_model)``, ``labels`` ``(clip,)`` (1 = strike),
    ``groups`` ``(clip,)`` (pair id). Returns ``layer``, ``accuracy`` (share of clips right
    when their pair was held out), ``n_clips``, ``n_pairs``.
    """
    by_pair = grouped_probe_by_pair(features, labels, groups, n_splits, C)
    sizes = pd.Series(groups).value_counts()
    by_pair["n"] = by_pair.pair.map(sizes)
    out = by_pair.assign(right=by_pair.accuracy * by_pair.n).groupby("layer", as_index=False).agg(
        right=("right", "sum"), n_clips=("n", "sum"), n_pairs=("pair", "nunique"))
    out["accuracy"] = out.right / out.n_clips
    return out[["layer", "accuracy", "n_clips", "n_pairs"]]


def two_vector_probe(cls_a: np.ndarray, cls_b: np.ndarray, C: float = 1.0) -> pd.DataFrame:
    """The notebook's first probe: fit on the two CLS vectors ``(layer, d_model)`` of one pair
    and score on the same two (training accuracy; separable by construction)."""
    rows = []
    for layer in range(cls_a.shape[0]):
        x = np.stack([cls_a[layer], cls_b[layer]])
        y = np.array([1, 0])
        model = LogisticRegression(C=C, max_iter=2000).fit(x, y)
        rows.append({"layer": layer, "accuracy": float(model.score(x, y))})
    return pd.DataFrame(rows)


def token_split_probe(tokens_a: np.ndarray, tokens_b: np.ndarray, seed: int = 42,
                      test_size: float = 0.3, C: float = 1.0) -> pd.DataFrame:
    """The notebook's second probe: all patch tokens ``(layer, tokens, d_model)`` of two
    videos labelled by video, random 70/30 token split; held-out token accuracy per layer."""
    rows = []
    for layer in range(tokens_a.shape[0]):
        x = np.concatenate([tokens_a[layer], tokens_b[layer]])
        y = np.r_[np.ones(len(tokens_a[layer])), np.zeros(len(tokens_b[layer]))]
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed,
                                              stratify=y)
        rows.append({"layer": layer, "accuracy": float(_probe(C).fit(xtr, ytr).score(xte, yte))})
    return pd.DataFrame(rows)


def grouped_probe_by_pair(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                          n_splits: int = 5, C: float = 1.0) -> pd.DataFrame:
    """Held-out correctness per pair and layer (folds grouped by pair): ``layer``, ``pair``,
    ``accuracy`` (share of the pair's clips the probe got right when it never saw the pair);
    average over pairs (with ``utils.stats.summarise``) for an accuracy with a CI."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("a grouped probe needs at least two pairs")
    cv = GroupKFold(n_splits=min(n_splits, n_groups))
    rows = []
    for layer in range(features.shape[1]):
        x = features[:, layer]
        correct = np.zeros(len(labels))
        for train, test in cv.split(x, labels, groups):
            correct[test] = _probe(C).fit(x[train], labels[train]).predict(x[test]) == labels[test]
        for g in np.unique(groups):
            rows.append({"layer": layer, "pair": g, "accuracy": float(correct[groups == g].mean())})
    return pd.DataFrame(rows)
