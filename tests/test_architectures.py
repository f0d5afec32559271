"""One hooked core, three architectures: every check per architecture (ViViT, TimeSformer, VideoMAE).

Small random-weight models from the toy configs (each adapter's ``toy_config``) narrowed to 3 layers x 3 heads,
width 24, 48 x 48 frames (3 x 3 patches) and 4 time steps, so that time steps, rows and heads
all differ in number and a layout slip shows. The reference is the HF model itself: plain
PyTorch forward hooks on its submodules (removed in ``finally``) and its logits.
"""

import re

import pytest
import torch
from safetensors.torch import load_file

from utils import paths
from utils.arch import ADAPTERS
from utils.attribution import (
    direct_logit_attribution,
    dla_names,
    dla_total,
    logit_lens_readout,
    residual_ig,
    residual_ig_names,
    token_dla,
    token_dla_names,
)
from utils.hooks import HookedVideoTransformer
from utils.models import LoadedModel, load_model
from utils.patching import Patch, _head_join, naive_patches, needed_target_names, recovery, run_patches

ARCHS = ("vivit", "timesformer", "videomae", "vjepa2")
SMALL = dict(image_size=48, num_hidden_layers=3, num_attention_heads=3, hidden_size=24, intermediate_size=48)
FRAMES = {"vivit": 8, "timesformer": 4, "videomae": 8, "vjepa2": 8}  # -> 4 time steps each (tubelets of 2 frames)
SMALL_VJEPA2 = dict(crop_size=48, num_hidden_layers=3, num_attention_heads=3, hidden_size=24, mlp_ratio=2.0,
                    num_pooler_layers=2)  # V-JEPA 2 names its sizes differently
LABELS = {i: f"class{i}" for i in range(5)}


def small_loaded(arch: str, seed: int = 0) -> LoadedModel:
    """A random 3-layer model of ``arch`` (4 x 3 x 3 patches; CLS for ViViT and TimeSformer)."""
    adapter = ADAPTERS[arch]
    cfg = adapter.toy_config(5, LABELS)
    sizes = ({**SMALL_VJEPA2, "frames_per_clip": FRAMES[arch]} if arch == "vjepa2"
             else {**SMALL, "num_frames": FRAMES[arch]})
    for key, value in sizes.items():
        setattr(cfg, key, value)
    cfg._attn_implementation = "eager"  # HF returns its attention weights
    torch.manual_seed(seed)
    model = adapter.hf_class(cfg).eval()
    with torch.no_grad():  # HF starts CLS and learned position tables at zero; random values exercise every path
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        emb = model.vjepa2.encoder.embeddings if arch == "vjepa2" else getattr(model, arch).embeddings
        for name in ("cls_token", "position_embeddings", "time_embeddings"):
            param = getattr(emb, name, None)
            if isinstance(param, torch.nn.Parameter):
                param.normal_(0, 0.5)
    processor = adapter.toy_processor()
    return LoadedModel(model, processor, f"small-{arch}", target_index=1)


@pytest.fixture(scope="module", params=ARCHS)
def small(request):
    loaded = small_loaded(request.param)
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, FRAMES[request.param], 3, 48, 48, generator=g)
    return request.param, HookedVideoTransformer(loaded), pixels


# ---------------------------------------------------------------------- the HF reference
def hf_activations(arch: str, model, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Every hooked name, read off the HF forward with plain forward hooks, and the HF logits."""
    seen: dict[str, torch.Tensor] = {}
    handles = []

    def out(key, module, index=None):
        def fn(_m, _inp, o):
            seen[key] = (o[index] if index is not None else o).detach().clone()
        handles.append(module.register_forward_hook(fn))

    def inp(key, module):
        def fn(_m, args):
            seen[key] = args[0].detach().clone()
        handles.append(module.register_forward_pre_hook(fn))

    base = model.vjepa2.encoder if arch == "vjepa2" else getattr(model, arch)
    blocks = base.layers if arch == "vivit" else base.layer if arch == "vjepa2" else base.encoder.layer
    out("embed", base.embeddings)
    for i, blk in enumerate(blocks):
        inp(f"{i}.pre", blk)
        inp(f"{i}.mid", blk.norm2 if arch == "vjepa2" else blk.layernorm_after)
        out(f"{i}.post", blk, 0 if arch in ("timesformer", "vjepa2") else None)
        if arch == "vjepa2":
            inp(f"{i}.z", blk.attention.proj)
            out(f"{i}.attn", blk.attention, 0)
            out(f"{i}.pattern", blk.attention, 1)
            out(f"{i}.mlp", blk.mlp)
        elif arch == "vivit":
            inp(f"{i}.z", blk.attention.o_proj)
            out(f"{i}.attn", blk.attention, 0)
            out(f"{i}.pattern", blk.attention, 1)
            out(f"{i}.mlp", blk.mlp)
        elif arch == "videomae":
            inp(f"{i}.z", blk.attention.output.dense)
            out(f"{i}.attn", blk.attention)
            out(f"{i}.pattern", blk.attention.attention, 1)
            out(f"{i}.mlp", blk.output.dense)
        else:
            inp(f"{i}.z_time", blk.temporal_attention.output.dense)
            out(f"{i}.pattern_time", blk.temporal_attention.attention.attn_drop)
            out(f"{i}.time", blk.temporal_dense)
            inp(f"{i}.space_in", blk.layernorm_before)
            inp(f"{i}.z_space", blk.attention.output.dense)
            out(f"{i}.pattern_space", blk.attention.attention.attn_drop)
            out(f"{i}.space", blk.attention.output.dense)
            out(f"{i}.mlp", blk.output)
    norm = model.pooler if arch == "vjepa2" else model.fc_norm if arch == "videomae" else base.layernorm
    out("final", norm)  # V-JEPA 2: the pooled vector the classifier reads
    try:
        with torch.no_grad():
            logits = model(**{model.main_input_name: x}).logits
    finally:
        for h in handles:
            h.remove()
    return _hooked_names(arch, model.config, seen), logits


def _hooked_names(arch, cfg, seen):
    """The HF tensors under the hooked names (reordered to token order where HF regroups)."""
    H = cfg.num_attention_heads
    refs = {"hook_embed": seen["embed"], "ln_final.hook_normalized": seen["final"]}
    for i in range(cfg.num_hidden_layers):
        p = f"blocks.{i}."
        pre, mid = seen[f"{i}.pre"], seen[f"{i}.mid"]
        b, n, d = pre.shape
        refs.update({p + "hook_resid_pre": pre, p + "hook_resid_mid": mid, p + "hook_mlp_out": seen[f"{i}.mlp"],
                     p + "hook_resid_post": seen[f"{i}.post"]})
        if arch != "timesformer":
            refs[p + "attn.hook_z"] = seen[f"{i}.z"].view(b, n, H, d // H)
            refs[p + "hook_attn_out"] = seen[f"{i}.attn"]
            refs[p + "attn.hook_pattern"] = seen[f"{i}.pattern"]
            if arch == "vivit":
                refs[p + "attn.hook_pattern_cls"] = seen[f"{i}.pattern"][:, :, 0]
            continue
        T = cfg.num_frames
        P = (n - 1) // T

        def frames_to_tokens(t, b=b, T=T, P=P):  # (b * T, 1 + P, ...) -> (b, tokens, ...), CLS averaged
            t = t.reshape(b, T, 1 + P, *t.shape[2:])
            return torch.cat([t[:, :, :1].mean(1), t[:, :, 1:].transpose(1, 2).reshape(b, P * T, *t.shape[3:])], 1)

        time = torch.cat([pre.new_zeros(b, 1, d), seen[f"{i}.time"]], 1)
        space_in = seen[f"{i}.space_in"].reshape(b, T, 1 + P, d)
        mid_time = torch.cat([space_in[:, 0, :1], space_in[:, :, 1:].transpose(1, 2).reshape(b, P * T, d)], 1)
        space = frames_to_tokens(seen[f"{i}.space"])
        refs.update({
            p + "attn_time.hook_z": seen[f"{i}.z_time"].reshape(b, P * T, H, d // H),
            p + "attn_time.hook_pattern": seen[f"{i}.pattern_time"].reshape(b, P, H, T, T),
            p + "hook_attn_time_out": time,
            p + "hook_resid_mid_time": mid_time,
            p + "attn_space.hook_z": frames_to_tokens(seen[f"{i}.z_space"].reshape(b * T, 1 + P, H, d // H)),
            p + "attn_space.hook_pattern": seen[f"{i}.pattern_space"].reshape(b, T, H, 1 + P, 1 + P),
            p + "attn_space.hook_pattern_cls": seen[f"{i}.pattern_space"].reshape(b, T, H, 1 + P, 1 + P)[..., 0, :],
            p + "hook_attn_space_out": space,
            p + "hook_attn_out": time + space,
        })
    return refs


# ---------------------------------------------------------------------- exactness
def test_every_name_equals_the_hf_forward(small):
    arch, hooked, x = small
    run = hooked.run(x, names=hooked.hook_names())
    refs, logits = hf_activations(arch, hooked.model, x)
    assert set(run.cache) == set(hooked.hook_names()) == set(refs)
    for name, want in refs.items():
        torch.testing.assert_close(run[name], want, rtol=1e-5, atol=1e-5, msg=name)
    torch.testing.assert_close(run.logits, logits, rtol=1e-5, atol=1e-5)


def test_the_shipped_toy_timesformer_equals_its_hf_forward():
    loaded = load_model("toy-timesformer")
    hooked = HookedVideoTransformer(loaded)
    from utils.data import CANONICAL_SEED
    from utils.synthetic import render_pair

    x = torch.cat([loaded.preprocess(c) for c in render_pair(CANONICAL_SEED)])
    assert x.shape == (2, 8, 3, 96, 96)
    run = hooked.run(x, names=hooked.hook_names())
    refs, logits = hf_activations("timesformer", loaded.model, x)
    for name, want in refs.items():
        torch.testing.assert_close(run[name], want, rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(run.logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hooked.logits_from_resid(run["blocks.11.hook_resid_post"]), logits,
                               rtol=1e-5, atol=1e-5)


def test_the_stream_is_additive_and_W_O_writes_z(small):
    arch, hooked, x = small
    run = hooked.run(x, names=hooked.hook_names())
    for i in range(hooked.n_layers):
        p = f"blocks.{i}."
        torch.testing.assert_close(run[p + "hook_resid_mid"], run[p + "hook_resid_pre"] + run[p + "hook_attn_out"])
        torch.testing.assert_close(run[p + "hook_resid_post"], run[p + "hook_resid_mid"] + run[p + "hook_mlp_out"])
        attn_sum = sum(run[p + hooked.components[c]] for c in hooked.head_sites)
        torch.testing.assert_close(run[p + "hook_attn_out"], attn_sum)
        for component, site in hooked.head_sites.items():
            rows = hooked.adapter.head_rows(component)
            z = run[p + site]  # (batch, rows, head, d_head)
            by_hand = torch.einsum("bthd,hdm->btm", z, hooked.W_O(i, component)) + hooked.b_O(i, component)
            torch.testing.assert_close(run[p + hooked.components[component]][:, rows], by_hand, rtol=1e-5, atol=1e-5)
        if arch == "timesformer":  # the temporal step never writes to CLS
            assert float(run[p + "hook_attn_time_out"][:, 0].abs().max()) == 0.0
            torch.testing.assert_close(run[p + "hook_resid_mid_time"],
                                       run[p + "hook_resid_pre"] + run[p + "hook_attn_time_out"])
            torch.testing.assert_close(run[p + "hook_resid_mid"],
                                       run[p + "hook_resid_mid_time"] + run[p + "hook_attn_space_out"])


def test_adapter_facts(small):
    arch, hooked, x = small
    want = {
        "vivit": {"attention": "hook_attn_out", "mlp": "hook_mlp_out"},
        "videomae": {"attention": "hook_attn_out", "mlp": "hook_mlp_out"},
        "timesformer": {"attention_time": "hook_attn_time_out", "attention_space": "hook_attn_space_out",
                        "mlp": "hook_mlp_out"},
        "vjepa2": {"attention": "hook_attn_out", "mlp": "hook_mlp_out"},
    }[arch]
    assert hooked.components == want and hooked.arch == arch
    assert hooked.has_cls == (arch in ("vivit", "timesformer")) and hooked.n_prefix == int(hooked.has_cls)
    assert hooked.grid == (4, 3, 3) and hooked.n_tokens == 36 + hooked.n_prefix
    assert hooked.loaded.grid == hooked.grid and hooked.loaded.n_tokens == hooked.n_tokens
    assert hooked.loaded.tubelet == hooked.adapter.tubelet
    run = hooked.run(x, names={"blocks.2.hook_resid_post"})
    resid = run["blocks.2.hook_resid_post"]
    torch.testing.assert_close(hooked.logits_from_resid(resid), run.logits, rtol=1e-5, atol=1e-5)
    if arch == "vjepa2":  # the readout is the encoder's final norm and the attentive pooler; no norm after it
        m = hooked.model
        with torch.inference_mode():
            torch.testing.assert_close(hooked.readout_tokens(resid), m.pooler(m.vjepa2.encoder.layernorm(resid)),
                                       rtol=1e-5, atol=1e-6)
        assert isinstance(hooked.final_norm, torch.nn.Identity)
        return
    want_readout = resid.mean(1) if arch == "videomae" else resid[:, 0]
    assert torch.equal(hooked.readout_tokens(resid), want_readout)
    norm = hooked.model.fc_norm if arch == "videomae" else getattr(hooked.model, arch).layernorm
    assert hooked.final_norm is norm


def test_start_midway_equals_the_full_run(small):
    _, hooked, x = small
    names = {"blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"}
    full = hooked.run(x, names=names)
    for start in sorted(names):
        resumed = hooked.run(start=(start, full[start]))
        torch.testing.assert_close(resumed.logits, full.logits, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- token geometry
def test_token_geometry(small):
    arch, hooked, x = small
    T, R, C = hooked.grid
    cells = [(t, r, c) for t in range(T) for r in range(R) for c in range(C)]
    tokens = [hooked.token_index(*cell) for cell in cells]
    assert sorted(tokens) == list(range(hooked.n_prefix, hooked.n_tokens))
    assert [hooked.token_position(tok) for tok in tokens] == cells
    if arch == "timesformer":  # CLS + (row, col, frame)
        assert hooked.token_index(0, 0, 0) == 1 and hooked.token_index(1, 0, 0) == 2
        assert hooked.token_index(0, 0, 1) == 1 + T
    with pytest.raises(IndexError):
        hooked.token_position(hooked.n_tokens)
    if hooked.has_cls:
        with pytest.raises(IndexError):
            hooked.token_position(0)
    values = torch.arange(T * R * C, dtype=torch.float32)[None]  # (1, patches), token order
    grid = hooked.by_time_step(values)
    assert grid.shape == (1, T, R, C)
    for t, r, c in cells:
        assert int(grid[0, t, r, c]) == hooked.token_index(t, r, c) - hooked.n_prefix
    assert torch.equal(hooked.to_token_order(grid), values)


def test_a_pixel_change_moves_only_its_token(small):
    """A change inside one token's pixel box moves exactly that token's embedding."""
    _, hooked, x = small
    for cell in ((3, 1, 2), (0, 2, 0), (2, 0, 1)):
        token = hooked.token_index(*cell)
        y = x[:1].clone()
        frames, rows, cols = hooked.pixel_box(token)
        y[:, frames, :, rows, cols] += 1.0
        emb = [hooked.run(v, names={"hook_embed"})["hook_embed"] for v in (x[:1], y)]
        moved = (emb[1] - emb[0]).norm(dim=-1)[0]
        assert (moved > 1e-6).nonzero().flatten().tolist() == [token]


# ---------------------------------------------------------------------- attribution
def test_dla_and_lens_add_up_to_the_logit(small):
    _, hooked, x = small
    names = set(dla_names(hooked)) | set(token_dla_names(hooked))
    names |= {"hook_embed"} | {f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)}
    run = hooked.run(x[:1], names=names)
    for target in range(run.logits.shape[-1]):
        logit = float(run.logits[0, target])
        df = direct_logit_attribution(hooked, run, target)
        assert abs(dla_total(df) - logit) < 1e-4 * max(1, abs(logit))
        for layer in range(hooked.n_layers):
            for component in hooked.head_sites:
                split = df[(df.layer == layer) & df.component.isin([f"{component}_head", f"{component}_bias"])]
                whole = df[(df.layer == layer) & (df.component == component)].logit.item()
                assert len(split) == hooked.n_heads + 1
                assert split.logit.sum() == pytest.approx(whole, rel=1e-4, abs=1e-5)
        t = token_dla(hooked, run, target)
        assert t["tokens"].shape == (hooked.n_tokens,)
        assert abs(t["total"] - logit) < 1e-4 * max(1, abs(logit))
        lens = logit_lens_readout(hooked, run, target)
        assert lens.logit.iloc[-1] == pytest.approx(logit, abs=1e-4)


def test_residual_ig_is_complete(small):
    _, hooked, x = small
    run = hooked.run(x[:1], names=residual_ig_names(hooked))
    ig = residual_ig(hooked, run, 1, steps=64)
    assert ig["tokens"].shape == (hooked.n_tokens - hooked.n_prefix,)
    assert abs(ig["total"] - ig["gap"]) <= 1e-3 + 0.02 * abs(ig["gap"])
    assert ig["logit"] == pytest.approx(float(run.logits[0, 1]), abs=1e-5)


# ---------------------------------------------------------------------- patching
def test_self_patching_changes_nothing(small):
    """Every site of every block replaced by the run's own value: the logits do not move."""
    _, hooked, x = small
    clean = hooked.run(x, names=hooked.hook_names())
    for layer in range(hooked.n_layers):
        for site in hooked.block_hooks():
            name = f"blocks.{layer}.{site}"
            own = clean[name]
            patched = hooked.run(x, hooks={name: lambda act, _n, own=own: own.clone()})
            torch.testing.assert_close(patched.logits, clean.logits, rtol=1e-5, atol=1e-5, msg=name)


def test_patching_the_last_residual_recovers_the_source(small):
    _, hooked, x = small
    L = hooked.n_layers
    read = f"blocks.{L - 1}.hook_resid_post"
    src = hooked.run(x[:1], names=[f"blocks.{i}.hook_resid_pre" for i in range(L)] + [read])
    tgt = hooked.run(x[1:], names=needed_target_names(hooked))
    patches = [Patch(read, src[read][0]), Patch("blocks.0.hook_resid_pre", src["blocks.0.hook_resid_pre"][0])]
    acts, logits = run_patches(hooked, tgt.cache, patches)
    for act, lg in zip(acts, logits, strict=True):
        torch.testing.assert_close(lg, src.logits[0], rtol=1e-5, atol=1e-5)
        rec = recovery(act, tgt[read][0], src[read][0])
        assert rec["recovery_projection_pct"] == pytest.approx(100, abs=1e-3)
        assert rec["recovery_eq2_pct"] == pytest.approx(100, abs=1e-3)


def test_batched_sweep_equals_naive_patches(small):
    """Full-position patches of every component output and residual site, partial-position
    patches, and per-head patches where utils.patching knows the site (``attn.hook_z``)."""
    _, hooked, x = small
    src = hooked.run(x[:1], names=hooked.hook_names())
    tgt = hooked.run(x[1:], names=needed_target_names(hooked))
    some = [hooked.token_index(1, 0, 2), hooked.token_index(3, 2, 1)] + ([0] if hooked.has_cls else [])
    patches = []
    for layer in range(hooked.n_layers):
        for site in ("hook_resid_pre", *hooked.components.values(), "hook_attn_out", "hook_resid_mid",
                     "hook_resid_post"):
            name = f"blocks.{layer}.{site}"
            patches += [Patch(name, src[name][0]), Patch(name, src[name][0], positions=some)]
        for site in hooked.head_sites.values():  # (a full hook_z patch trips utils.patching._entry)
            name = f"blocks.{layer}.{site}"
            patches.append(Patch(name, src[name][0], positions=[0, 5]))
            if site == "attn.hook_z":
                patches.append(Patch(name, src[name][0], heads=[1]))
    fast_acts, fast_logits = run_patches(hooked, tgt.cache, patches, batch_size=4)
    slow_acts, slow_logits = naive_patches(hooked, x[1:], patches)
    torch.testing.assert_close(fast_acts, slow_acts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-5)
    moved = (fast_logits - tgt.logits).abs().amax(-1)
    assert (moved > 1e-4).float().mean() > 0.5  # the patches do something


# ---------------------------------------------------------------------- TimeSformer's CLS row
def test_timesformer_edited_cls_row_is_what_the_cls_query_reads():
    """Editing the spatial CLS rows (one per frame) and editing row 0 of the full spatial
    pattern give the same run; the other queries keep their z; the logits move."""
    loaded = small_loaded("timesformer")
    hooked = HookedVideoTransformer(loaded)
    x = torch.randn(1, 4, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    cls_name, full_name, z_name = (f"blocks.1.attn_space.{s}" for s in ("hook_pattern_cls", "hook_pattern", "hook_z"))
    clean = hooked.run(x, names={z_name})
    n_keys = 1 + 9

    def uniform(row, _n):
        return torch.full_like(row, 1 / n_keys)

    def row0(p, _n):
        p = p.clone()
        p[..., 0, :] = 1 / n_keys
        return p

    via_cls = hooked.run(x, names={z_name, cls_name}, hooks={cls_name: uniform})
    via_full = hooked.run(x, names={z_name}, hooks={full_name: row0})
    torch.testing.assert_close(via_cls.logits, via_full.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_cls[z_name], via_full[z_name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_cls[z_name][:, 1:], clean[z_name][:, 1:], rtol=0, atol=0)
    assert (via_cls.logits - clean.logits).abs().max() > 1e-3
    watched = hooked.run(x, hooks={cls_name: lambda r, _n: None})
    torch.testing.assert_close(watched.logits, clean.logits, rtol=0, atol=0)


# ---------------------------------------------------------------------- loading
@pytest.mark.parametrize("arch", ["timesformer", "videomae"])
def test_transformers4_layout_loads_with_identical_logits(arch, tmp_path):
    """A transformers 4.x key layout (``tests/hubfiles.py``) of a small 400-class model with
    LABEL_n names loads with no missing or unexpected keys, Kinetics names and the same logits."""
    from hubfiles import save_tf4_checkpoint, small_hub_like

    model = small_hub_like(arch)
    folder = save_tf4_checkpoint(model, tmp_path / arch)
    keys = load_file(folder / "model.safetensors")
    if arch == "videomae":  # 4.x: separate q_bias / v_bias, and qkv_bias in config.json
        assert "videomae.encoder.layer.0.attention.attention.q_bias" in keys
        assert not any(k.endswith("attention.attention.query.bias") for k in keys)
    else:  # transformers 5 keeps the 4.x names of TimeSformer: the file is its own state dict
        assert set(keys) == set(model.state_dict())
    loaded = load_model(str(folder))
    info = loaded.extra["loading_info"]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert loaded.arch == arch and loaded.target_label == "bowling" and loaded.target_index == 31
    x = torch.randn(1, model.config.num_frames, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(pixel_values=x).logits
    torch.testing.assert_close(loaded.logits(x), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(HookedVideoTransformer(loaded).run(x).logits, want, rtol=1e-5, atol=1e-5)


def test_ablation_picks_patch_tokens_of_every_layout(small):
    """Top-fraction and random ablations choose patch tokens, whatever the prefix (VideoMAE has
    no CLS): ablating every patch uses tokens n_prefix .. n_tokens - 1 exactly once."""
    from utils.ablation import random_token_sets, top_fraction_ablation

    _, hooked, pixels = small
    x = pixels[:1]
    patches = set(range(hooked.n_prefix, hooked.n_tokens))
    for score in ("notebook", "dla"):
        res = top_fraction_ablation(hooked, x, 0, mode="corrected", fraction=1.0, score=score)
        assert sorted(res["tokens"]) == sorted(patches), score
    (drawn,) = random_token_sets(hooked, len(patches), 1, seed=0)
    assert sorted(drawn) == sorted(patches)


# ---------------------------------------------------------------------------- one place per architecture
ARCH_NAME = r"""["'](vivit|timesformer|videomae|vjepa2)["']"""
COMPARISON = re.compile(rf"""(==|!=)\s*{ARCH_NAME}|{ARCH_NAME}\s*(==|!=)|\bin\s*[(\[{{][^)\]}}]*{ARCH_NAME}""")


def test_no_branch_on_an_architecture_name_outside_its_adapter():
    """An architecture's facts live in utils/arch/<name>.py: no code elsewhere in the package
    compares a model type or architecture name (a fourth architecture touches one file)."""
    offenders = []
    for path in sorted((paths.REPO_ROOT / "utils").rglob("*.py")):
        if path.parent.name == "arch":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if COMPARISON.search(code):
                offenders.append(f"{path.relative_to(paths.REPO_ROOT)}:{n}: {line.strip()}")
    assert not offenders, "branches on an architecture name:\n" + "\n".join(offenders)


def test_the_branch_detector_sees_each_form():
    for line in ('if arch == "vivit":', "if 'videomae' != cfg.model_type:", 'if a in ("vivit", "x"):',
                 'ok = arch in {"timesformer"}'):
        assert COMPARISON.search(line), line
    for line in ('name = "vivit"', 'ADAPTERS["vivit"].hf_class', 'f"toy-{arch}"'):
        assert not COMPARISON.search(line), line


# ---------------------------------------------------------------------------- V-JEPA 2's attentive pooler
def test_vjepa2_readout_gradient_is_the_frozen_pooler_exactly():
    """The attentive pooler is not linear; frozen at one run (LayerNorm scales, attention
    patterns, MLP outputs) it is affine: ``logit = sum_s g_s . x_s + k`` at that run, and a change
    ``e`` of the stream moves the frozen readout by exactly ``g . e``. The classifier is scaled so
    that the logits are of order 1 and a wrong ``g`` shows."""
    loaded = small_loaded("vjepa2")
    with torch.no_grad():
        loaded.model.classifier.weight.mul_(40.0)
    hooked = HookedVideoTransformer(loaded)
    x = torch.randn(1, 8, 3, 48, 48, generator=torch.Generator().manual_seed(5))
    last = f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    run = hooked.run(x, names={last})
    resid = run[last][0].clone()
    for target in range(3):
        g, k = hooked.adapter.readout_gradient(resid, target)
        logit = float(run.logits[0, target])
        assert abs(logit) > 0.1
        assert float((g * resid).sum() + k) == pytest.approx(logit, rel=1e-5, abs=1e-5)
        frozen = hooked.adapter.readout_affine(resid[None])
        e = torch.randn(resid.shape, generator=torch.Generator().manual_seed(target))
        w = hooked.model.classifier.weight[target]
        with torch.no_grad():
            moved = float((frozen((resid + e)[None])[0] - frozen(resid[None])[0]) @ w)
        assert moved == pytest.approx(float((g * e).sum()), rel=1e-4, abs=1e-5)
        with torch.no_grad():  # and the real readout is not that affine map away from the run
            real = float(hooked.logits_from_resid((resid + e)[None])[0, target])
        assert abs(real - (logit + moved)) > 1e-3


def test_whole_head_patches_join_at_resid_mid_where_heads_add_linearly(small):
    """A patch of whole heads skips its own attention step where ``attn_out = sum_h z_h W_O[h] + b_O``
    feeds resid_mid directly (``utils.patching._head_join``: one attention step, then the MLP) and
    the target's ``z`` is cached: the numbers of the hooked run (``naive_patches``), and a
    self-patch leaves resid_mid exactly as it was. TimeSformer, whose time heads feed a second
    attention step, keeps the hooked path."""
    _, hooked, x = small
    L = hooked.n_layers
    site = next(iter(hooked.head_sites.values()))
    z_names = [f"blocks.{layer}.{site}" for layer in range(L)]
    src = hooked.run(x[:1], names=hooked.hook_names())
    tgt = hooked.run(x[1:], names=needed_target_names(hooked) + z_names)
    patches = [Patch(n, src[n][0], heads=heads) for n in z_names for heads in ([1], [0, 2])]
    linear = list(hooked.components) == ["attention", "mlp"]
    assert [_head_join(hooked, p, tgt.cache) is not None for p in patches] == [linear] * len(patches)
    fast_acts, fast_logits = run_patches(hooked, tgt.cache, patches, batch_size=3)
    slow_acts, slow_logits = naive_patches(hooked, x[1:], patches)
    torch.testing.assert_close(fast_acts, slow_acts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-5)
    assert (fast_logits - tgt.logits).abs().max() > 1e-5  # the patches do something
    if linear:
        own = Patch(z_names[2], tgt[z_names[2]][0], heads=[0, 1])
        assert torch.equal(_head_join(hooked, own, tgt.cache), tgt["blocks.2.hook_resid_mid"][0])
