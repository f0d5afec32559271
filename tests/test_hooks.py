"""Every named activation against a by-hand computation from the weights and the HF forward."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.modules import module as module_hooks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from utils.hooks import HookedVideoTransformer


def by_hand(loaded, pixel_values):
    """The ViViT forward written out from the raw weights (no HF module is called)."""
    m, cfg = loaded.model, loaded.model.config
    H, dh = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    emb = m.vivit.embeddings
    conv = emb.patch_embeddings.projection
    x = F.conv3d(pixel_values.transpose(1, 2), conv.weight, conv.bias, stride=conv.stride)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([emb.cls_token.expand(x.shape[0], -1, -1), x], 1) + emb.position_embeddings
    acts = {"hook_embed": x}
    for i, blk in enumerate(m.vivit.layers):
        a = blk.attention
        acts[f"blocks.{i}.hook_resid_pre"] = x
        ln1, ln2 = blk.layernorm_before, blk.layernorm_after
        h = F.layer_norm(x, (cfg.hidden_size,), ln1.weight, ln1.bias, cfg.layer_norm_eps)
        b, t, _ = h.shape
        q, k, v = (F.linear(h, lin.weight, lin.bias).view(b, t, H, dh).transpose(1, 2)
                   for lin in (a.q_proj, a.k_proj, a.v_proj))
        pattern = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1)
        acts[f"blocks.{i}.attn.hook_pattern"] = pattern
        acts[f"blocks.{i}.attn.hook_pattern_cls"] = pattern[:, :, 0]
        z = (pattern @ v).transpose(1, 2)
        acts[f"blocks.{i}.attn.hook_z"] = z
        attn_out = F.linear(z.reshape(b, t, -1), a.o_proj.weight, a.o_proj.bias)
        acts[f"blocks.{i}.hook_attn_out"] = attn_out
        x = x + attn_out
        acts[f"blocks.{i}.hook_resid_mid"] = x
        h = F.layer_norm(x, (cfg.hidden_size,), ln2.weight, ln2.bias, cfg.layer_norm_eps)
        u = F.linear(h, blk.mlp.fc1.weight, blk.mlp.fc1.bias)
        u = 0.5 * u * (1.0 + torch.tanh(u * 0.7978845608 * (1.0 + 0.044715 * u * u)))  # gelu_fast
        mlp_out = F.linear(u, blk.mlp.fc2.weight, blk.mlp.fc2.bias)
        acts[f"blocks.{i}.hook_mlp_out"] = mlp_out
        x = x + mlp_out
        acts[f"blocks.{i}.hook_resid_post"] = x
    ln = m.vivit.layernorm
    acts["ln_final.hook_normalized"] = F.layer_norm(x, (cfg.hidden_size,), ln.weight, ln.bias, cfg.layer_norm_eps)
    logits = F.linear(acts["ln_final.hook_normalized"][:, 0], m.classifier.weight, m.classifier.bias)
    return acts, logits


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_every_name_matches_the_weights_and_the_hf_forward(which, request):
    loaded = request.getfixturevalue(which)
    x = request.getfixturevalue("tiny_pixels") if which == "tiny" else torch.cat(request.getfixturevalue("toy_pair"))
    hooked = HookedVideoTransformer(loaded)
    run = hooked.run(x, names=hooked.hook_names())
    with torch.no_grad():
        ref, ref_logits = by_hand(loaded, x)
        hf = loaded.model(pixel_values=x, output_hidden_states=True)
    assert set(run.cache) == set(hooked.hook_names()) == set(ref)
    for name, want in ref.items():
        torch.testing.assert_close(run[name], want, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(run.logits, ref_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(run.logits, hf.logits, rtol=1e-5, atol=1e-6)
    for i in range(hooked.n_layers):  # HF hidden_states[i + 1] is block i's output
        torch.testing.assert_close(run[f"blocks.{i}.hook_resid_post"], hf.hidden_states[i + 1])


def test_capture_only_what_is_asked(tiny_hooked, tiny_pixels):
    run = tiny_hooked.run(tiny_pixels, names={"blocks.1.hook_mlp_out"})
    assert set(run.cache) == {"blocks.1.hook_mlp_out"}
    with pytest.raises(KeyError, match="unknown activation"):
        tiny_hooked.run(tiny_pixels, names={"blocks.9.hook_mlp_out"})


def test_cls_row_equals_full_pattern_row(tiny_hooked, tiny_pixels):
    names = {f"blocks.{i}.attn.hook_pattern{s}" for i in range(3) for s in ("", "_cls")}
    run = tiny_hooked.run(tiny_pixels, names=names)
    for i in range(3):
        full = run[f"blocks.{i}.attn.hook_pattern"]  # (batch, head, q, k)
        torch.testing.assert_close(run[f"blocks.{i}.attn.hook_pattern_cls"], full[:, :, 0])
        torch.testing.assert_close(full.sum(-1), torch.ones(full.shape[:-1]))


class ShapeSpy(TorchDispatchMode):
    """Records the shape of every tensor any ATen op returns, SDPA and matmul alike."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.seen += [(str(func), tuple(t.shape)) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        return out

    def square(self, n: int) -> list:
        """Outputs with two dimensions of size ``n``: a tokens x tokens matrix."""
        return [(f, shape) for f, shape in self.seen if shape.count(n) >= 2]


def test_cls_row_alone_never_builds_the_full_pattern(tiny_hooked, tiny_pixels):
    """Asking for the CLS rows only: no op returns a tokens x tokens tensor, and attention runs
    in a fused SDPA kernel (the math fallback, which builds the matrix inside, is switched off)."""
    n = tiny_hooked.n_tokens
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]), ShapeSpy() as spy:
        run = tiny_hooked.run(tiny_pixels, names={f"blocks.{i}.attn.hook_pattern_cls" for i in range(3)})
    ops = {f for f, _ in spy.seen}
    assert "aten.scaled_dot_product_attention.default" in ops and len(spy.seen) > 50
    assert spy.square(n) == []
    assert run["blocks.0.attn.hook_pattern_cls"].shape == (2, tiny_hooked.n_heads, n)
    with ShapeSpy() as control:  # the spy does see a full pattern when one is built
        tiny_hooked.run(tiny_pixels, names={"blocks.1.attn.hook_pattern"})
    assert (2, tiny_hooked.n_heads, n, n) in {shape for _, shape in control.square(n)}


def _boom(x, name):
    raise RuntimeError(f"hook failed at {name}")


def _state(hooked):
    """Everything a failed run could leave changed: hooks on any module (and global ones),
    training flags, requires_grad and .grad of the weights, grad / inference mode, and the
    attributes of the HookedVideoTransformer (a leftover cache would show up there)."""
    model = hooked.model
    return {
        "module hooks": [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                          len(m._backward_pre_hooks)) for name, m in model.named_modules()],
        "global hooks": (len(module_hooks._global_forward_hooks), len(module_hooks._global_forward_pre_hooks),
                         len(module_hooks._global_backward_hooks)),
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad is None for p in model.parameters()],
        "grad enabled": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "hooked attributes": {k: (id(v), len(v) if isinstance(v, dict | list) else None)
                              for k, v in vars(hooked).items()},
    }


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("site", ["hook_embed", "blocks.0.attn.hook_pattern_cls", "blocks.1.attn.hook_pattern",
                                  "blocks.1.hook_mlp_out", "ln_final.hook_normalized"])
def test_hooks_leave_nothing_behind_on_errors(tiny, tiny_hooked, tiny_pixels, site, grad):
    """A hook that raises mid-run: the error reaches the caller, and the model, the autograd
    mode around the call and the HookedVideoTransformer are exactly as before; the next run is bitwise clean."""
    clean = tiny_hooked.run(tiny_pixels).logits
    assert not torch.is_inference_mode_enabled()  # a successful run restores the mode too
    weights = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    for outer in (torch.no_grad, torch.enable_grad):  # the run must restore either mode
        with outer():
            before = _state(tiny_hooked)
            with pytest.raises(RuntimeError, match=f"hook failed at {site}"):
                tiny_hooked.run(tiny_pixels, hooks={site: _boom}, grad=grad)
            assert _state(tiny_hooked) == before
    for k, v in tiny.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    torch.testing.assert_close(tiny_hooked.run(tiny_pixels).logits, clean, rtol=0, atol=0)


def test_a_hook_must_keep_the_shape(tiny_hooked, tiny_pixels):
    with pytest.raises(ValueError, match=r"blocks\.1\.hook_mlp_out returned \(2, 9\)"):
        tiny_hooked.run(tiny_pixels, hooks={"blocks.1.hook_mlp_out": lambda x, n: x[:, :, 0]})


def _v(hooked, resid_pre, layer):
    """Values ``(batch, head, tokens, d_head)`` of block ``layer``, by hand."""
    blk = hooked.blocks[layer]
    b, t, _ = resid_pre.shape
    v = blk.attention.v_proj(blk.layernorm_before(resid_pre))  # (batch, tokens, d_model)
    return v.view(b, t, hooked.n_heads, hooked.d_head).transpose(1, 2)


def test_an_edited_cls_row_is_what_the_cls_query_reads(tiny_hooked, tiny_pixels):
    """Replacing the CLS row (uniform attention over all tokens): the CLS query's z becomes the
    mean of the values, the other queries keep theirs, and editing row 0 of the full pattern
    the same way gives the same run."""
    layer, name = 1, "blocks.1.attn.hook_pattern_cls"
    names = {f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z", name}
    clean = tiny_hooked.run(tiny_pixels, names=names)
    n = tiny_hooked.n_tokens
    uniform = lambda x, _n: torch.full_like(x, 1 / n)  # noqa: E731
    edited = tiny_hooked.run(tiny_pixels, names=names, hooks={name: uniform})
    with torch.inference_mode():
        v = _v(tiny_hooked, clean[f"blocks.{layer}.hook_resid_pre"], layer)
    z, z0 = edited[f"blocks.{layer}.attn.hook_z"], clean[f"blocks.{layer}.attn.hook_z"]  # (b, tokens, head, d_head)
    torch.testing.assert_close(z[:, 0], v.mean(2), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z[:, 1:], z0[:, 1:], rtol=0, atol=0)
    torch.testing.assert_close(edited[name], torch.full_like(edited[name], 1 / n))
    assert (edited.logits - clean.logits).abs().max() > 1e-3

    def row0(p, _n):
        p = p.clone()
        p[:, :, 0] = 1 / n
        return p

    def in_place(row, _n):  # the TransformerLens habit: edit in place, return None
        row.fill_(1 / n)

    inplace = tiny_hooked.run(tiny_pixels, names=names, hooks={name: in_place})
    torch.testing.assert_close(inplace.logits, edited.logits, rtol=0, atol=0)
    observed = tiny_hooked.run(tiny_pixels, names=names, hooks={name: lambda x, _n: None})
    torch.testing.assert_close(observed.logits, clean.logits, rtol=0, atol=0)  # watching changes nothing

    via_full = tiny_hooked.run(tiny_pixels, names=names, hooks={f"blocks.{layer}.attn.hook_pattern": row0})
    torch.testing.assert_close(via_full.logits, edited.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_full[f"blocks.{layer}.attn.hook_z"], z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_full[name], edited[name])  # the CLS row of the edited full pattern


def test_train_mode_is_refused_not_half_applied(tiny_pixels):
    from conftest import tiny_loaded

    from utils.patching import component_patches, run_patches

    loaded = tiny_loaded()
    hooked = HookedVideoTransformer(loaded)
    assert not any(m.training for m in loaded.model.modules())  # HookedVideoTransformer puts it in eval
    cache = hooked.run(tiny_pixels[:1], names=hooked.hook_names()).cache
    loaded.model.vivit.layers[1].mlp.train()  # one submodule back in training: dropout would act there
    with pytest.raises(RuntimeError, match=r"eval mode only.*vivit\.layers\.1\.mlp"):
        hooked.run(tiny_pixels)
    with pytest.raises(RuntimeError, match="eval mode only"):
        run_patches(hooked, cache, component_patches(hooked, cache, [1]))
    loaded.model.eval()
    hooked.run(tiny_pixels)


def test_a_gradient_run_can_start_from_an_inference_cache(tiny_hooked, tiny_pixels):
    """The default run caches under inference_mode; a grad run from that cache (start=, a hook
    returning a cached tensor, or inference-mode pixels) still backpropagates."""
    name = "blocks.1.hook_resid_pre"
    cache = tiny_hooked.run(tiny_pixels, names={name, "blocks.2.hook_resid_mid"})
    assert cache[name].is_inference()
    resumed = tiny_hooked.run(start=(name, cache[name]), grad=True)
    assert resumed.logits.requires_grad
    torch.testing.assert_close(resumed.logits.detach(), cache.logits, rtol=1e-6, atol=1e-6)
    w = tiny_hooked.blocks[2].mlp.fc1.weight
    (g,) = torch.autograd.grad(resumed.logits[:, 1].sum(), w)
    assert float(g.abs().sum()) > 0
    cached_mid = cache["blocks.2.hook_resid_mid"]  # the next LayerNorm saves it for backward
    hooked_in = tiny_hooked.run(tiny_pixels, hooks={"blocks.2.hook_resid_mid": lambda x, n: cached_mid}, grad=True)
    (g2,) = torch.autograd.grad(hooked_in.logits[:, 1].sum(), tiny_hooked.blocks[2].mlp.fc1.weight)
    assert float(g2.abs().sum()) > 0
    with torch.inference_mode():
        px = tiny_pixels.clone()
    assert tiny_hooked.run(px, grad=True).logits.requires_grad


def test_inputs_move_to_the_models_device(tiny_pixels):
    """A model on another device (meta here; CUDA in test_device.py): CPU pixels, a CPU start
    tensor and CPU tensors returned by hooks all follow it."""
    from conftest import tiny_loaded

    loaded = tiny_loaded()
    loaded.model.to("meta")
    hooked = HookedVideoTransformer(loaded)
    assert hooked.device.type == "meta"
    run = hooked.run(tiny_pixels, names={"blocks.1.hook_resid_pre"},
                     hooks={"blocks.0.hook_mlp_out": lambda x, n: torch.zeros(x.shape)})
    assert run.logits.device.type == "meta" and run.logits.shape == (2, 5)
    start = torch.zeros(2, hooked.n_tokens, hooked.d_model)
    assert hooked.run(start=("blocks.1.hook_resid_pre", start)).logits.device.type == "meta"


def test_hook_can_edit_and_start_midway(tiny_hooked, tiny_pixels):
    full = tiny_hooked.run(tiny_pixels, names={"blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"})
    for start in ("blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"):
        resumed = tiny_hooked.run(start=(start, full[start]))
        torch.testing.assert_close(resumed.logits, full.logits, rtol=1e-6, atol=1e-6)
    zeroed = tiny_hooked.run(tiny_pixels, hooks={"blocks.2.hook_mlp_out": lambda x, n: torch.zeros_like(x)},
                             names={"blocks.2.hook_mlp_out"})
    assert float(zeroed["blocks.2.hook_mlp_out"].abs().max()) == 0.0


def test_token_index_position_and_pixel_box_roundtrip(toy_hooked):
    T, R, C = toy_hooked.grid
    seen = set()
    for t in range(T):
        for r in range(R):
            for c in range(C):
                tok = toy_hooked.token_index(t, r, c)
                assert toy_hooked.token_position(tok) == (t, r, c)
                seen.add(tok)
    assert seen == set(range(1, T * R * C + 1))
    frames, rows, cols = toy_hooked.pixel_box(toy_hooked.token_index(3, 2, 5))
    assert (frames, rows, cols) == (slice(6, 8), slice(32, 48), slice(80, 96))
    with pytest.raises(IndexError):
        toy_hooked.token_position(0)


def test_token_order_matches_the_tubelet_embedding(toy, toy_hooked):
    """A pixel change inside one tubelet moves exactly that token's embedding."""
    x = torch.zeros(1, 16, 3, 96, 96)
    y = x.clone()
    frames, rows, cols = toy_hooked.pixel_box(toy_hooked.token_index(5, 1, 4))
    y[:, frames, :, rows, cols] = 1.0
    emb = {k: toy_hooked.run(v, names={"hook_embed"})["hook_embed"] for k, v in (("x", x), ("y", y))}
    d = (emb["y"] - emb["x"]).norm(dim=-1)[0]
    assert d.nonzero().flatten().tolist() == [toy_hooked.token_index(5, 1, 4)]


def test_by_time_step_is_the_old_reshape_for_vivit(toy_hooked):
    """ViViT patch tokens are in (t, row, col) order: ``by_time_step`` is a plain reshape, and
    ``to_token_order`` undoes it."""
    values = torch.randn(3, toy_hooked.n_tokens - 1)
    grid = toy_hooked.by_time_step(values)
    assert torch.equal(grid, values.reshape(3, *toy_hooked.grid))
    assert torch.equal(toy_hooked.to_token_order(grid), values)
    assert toy_hooked.has_cls and toy_hooked.n_prefix == 1 and toy_hooked.arch == "vivit"
    assert toy_hooked.components == {"attention": "hook_attn_out", "mlp": "hook_mlp_out"}


def test_the_fused_gelu_is_taken_and_is_the_models_own_mlp(toy, toy_pair):
    """The ViViT adapter computes gelu_fast with one fused kernel: the same numbers as the HF
    MLP module (within 1e-6) on real activations of the toy model, every layer."""
    from transformers.activations import FastGELUActivation

    hooked = HookedVideoTransformer(toy)
    x = torch.cat(toy_pair)
    names = [f"blocks.{i}.{s}" for i in range(hooked.n_layers) for s in ("hook_resid_mid", "hook_mlp_out")]
    run = hooked.run(x, names=names)
    for i, blk in enumerate(toy.model.vivit.layers):
        assert type(blk.mlp.activation_fn) is FastGELUActivation  # the fused branch is the one tested
        with torch.no_grad():
            want = blk.mlp(blk.layernorm_after(run[f"blocks.{i}.hook_resid_mid"]))
        torch.testing.assert_close(run[f"blocks.{i}.hook_mlp_out"], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_a_logits_only_run_computes_the_last_block_for_the_readout_only(which, request):
    """A run that asks for nothing of the last block runs it for the CLS row only
    (``readout_block``): the logits are the full block's, from pixels, from the last resid_pre
    or resid_mid, and with autograd; asking for a last-block site takes the full block."""
    hooked = request.getfixturevalue(f"{which}_hooked")
    px = request.getfixturevalue("tiny_pixels") if which == "tiny" else torch.cat(request.getfixturevalue("toy_pair"))
    last = hooked.n_layers - 1
    names = {f"blocks.{last}.hook_resid_pre", f"blocks.{last}.hook_resid_mid", f"blocks.{last}.hook_resid_post"}
    full = hooked.run(px, names=names)
    assert hooked.readout_only() and not hooked.readout_only(names)
    assert not hooked.readout_only(hooks={"ln_final.hook_normalized": None})
    torch.testing.assert_close(hooked.run(px).logits, full.logits, rtol=1e-5, atol=1e-5)
    for site in ("hook_resid_pre", "hook_resid_mid"):
        start = (f"blocks.{last}.{site}", full[f"blocks.{last}.{site}"])
        torch.testing.assert_close(hooked.run(start=start).logits, full.logits, rtol=1e-5, atol=1e-5)
    x = full[f"blocks.{last}.hook_resid_pre"].clone().requires_grad_(True)
    grads = []
    for asked in ((), {f"blocks.{last}.hook_resid_post"}):  # the CLS-only block, then the full one
        out = hooked.run(start=(f"blocks.{last}.hook_resid_pre", x), names=asked, grad=True)
        grads.append(torch.autograd.grad(out.logits[:, 1].sum(), x)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_clean_run_is_the_plain_run_shared_through_memo(tiny_pixels):
    """``clean_run`` gives bitwise what ``run`` gives for the names asked, runs a clip once per
    model and input (later calls are memo hits), and runs full attention patterns afresh."""
    from conftest import tiny_loaded

    from utils import memo
    from utils.hooks import clean_run, shared_names

    hooked = HookedVideoTransformer(tiny_loaded(seed=7))  # weights of its own: so are its memo entries
    px = tiny_pixels[:1]
    names = {"hook_embed", "blocks.0.attn.hook_z", "blocks.1.hook_resid_mid", "blocks.2.attn.hook_pattern_cls"}
    want = hooked.run(px, names=names)
    before = dict(memo.stats)
    got = clean_run(hooked, px, names)
    again = clean_run(hooked, px, {"blocks.2.hook_resid_post"})
    assert memo.stats["misses"] == before["misses"] + 1 and memo.stats["hits"] == before["hits"] + 1
    assert set(got.cache) == names and torch.equal(got.logits, want.logits)
    for n in names:
        assert torch.equal(got[n], want[n]), n
    assert torch.equal(again["blocks.2.hook_resid_post"], hooked.run(px, names={"blocks.2.hook_resid_post"})[
        "blocks.2.hook_resid_post"])
    with torch.inference_mode():
        got[next(iter(names))].zero_()  # a caller's edit stays its own
    assert torch.equal(clean_run(hooked, px, names)[next(iter(names))], want[next(iter(names))])
    assert "blocks.0.attn.hook_pattern" not in shared_names(hooked)
    full = clean_run(hooked, px, {"blocks.0.attn.hook_pattern"})
    assert full["blocks.0.attn.hook_pattern"].shape == (1, 3, hooked.n_tokens, hooked.n_tokens)
