"""Notebook 08's pipeline (utils.discovery): agreement measures and the circuit search."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_loaded

from utils import discovery as D
from utils.circuit import Graph
from utils.hooks import HookedVideoTransformer


def _validation(noise: float, flip: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for pair in ("a", "b", "c"):
        exact = rng.normal(size=20)
        est = -exact if flip else exact + noise * rng.normal(size=20)
        rows.append(pd.DataFrame({"layer": np.arange(20) % 4, "head": np.arange(20), "exact_readout": exact,
                                  "atp_readout": est, "exact_logit": exact, "atp_logit": est,
                                  "node_type": "head", "pair": pair, "direction": "strike->gutter"}))
    return pd.concat(rows, ignore_index=True)


def test_agreement_is_perfect_for_a_perfect_estimate_and_reversed_for_a_reversed_one():
    good = D.agreement(_validation(0.0), top_k=5)
    assert (good.spearman == 1).all() and (good.top_k_overlap == 1).all() and (good.median_rel_error == 0).all()
    assert (good.n_pairs == 3).all() and (good.n_nodes == 20).all()
    bad = D.agreement(_validation(0.0, flip=True), top_k=5)
    assert (bad.spearman == -1).all() and (bad.top_k_overlap == 1).all()  # same magnitudes, opposite signs
    noisy = D.agreement(_validation(0.5), top_k=5)
    assert (noisy.spearman < 1).all() and (noisy.spearman > 0.5).all() and (noisy.median_rel_error > 0).all()
    assert (noisy.spearman_ci_low <= noisy.spearman).all() and (noisy.spearman <= noisy.spearman_ci_high).all()


def test_top_overlap_counts_shared_largest_magnitudes():
    assert D.top_overlap(np.array([5.0, -4, 3, 0.1]), np.array([9.0, 0, 0, -8]), 2) == 0.5
    assert D.top_overlap(np.array([5.0, -4, 3, 0.1]), np.array([-9.0, 8, 0, 0]), 2) == 1.0


class _Data:
    """The bits of ``utils.data.Prepared`` the circuit search reads."""

    def __init__(self, pixels: torch.Tensor):
        self.px = {f"pair{i:03d}_{o}": pixels[2 * i + j][None] for i in range(len(pixels) // 2)
                   for j, o in enumerate(("strike", "gutter"))}

    def pixels(self, clip_id):
        return self.px[clip_id]


def test_the_smallest_circuit_reaches_the_threshold_and_one_edge_fewer_does_not():
    hooked = HookedVideoTransformer(tiny_loaded())
    graph = Graph(hooked)
    g = torch.Generator().manual_seed(3)
    data = _Data(torch.randn(6, 4, 3, 32, 32, generator=g))
    pairs = [(f"pair{i:03d}_strike", f"pair{i:03d}_gutter") for i in range(3)]
    scores = D.discovery_scores(graph, data, pairs[:1], progress=False)
    sizes = [1, 4, 16, graph.n_edges]
    curve = D.faithfulness_curve(graph, data, pairs[1:], scores, sizes, progress=False)
    full = curve[curve.n_edges == graph.n_edges].faithfulness_pct
    assert full.to_numpy() == pytest.approx(100.0, abs=1e-3)
    n, curve = D.smallest_circuit(graph, data, pairs[1:], scores, curve, threshold=60, refine=12)
    mean = curve.groupby("n_edges").faithfulness_pct.mean()
    assert n > 0 and mean.loc[n] >= 60
    assert (n - 1) in mean.index and mean.loc[n - 1] < 60  # bisection narrowed it to one edge
    comp = D.circuit_composition(graph, scores, n)
    assert comp.edges.sum() == n and comp.score_share_pct.sum() == pytest.approx(100)
    lines = D.summary_lines(None, None, D.summarise(curve, ["ablation", "n_edges"], "faithfulness_pct"), comp, n,
                            graph.n_edges, 60)
    assert any(f"keeps {n} of {graph.n_edges} edges" in line for line in lines)


def test_validation_tables_line_up_and_ig_closes_the_gap_on_whole_sites():
    """AtP beside exact patching for every node of a pair (components both ways; heads, time
    steps, positions strike into gutter); IG's whole-site estimates approach the exact whole-site
    effects (resid_pre from the source: exactly 100) as the steps grow, and the nodes' ranks
    agree better than AtP's."""
    hooked = HookedVideoTransformer(tiny_loaded())
    g = torch.Generator().manual_seed(5)
    data = _Data(torch.randn(2, 4, 3, 32, 32, generator=g))
    pair = ("pair000_strike", "pair000_gutter")
    comp = D.component_validation(hooked, data, [pair], 0, progress=False)
    fine = D.fine_validation(hooked, data, [pair], 0, position_layer=1, progress=False)
    L, H = hooked.n_layers, hooked.n_heads
    assert len(comp) == 2 * L * 2 and set(comp.direction) == {"strike->gutter", "gutter->strike"}
    assert fine.groupby("node_type").size().to_dict() == {"head": L * H, "time_step": L * 2, "position": 4}
    last = comp[(comp.layer == L - 1) & (comp.component == "mlp")]
    assert np.allclose(last.atp_readout, last.exact_readout, atol=1e-4)  # linear in the last MLP
    validation = pd.concat([comp, fine], ignore_index=True)
    _, summary = D.ig_convergence(hooked, data, pair, 0, validation, ("time_step", "head"), steps=8, progress=False)
    for _, d in summary.groupby("node_type"):
        d = d.set_index("m")
        assert d.max_error_whole_site[8] < d.max_error_whole_site[0] / 5
        assert d.max_error_whole_site[8] < 0.05 * validation.exact_readout.abs().max()
