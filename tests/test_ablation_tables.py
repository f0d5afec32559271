"""Notebook 05's tables, assembled from utils.ablation (Tables 1-2, component ablation)."""

import pandas as pd
import pytest

from utils.ablation import before_after, component_ablation, random_tokens, top_fraction_ablation, zero_tubelets
from utils.ablation_tables import CONTROL, component_ablation_table, target_changes, token_ablation_table


def test_token_ablation_table_is_every_mode_then_the_random_control(tiny_hooked, tiny_pixels):
    px, target = tiny_pixels[:1], 1
    table = token_ablation_table(tiny_hooked, px, target, fraction=0.25, control_seed=3)
    assert table["mode"].unique().tolist() == ["faithful", "corrected", CONTROL]
    assert (table.n_ablated == 2).all()  # int(0.25 * 8 patches)
    for mode in ("faithful", "corrected"):  # the same rows as the ablation alone
        want = top_fraction_ablation(tiny_hooked, px, target, mode=mode, fraction=0.25)["table"]
        got = table[table["mode"] == mode].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-5)
    before = tiny_hooked.run(px).logits[0]
    after = tiny_hooked.run(zero_tubelets(tiny_hooked, px, random_tokens(tiny_hooked, 2, 3), "corrected")).logits[0]
    ctrl = before_after(before, after, tiny_hooked.loaded.id2label, include=target)
    got = table[table["mode"] == CONTROL]
    assert got.score.unique().tolist() == ["random"]
    assert got.logit_after.tolist() == pytest.approx(ctrl.logit_after.tolist(), rel=1e-5)
    assert (table.groupby("mode").class_index.apply(lambda c: target in set(c))).all()


def test_component_ablation_table_stacks_runs_and_modes(tiny_hooked, tiny_pixels):
    pixels = {"strike": tiny_pixels[:1], "gutter": tiny_pixels[1:]}
    table = component_ablation_table(tiny_hooked, pixels, 1, reference_pixels=tiny_pixels, heads=True)
    L, H = tiny_hooked.n_layers, tiny_hooked.n_heads
    sizes = table.groupby(["run", "how"], sort=False).size()
    assert sizes.to_dict() == {("strike", "zero"): 2 * L, ("strike", "mean"): 2 * L + L * H,
                               ("gutter", "zero"): 2 * L, ("gutter", "mean"): 2 * L + L * H}
    want = component_ablation(tiny_hooked, tiny_pixels[1:], 1, how="mean", heads=True, reference_pixels=tiny_pixels)
    got = table[(table.run == "gutter") & (table.how == "mean")].drop(columns="run").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-5)


def test_target_changes():
    table = pd.DataFrame({
        "mode": ["faithful"] * 2 + ["corrected"] * 2 + [CONTROL] * 2,
        "class_index": [1, 0] * 3,
        "logit_before": [5.0, 4.0] * 3,
        "logit_after": [4.5, 4.2, 3.9, 4.1, 4.8, 4.0],
        "change": [-0.5, 0.2, -1.1, 0.1, -0.2, 0.0],
    })
    got = target_changes(table, 1)
    assert got["logit_before"] == 5.0
    assert got["change"] == pytest.approx({"faithful": -0.5, "corrected": -1.1, CONTROL: -0.2})
    assert got["stays_top"] is False  # after the corrected ablation class 0 leads (4.1 > 3.9)
    assert target_changes(table, 0)["stays_top"] is True

