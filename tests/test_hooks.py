"""Every named activation against a by-hand computation from the weights and the HF forward."""

import math

import pytest
import torch
import torch.nn.functional as F

from utils.hooks import HookedViViT


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
    hooked = HookedViViT(loaded)
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


def test_cls_row_alone_never_builds_the_full_pattern(tiny_hooked, tiny_pixels, monkeypatch):
    """Asking for the CLS rows only: every matmul's output stays O(tokens), never tokens^2."""
    sizes = []
    orig = torch.matmul

    def spy(a, b):
        out = orig(a, b)
        sizes.append(out.shape[-2:])
        return out

    monkeypatch.setattr(torch, "matmul", spy)
    tiny_hooked.run(tiny_pixels, names={f"blocks.{i}.attn.hook_pattern_cls" for i in range(3)})
    n = tiny_hooked.n_tokens
    assert sizes and all(tuple(s) != (n, n) for s in sizes)


def test_hooks_leave_nothing_behind_on_errors(tiny, tiny_hooked, tiny_pixels):
    clean = tiny_hooked.run(tiny_pixels).logits

    def registered():  # HF installs output-capturing hooks of its own; count everything
        return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in tiny.model.modules()]

    before = registered()

    def boom(x, name):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        tiny_hooked.run(tiny_pixels, hooks={"blocks.1.hook_mlp_out": boom})
    assert registered() == before
    torch.testing.assert_close(tiny_hooked.run(tiny_pixels).logits, clean, rtol=0, atol=0)


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
