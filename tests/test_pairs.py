"""utils.pairs on a random tiny ViViT with a stand-in for notebook 00's prepared data."""

import numpy as np
import pandas as pd
import pytest
import torch

from utils.attribution import check_completeness
from utils.pairs import (
    PROBE_SITES,
    analyse_pairs,
    clip_readout_features,
    ig_vs_dla_pairs,
    probe_features,
    probe_pairs,
    top_vs_random_pairs,
)
from utils.stats import per_unit, summarise


class FakeData:
    """``pixels(id)`` of ``n`` pairs ``pair000_strike`` / ``pair000_gutter``, ... (random clips)."""

    def __init__(self, n: int, seed: int = 0, prefix: str = "pair"):
        g = torch.Generator().manual_seed(seed)
        self.px = {}
        for i in range(n):
            for o in ("strike", "gutter"):
                self.px[f"{prefix}{i:03d}_{o}"] = torch.randn(1, 4, 3, 32, 32, generator=g)

    def pixels(self, cid):
        return self.px[cid]

    def pairs(self, prefix="pair"):
        names = sorted({i.rsplit("_", 1)[0] for i in self.px if i.startswith(prefix)})
        return [(f"{n}_strike", f"{n}_gutter") for n in names]


@pytest.fixture(scope="module")
def data():
    return FakeData(6)


def test_analyse_pairs_tables_and_the_per_pair_lens(tiny_hooked, data):
    pairs = data.pairs()[:3]
    res = analyse_pairs(tiny_hooked, data, pairs, 1, "matched", progress=False)
    assert set(res) == {"deltas", "patching", "lens", "ablation"}
    lens = res["lens"]
    assert len(lens) == 2 * len(pairs) and set(lens.run) == {"strike", "gutter"}
    # two clips per pair: a bootstrap over pairs must refuse the raw table ...
    with pytest.raises(ValueError, match="aggregate per pair first"):
        summarise(lens, [], "first_top_layer")
    # ... and accept the per-pair means
    per_pair = per_unit(lens, [], "first_top_layer")
    assert len(per_pair) == 3
    assert summarise(per_pair, [], "first_top_layer").n_pairs.iloc[0] == 3
    abl = res["ablation"]
    assert len(abl) == 3 * 2 * 2  # pairs x clips x modes
    assert np.allclose(abl.logit_after - abl.logit_before, abl.delta_target_logit)
    assert set(res["patching"].direction) == {"strike->gutter", "gutter->strike"}


def test_probe_features_are_the_residual_stream(tiny_hooked, data):
    ids = ["pair000_strike", "pair001_gutter"]
    f = probe_features(tiny_hooked, data, ids, batch_size=1)
    L, (T, R, C), d = tiny_hooked.n_layers, tiny_hooked.grid, tiny_hooked.d_model
    assert f["readout"].shape == (2, L, d) and f["patch_mean"].shape == (2, L, d)
    assert f["time_step_mean"].shape == (2, L, T, d)
    run = tiny_hooked.run(data.pixels(ids[1]), names=[f"blocks.{L - 1}.hook_resid_post"])
    x = run[f"blocks.{L - 1}.hook_resid_post"][0]  # (tokens, d_model)
    torch.testing.assert_close(f["readout"][1, L - 1], x[0])
    torch.testing.assert_close(f["patch_mean"][1, L - 1], x[1:].mean(0))
    torch.testing.assert_close(f["time_step_mean"][1, L - 1, 1], x[1 + R * C : 1 + 2 * R * C].mean(0))
    torch.testing.assert_close(clip_readout_features(tiny_hooked, data, ids), f["readout"])


def test_probe_pairs_tables(tiny_hooked, data):
    res = probe_pairs(tiny_hooked, data, {"matched": data.pairs(), "unmatched": data.pairs()[:1]},
                      n_splits=3, n_perm=50)
    L, T = tiny_hooked.n_layers, tiny_hooked.grid[0]
    bp, sites, summary = res["by_pair"], res["sites"], res["summary"]
    assert set(bp.kind) == {"matched"}  # a set of one pair is skipped
    assert set(summary.feature) == set(PROBE_SITES)
    n_sites = {"readout": L, "patch_mean": L, "time_step_mean": L * T}
    for feature, n in n_sites.items():
        assert len(sites[sites.feature == feature]) == n
        assert len(bp[bp.feature == feature]) == n * 6
    assert (bp[bp.feature == "readout"].time_step == -1).all()
    # every pair's accuracy is 0, 0.5 or 1; the site accuracy is their mean
    assert set(bp.accuracy.unique()) <= {0.0, 0.5, 1.0}
    mean = bp.groupby(["feature", "layer", "time_step"]).accuracy.mean()
    got = sites.set_index(["feature", "layer", "time_step"]).accuracy
    pd.testing.assert_series_equal(mean.sort_index(), got.sort_index(), check_names=False)
    assert ((summary.p_best > 0) & (summary.p_best <= 1)).all()
    summarise(bp, ["kind", "feature", "layer", "time_step"], "accuracy")  # one row per pair: accepted


def test_ig_vs_dla_pairs_is_complete(tiny_hooked, data):
    t = ig_vs_dla_pairs(tiny_hooked, data, data.pairs()[:2], 1, steps=48, progress=False)
    assert len(t) == 4 and set(t.run) == {"strike", "gutter"}
    assert t.spearman_ig_dla.between(-1, 1).all() and t.top_overlap.between(0, 1).all()
    np.testing.assert_allclose(t.gap, t.logit - t.baseline_logit, atol=1e-6)
    assert check_completeness(t, rtol=0.01, atol=1e-4) is not None


def test_top_vs_random_pairs(tiny_hooked, data):
    t = top_vs_random_pairs(tiny_hooked, data, data.pairs()[:2], 1, n_draws=20, fraction=0.25, progress=False)
    assert len(t) == 2 * 2 * 2 and list(t.columns[:3]) == ["pair", "kind", "run"]
    assert (t.n_ablated == 2).all() and (t.top_delta != 0).all()
    assert t["rank"].between(1, 21).all() and t.share_random_lower.between(0, 1).all()
    # the random draws are shared by the two scores of a clip
    assert (t.groupby(["pair", "run"]).random_median.nunique() == 1).all()
