"""V-JEPA 2 adapter (``VJEPA2ForVideoClassification``, e.g. ``facebook/vjepa2-vitl-fpc16-256-ssv2``).

Tokens: Conv3d tubelets (2 x 16 x 16), **no CLS and no position table**: token
``(t * rows + row) * cols + col`` (time step, row, column); position enters every attention
through 3-axis rotary embeddings (RoPE) on the queries and keys (the head dimension split into
time, row and column parts). Block (``vjepa2.encoder.layer[l]``): pre-LN attention (``norm1`` ->
``query`` / ``key`` / ``value``, RoPE on q and k, -> ``proj``), pre-LN MLP (``norm2`` -> ``mlp``).

Readout: ``vjepa2.encoder.layernorm`` on every token, then the **attentive pooler**:
``num_pooler_layers`` self-attention layers over all tokens (3 in the hub checkpoints), then one
cross-attention from a learned query over the tokens, then its MLP: one vector per clip, which
the classifier reads. Unlike the CLS or the token mean, this readout is **not linear** in the
residual stream. ``readout_tokens`` is the whole of it (final norm and pooler), so
``ln_final.hook_normalized`` is the pooled vector ``(batch, d_model)`` and the final norm the
core applies after it is the identity. DLA goes through ``readout_gradient``: the pooler with
its attention patterns and LayerNorm scales frozen at the run and its MLP outputs held fixed is
affine in the stream, and its gradient gives each token's direction exactly (see there).

=================================  ===========================================================
``hook_embed``                     tubelet embedding (no position added)      (batch, tokens, d_model)
``blocks.{l}.hook_resid_pre``      residual stream entering block l           (batch, tokens, d_model)
``blocks.{l}.attn.hook_z``         per-head attention outputs before W_O      (batch, tokens, head, d_head)
``blocks.{l}.attn.hook_pattern``   full attention pattern                     (batch, head, query, key)
``blocks.{l}.hook_attn_out``       attention block output (after W_O + bias)  (batch, tokens, d_model)
``blocks.{l}.hook_resid_mid``      resid_pre + attn_out                       (batch, tokens, d_model)
``blocks.{l}.hook_mlp_out``        MLP output before the residual add         (batch, tokens, d_model)
``blocks.{l}.hook_resid_post``     resid_mid + mlp_out                        (batch, tokens, d_model)
``ln_final.hook_normalized``       the pooler's output, what the classifier reads  (batch, d_model)
=================================  ===========================================================

Components: ``{"attention": "hook_attn_out", "mlp": "hook_mlp_out"}``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor, VJEPA2Config, VJEPA2ForVideoClassification

from utils.arch.core import Adapter, Sites, attend
from utils.toy_models import CLIP_FRAMES, IMAGE_SIZE, labels_config, toy_processor


class VJEPA2Adapter(Adapter):
    arch = "vjepa2"
    hf_class = VJEPA2ForVideoClassification
    processor_class = AutoImageProcessor
    hub_checkpoint = "facebook/vjepa2-vitl-fpc16-256-ssv2"
    shape_profile = "vjepa2-shape"
    toy_profile = "toy-vjepa2"
    title = "V-JEPA 2"  # in figures and tables
    colour = "#D55E00"  # the model's colour where architectures are compared
    toy_steps = 250  # optimiser steps of its toy model (utils.train; the toy ViViT: 700)
    toy_train_sdpa = True

    @staticmethod
    def toy_card(actions) -> str:
        """Its toy model's card: what the model is and how it compares with the hub checkpoint
        (``utils.train`` adds the preprocessing, the recipe and the held-out accuracy)."""
        return f"""A 12-layer, 12-head V-JEPA 2 encoder with its attentive-pooler classifier
(`VJEPA2ForVideoClassification`, transformers) trained from scratch (no self-supervised JEPA
pre-training) on this repository's synthetic world (`utils/synthetic.py`) to name the action of
a clip. It is the toy counterpart of `facebook/vjepa2-vitl-fpc16-256-ssv2` (no Kinetics-400
V-JEPA 2 classifier exists), trained with the toy ViViT's data and recipe, so that the
architectures can be compared on one world.

| | toy-vjepa2 | V-JEPA 2 ViT-L (`facebook/vjepa2-vitl-fpc16-256-ssv2`) |
|---|---|---|
| layers x heads | 12 x 12 | 24 x 16 |
| hidden / MLP width | 96 / 384 (d_head 8) | 1024 / 4096 (d_head 64) |
| input | 16 frames x 96 x 96 | 16 frames x 256 x 256 |
| tubelet | 2 x 16 x 16 | 2 x 16 x 16 |
| tokens | 8 x 6 x 6 = 288 patches, no CLS | 8 x 16 x 16 = 2048, no CLS |
| position | 3-axis rotary embeddings in every attention (no position table) | the same |
| classifier | final LayerNorm, attentive pooler (3 self-attention layers, a query's cross-attention), linear | same |
| classes | {len(actions)} ({", ".join(actions)}) | 174 (Something-Something v2) |

The self-supervised predictor that `VJEPA2Model` carries is unused by the classifier; it is
kept to one narrow layer."""
    toy_frames = CLIP_FRAMES
    site_dims = {
        "attn.hook_z": (0, 1),  # (tokens, head, d_head)
        "attn.hook_pattern": (1, 0),  # (head, query, key)
    }
    readout_attention_site = "attn.hook_pattern"  # no CLS: the mean query row (the pooler reads every token)
    component_colours = {"attention": "#0072B2", "mlp": "#E69F00"}
    readout_name = "pooler"  # no CLS: the attentive pooler reads every token
    has_cls = False
    n_prefix = 0
    final_norm_per_token = False  # the final norm is inside readout_tokens; the core's is the identity
    linear_readout = False
    dla_frozen = "the pooler frozen at the run; const holds its query, MLP outputs and biases"
    attention_hooks = ("attn.hook_z", "attn.hook_pattern")
    components = {"attention": "hook_attn_out", "mlp": "hook_mlp_out"}
    head_sites = {"attention": "attn.hook_z"}
    out_proj = "attention.proj"  # W_O and b_O (the base Adapter)

    @staticmethod
    def input_frames(config) -> int:
        return config.frames_per_clip

    @staticmethod
    def input_size(config) -> int:
        return config.crop_size

    @classmethod
    def token_geometry(cls, config):
        t, p = config.tubelet_size, config.patch_size
        return (t, p, p), (config.frames_per_clip // t, config.crop_size // p, config.crop_size // p)

    @staticmethod
    def hub_processor():
        """V-JEPA 2's processor: resize and centre-crop to 256, x / 255, ImageNet mean and std
        (``VJEPA2VideoProcessor``'s defaults), as an image processor that returns
        ``pixel_values``."""
        from transformers import VideoMAEImageProcessorPil

        return VideoMAEImageProcessorPil(size={"shortest_edge": 292}, crop_size={"height": 256, "width": 256},
                                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])

    @staticmethod
    def shape_config() -> VJEPA2Config:
        """V-JEPA 2 ViT-L with the SSv2 classifier, as ``facebook/vjepa2-vitl-fpc16-256-ssv2``:
        24 layers x 16 heads, 1024 wide, 16 frames at 256 px, a 3-layer attentive pooler and 174
        classes (Something-Something v2; named ``class 0`` ... here, no label file ships). With no
        bowling class, the analysed class is class 0 (``default_target``) unless TARGET says."""
        names = {i: f"class {i}" for i in range(174)}
        return VJEPA2Config(
            patch_size=16, crop_size=256, frames_per_clip=16, tubelet_size=2,  # -> 8 x 16 x 16 = 2048 tokens
            hidden_size=1024, num_attention_heads=16, num_hidden_layers=24, mlp_ratio=4.0,
            layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu", num_pooler_layers=3,
            num_labels=174, default_target="class 0", **labels_config(names),
        )

    @staticmethod
    def toy_config(num_labels: int, id2label: dict[int, str]) -> VJEPA2Config:
        """The toy V-JEPA 2: 12 x 12 heads, 96 wide (MLP 384), tubelets 2 x 16 x 16 on 16 x 96 x
        96, RoPE, a 3-layer attentive pooler as the hub checkpoints; the unused self-supervised
        predictor is kept to one narrow layer."""
        return VJEPA2Config(
            patch_size=16, crop_size=IMAGE_SIZE, frames_per_clip=CLIP_FRAMES, tubelet_size=2,  # 8 x 6 x 6 tokens
            hidden_size=96, num_attention_heads=12, num_hidden_layers=12, mlp_ratio=4.0,
            layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu", num_pooler_layers=3,
            pred_hidden_size=24, pred_num_attention_heads=2, pred_num_hidden_layers=1,
            num_labels=num_labels, **labels_config(id2label),
        )

    toy_processor = staticmethod(toy_processor)

    def __init__(self, model):
        cfg = model.config
        self.model = model
        self.base = model.vjepa2.encoder
        self.blocks = self.base.layer
        self.embeddings = self.base.embeddings  # the module embed() runs
        self.n_layers, self.n_heads, self.d_model = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.tubelet, self.grid = self.token_geometry(cfg)
        self.pooler = model.pooler
        self.final_norm = nn.Identity()  # the encoder's final norm runs inside readout_tokens
        self.classifier = model.classifier

    def attention(self, layer: int, x: torch.Tensor, sites: Sites) -> torch.Tensor:
        blk = self.blocks[layer]
        att = blk.attention
        h = blk.norm1(x)
        q, k, v = (self._heads(proj(h)) for proj in (att.query, att.key, att.value))
        pos = att.get_position_ids(h)
        q, k = att.apply_rotary_embeddings(q, pos), att.apply_rotary_embeddings(k, pos)
        z = attend(q, k, v, att.scaling, sites, "attn")  # (batch, head, tokens, d_head)
        z = sites("attn.hook_z", z.transpose(1, 2))  # (batch, tokens, head, d_head)
        attn_out = sites("hook_attn_out", att.proj(z.reshape(*x.shape[:2], self.d_model)))
        return x + attn_out

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[layer]
        return blk.mlp(blk.norm2(x))

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        """The encoder's final norm and the attentive pooler: ``(batch, tokens, d_model)`` ->
        ``(batch, d_model)``, in the weights' dtype and returned in ``resid``'s."""
        dtype = self.classifier.weight.dtype
        if resid.is_inference():  # as the run that made resid
            mode = torch.inference_mode()
        else:  # a graph only where a gradient is wanted (utils.atp's metrics)
            mode = nullcontext() if resid.requires_grad else torch.no_grad()
        with mode:
            return self.pool(self.base.layernorm(resid.to(dtype))).to(resid.dtype)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """The attentive pooler on normalised tokens ``(batch, tokens, d_model)`` -> ``(batch,
        d_model)``: HF's ``VJEPA2AttentivePooler`` step for step, its attention through the fused
        SDPA kernel (the model is loaded with eager attention for the HF forward's patterns; the
        pooler runs once per readout, for every layer's probe features, so the kernel counts:
        notebook 07's analysis of 8 pairs went from 6.8 s to 4.9 s on 2 cores).
        ``tests/test_architectures.py`` checks it against ``model.pooler``."""
        pooler = self.pooler
        for layer in pooler.self_attention_layers:
            att = layer.self_attn
            a = layer.layer_norm1(h)
            q, k, v = (self._pooler_heads(att, proj(a)) for proj in (att.q_proj, att.k_proj, att.v_proj))
            z = F.scaled_dot_product_attention(q, k, v, scale=att.scale)
            h = h + att.out_proj(z.transpose(1, 2).reshape(h.shape))
            h = h + layer.mlp(layer.layer_norm2(h))
        cross = pooler.cross_attention_layer
        att = cross.cross_attn
        a = cross.layer_norm1(h)
        query = pooler.query_tokens.expand(h.shape[0], -1, -1)
        q = self._pooler_heads(att, att.q_proj(query))
        k, v = (self._pooler_heads(att, proj(a)) for proj in (att.k_proj, att.v_proj))
        x = query + F.scaled_dot_product_attention(q, k, v, scale=att.scale).transpose(1, 2).reshape(query.shape)
        return (x + cross.mlp(cross.layer_norm2(x)))[:, 0]

    def readout_gradient(self, resid: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g (tokens, d_model), k)`` with ``logit = sum_s g_s . x_s + k`` for one run's final
        residual ``resid`` ``(tokens, d_model)``, exact at that run: the readout with every
        LayerNorm's scale (the encoder's final norm, the pooler's) and every attention pattern
        of the pooler frozen at their values on ``resid``, and the pooler's MLP outputs held
        at theirs, is affine in the stream (``readout_affine``), so its gradient ``g`` gives
        each token's direction and ``k`` is its value at a zero stream."""
        w, b = self.classifier.weight[target], self.classifier.bias[target]
        with torch.inference_mode(False), torch.enable_grad():  # also inside the DLA's inference mode
            x = resid.detach().clone().float().requires_grad_(True)
            frozen = self.readout_affine(x[None])  # records the frozen quantities
            (g,) = torch.autograd.grad(frozen(x[None])[0] @ w, x)
        with torch.inference_mode(False), torch.no_grad():
            k = frozen(torch.zeros_like(x)[None])[0] @ w + b
        return g.to(resid.dtype), k.to(resid.dtype)

    def readout_affine(self, resid: torch.Tensor):
        """The readout of ``resid`` ``(1, tokens, d_model)`` frozen at that run: returns ``f``
        with ``f(resid)`` = the pooled vector and ``f`` affine in its argument (LayerNorm
        scales, attention patterns and MLP outputs computed on ``resid`` and then held)."""
        pooler, final_norm = self.pooler, self.base.layernorm

        def ln_frozen(ln: nn.LayerNorm, h: torch.Tensor):
            sigma = torch.sqrt(h.detach().var(-1, unbiased=False, keepdim=True) + ln.eps)
            return lambda y: (y - y.mean(-1, keepdim=True)) / sigma * ln.weight + ln.bias

        steps = []  # the frozen pieces, in run order, computed on resid
        with torch.no_grad():
            h = resid.detach()
            norm = ln_frozen(final_norm, h)
            h = norm(h)
            steps.append(("norm", norm))
            for layer in pooler.self_attention_layers:
                n1 = ln_frozen(layer.layer_norm1, h)
                att = layer.self_attn
                a = n1(h)
                q, k = (self._pooler_heads(att, proj(a)) for proj in (att.q_proj, att.k_proj))
                pattern = torch.softmax(q @ k.transpose(-1, -2) * att.scale, -1, dtype=torch.float32)
                h = h + self._pooled_attention(att, pattern, a)
                mlp_out = layer.mlp(layer.layer_norm2(h))
                h = h + mlp_out
                steps.append(("self", (n1, att, pattern, mlp_out)))
            cross = pooler.cross_attention_layer
            n1 = ln_frozen(cross.layer_norm1, h)
            a = n1(h)
            query = pooler.query_tokens.expand(h.shape[0], -1, -1)
            att = cross.cross_attn
            qh, kh = self._pooler_heads(att, att.q_proj(query)), self._pooler_heads(att, att.k_proj(a))
            cross_pattern = torch.softmax(qh @ kh.transpose(-1, -2) * att.scale, -1, dtype=torch.float32)
            pooled = query + self._pooled_attention(att, cross_pattern, a, out=False)
            cross_mlp = cross.mlp(cross.layer_norm2(pooled))
            steps.append(("cross", (n1, att, cross_pattern, cross_mlp, query)))

        def f(x: torch.Tensor) -> torch.Tensor:
            for kind, piece in steps:
                if kind == "norm":
                    x = piece(x)
                elif kind == "self":
                    n1, att, pattern, mlp_out = piece
                    x = x + self._pooled_attention(att, pattern, n1(x)) + mlp_out
                else:
                    n1, att, pattern, mlp_out, query = piece
                    x = (query + self._pooled_attention(att, pattern, n1(x), out=False) + mlp_out)
            return x[:, 0]

        return f

    @staticmethod
    def _pooler_heads(att, t: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, d_model)`` -> ``(batch, head, seq, d_head)`` for a pooler attention."""
        return t.view(t.shape[0], t.shape[1], att.num_heads, att.head_dim).transpose(1, 2)

    @staticmethod
    def _pooled_attention(att, pattern: torch.Tensor, a: torch.Tensor, out: bool = True) -> torch.Tensor:
        """``pattern @ V(a)`` of a pooler attention (``out``: then its ``out_proj``)."""
        b, n, _ = a.shape
        v = att.v_proj(a).view(b, n, att.num_heads, att.head_dim).transpose(1, 2)
        z = (pattern.to(v.dtype) @ v).transpose(1, 2).reshape(b, pattern.shape[2], -1)
        return att.out_proj(z) if out else z

    def token_dla_names(self, layer: int) -> list[str]:
        return [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_pattern"]

    def attention_by_source_terms(self, layer: int, cache: dict, batch_index: int, g: torch.Tensor):
        """The logit terms of block ``layer``'s attention output split by source token, read
        through the readout's per-token directions ``g`` ``(tokens, d_model)``
        (``readout_gradient``): ``(terms (tokens,), bias term)`` with
        ``terms[s] = sum_h sum_q A_h[q, s] g_q . (v_s^h W_O^h)`` (the value bias inside ``v``;
        RoPE turns queries and keys only) and ``bias term = sum_q g_q . b_O``; together they are
        ``sum_q g_q . attn_out_q``. Needs the full pattern."""
        blk = self.blocks[layer]
        x = cache[f"blocks.{layer}.hook_resid_pre"][batch_index]  # (tokens, d_model)
        v = blk.attention.value(blk.norm1(x)).view(x.shape[0], self.n_heads, self.d_head)
        ov = torch.einsum("shd,hdm->shm", v, self.W_O(layer))  # (source, head, d_model)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][batch_index]  # (head, query, source)
        read = torch.einsum("qm,shm->hqs", g, ov)  # g_q . (v_s^h W_O^h)
        return (pattern * read).sum((0, 1)), g.sum(0) @ self.b_O(layer)
