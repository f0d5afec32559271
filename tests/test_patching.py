"""Patching is exact, the fast sweep equals the naive one, and both equal plain forward hooks."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from utils.patching import (
    Patch,
    component_patches,
    component_sweep,
    head_patches,
    naive_patches,
    needed_target_names,
    position_patches,
    recovery,
    run_patches,
    time_step_patches,
)

COLS = ["recovery_notebook_pct", "recovery_eq2_pct", "recovery_projection_pct", "delta_target_logit"]


def _runs(hooked, src_px, tgt_px):
    src = hooked.run(src_px, names=hooked.hook_names())
    tgt = hooked.run(tgt_px, names=hooked.hook_names())
    return src, tgt


def test_patching_a_run_with_its_own_activations_changes_nothing(tiny_hooked, tiny_pixels):
    x = tiny_pixels[:1]
    run = tiny_hooked.run(x, names=tiny_hooked.hook_names())
    patches = component_patches(tiny_hooked, run.cache) + head_patches(tiny_hooked, run.cache)
    acts, logits = run_patches(tiny_hooked, run.cache, patches, batch_size=5)
    last = f"blocks.{tiny_hooked.n_layers - 1}.hook_resid_post"
    for a, lg in zip(acts, logits, strict=False):
        torch.testing.assert_close(a, run[last][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lg, run.logits[0], rtol=1e-5, atol=1e-6)


def test_patching_the_full_final_residual_recovers_100_percent(tiny_hooked, tiny_pixels):
    src, tgt = _runs(tiny_hooked, tiny_pixels[:1], tiny_pixels[1:])
    last = f"blocks.{tiny_hooked.n_layers - 1}.hook_resid_post"
    acts, logits = run_patches(tiny_hooked, tgt.cache, [Patch(last, src[last][0])])
    rec = recovery(acts[0], tgt[last][0], src[last][0])
    assert rec == pytest.approx(dict.fromkeys(rec, 100.0), abs=1e-9)
    torch.testing.assert_close(logits[0], src.logits[0], rtol=1e-5, atol=1e-6)


def test_recovery_measures_on_known_vectors():
    tgt = torch.zeros(2, 3)
    src = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    rec = recovery(-0.5 * src, tgt, src)  # half way, wrong direction
    assert rec["recovery_notebook_pct"] == pytest.approx(50.0)  # unsigned
    assert rec["recovery_eq2_pct"] == pytest.approx(-50.0)
    assert rec["recovery_projection_pct"] == pytest.approx(-50.0)
    ortho = recovery(torch.tensor([[0, 0, 1.0], [0, 0, 1.0]]), tgt, src)
    assert ortho["recovery_projection_pct"] == pytest.approx(0.0)
    assert ortho["recovery_notebook_pct"] == pytest.approx(100.0)  # counts sideways motion
    assert all(math.isnan(v) for v in recovery(src, src, src).values())


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_optimised_patches_equal_naive_patches(tiny_hooked, tiny_pixels, batch_size):
    src, tgt = _runs(tiny_hooked, tiny_pixels[:1], tiny_pixels[1:])
    patches = (component_patches(tiny_hooked, src.cache) + head_patches(tiny_hooked, src.cache, [1])
               + time_step_patches(tiny_hooked, src.cache, 2) + position_patches(tiny_hooked, src.cache, 0)
               + [Patch("blocks.1.hook_resid_mid", src["blocks.1.hook_resid_mid"][0], positions=[0, 3])])
    fast_acts, fast_logits = run_patches(tiny_hooked, tgt.cache, patches, batch_size=batch_size)
    slow_acts, slow_logits = naive_patches(tiny_hooked, tiny_pixels[1:], patches)
    torch.testing.assert_close(fast_acts, slow_acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-6)


def test_sweep_table_shape_and_columns(tiny_hooked, tiny_pixels):
    df = component_sweep(tiny_hooked, tiny_pixels[:1], tiny_pixels[1:], target_class=1)
    assert len(df) == 2 * tiny_hooked.n_layers
    assert df.component.tolist()[:2] == ["attention", "mlp"]
    assert set(COLS) <= set(df.columns)


def test_toy_sweep_matches_plain_forward_hooks_and_paper_formulas(toy, toy_hooked, toy_pair):
    """An independent computation: PyTorch forward hooks on the HF modules, paper.md formulas."""
    strike, gutter = toy_pair
    model, layers = toy.model, toy.model.vivit.layers
    target = toy.target_index
    ours = component_sweep(toy_hooked, strike, gutter, target, batch_size=6)

    def final_and_logits(px, patch=None):
        store = {}
        handles = [layers[-1].register_forward_hook(lambda m, i, o: store.__setitem__("out", o))]
        if patch is not None:
            module, value = patch
            if module == "attention":  # VivitAttention returns (attn_output, weights)
                handles.append(layers[layer].attention.register_forward_hook(lambda m, i, o: (value, o[1])))
            else:  # VivitMLP returns the MLP output before the residual add
                handles.append(layers[layer].mlp.register_forward_hook(lambda m, i, o: value))
        try:
            with torch.no_grad():
                logits = model(pixel_values=px).logits
        finally:
            for h in handles:
                h.remove()
        return store["out"][0], logits[0]

    captured = {}
    hs = [layers[i].attention.register_forward_hook(lambda m, inp, o, i=i: captured.__setitem__(("attention", i), o[0]))
          for i in range(12)]
    hs += [layers[i].mlp.register_forward_hook(lambda m, inp, o, i=i: captured.__setitem__(("mlp", i), o))
           for i in range(12)]
    try:
        s_final, _ = final_and_logits(strike)
    finally:
        for h in hs:
            h.remove()
    g_final, g_logits = final_and_logits(gutter)
    d_full = s_final - g_final
    for row in ours.itertuples():
        layer = row.layer
        p_final, p_logits = final_and_logits(gutter, (row.component, captured[(row.component, layer)]))
        d_patch = p_final - g_final
        notebook = d_patch.norm(dim=-1).mean() / d_full.norm(dim=-1).mean() * 100
        dot = (d_patch * d_full).sum()
        eq2 = d_patch.norm() / d_full.norm() * torch.sign(dot) * 100
        proj = dot / (d_full * d_full).sum() * 100
        assert row.recovery_notebook_pct == pytest.approx(float(notebook), rel=1e-4, abs=1e-4)
        assert row.recovery_eq2_pct == pytest.approx(float(eq2), rel=1e-4, abs=1e-4)
        assert row.recovery_projection_pct == pytest.approx(float(proj), rel=1e-4, abs=1e-3)
        assert row.delta_target_logit == pytest.approx(float(p_logits[target] - g_logits[target]), abs=1e-4)


def test_needed_target_names_cover_every_start(tiny_hooked):
    names = needed_target_names(tiny_hooked)
    for i in range(tiny_hooked.n_layers):
        assert f"blocks.{i}.hook_resid_pre" in names and f"blocks.{i}.hook_resid_mid" in names


@pytest.mark.parametrize(("hook", "shape", "where"), [
    ("blocks.0.hook_resid_pre", (9, 4), lambda pos, heads: (pos, slice(None))),
    ("blocks.0.attn.hook_z", (9, 3, 2), lambda pos, heads: (pos[:, None], heads[None, :], slice(None))),
    ("blocks.0.attn.hook_pattern", (3, 9, 9), lambda pos, heads: (heads[:, None], pos[None, :], slice(None))),
    ("blocks.0.attn.hook_pattern_cls", (3, 9), lambda pos, heads: (heads[:, None], pos[None, :])),
])
def test_patch_positions_and_heads_index_their_own_dimensions(hook, shape, where):
    """positions index tokens (queries of a pattern, keys of the CLS row), heads index heads."""
    has_heads = "attn" in hook
    pos, heads = torch.tensor([0, 2, 7]), torch.tensor([1, 2])
    act, value = torch.zeros(shape), torch.arange(1, math.prod(shape) + 1, dtype=torch.float32).reshape(shape)
    Patch(hook, value, positions=pos.tolist(), heads=heads.tolist() if has_heads else None).apply(act)
    want = torch.zeros(shape)
    want[where(pos, heads)] = value[where(pos, heads)]
    torch.testing.assert_close(act, want, rtol=0, atol=0)


def test_patch_refuses_heads_without_a_head_dimension_and_wrong_shapes():
    with pytest.raises(ValueError, match="no head dimension"):
        Patch("blocks.0.hook_mlp_out", torch.zeros(9, 4), heads=[1])
    with pytest.raises(ValueError, match=r"shape \(8, 4\)"):
        Patch("blocks.0.hook_mlp_out", torch.zeros(8, 4)).apply(torch.zeros(9, 4))


def test_attention_pattern_patches_are_exact(tiny_hooked, tiny_pixels):
    """Patching head 1's CLS query row, via the full pattern (query 0) or via the CLS row:
    the same run, equal to the naive patch, and not a no-op."""
    names = {"blocks.1.attn.hook_pattern", "blocks.1.attn.hook_pattern_cls"}
    src = tiny_hooked.run(tiny_pixels[:1], names=names)
    tgt = tiny_hooked.run(tiny_pixels[1:], names=needed_target_names(tiny_hooked))
    patches = [Patch("blocks.1.attn.hook_pattern", src["blocks.1.attn.hook_pattern"][0], positions=[0], heads=[1]),
               Patch("blocks.1.attn.hook_pattern_cls", src["blocks.1.attn.hook_pattern_cls"][0], heads=[1])]
    fast_acts, fast_logits = run_patches(tiny_hooked, tgt.cache, patches, batch_size=2)
    slow_acts, slow_logits = naive_patches(tiny_hooked, tiny_pixels[1:], patches, cache_all=False)
    torch.testing.assert_close(fast_acts, slow_acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_logits[0], fast_logits[1], rtol=1e-5, atol=1e-6)
    assert float((fast_logits[0] - tgt.logits[0]).abs().max()) > 1e-4


def test_patching_follows_the_models_device(tiny_pixels):
    """Model on another device (meta), patch values on the CPU: every patched run still runs."""
    from conftest import tiny_loaded

    from utils.hooks import HookedVideoTransformer

    loaded = tiny_loaded()
    cpu = HookedVideoTransformer(loaded)
    src = cpu.run(tiny_pixels[:1], names=cpu.hook_names())
    patches = (component_patches(cpu, src.cache, [1]) + head_patches(cpu, src.cache, [2])
               + time_step_patches(cpu, src.cache, 0))
    loaded.model.to("meta")
    meta = HookedVideoTransformer(loaded)
    tgt = meta.run(tiny_pixels[1:], names=needed_target_names(meta))
    acts, logits = run_patches(meta, tgt.cache, patches, batch_size=3)
    assert acts.device.type == logits.device.type == "meta"
    assert acts.shape == (len(patches), meta.n_tokens, meta.d_model) and logits.shape == (len(patches), 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_cuda_gives_the_cpu_numbers(tiny_pixels):
    """The tiny model on the GPU, every input on the CPU: runs, patched runs, the recovery table
    and delta norms equal the CPU ones (to float32 kernel differences)."""
    from conftest import tiny_loaded

    from utils.deltas import delta_norms
    from utils.hooks import HookedVideoTransformer
    from utils.plotting import to_numpy

    cpu, gpu = HookedVideoTransformer(tiny_loaded()), HookedVideoTransformer(tiny_loaded())
    gpu.model.to("cuda")
    src_px, tgt_px = tiny_pixels[:1], tiny_pixels[1:]
    runs = {}
    for name, h in (("cpu", cpu), ("gpu", gpu)):
        src, tgt = h.run(src_px, names=h.hook_names()), h.run(tgt_px, names=h.hook_names())
        cpu_src = cpu.run(src_px, names=cpu.hook_names())  # patch values always come from the CPU
        patches = component_patches(cpu, cpu_src.cache, [1]) + head_patches(cpu, cpu_src.cache, [0])
        acts, logits = run_patches(h, tgt.cache, patches, batch_size=3)
        runs[name] = {"logits": to_numpy(src.logits), "acts": to_numpy(acts), "patched": to_numpy(logits),
                      "sweep": component_sweep(h, src_px, tgt_px, 1),
                      "deltas": delta_norms(h, src, tgt)}
    assert gpu.run(src_px).logits.device.type == "cuda"
    for key in ("logits", "acts", "patched"):
        np.testing.assert_allclose(runs["gpu"][key], runs["cpu"][key], rtol=1e-3, atol=1e-4, err_msg=key)
    for key in ("sweep", "deltas"):
        pd.testing.assert_frame_equal(runs["gpu"][key], runs["cpu"][key], check_exact=False, rtol=1e-3, atol=1e-3)


def test_paper_values_line_up_with_table3():
    from utils import paper
    from utils.patching import paper_values

    df = pd.DataFrame({"layer": [0, 4, 4, 10], "component": ["mlp", "attention", "mlp", "mlp"]})
    got = paper_values(df, paper.TABLE3)
    assert math.isnan(got[0]) and got[1:] == [54.41, 60.17, 43.39]  # paper.md, Table 3


@pytest.mark.parametrize("batch_size", [1, 4])
def test_logits_only_patches_give_the_same_logits(tiny_hooked, tiny_pixels, batch_size):
    """``logits_only`` (the last block for the CLS row only, unless a patch sits inside it)
    returns the logits of the full patched runs: whole components at every layer, heads and
    positions (applied by hooks) at the last layer too."""
    L = tiny_hooked.n_layers
    src = tiny_hooked.run(tiny_pixels[:1], names=set(tiny_hooked.hook_names()) - {
        f"blocks.{i}.attn.hook_pattern" for i in range(L)})
    tgt = tiny_hooked.run(tiny_pixels[1:], names=needed_target_names(tiny_hooked))
    patches = component_patches(tiny_hooked, src.cache)
    patches += [Patch(f"blocks.{L - 1}.attn.hook_z", src[f"blocks.{L - 1}.attn.hook_z"][0], heads=[1]),
                Patch(f"blocks.{L - 1}.hook_resid_pre", src[f"blocks.{L - 1}.hook_resid_pre"][0], positions=[0, 2]),
                Patch(f"blocks.{L - 1}.hook_resid_post", src[f"blocks.{L - 1}.hook_resid_post"][0])]
    acts, full = run_patches(tiny_hooked, tgt.cache, patches, batch_size=batch_size)
    none, fast = run_patches(tiny_hooked, tgt.cache, patches, batch_size=batch_size, logits_only=True)
    assert none is None and acts.shape[0] == len(patches)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    # readout_only: the readout's rows of the final residual (the CLS), cut alike whether or not a
    # batch holds a patch inside the last block, and what the readout reads of the full runs
    rows, also = run_patches(tiny_hooked, tgt.cache, patches, batch_size=batch_size, readout_only=True)
    assert rows.shape == (len(patches), 1, tiny_hooked.d_model)
    torch.testing.assert_close(also, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_hooked.readout_tokens(rows), tiny_hooked.readout_tokens(acts), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="readout_only reads the final residual"):
        run_patches(tiny_hooked, tgt.cache, patches[:1], read="blocks.0.hook_resid_post", readout_only=True)
