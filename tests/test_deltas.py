"""Delta norms per layer (Fig. 5) on known differences."""

from types import SimpleNamespace

import pytest
import torch

from utils.deltas import delta_names, delta_norms


def test_delta_norms_on_known_differences(tiny_hooked):
    L, T, D = tiny_hooked.n_layers, tiny_hooked.n_tokens, tiny_hooked.d_model
    b = {n: torch.ones(1, T, D) for n in delta_names(tiny_hooked)}  # every token norm sqrt(D)
    a = {}
    for k, n in enumerate(delta_names(tiny_hooked)):
        d = torch.zeros(1, T, D)
        d[0, :, 0], d[0, :, 1] = 3.0 * k, 4.0 * k  # each token moved by 5k
        d[0, 0, 2] = 12.0 * k  # CLS moved by 13k
        a[n] = b[n] + d
    table = delta_norms(tiny_hooked, SimpleNamespace(cache=a), SimpleNamespace(cache=b))
    assert table.layer.tolist() == list(range(-1, L))
    assert table.site.tolist() == ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(L)]
    k = torch.arange(L + 1, dtype=torch.float64)
    assert table.cls_norm.tolist() == pytest.approx((13 * k).tolist())
    assert table.patch_mean_norm.tolist() == pytest.approx((5 * k).tolist())
    mean = (13 * k + 5 * k * (T - 1)) / T
    assert table.mean_token_norm.tolist() == pytest.approx(mean.tolist())
    assert table.relative.tolist() == pytest.approx((mean / D**0.5).tolist())


def test_delta_norms_of_a_run_with_itself_are_zero(tiny_hooked, tiny_pixels):
    run = tiny_hooked.run(tiny_pixels, names=delta_names(tiny_hooked))
    table = delta_norms(tiny_hooked, run, run, batch_index=1)
    assert (table[["mean_token_norm", "patch_mean_norm", "cls_norm", "relative"]] == 0).all().all()
