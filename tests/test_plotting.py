"""The plotting helpers draw the numbers they are given, on the scales they promise."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import QuadMesh

from utils.arch import ADAPTERS
from utils.plotting import (
    ATTN,
    COMPONENT_COLOURS,
    MLP,
    ablation_change_bars,
    component_ablation_figure,
    delta_norm_panels,
    dla_figure,
    even_steps,
    heatmap,
    logit_lens_figure,
    probe_curves,
    recovery_bars,
    symmetric_limit,
    to_numpy,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_numpy_from_any_tensor():
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_(True)
    np.testing.assert_array_equal(to_numpy(x * 1), np.arange(6).reshape(2, 3))
    b = to_numpy(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    assert b.dtype == np.float32 and b.tolist() == [1.5, -2.0]
    with torch.inference_mode():
        assert to_numpy(torch.ones(2)).tolist() == [1.0, 1.0]
    assert to_numpy([1, 2]).tolist() == [1, 2]


def test_even_steps():
    assert even_steps(16).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert even_steps(5).tolist() == [0, 1, 2, 3, 4]
    assert even_steps(16, n=3).tolist() == [0, 8, 15]


def _mesh(ax):
    return next(c for c in ax.collections if isinstance(c, QuadMesh))


def test_heatmap_honours_a_fixed_scale():
    fig, ax = plt.subplots()
    heatmap(ax, torch.tensor([[0.0, 1.0], [2.0, 3.0]]), "t", "x", "y", vmin=-5, vmax=5)
    assert _mesh(ax).get_clim() == (-5, 5)
    assert symmetric_limit(np.array([1.0, -4.0]), torch.tensor([3.0])) == 4.0
    assert symmetric_limit(np.zeros(3)) == 1.0


def test_logit_lens_panels_share_one_colour_scale():
    """Fig. 2b and 2c: both runs on the same symmetric scale, set by the larger of the two."""
    lens = pd.DataFrame({"run": ["strike"] * 3 + ["gutter"] * 3, "layer": [0, 1, 2] * 2,
                         "logit": [0.1, 0.5, 2.0, 0.2, 0.4, 1.5]})
    frames = {"strike": np.array([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]]),  # (layer, time step)
              "gutter": np.array([[0.1, -7.0], [0.2, 0.0], [0.3, 0.3]])}
    fig = logit_lens_figure(lens, frames, "bowling")
    assert [_mesh(fig.axes[i]).get_clim() for i in (1, 2)] == [(-7.0, 7.0), (-7.0, 7.0)]
    line = fig.axes[0].get_lines()
    assert line[0].get_ydata().tolist() == [0.1, 0.5, 2.0] and line[1].get_ydata().tolist() == [0.2, 0.4, 1.5]


def test_dla_figure_draws_each_term():
    rows = [("embed", -1, 0.5), ("constant", -1, -0.25)]
    rows += [(c, layer, v) for layer in range(3) for c, v in (("attention", layer + 1.0), ("mlp", -layer - 0.5))]
    d = pd.DataFrame(rows, columns=["component", "layer", "logit"])
    dla = pd.concat([d.assign(run="strike"), d.assign(run="gutter", logit=2 * d.logit)])
    fig = dla_figure(dla, {"strike": 4.0, "gutter": 8.0}, "bowling")
    ax = fig.axes[1]  # gutter
    heights = {(round(p.get_x() + p.get_width() / 2, 3), p.get_facecolor()[:3]): p.get_height() for p in ax.patches}
    assert heights[(-0.2, plt.matplotlib.colors.to_rgb(ATTN))] == 2.0  # layer 0 attention, doubled
    assert heights[(2.2, plt.matplotlib.colors.to_rgb(MLP))] == -5.0  # layer 2 MLP, doubled
    assert ax.get_title() == "gutter: logit 8.00 (embed +1.00, const -0.50)"


def test_probe_figure_says_what_each_curve_is_scored_on():
    probes = pd.DataFrame({"probe": ["two CLS vectors (paper)"] * 2 + ["pairs"] * 2,
                           "scored_on": ["its own 2 training vectors"] * 2 + ["held-out pairs"] * 2,
                           "layer": [0, 1, 0, 1], "accuracy": [1.0, 1.0, 0.5, 0.625]})
    fig, ax = plt.subplots()
    probe_curves(ax, probes, "Fig. 6")
    assert "held-out" not in ax.get_ylabel() and ax.get_ylabel() == "accuracy (%)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["two CLS vectors (paper); scored on its own 2 training vectors",
                          "pairs; scored on held-out pairs"]
    assert ax.get_lines()[1].get_ydata().tolist() == [50.0, 62.5]


def test_ablation_figures_draw_the_target_rows():
    t = pd.DataFrame({"mode": ["faithful", "faithful", "corrected", "corrected"], "class_index": [1, 0, 1, 0],
                      "change": [-0.5, 0.3, -1.0, 0.2], "n_ablated": 2})
    fig = ablation_change_bars({"strike": t, "gutter": t.assign(change=-t.change)}, 1, "bowling", "title")
    assert [p.get_height() for p in fig.axes[0].patches] == [-0.5, -1.0]
    assert [p.get_height() for p in fig.axes[1].patches] == [0.5, 1.0]
    comp = pd.DataFrame([(run, how, c, layer, -1, 0.1 * layer + (run == "gutter")) for run in ("strike", "gutter")
                         for how in ("zero", "mean") for c in ("attention", "mlp") for layer in range(3)],
                        columns=["run", "how", "component", "layer", "head", "delta_target_logit"])
    fig = component_ablation_figure(comp, "bowling")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 + 1  # strike/gutter x attention/MLP, and the zero line
    assert lines[2].get_ydata().tolist() == pytest.approx([1.0, 1.1, 1.2])  # gutter, attention
    assert not fig.axes[2].axison  # no head rows: the third panel says so


def test_delta_norm_panels_plot_every_column():
    deltas = pd.DataFrame({"layer": [-1, 0, 1], "mean_token_norm": [0.1, 0.2, 0.4], "patch_mean_norm": [0.1, 0.1, 0.3],
                           "cls_norm": [0.0, 0.5, 0.9], "relative": [0.01, 0.02, 0.04]})
    fig = delta_norm_panels(deltas, paper={5: 75.0, 11: 250.0})
    a, b = fig.axes[:2]
    assert [line.get_ydata().tolist() for line in a.get_lines()] == [[0.1, 0.2, 0.4], [0.1, 0.1, 0.3], [0.0, 0.5, 0.9]]
    assert a.collections[0].get_offsets().tolist() == [[5.0, 75.0], [11.0, 250.0]]
    assert b.get_lines()[0].get_ydata().tolist() == [0.01, 0.02, 0.04]


@pytest.mark.parametrize("arch", sorted(ADAPTERS))
def test_every_component_of_an_architecture_reaches_every_component_figure(arch):
    """Fig. 2c (DLA bars), Fig. 7's recovery bars and Fig. 8's component-ablation lines draw every
    component of the architecture (its adapter's), TimeSformer's two attention steps included."""
    from matplotlib.colors import to_hex

    comps = list(ADAPTERS[arch].component_colours)
    want = {COMPONENT_COLOURS[c].lower() for c in comps}

    def colours(fig):
        out = set()
        for ax in fig.axes:
            out |= {to_hex(p.get_facecolor()) for p in ax.patches}
            out |= {to_hex(line.get_color()) for line in ax.get_lines()}
        return out

    dla = pd.DataFrame([(run, c, layer, -1, 0.1 * layer) for run in ("strike", "gutter") for c in comps
                        for layer in range(3)] + [(run, c, -1, -1, 0.0) for run in ("strike", "gutter")
                                                  for c in ("embed", "constant")],
                       columns=["run", "component", "layer", "head", "logit"])
    assert want <= colours(dla_figure(dla, {"strike": 1.0, "gutter": 0.5}, "bowling"))
    fig, ax = plt.subplots()
    rec = pd.DataFrame([(c, layer, 10.0 * layer) for c in comps for layer in range(3)],
                       columns=["component", "layer", "recovery"])
    recovery_bars(ax, rec, "recovery", "t")
    assert want <= colours(fig)
    comp = pd.DataFrame([(run, how, c, layer, -1, 0.1 * layer) for run in ("strike", "gutter")
                         for how in ("zero", "mean") for c in comps for layer in range(3)],
                        columns=["run", "how", "component", "layer", "head", "delta_target_logit"])
    assert want <= colours(component_ablation_figure(comp, "bowling"))
    plt.close("all")


def test_attention_overlay_raw_and_relative_to_uniform():
    """Raw weights on inferno; relative to uniform: a uniform map is fully transparent and a patch
    at 4x the mean is opaque red, each row stating the patches' share against uniform over keys."""
    from utils.plotting import attention_overlay

    frames = {"strike": np.zeros((4, 32, 32, 3), np.uint8)}
    attn = np.full((2, 2, 2), 1 / 9)  # 8 patches + 1 prefix key, uniform
    raw = attention_overlay(frames, {"strike": attn}, 2, "t")
    assert raw.axes[-1].get_ylabel() == "CLS attention weight"
    rel = attention_overlay(frames, {"strike": attn}, 2, "t", uniform=1 / 9)
    assert np.all(rel.axes[0].images[1].get_alpha() == 0)  # uniform: clear
    assert "1.00x uniform on patches" in rel.axes[0].get_ylabel()
    peaked = attn.copy()
    peaked[0, 0, 0] = 4 / 9  # one patch well above the rest
    rel = attention_overlay(frames, {"strike": peaked}, 2, "t", uniform=1 / 9)
    alpha = rel.axes[0].images[1].get_alpha()
    assert alpha[0, 0] > 0.5 and alpha[-1, -1] < alpha[0, 0]
    plt.close("all")
