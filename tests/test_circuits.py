"""Attribution patching (utils.atp) and circuits (utils.circuit), per architecture, against exact
patching and the model's own forward pass (small random models of tests/test_architectures.py)."""

import pytest
import torch
from test_architectures import ARCHS, FRAMES, small_loaded

from utils import atp, circuit
from utils.hooks import HookedVideoTransformer
from utils.patching import Patch, component_patches, head_patches, needed_target_names, time_step_patches


@pytest.fixture(scope="module", params=ARCHS)
def setup(request):
    arch = request.param
    hooked = HookedVideoTransformer(small_loaded(arch))
    g = torch.Generator().manual_seed(1)
    px = torch.randn(2, FRAMES[arch], 3, 48, 48, generator=g)
    source, target = px[:1], px[1:]
    L = hooked.n_layers
    sites = {f"blocks.{i}.{s}" for i in range(L) for s in (*hooked.components.values(), *hooked.head_sites.values(),
                                                            "hook_resid_pre")}
    src = hooked.run(source, names=sites | {atp.final_site(hooked)})
    tgt = hooked.run(target, names=sites | set(needed_target_names(hooked)))
    return arch, hooked, source, target, src, tgt


def metrics(hooked, src, tgt, frozen=True):
    """The readout projection and the target logit (its final norm frozen where the readout is
    linear: V-JEPA 2's pooler has no final norm to freeze, and neither metric is linear there)."""
    final = atp.final_site(hooked)
    return [atp.readout_projection(hooked, src[final], tgt[final]),
            atp.target_logit(hooked, 1, tgt[final], freeze_norm=frozen and hooked.adapter.linear_readout)]


def test_atp_equals_exact_patching_where_the_metric_is_linear_in_the_node(setup):
    """The last block's outputs reach the readout linearly; under the readout projection and the
    frozen-norm logit AtP must equal exact patching (and patching every node of the last MLP
    at once, its parts add up)."""
    _, hooked, _, target, src, tgt = setup
    last = hooked.n_layers - 1
    T = hooked.grid[0]
    mlp = f"blocks.{last}.hook_mlp_out"
    tokens_by_step = [[hooked.token_index(t, r, c) for r in range(hooked.grid[1]) for c in range(hooked.grid[2])]
                      for t in range(T)]
    patches = [Patch(mlp, src[mlp][0])] + [Patch(mlp, src[mlp][0], positions=p) for p in tokens_by_step]
    for metric in metrics(hooked, src, tgt):
        est = atp.atp(hooked, patches, metric, target_pixels=target)
        ex = atp.exact(hooked, patches, metric, tgt.cache)
        if not hooked.adapter.linear_readout:  # V-JEPA 2: the attentive pooler is not linear, so even the
            assert (est - ex).abs().max() > 1e-3 * float(ex.abs().max()), (metric.name, est, ex)  # last MLP is
            continue  # first order only (the premise of this test is a linear readout)
        assert torch.allclose(est, ex, rtol=1e-4, atol=1e-4 * (1 + ex.abs().max())), (metric.name, est, ex)
        assert ex.abs().max() > (0.1 if metric.name == "readout_projection" else 1e-5)  # the patches act
        if hooked.has_cls:  # only the readout token's entries count: the CLS alone is the whole effect
            assert est[1:].sum() == pytest.approx(0, abs=1e-4 * (1 + float(ex[0].abs())))


def test_atp_is_only_first_order_elsewhere_and_the_unfrozen_logit_differs(setup):
    """Early nodes pass through LayerNorms and softmaxes: AtP and exact differ (so the test
    above is not vacuous), while ranking the components alike."""
    _, hooked, _, target, src, tgt = setup
    patches = component_patches(hooked, src.cache)
    metric = metrics(hooked, src, tgt)[0]
    est = atp.atp(hooked, patches, metric, target_pixels=target)
    ex = atp.exact(hooked, patches, metric, tgt.cache)
    assert (est - ex).abs().max() > 1e-3
    assert torch.corrcoef(torch.stack([est, ex]))[0, 1] > 0.5


def test_atp_from_a_cached_prefix_equals_atp_from_the_pixels(setup):
    _, hooked, _, target, src, tgt = setup
    patches = head_patches(hooked, src.cache, layers=[1, 2])
    metric = metrics(hooked, src, tgt)[0]
    a = atp.atp(hooked, patches, metric, target_pixels=target)
    b = atp.atp(hooked, patches, metric, target_cache=tgt.cache)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    final = atp.final_site(hooked)  # the metric defined from the gradient run's own final residual
    c = atp.atp(hooked, patches, lambda t_final: atp.readout_projection(hooked, src[final], t_final),
                target_pixels=target)
    assert torch.allclose(a, c, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_approach_exact_patching_as_steps_grow(setup):
    """IG over a site's whole activation converges to the exact effect of patching it (trapezoid
    rule: error ~ 1/m^2); per-head and per-position parts add up to the site's estimate."""
    _, hooked, _, _, src, tgt = setup
    metric = metrics(hooked, src, tgt)[0]
    comps = component_patches(hooked, src.cache, layers=[0, 1])
    ex = atp.exact(hooked, comps, metric, tgt.cache)
    est = atp.ig(hooked, comps, metric, tgt.cache, src.cache, steps=16)
    err = {m: float((e - ex).abs().max()) for m, e in est.items()}
    assert err[16] < err[1] and err[16] < err[0] and err[4] < err[1]
    assert err[16] < 2e-3 * (1 + float(ex.abs().max())), err
    assert torch.equal(est[0], atp.atp(hooked, comps, metric, target_cache=tgt.cache).to(est[0].dtype)) or \
        torch.allclose(est[0], atp.atp(hooked, comps, metric, target_cache=tgt.cache), rtol=1e-5, atol=1e-6)
    site = next(iter(hooked.head_sites.values()))
    heads = head_patches(hooked, src.cache, layers=[1])
    heads = [p for p in heads if p.hook == f"blocks.1.{site}"]
    whole = [Patch(f"blocks.1.{site}", src[f"blocks.1.{site}"][0])]
    parts, total = atp.ig(hooked, heads, metric, tgt.cache, src.cache, 4), atp.ig(hooked, whole, metric, tgt.cache,
                                                                                 src.cache, 4)
    assert parts[4].sum() == pytest.approx(float(total[4][0]), rel=1e-6, abs=1e-9)


# ----------------------------------------------------------------------------- AtP* (QK fix, GradDrop)
def _time_steps(hooked, src, layer):
    return time_step_patches(hooked, src.cache, layer)


def test_the_qk_fix_is_exact_where_only_the_attention_is_nonlinear(setup):
    """With the last block's MLP switched off, the final residual is the last block's resid_mid and
    the readout projection is linear in it: what a time step written into the last resid_pre does
    passes through one softmax only. The QK fix computes that softmax exactly, so it equals exact
    patching; plain AtP linearises it and does not (so the equality is not vacuous)."""
    arch, *_ = setup
    hooked = HookedVideoTransformer(small_loaded(arch))
    hooked.adapter.mlp = lambda layer, x: torch.zeros_like(x)  # every MLP off: blocks are attention only
    g = torch.Generator().manual_seed(1)
    px = torch.randn(2, FRAMES[arch], 3, 48, 48, generator=g)
    last = hooked.n_layers - 1
    final = atp.final_site(hooked)
    names = {f"blocks.{last}.hook_resid_pre", f"blocks.{last}.hook_resid_mid", final} | set(needed_target_names(hooked))
    src, tgt = hooked.run(px[:1], names=names), hooked.run(px[1:], names=names)
    patches = _time_steps(hooked, src, last)
    metric = atp.readout_projection(hooked, src[final], tgt[final])
    ex = atp.exact(hooked, patches, metric, tgt.cache)
    qk = atp.atp_qk_fix(hooked, patches, metric, tgt.cache)
    plain = atp.atp(hooked, patches, metric, target_cache=tgt.cache)
    assert ex.abs().max() > 1.0  # the time steps act
    if not hooked.adapter.linear_readout:  # V-JEPA 2: the pooler adds softmaxes and norms after the last block,
        assert (qk - ex).abs().max() > 1e-3 * float(ex.abs().max()), (qk, ex)  # which the QK fix leaves first order
        return
    assert torch.allclose(qk, ex, rtol=1e-4, atol=1e-4 * float(ex.abs().max())), (qk, ex)
    assert (plain - ex).abs().max() > 1e-2 * float(ex.abs().max()), (plain, ex)


def test_the_qk_fix_leaves_heads_to_plain_atp_and_serves_several_metrics(setup):
    _, hooked, _, _, src, tgt = setup
    heads = head_patches(hooked, src.cache, layers=[1])
    steps = _time_steps(hooked, src, 1)
    ms = metrics(hooked, src, tgt)
    both = atp.atp_qk_fix(hooked, heads + steps, ms, tgt.cache)
    for m, est in zip(ms, both, strict=True):
        assert torch.allclose(est[:len(heads)], atp.atp(hooked, heads, m, target_cache=tgt.cache), rtol=1e-5,
                              atol=1e-8)
        assert torch.allclose(est[len(heads):], atp.atp_qk_fix(hooked, steps, m, tgt.cache), rtol=1e-5, atol=1e-8)


def test_graddrop_turns_a_dropped_block_into_the_identity_for_the_gradient(setup):
    """With block 1's components dropped, the gradient at its resid_pre is the gradient at its
    resid_post (the residual stream's skip is all that is left); without the drop it is not."""
    _, hooked, _, _, src, tgt = setup
    metric = metrics(hooked, src, tgt)[0]
    sites = ["blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre"]
    _, dropped = atp.graddrop_gradients(hooked, sites, metric, tgt.cache, layer=1)
    assert torch.allclose(dropped[sites[0]], dropped[sites[1]], rtol=1e-5, atol=1e-7)
    _, plain = atp.gradients(hooked, sites, metric, target_cache=tgt.cache)
    assert (plain[sites[0]] - plain[sites[1]]).abs().max() > 1e-3 * plain[sites[1]].abs().max()


def test_the_graddrop_sweep_equals_one_dropped_forward_pass_per_block(setup):
    """AtP*'s sweep (one forward pass, then per block one block's forward and a backward below it)
    gives the gradients of a whole forward pass with that block's components held constant, for
    every block, every site below it, both metrics; the sites at or above the block are zeros."""
    _, hooked, _, _, src, tgt = setup
    L = hooked.n_layers
    sites = sorted({f"blocks.{i}.{s}" for i in range(L - 1) for s in ("hook_resid_mid", *hooked.head_sites.values())})
    ms = metrics(hooked, src, tgt)
    sweep = atp.graddrop_sweep(hooked, sites, ms, tgt.cache, plain=True)
    none, acts, grads = next(sweep)  # first, from the same pass: the plain gradients
    ref_acts, ref = atp.gradients(hooked, sites, ms, target_cache=tgt.cache)
    assert none is None and all(torch.equal(acts[s], ref_acts[s]) for s in sites)
    for g, r in zip(grads, ref, strict=True):
        for s in sites:
            assert torch.allclose(g[s], r[s], rtol=1e-4, atol=1e-5 * float(r[s].abs().max())), s
    seen = []
    for layer, acts, grads in sweep:
        ref_acts, ref = atp.graddrop_gradients(hooked, sites, ms, tgt.cache, layer)
        for g, r in zip(grads, ref, strict=True):
            for s in sites:
                assert torch.equal(acts[s], ref_acts[s])
                if int(s.split(".")[1]) < layer:
                    scale = float(r[s].abs().max())
                    assert scale > 0, (layer, s)
                    assert torch.allclose(g[s], r[s], rtol=1e-4, atol=1e-5 * scale), (layer, s)
                else:
                    assert not g[s].any(), (layer, s)
        seen.append(layer)
    assert seen == list(range(1, L))


def test_atp_star_is_the_qk_fix_where_no_later_block_can_be_dropped(setup):
    """AtP* = sum over blocks of |the estimate with that block's gradient dropped| / (L - 1): for
    the last block's nodes no drop reaches them (L / (L - 1) |AtP_QK|); for earlier ones it does."""
    _, hooked, _, _, src, tgt = setup
    L = hooked.n_layers
    metric = metrics(hooked, src, tgt)[0]
    for layer, same in ((L - 1, True), (0, False)):
        patches = _time_steps(hooked, src, layer) + head_patches(hooked, src.cache, layers=[layer])
        star = atp.atp_star(hooked, patches, metric, tgt.cache)
        qk = atp.atp_qk_fix(hooked, patches, metric, tgt.cache)
        family = atp.atp_family(hooked, patches, metric, tgt.cache)  # the three from one sweep
        assert torch.equal(family["atp_star"], star) and torch.allclose(family["atp_qk"], qk, rtol=1e-9, atol=1e-12)
        plain = atp.atp(hooked, patches, metric, target_cache=tgt.cache)
        assert torch.allclose(family["atp"], plain, rtol=1e-4, atol=1e-6 * float(plain.abs().max())), layer
        scaled = qk.abs() * L / (L - 1)
        assert (star >= 0).all()
        assert torch.allclose(star, scaled, rtol=1e-5, atol=1e-9) == same, (layer, star, scaled)


# ----------------------------------------------------------------------------- circuits
@pytest.fixture(scope="module")
def graph_setup(setup):
    arch, hooked, source, target, src, tgt = setup
    graph = circuit.Graph(hooked)
    final = atp.final_site(hooked)
    clean = hooked.run(source, names=graph.cache_names() | {final})
    cf = hooked.run(target, names=graph.cache_names() | {final})
    ref = graph.sender_outputs(cf.cache)[0]
    return hooked, graph, source, clean, cf, ref


def test_the_graph_has_every_edge_from_earlier_senders_to_later_receivers(graph_setup):
    hooked, graph, *_ = graph_setup
    L, H, k = hooked.n_layers, hooked.n_heads, len(hooked.components)
    n_attn = len(hooked.head_sites)
    assert len(graph.senders) == 1 + L * (n_attn * H + k - n_attn)
    assert len(graph.receivers) == L * k + 1
    e = graph.edges()
    assert len(e) == graph.n_edges
    assert ((e.sender_layer < e.receiver_layer) | ((e.sender_layer == e.receiver_layer)
                                                   & (e.sender_component != e.receiver_component))).all()
    assert not ((e.sender_layer == e.receiver_layer) & (e.receiver_component != "mlp")
                & (e.sender_component == "mlp")).any()  # an MLP never feeds its own block's attention
    assert (e.groupby("sender").size().loc["embed"]) == len(graph.receivers)


def test_the_sender_outputs_add_up_to_the_residual_stream(graph_setup):
    """embed + every head (+ its bias) + every MLP = the final residual: nothing is left out."""
    hooked, graph, _, clean, _, _ = graph_setup
    out = graph.sender_outputs(clean.cache)[0].sum(0)
    bias = sum(hooked.adapter.b_O(layer, c).detach()
               * (torch.arange(hooked.n_tokens)[:, None] >= (1 if c == "attention_time" else 0))
               for layer in range(hooked.n_layers) for c in hooked.head_sites)
    final = clean[atp.final_site(hooked)][0]
    assert torch.allclose(out + bias, final, atol=1e-4 * (1 + final.abs().max()))


def test_a_circuit_with_every_edge_is_the_model_and_with_none_the_counterfactual(graph_setup):
    hooked, graph, source, clean, cf, ref = graph_setup
    final = atp.final_site(hooked)
    keep = torch.stack([graph.valid, torch.zeros_like(graph.valid)])
    out = circuit.circuit_run(graph, source, ref, keep)
    scale = 1 + clean[final].abs().max()
    assert torch.allclose(out[0], clean[final][0], atol=1e-5 * scale)
    assert torch.allclose(out[1], cf[final][0], atol=1e-4 * scale)
    logits = hooked.logits_from_resid(out)
    assert torch.allclose(logits[0], clean.logits[0], atol=1e-4)
    no_scores = torch.zeros_like(graph.valid, dtype=torch.float64)
    f = circuit.faithfulness(graph, source, ref, cf[final], clean[final], no_scores, [0, graph.n_edges])
    assert f.faithfulness_pct.tolist() == pytest.approx([0.0, 100.0], abs=1e-4)  # float32 runs
    assert f.metric_empty.iloc[0] == pytest.approx(0, abs=1e-3)
    assert f.metric_full.iloc[0] == pytest.approx(100, abs=1e-3)


def test_a_circuit_reads_the_same_whichever_set_of_edges_is_summed(graph_setup):
    """``circuit_run`` sums, per receiver, the smaller of the dropped and the kept edges (a small
    circuit: the total minus the kept ones), deciding per batch; a circuit's rows do not depend on
    which sum its batch took (the dropped-edge sum is the one the other tests pin to the model)."""
    hooked, graph, source, clean, cf, ref = graph_setup
    g = torch.Generator().manual_seed(3)
    few = graph.valid & (torch.rand(graph.valid.shape, generator=g) < 0.02)  # a small circuit
    most = graph.valid & (torch.rand(graph.valid.shape, generator=g) < 0.9)  # a large one
    full, empty = graph.valid, torch.zeros_like(graph.valid)
    with torch.inference_mode():
        alone = circuit.circuit_run(graph, source, ref, torch.stack([few, most]))  # half and half
        kept_sums = circuit.circuit_run(graph, source, ref, torch.stack([few, most, empty, empty, empty]))
        dropped_sums = circuit.circuit_run(graph, source, ref, torch.stack([few, most, full, full, full]))
    scale = 1 + clean[atp.final_site(hooked)].abs().max()
    for batch in (kept_sums, dropped_sums):
        assert torch.allclose(batch[:2], alone, atol=1e-5 * scale)
    assert (alone[0] - alone[1]).abs().max() > 1e-3 * scale  # the two circuits differ


def test_edge_scores_are_exact_into_the_readout_and_first_order_everywhere(graph_setup):
    """An edge into the readout enters the metric linearly: its EAP score is the exact change.
    Everywhere else the score is the first-order change: with a reference a tiny step from the
    clean outputs, scores match the exact changes of dropping each edge."""
    hooked, graph, source, clean, cf, ref = graph_setup
    final = atp.final_site(hooked)
    metric = atp.readout_projection(hooked, clean[final], cf[final])
    scores = circuit.edge_scores(graph, source, ref, metric)
    e = graph.edges()
    readout = graph.receiver_index["readout"]
    some = e[e.r == readout].s.values[:: max(1, len(e[e.r == readout]) // 6)]
    inner = e[e.r != readout].sample(6, random_state=0)
    picks = [(int(s), readout) for s in some] + list(zip(inner.s.astype(int), inner.r.astype(int), strict=True))

    def dropped(reference):
        keep = graph.valid[None].repeat(len(picks), 1, 1)
        for i, (s, r) in enumerate(picks):
            keep[i, s, r] = False
        with torch.inference_mode():
            return metric(circuit.circuit_run(graph, source, reference, keep)).double() - 100

    exact = dropped(ref)
    n_read = len(some)
    into_readout = torch.tensor([float(scores[s, r]) for s, r in picks[:n_read]], dtype=torch.float64)
    if hooked.adapter.linear_readout:
        assert torch.allclose(exact[:n_read], into_readout, rtol=1e-3, atol=1e-3)
    else:  # V-JEPA 2: the pooler is not linear, so an edge into it is scored to first order only
        assert not torch.allclose(exact[:n_read], into_readout, rtol=1e-3, atol=1e-3)
    clean_out = graph.sender_outputs(clean.cache)[0]
    g = torch.Generator().manual_seed(2)
    near = clean_out + 1e-3 * torch.randn(clean_out.shape, generator=g) * clean_out.std()
    near_scores = circuit.edge_scores(graph, source, near, metric)
    want = torch.tensor([float(near_scores[s, r]) for s, r in picks], dtype=torch.float64)
    got = dropped(near)
    assert torch.allclose(got, want, rtol=0.05, atol=0.02 * float(want.abs().max())), (got, want)
    assert not torch.allclose(got, torch.zeros_like(got))


def test_top_edges_keeps_the_largest_existing_edges(graph_setup):
    _, graph, *_ = graph_setup
    scores = torch.randn(graph.valid.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    keep = circuit.top_edges(scores, graph, 10)
    assert keep.sum() == 10 and not (keep & ~graph.valid).any()
    kept = scores.abs()[keep].min()
    assert (scores.abs()[graph.valid & ~keep] <= kept).all()
    assert circuit.top_edges(scores, graph, 10**9).sum() == graph.n_edges


def test_top_edges_ignore_float_noise_and_break_ties_by_edge_index(graph_setup):
    """Scores equal up to float noise (and exact zeros) are ties: the same edges are kept whatever
    the noise, the lowest edge indices first, so another CPU keeps the same circuit."""
    _, graph, *_ = graph_setup
    gen = torch.Generator().manual_seed(1)
    scores = torch.zeros(graph.valid.shape, dtype=torch.float64)
    existing = torch.nonzero(graph.valid.flatten()).flatten()
    scores.view(-1)[existing[:5]] = torch.tensor([5.0, -4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    noisy = scores + 1e-9 * torch.randn(scores.shape, generator=gen, dtype=torch.float64)  # far below 1e-4 * 5
    for n in (3, 5, 12):
        keep, keep_noisy = circuit.top_edges(scores, graph, n), circuit.top_edges(noisy, graph, n)
        assert torch.equal(keep, keep_noisy), n
        assert torch.equal(torch.nonzero(keep.flatten()).flatten(), existing[:n].sort().values)
