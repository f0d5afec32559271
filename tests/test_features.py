"""Probe inputs: per-layer residual features and the pair design (notebooks 03 and 05)."""

import numpy as np
import torch

from utils.features import layer_features, pair_design


def test_layer_features_stack_each_layer_at_the_chosen_tokens():
    run = {f"blocks.{i}.hook_resid_post": torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3) + 100 * i
           for i in range(4)}  # (batch, tokens, d_model)
    cls = layer_features(run, 4, tokens=0, batch_index=1)
    assert cls.shape == (4, 3)
    np.testing.assert_array_equal(cls[2], run["blocks.2.hook_resid_post"][1, 0].numpy())
    patches = layer_features(run, 4, tokens=slice(1, None))
    assert patches.shape == (4, 4, 3)
    np.testing.assert_array_equal(patches[3, 0], [303, 304, 305])


def test_pair_design_keeps_pairs_together():
    ids, labels, groups = pair_design([("p0_strike", "p0_gutter"), ("p1_strike", "p1_gutter")])
    assert ids == ["p0_strike", "p0_gutter", "p1_strike", "p1_gutter"]
    assert labels.tolist() == [1, 0, 1, 0]
    assert groups.tolist() == [0, 0, 1, 1]
    ids, labels, groups = pair_design([])
    assert ids == [] and labels.size == groups.size == 0
