"""Notebook 08's pipeline (utils.discovery): agreement measures and the circuit search."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_loaded

from utils import discovery as D
from utils import reading
from utils.circuit import Graph
from utils.hooks import HookedVideoTransformer
from utils.plotting import axis_window


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


def _curves(discovery: list[float], held_out: list[float], sizes=(1, 2, 4, 8)) -> pd.DataFrame:
    """Curves of two pairs per split whose mean metric at each size is the value given (empty 0, full 100)."""
    rows = []
    for split, values in (("discovery", discovery), ("held-out", held_out)):
        for pair, shift in (("a", -5.0), ("b", 5.0)):
            for n, v in zip(sizes, values, strict=True):
                rows.append({"split": split, "method": "EAP", "ablation": "counterfactual", "metric_name": "readout",
                             "pair": f"{split}-{pair}", "n_edges": n, "metric": v + shift, "metric_empty": 0.0,
                             "metric_full": 100.0})
    return pd.DataFrame(rows)


def test_the_size_is_chosen_on_the_discovery_pairs_and_held_out_pairs_cannot_move_it():
    base = _curves([10, 50, 85, 95], [10, 50, 85, 95])
    assert D.select_size(base, 80, "readout", "EAP") == 4
    for held in ([90, 90, 90, 90], [0, 0, 0, 0], [10, 79, 81, 99]):  # held-out values that would pick 1, none, 4
        assert D.select_size(_curves([10, 50, 85, 95], held), 80, "readout", "EAP") == 4
    assert D.select_size(_curves([10, 81, 85, 95], [10, 50, 85, 95]), 80, "readout", "EAP") == 2  # discovery does
    assert D.select_size(_curves([10, 50, 60, 70], [90, 90, 90, 90]), 80, "readout", "EAP") == -1
    with pytest.raises(ValueError, match="no discovery-pair curve"):
        D.select_size(base, 80, "logit", "EAP")


def test_the_circuit_is_sized_on_discovery_pairs_to_one_edge_and_judged_on_held_out_ones():
    hooked = HookedVideoTransformer(tiny_loaded())
    graph = Graph(hooked)
    g = torch.Generator().manual_seed(3)
    data = _Data(torch.randn(8, 4, 3, 32, 32, generator=g))
    pairs = [(f"pair{i:03d}_strike", f"pair{i:03d}_gutter") for i in range(4)]
    splits = {"discovery": pairs[:2], "held-out": pairs[2:]}
    scores = {"EAP": D.discovery_scores(graph, data, splits["discovery"], 0, progress=False),
              "random": D.random_scores(graph)}
    sizes = [1, 4, 16, graph.n_edges]
    curves = D.circuit_curves(graph, data, splits, scores, sizes, 0, progress=False)
    full = curves[(curves.n_edges == graph.n_edges) & (curves.metric_name == "readout")].faithfulness_pct
    assert full.to_numpy() == pytest.approx(100.0, abs=1e-3)
    table, curves = D.judged_sizes(graph, data, splits, scores, curves, 60, "readout", 0, refine=12)
    n = int(table[table.method == "EAP"].n_edges.iloc[0])
    disc = curves[(curves.split == "discovery") & (curves.method == "EAP") & (curves.metric_name == "readout")]
    mean = disc.groupby("n_edges").metric.mean()  # empty 0 and full 100 for the readout: the mean is the ratio
    assert n > 0 and mean.loc[n] >= 60
    assert (n - 1) in mean.index and mean.loc[n - 1] < 60  # bisection narrowed it to one edge
    row = table[table.method == "EAP"].iloc[0]
    assert row.discovery_pct == pytest.approx(mean.loc[n]) and row.n_pairs == 2
    held = curves[(curves.split == "held-out") & (curves.method == "EAP") & (curves.metric_name == "readout")]
    assert row.held_out_pct == pytest.approx(held[held.n_edges == n].metric.mean())
    comp = D.circuit_composition(graph, scores["EAP"], n)
    assert comp.edges.sum() == n and comp.score_share_pct.sum() == pytest.approx(100)
    per = comp.set_index("sender")
    assert (per.share_per_sender_pct * per.senders_in_graph).to_numpy() == pytest.approx(per.score_share_pct.to_numpy())
    lines = reading.summary_lines(None, None, table, None, comp, graph.n_edges, 60, "readout", "the readout")
    assert any(f"keeps {n} of {graph.n_edges} edges" in line for line in lines)


def test_eap_ig_with_one_step_is_eap_and_edges_into_the_readout_score_the_same_for_any_steps():
    """With m = 1 the only interpolation point is the clean input: EAP. The readout projection is
    linear in the final residual, so an edge into the readout has one gradient on every run."""
    from utils import atp
    from utils.circuit import edge_scores

    hooked = HookedVideoTransformer(tiny_loaded())
    graph = Graph(hooked)
    g = torch.Generator().manual_seed(5)
    clean, cf = torch.randn(2, 1, 4, 3, 32, 32, generator=g)
    final = atp.final_site(hooked)
    cf_run = hooked.run(cf, names=graph.cache_names() | {final})
    metric = atp.readout_projection(hooked, hooked.run(clean, names={final})[final], cf_run[final])
    ref = graph.sender_outputs(cf_run.cache)[0]
    eap = edge_scores(graph, clean, ref, metric)
    one = edge_scores(graph, clean, ref, metric, counterfactual_pixels=cf, ig_steps=1)
    four = edge_scores(graph, clean, ref, metric, counterfactual_pixels=cf, ig_steps=4)
    assert torch.allclose(one, eap, atol=1e-6 * eap.abs().max())
    assert torch.allclose(four[:, -1], eap[:, -1], atol=1e-5 * eap.abs().max())
    assert not torch.allclose(four[:, :-1], eap[:, :-1], atol=1e-3 * eap.abs().max())  # earlier edges: curvature
    with pytest.raises(ValueError, match="counterfactual_pixels"):
        edge_scores(graph, clean, ref, metric, ig_steps=2)


def test_output_metrics_read_the_models_own_logits():
    from utils import atp

    hooked = HookedVideoTransformer(tiny_loaded())
    g = torch.Generator().manual_seed(6)
    clean, cf = torch.randn(2, 1, 4, 3, 32, 32, generator=g)
    final = atp.final_site(hooked)
    a, b = hooked.run(clean, names={final}), hooked.run(cf, names={final})
    m = atp.output_metrics(hooked, a[final], b[final], (0, 1))
    assert float(m["logit"](a[final])) == pytest.approx(float(a.logits[0, 0] - a.logits[0, 1]), abs=1e-5)
    assert float(atp.logit_difference(hooked, 1)(b[final])) == pytest.approx(float(b.logits[0, 1]), abs=1e-5)
    assert float(m["kl"](a[final])) == pytest.approx(0, abs=1e-9)
    p, q = a.logits.double().softmax(-1), b.logits.double().softmax(-1)
    assert float(m["kl"](b[final])) == pytest.approx(-float((p * (p / q).log()).sum()), rel=1e-5)
    assert float(m["readout"](a[final])) == pytest.approx(100, abs=1e-3)


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


def test_the_validations_exact_effects_are_notebook_06s_fine_grained_patching():
    """``fine_validation`` patches exactly what notebook 06's ``fine_grained_patching`` patches, on
    the readout's rows only: the same nodes in the same order and the same effects; so does
    ``component_validation`` with 06's component sweep (``analyse_pair``), both directions."""
    from utils.pairs import analyse_pair, fine_grained_patching

    hooked = HookedVideoTransformer(tiny_loaded())
    g = torch.Generator().manual_seed(7)
    data = _Data(torch.randn(2, 4, 3, 32, 32, generator=g))
    pair = ("pair000_strike", "pair000_gutter")
    fine = D.fine_validation(hooked, data, [pair], 0, position_layer=1, progress=False)
    ref = pd.concat(fine_grained_patching(hooked, data, *pair, 0, 1), ignore_index=True)
    labels = [c for c in D.LABEL_COLUMNS if c in ref]
    pd.testing.assert_frame_equal(fine[labels], ref[labels], check_dtype=False)
    assert ref.recovery_readout_pct.abs().max() > 1 and ref.delta_target_logit.abs().max() > 1e-3  # effects exist
    np.testing.assert_allclose(fine.exact_readout, ref.recovery_readout_pct, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fine.exact_logit, ref.delta_target_logit, rtol=1e-4, atol=1e-6)
    shared = D.fine_validation(hooked, data, [pair], 0, position_layer=1, progress=False, shared=1)
    np.testing.assert_array_equal(shared.exact_readout, ref.recovery_readout_pct)  # 06's own numbers, bit for bit
    pd.testing.assert_frame_equal(shared.drop(columns=["exact_readout", "exact_logit"]),
                                  fine.drop(columns=["exact_readout", "exact_logit"]))
    comp = D.component_validation(hooked, data, [pair], 0, progress=False)
    sweep = analyse_pair(hooked, {k: data.pixels(f"pair000_{k}") for k in ("strike", "gutter")}, 0, "pair000",
                         "matched")["patching"]
    both = comp.merge(sweep, on=["direction", "layer", "component"], validate="one_to_one")
    assert len(both) == len(comp) == 2 * 2 * hooked.n_layers
    np.testing.assert_allclose(both.exact_readout, both.recovery_readout_pct, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(both.exact_logit, both.delta_target_logit, rtol=1e-4, atol=1e-6)


def test_the_agreement_table_ranks_atp_star_against_the_magnitude_of_the_exact_effect():
    """AtP* is unsigned: a score proportional to |exact| agrees perfectly, whatever the signs of the
    exact effects, and has no error column; AtP and the QK fix keep their signed comparison."""
    v = _validation(0.0)
    v["atp_qk_readout"] = v["atp_qk_logit"] = v.exact_readout
    v["atp_star_readout"] = v["atp_star_logit"] = 3 * v.exact_readout.abs()
    table = D.agreement_table(v, top_k=5)
    assert list(table.estimate.unique()) == ["AtP", "AtP + QK fix", "AtP*"] and table.columns[0] == "estimate"
    star = table[table.estimate == "AtP*"]
    assert (star.spearman == 1).all() and (star.top_k_overlap == 1).all() and star.median_rel_error.isna().all()
    assert (table[table.estimate == "AtP + QK fix"].spearman == 1).all()
    v["atp_star_readout"] = -v.exact_readout.abs()
    assert (D.agreement(v, 5, "atp_star").query("metric == 'readout'").spearman == -1).all()
    assert (D.agreement(v.drop(columns=[c for c in v if c.startswith("atp_star")]), 5, "atp").spearman == 1).all()


def test_circuit_edges_lists_the_top_edges_with_their_scores():
    from utils.circuit import top_edges

    graph = Graph(HookedVideoTransformer(tiny_loaded()))
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(graph.valid.shape, generator=g, dtype=torch.float64) * graph.valid
    edges = D.circuit_edges(graph, scores, 7)
    assert len(edges) == 7
    keep = top_edges(scores, graph, 7)
    s_idx, r_idx = torch.nonzero(keep, as_tuple=True)
    want = {(graph.senders[s].name, graph.receivers[r].name, float(scores[s, r])) for s, r in
            zip(s_idx.tolist(), r_idx.tolist(), strict=True)}
    assert set(zip(edges.sender, edges.receiver, edges.score, strict=True)) == want
    assert set(edges.columns) >= {"sender", "receiver", "sender_layer", "sender_component", "head",
                                  "receiver_layer", "receiver_component", "score"}


def test_one_outlier_does_not_set_the_scatters_axes():
    """Fig. 15's panels (``utils.plotting.axis_window``): the full range when the points fill it, a long tail
    included; cut where one point lies beyond a wide empty gap, and that point is drawn at the edge
    and counted."""
    rng = np.random.default_rng(0)
    bulk = rng.normal(0, 10, 400)
    assert axis_window(bulk) == pytest.approx((bulk.min() - 0.05 * np.ptp(bulk), bulk.max() + 0.05 * np.ptp(bulk)))
    lo, hi = axis_window(np.append(bulk, -300.0))
    assert -60 < lo < bulk.min() + 10 and hi > bulk.max() - 10
    tail = np.append(np.linspace(0, 100, 400), 130.0)  # a long tail with points along it keeps its axis
    assert axis_window(tail) == pytest.approx((-6.5, 136.5))
    n = len(bulk) // 2
    validation = pd.DataFrame({"node_type": "position", "layer": 4, "exact_readout": np.append(bulk[:n], 80.0),
                               "atp_readout": np.append(bulk[n:], -300.0)})
    fig = D.atp_scatter_figure(validation)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > -100  # the outlier does not set the axis
    assert any("1 beyond the axes" in t.get_text() for t in ax.texts)
    assert sum(len(c.get_offsets()) for c in ax.collections) == n + 1  # every point drawn
    plt.close(fig)
