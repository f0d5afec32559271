"""What a strike-vs-gutter probe reads: per-layer residual features, and labelled clip lists.

``layer_features`` stacks one run's residual stream after every block, at the CLS token
(``(layer, d_model)``) or at the patch tokens (``(layer, patches, d_model)``), the inputs of the
paper's two single-pair probes (``utils.probes``). ``pair_design`` lays the clips of many
pairs out for a pair-grouped probe: each pair's strike clip then its gutter clip, label 1 for
strike and 0 for gutter, and the pair's number as the group (so cross-validation folds never
split a pair).
"""

from __future__ import annotations

import numpy as np

from utils.plotting import to_numpy


def layer_features(run, n_layers: int, tokens: int | slice = 0, batch_index: int = 0) -> np.ndarray:
    """``blocks.{l}.hook_resid_post[batch_index, tokens]`` for every layer ``l``, stacked:
    ``(layer, d_model)`` for one token (0 = CLS), ``(layer, tokens, d_model)`` for a slice
    (``slice(1, None)``: the patch tokens)."""
    return np.stack([to_numpy(run[f"blocks.{layer}.hook_resid_post"][batch_index, tokens])
                     for layer in range(n_layers)])


def readout_features(hooked, run, batch_index: int = 0) -> np.ndarray:
    """``(layer, d_model)``: what the classifier would read after every block (the CLS token;
    VideoMAE, which has none: the mean of all tokens)."""
    one = slice(batch_index, batch_index + 1)
    return np.stack([to_numpy(hooked.readout_tokens(run[f"blocks.{layer}.hook_resid_post"][one])[0])
                     for layer in range(hooked.n_layers)])


def patch_features(hooked, run, batch_index: int = 0) -> np.ndarray:
    """``(layer, patches, d_model)``: the patch tokens after every block, in token order."""
    return layer_features(run, hooked.n_layers, tokens=slice(hooked.n_prefix, None), batch_index=batch_index)


def pair_design(pairs: list[tuple[str, str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``pairs`` of ``(strike id, gutter id)`` -> ``(ids, labels, groups)``: the clip ids in
    pair order (strike first), labels ``(clip,)`` 1 = strike / 0 = gutter, and groups
    ``(clip,)`` the index of each clip's pair."""
    ids = [clip for pair in pairs for clip in pair]
    labels = np.tile([1, 0], len(pairs))
    groups = np.repeat(np.arange(len(pairs)), 2)
    return ids, labels, groups
