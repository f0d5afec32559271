"""CLS attention maps, layouts, peaks and the total-variation distance (notebook 01)."""

import numpy as np
import pytest

from utils.attention import (
    check_layer_head,
    divergence_time_step,
    notebook_layout,
    peaks,
    readout_attention_map,
    readout_attention_names,
    time_step_layout,
    total_variation,
)


def test_cls_map_puts_each_token_at_its_time_step_row_and_col(tiny_hooked, tiny_pixels):
    run = tiny_hooked.run(tiny_pixels, names={"blocks.2.attn.hook_pattern"} | set(readout_attention_names(tiny_hooked)))
    m = readout_attention_map(tiny_hooked, run, layer=2, head=1, batch_index=1)
    assert m.shape == tiny_hooked.grid == (2, 2, 2)
    full = run["blocks.2.attn.hook_pattern"][1, 1, 0].numpy()  # (key,) of the CLS query
    for t, r, c in np.ndindex(*m.shape):
        assert m[t, r, c] == pytest.approx(full[tiny_hooked.token_index(t, r, c)], rel=1e-6)
    assert m.sum() == pytest.approx(1 - full[0], rel=1e-5)  # everything but the CLS entry


def test_layouts_correct_vs_notebook():
    tokens = np.arange(3136)  # ViViT-B's patch tokens in model order
    correct = time_step_layout(tokens, (16, 14, 14))
    assert correct.shape == (16, 196) and correct[3].tolist() == list(range(3 * 196, 4 * 196))
    nb = notebook_layout(tokens, 32)
    assert nb.shape == (32, 98)
    assert nb[1, 0] == 98 and nb[1, 0] // 196 == 0  # the notebook's "frame 1" is half of time step 0
    with pytest.raises(ValueError, match="do not split"):
        notebook_layout(np.arange(10), 4)


def test_peaks_per_time_step():
    m = np.zeros((2, 2, 3))
    m[0, 1, 2], m[0, 0, 0] = 0.3, 0.1
    m[1, 0, 1] = 0.2
    table = peaks({"strike": m, "gutter": m[::-1]}, tubelet_t=2)
    assert table.columns.tolist() == ["run", "time_step", "frames", "patch_attention_sum", "top_patch_row",
                                      "top_patch_col", "top_patch_weight"]
    s = table[table.run == "strike"]
    assert s.frames.tolist() == ["0-1", "2-3"]
    assert s.top_patch_row.tolist() == [1, 0] and s.top_patch_col.tolist() == [2, 1]
    assert s.top_patch_weight.tolist() == pytest.approx([0.3, 0.2])
    assert s.patch_attention_sum.tolist() == pytest.approx([0.4, 0.2])
    g = table[table.run == "gutter"]
    assert g.top_patch_col.tolist() == [1, 2]


def test_total_variation_known_values():
    p = np.array([[[0.5, 0.5], [0, 0]], [[1, 0], [0, 0]]])  # (time step, row, col)
    q = np.array([[[0.25, 0.25], [0.25, 0.25]], [[0, 0], [0, 1]]])
    np.testing.assert_allclose(total_variation(p, q), [0.5, 1.0])
    np.testing.assert_allclose(total_variation(p, 3 * p), [0, 0], atol=1e-12)  # scale of a step does not matter
    np.testing.assert_allclose(total_variation(p, q), total_variation(q, p))


def test_divergence_time_step_and_parameter_checks():
    synthetic = {"clips": [{"id": "canonical_strike", "seed": 400042}]}
    assert divergence_time_step(synthetic, num_frames=16, tubelet_t=2) == 3  # frame 6 = round(0.3 * 16) + 1
    assert divergence_time_step({"clips": [{"id": "strike", "seed": None}]}, 32, 2) is None
    check_layer_head(12, 12, layer=11, head=0)
    with pytest.raises(ValueError, match=r"heatmap_layer=12 is out of range: this model has 12 layers, numbered 0..11"):
        check_layer_head(12, 12, heatmap_layer=12)
    with pytest.raises(ValueError, match=r"head=-1 .* 3 heads"):
        check_layer_head(12, 3, head=-1)
