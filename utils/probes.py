"""Linear probes for strike vs gutter, per layer (the paper's Fig. 6), and a permutation test.

The paper's probes cannot tell "knows the outcome" from "tells these two videos apart":
fitted on the two CLS vectors of one pair (trivially separable), or on patch tokens
labelled by video with a random 70/30 token split (tokens of one video are near-duplicates
of each other). With many matched pairs we can do better: cross-validation *grouped by
pair*, so a probe is always tested on pairs it never saw (``grouped_probe``).

The grouped probe is a ridge classifier on standardised features (scikit-learn's
``StandardScaler`` + ``RidgeClassifier``, targets -1/+1), written in closed form so that one
matrix per fold serves every labelling at once:

    decision(x_test) = t_bar + Z_test Z_train^T (Z_train Z_train^T + alpha I)^-1 (t - t_bar)

(``Z``: features standardised with the training clips' mean and standard deviation; ``t``:
the training targets). ``tests/test_probes.py`` checks it against scikit-learn's pipeline.

**Selection.** Picking the best of 12 layers and testing its accuracy against 50% is biased
upwards. ``permutation_test`` builds the null by swapping the strike/gutter labels within
pairs (a random sign flip per pair: under "no outcome information" the two clips of a pair
are exchangeable), refitting every probe, and taking the *maximum* held-out accuracy over
all sites (layers, time steps) of each permutation; a site's corrected p-value is the share
of permutations whose maximum reaches its accuracy (Westfall & Young 1993, max-T), so the
best layer's p-value accounts for the choice of layer.

scikit-learn's ``GroupKFold`` makes the folds; ``LogisticRegression`` serves the paper's two
single-pair probes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from utils.stats import permutation_p_value

ALPHA = 1.0  # ridge penalty of the grouped probe (scikit-learn's default)
N_PERM = 1000  # label permutations of the permutation test
PERM_SEED = 0  # seed of the sign flips: reruns give identical p-values


LOGISTIC_TOL = 1e-10  # lbfgs stops at the optimum, not wherever a loose tolerance happens to cut it off
LOGISTIC_MAX_ITER = 20_000  # enough for LOGISTIC_TOL on every toy and paper-scale layer


def _probe(C: float = 1.0):
    """The paper's probe: standardised features, L2-regularised logistic regression (scikit-learn's
    defaults but for the solver and its tolerance). With lbfgs at the default ``tol=1e-4`` the fit
    stops short of the optimum at a point that depends on the float path of the machine, and the
    probe's test accuracy moved by a held-out token between CPUs. Here every machine reaches the
    same (unique, strictly convex) optimum up to rounding: Newton's method with a Cholesky solve
    (``newton-cholesky``: thousands of tokens, at most 768 features) converges to ``LOGISTIC_TOL``
    in a handful of iterations, where lbfgs needed hundreds on nearly separable paper-scale
    layers (minutes per notebook)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=LOGISTIC_TOL, max_iter=LOGISTIC_MAX_ITER,
                                                              solver="newton-cholesky"))


def folds(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``GroupKFold`` splits ``(train index, test index)``: every pair lies wholly on one side."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("a grouped probe needs at least two pairs")
    cv = GroupKFold(n_splits=min(n_splits, n_groups))
    return list(cv.split(np.zeros(len(groups)), groups=groups))


def held_out_correct(features: np.ndarray, label_sets: np.ndarray, groups: np.ndarray,
                     n_splits: int = 5, alpha: float = ALPHA) -> np.ndarray:
    """Whether each clip is classified right when its pair was held out, for many labellings.

    ``features`` ``(clip, site, d)`` (a site: a layer, or a layer and time step),
    ``label_sets`` ``(labelling, clip)`` in {0, 1} (1 = strike), ``groups`` ``(clip,)`` (pair).
    Returns ``(labelling, site, clip)`` booleans. One ridge operator per fold and site serves
    every labelling (the features do not depend on the labels).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.atleast_2d(np.asarray(label_sets))
    t = 2.0 * y - 1.0  # (labelling, clip) targets -1 / +1
    correct = np.zeros((y.shape[0], x.shape[1], x.shape[0]), dtype=bool)
    for train, test in folds(groups, n_splits):
        xtr, xte = x[train].transpose(1, 0, 2), x[test].transpose(1, 0, 2)  # (site, clips, d)
        mu = xtr.mean(1, keepdims=True)
        sd = xtr.std(1, keepdims=True)
        sd[sd == 0] = 1.0  # constant features, as StandardScaler
        ztr, zte = (xtr - mu) / sd, (xte - mu) / sd
        gram = ztr @ ztr.transpose(0, 2, 1) + alpha * np.eye(len(train))  # (site, train, train)
        op = np.linalg.solve(gram, ztr @ zte.transpose(0, 2, 1)).transpose(0, 2, 1)  # (site, test, train)
        ttr = t[:, train]  # (labelling, train)
        tbar = ttr.mean(1)  # (labelling,)
        decision = op @ (ttr - tbar[:, None]).T + tbar  # (site, test, labelling)
        pred = decision.transpose(2, 0, 1) > 0  # (labelling, site, test)
        correct[:, :, test] = pred == (y[:, None, test] == 1)
    return correct


def _site_index(shape: tuple[int, ...], site_names: tuple[str, ...]) -> pd.DataFrame:
    """Site coordinates of features ``(clip, *shape, d)``, one row per flattened site."""
    if len(site_names) != len(shape):
        raise ValueError(f"site_names {site_names} do not match the site dimensions {shape}")
    grid = np.indices(shape).reshape(len(shape), -1).T
    return pd.DataFrame(grid, columns=list(site_names))


def grouped_probe_by_pair(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                          n_splits: int = 5, alpha: float = ALPHA,
                          site_names: tuple[str, ...] = ("layer",)) -> pd.DataFrame:
    """Held-out correctness per pair and site (folds grouped by pair): the ``site_names``
    columns (default ``layer``), ``pair``, ``accuracy`` (share of the pair's clips the probe
    got right when it never saw the pair); average over pairs (``utils.stats.summarise``)
    for an accuracy with a CI. ``features`` ``(clip, *sites, d_model)``."""
    features = np.asarray(features)
    sites = _site_index(features.shape[1:-1], site_names)
    x = features.reshape(len(features), len(sites), -1)
    correct = held_out_correct(x, labels[None], groups, n_splits, alpha)[0]  # (site, clip)
    pairs = np.unique(groups)
    per_pair = np.stack([correct[:, groups == g].mean(1) for g in pairs], 1)  # (site, pair)
    out = sites.loc[sites.index.repeat(len(pairs))].reset_index(drop=True)
    out["pair"] = np.tile(pairs, len(sites))
    out["accuracy"] = per_pair.reshape(-1)
    return out


def grouped_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                  n_splits: int = 5, alpha: float = ALPHA) -> pd.DataFrame:
    """Held-out accuracy per layer with folds grouped by pair.

    ``features`` ``(clip, layer, d_model)``, ``labels`` ``(clip,)`` (1 = strike),
    ``groups`` ``(clip,)`` (pair id). Returns ``layer``, ``accuracy`` (share of clips right
    when their pair was held out), ``n_clips``, ``n_pairs``.
    """
    by_pair = grouped_probe_by_pair(features, labels, groups, n_splits, alpha)
    sizes = pd.Series(groups).value_counts()
    by_pair["n"] = by_pair.pair.map(sizes)
    out = by_pair.assign(right=by_pair.accuracy * by_pair.n).groupby("layer", as_index=False).agg(
        right=("right", "sum"), n_clips=("n", "sum"), n_pairs=("pair", "nunique"))
    out["accuracy"] = out.right / out.n_clips
    return out[["layer", "accuracy", "n_clips", "n_pairs"]]


def within_pair_flips(labels: np.ndarray, groups: np.ndarray, n_perm: int = N_PERM,
                      seed: int = PERM_SEED) -> np.ndarray:
    """``(n_perm, clip)`` labellings: in each, every pair's labels are swapped with
    probability 1/2 (one fair coin per pair). Each pair must hold one strike and one gutter."""
    labels = np.asarray(labels)
    pairs, inverse = np.unique(groups, return_inverse=True)
    for g in pairs:
        if sorted(labels[groups == g].tolist()) != [0, 1]:
            raise ValueError(f"pair {g!r} must hold exactly one strike (1) and one gutter (0) clip "
                             f"to swap its labels; it holds {labels[groups == g].tolist()}")
    flip = np.random.default_rng(seed).random((n_perm, len(pairs))) < 0.5  # (perm, pair)
    return np.where(flip[:, inverse], 1 - labels, labels)


@dataclass
class PermutationResult:
    """What ``permutation_test`` returns (see there)."""

    table: pd.DataFrame  # one row per site
    null: np.ndarray  # (n_perm, site) held-out accuracy under label swaps

    @property
    def null_max(self) -> np.ndarray:
        """``(n_perm,)`` best-site accuracy of each permutation (the max-statistic null)."""
        return self.null.max(1)

    @property
    def null_mean(self) -> np.ndarray:
        """``(site,)`` mean accuracy under permutation: 0.5 unless the cross-validation is biased."""
        return self.null.mean(0)

    @property
    def p_best(self) -> float:
        """Corrected p-value of the best site: is the outcome decodable at *some* site?"""
        return float(self.table.p_value.min())

    @property
    def observed_mean(self) -> float:
        """Accuracy averaged over all sites."""
        return float(self.table.accuracy.mean())

    @property
    def p_mean_below(self) -> float:
        """One-sided p-value that the whole curve (mean over sites) lies *below* chance."""
        return permutation_p_value(-self.observed_mean, -self.null.mean(1))

    @property
    def p_mean_above(self) -> float:
        """One-sided p-value that the whole curve (mean over sites) lies *above* chance."""
        return permutation_p_value(self.observed_mean, self.null.mean(1))


def _max_null_result(sites: pd.DataFrame, acc: np.ndarray) -> PermutationResult:
    """``acc`` ``(1 + perm, site)``: the observed accuracy (row 0) and each permutation's, as a
    ``PermutationResult`` whose p-values are corrected by the maximum over sites (max-T)."""
    observed, null = acc[0], acc[1:]
    null_max = null.max(1)  # (perm,)
    table = sites.copy()
    table["accuracy"] = observed
    table["p_value"] = [permutation_p_value(a, null_max) for a in observed]
    table["p_uncorrected"] = [permutation_p_value(a, null[:, i]) for i, a in enumerate(observed)]
    table["null_mean"] = null.mean(0)
    table["null_q95"] = np.quantile(null, 0.95, axis=0)
    table["is_best"] = observed == observed.max()
    table["n_perm"] = len(null)
    return PermutationResult(table, null)


def permutation_test(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                     n_perm: int = N_PERM, n_splits: int = 5, alpha: float = ALPHA,
                     seed: int = PERM_SEED, site_names: tuple[str, ...] = ("layer",)) -> PermutationResult:
    """Held-out-pair accuracy of every site and its max-statistic permutation p-value.

    ``features`` ``(clip, *sites, d_model)``. The result's ``table`` has one row per site with
    ``accuracy`` (observed, share of clips), ``p_value`` (corrected for the choice among all
    sites: share of permutations whose best site reaches this accuracy), ``p_uncorrected``
    (against the same site's own null), ``null_mean`` and ``null_q95`` (the site's mean and
    95th percentile under permutation), ``is_best`` and ``n_perm``; ``p_best`` is the test of
    "the outcome is decodable at some site", ``p_mean_below`` / ``p_mean_above`` test the
    accuracy averaged over sites against its own null.
    """
    features = np.asarray(features)
    sites = _site_index(features.shape[1:-1], site_names)
    x = features.reshape(len(features), len(sites), -1)
    label_sets = np.concatenate([np.asarray(labels)[None], within_pair_flips(labels, groups, n_perm, seed)])
    acc = held_out_correct(x, label_sets, groups, n_splits, alpha).mean(-1)  # (1 + perm, site)
    return _max_null_result(sites, acc)


def two_vector_probe(cls_a: np.ndarray, cls_b: np.ndarray, C: float = 1.0) -> pd.DataFrame:
    """The notebook's first probe: fit on the two CLS vectors ``(layer, d_model)`` of one pair
    and score on the same two (training accuracy; separable by construction)."""
    rows = []
    for layer in range(cls_a.shape[0]):
        x = np.stack([cls_a[layer], cls_b[layer]])
        y = np.array([1, 0])
        model = LogisticRegression(C=C, tol=LOGISTIC_TOL, max_iter=LOGISTIC_MAX_ITER).fit(x, y)
        rows.append({"layer": layer, "accuracy": float(model.score(x, y))})
    return pd.DataFrame(rows)


def token_split_probe(tokens_a: np.ndarray, tokens_b: np.ndarray, seed: int = 42,
                      test_size: float = 0.3, C: float = 1.0) -> pd.DataFrame:
    """The notebook's second probe: all patch tokens ``(layer, tokens, d_model)`` of two
    videos labelled by video, random 70/30 token split; held-out token accuracy per layer."""
    rows = []
    for layer in range(tokens_a.shape[0]):
        x = np.concatenate([tokens_a[layer], tokens_b[layer]]).astype(np.float64)
        y = np.r_[np.ones(len(tokens_a[layer])), np.zeros(len(tokens_b[layer]))]
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed,
                                              stratify=y)
        rows.append({"layer": layer, "accuracy": float(_probe(C).fit(xtr, ytr).score(xte, yte))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the paired probe
#
# The primary probe test over matched pairs. The two clips of a pair differ only in the outcome,
# so each pair contributes one difference vector d_i = strike_i - gutter_i (per site), and the
# probe needs no fitted weights at all: its direction for pair i is the mean difference of the
# *other* pairs (leave one pair out), and it gets pair i right when the strike clip projects
# higher than the gutter clip, d_i . direction > 0. Under "no outcome information" the two clips
# of a pair are exchangeable, so each d_i is as likely as -d_i: the null flips the sign of each
# pair's difference at random (the same flips at every site) and takes the maximum accuracy over
# sites, as ``permutation_test`` does.
#
# With signs s_j = +-1 and the Gram matrix G_ij = d_i . d_j of one site, pair i's score is
#     s_i d_i . sum_{j != i} s_j d_j = s_i sum_{j != i} G_ij s_j,
# so one product of G (diagonal zeroed: pair i never enters its own direction) with the sign
# matrix scores every pair under every permutation at once. The 1 / (pairs - 1) of the mean
# does not change a sign and is left out.

PAIRED_CHUNK = 2**24  # permutations x sites x pairs scored per block (bounds memory to ~130 MB)


def paired_differences(features: np.ndarray) -> np.ndarray:
    """``features`` ``(pair, 2, *sites, d)`` (index 0 along the second axis: the strike clip,
    1: the gutter clip) -> ``(pair, site, d)`` strike-minus-gutter differences, sites flattened
    in C order (as ``_site_index`` lists them)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim < 3 or features.shape[1] != 2:
        raise ValueError(f"features must be (pair, 2, *sites, d) with strike at index 0 and gutter at 1, "
                         f"got shape {features.shape}")
    if len(features) < 2:
        raise ValueError("a leave-one-pair-out direction needs at least two pairs")
    diff = features[:, 0] - features[:, 1]  # (pair, *sites, d)
    return diff.reshape(len(diff), -1, diff.shape[-1])


def paired_held_out_correct(differences: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Whether each pair is classified right by the mean difference of the other pairs.

    ``differences`` ``(pair, site, d)`` (strike minus gutter), ``signs`` ``(labelling, pair)``
    in {-1, +1} (-1: the pair's strike and gutter swapped). Returns ``(labelling, site, pair)``
    booleans: ``s_i d_i . sum_{j != i} s_j d_j > 0`` (a tie, e.g. no difference at all,
    counts as wrong).
    """
    d = np.asarray(differences, dtype=np.float64).transpose(1, 0, 2)  # (site, pair, d)
    signs = np.atleast_2d(np.asarray(signs, dtype=np.float64))  # (labelling, pair)
    n_site, n_pair, _ = d.shape
    gram = d @ d.transpose(0, 2, 1)  # (site, pair, pair): G_ij = d_i . d_j
    gram[:, np.arange(n_pair), np.arange(n_pair)] = 0.0  # pair i is left out of its own direction
    correct = np.empty((len(signs), n_site, n_pair), dtype=bool)
    step = max(1, PAIRED_CHUNK // (n_site * n_pair))
    for start in range(0, len(signs), step):
        s = signs[start: start + step]  # (chunk, pair)
        others = np.einsum("kij,pj->pki", gram, s)  # (chunk, site, pair): d_i . sum_{j != i} s_j d_j
        correct[start: start + step] = s[:, None, :] * others > 0
    return correct


def pair_sign_flips(n_pairs: int, n_perm: int = N_PERM, seed: int = PERM_SEED) -> np.ndarray:
    """``(n_perm, n_pairs)`` signs in {-1, +1}: each pair's strike and gutter swapped (-1) with
    probability 1/2, one fair coin per pair and permutation (the coins of ``within_pair_flips``)."""
    flip = np.random.default_rng(seed).random((n_perm, n_pairs)) < 0.5  # (perm, pair)
    return np.where(flip, -1.0, 1.0)


def paired_probe_by_pair(features: np.ndarray, site_names: tuple[str, ...] = ("layer",)) -> pd.DataFrame:
    """Held-out correctness per pair and site of the paired probe: the ``site_names`` columns
    (default ``layer``), ``pair`` (index along the first axis) and ``accuracy`` (1.0 if the
    strike clip projects higher than the gutter clip along the other pairs' mean difference,
    else 0.0); average over pairs (``utils.stats.summarise``) for an accuracy with a CI.
    ``features`` ``(pair, 2, *sites, d)``, strike at index 0 of the second axis."""
    features = np.asarray(features)
    sites = _site_index(features.shape[2:-1], site_names)
    correct = paired_held_out_correct(paired_differences(features), np.ones((1, len(features))))[0]  # (site, pair)
    out = sites.loc[sites.index.repeat(len(features))].reset_index(drop=True)
    out["pair"] = np.tile(np.arange(len(features)), len(sites))
    out["accuracy"] = correct.reshape(-1).astype(float)
    return out


def paired_probe(features: np.ndarray, n_perm: int = N_PERM, seed: int = PERM_SEED,
                 site_names: tuple[str, ...] = ("layer",)) -> PermutationResult:
    """The paired probe at every site and its max-over-sites sign-flip p-value.

    ``features`` ``(pair, 2, *sites, d)``: index 0 along the second axis is the strike clip,
    1 the gutter clip of the same pair (e.g. ``(pair, 2, layer, d_model)`` CLS vectors). For
    each site, pair i's direction is the mean strike-minus-gutter difference of the other pairs
    and pair i counts as right when its own difference projects positively on it. The result's
    ``table`` has one row per site with ``accuracy`` (share of pairs right), ``p_value``
    (corrected for the choice among sites: ``(1 + #{permutations whose best site reaches this
    accuracy}) / (1 + n_perm)``), ``p_uncorrected`` (against the site's own null), ``null_mean``,
    ``null_q95``, ``is_best`` and ``n_perm``; ``null`` is ``(n_perm, site)``. The null flips
    the sign of each pair's difference at random, the same flips at every site.
    """
    differences = paired_differences(features)  # (pair, site, d)
    sites = _site_index(np.shape(features)[2:-1], site_names)
    signs = np.concatenate([np.ones((1, len(differences))), pair_sign_flips(len(differences), n_perm, seed)])
    acc = paired_held_out_correct(differences, signs).mean(-1)  # (1 + perm, site)
    return _max_null_result(sites, acc)
