"""ViViT adapter (``VivitForVideoClassification``, e.g. ``google/vivit-b-16x2-kinetics400``).

Embedding: Conv3d tubelets (2 x 16 x 16) + CLS + learned position embeddings. Token 0 is CLS;
patch tokens follow in the order of the tubelet embedding: time step, then row, then column
(``token = 1 + (t * rows + row) * cols + col``). Block: pre-LN attention
(``layernorm_before`` -> q/k/v/o projections), pre-LN MLP (``layernorm_after`` -> ``mlp``).
Readout: final ``vivit.layernorm`` on every token, classifier on the CLS token.

=================================  ===========================================================
``hook_embed``                     tokens after tubelet + position embedding  (batch, tokens, d_model)
``blocks.{l}.hook_resid_pre``      residual stream entering block l           (batch, tokens, d_model)
``blocks.{l}.attn.hook_z``         per-head attention outputs before W_O      (batch, tokens, head, d_head)
``blocks.{l}.attn.hook_pattern``   full attention pattern                     (batch, head, query, key)
``blocks.{l}.attn.hook_pattern_cls``  the CLS query's row only                (batch, head, key)
``blocks.{l}.hook_attn_out``       attention block output (after W_O + bias)  (batch, tokens, d_model)
``blocks.{l}.hook_resid_mid``      resid_pre + attn_out                       (batch, tokens, d_model)
``blocks.{l}.hook_mlp_out``        MLP output before the residual add         (batch, tokens, d_model)
``blocks.{l}.hook_resid_post``     resid_mid + mlp_out                        (batch, tokens, d_model)
``ln_final.hook_normalized``       final LayerNorm output                     (batch, tokens, d_model)
=================================  ===========================================================

Components: ``{"attention": "hook_attn_out", "mlp": "hook_mlp_out"}``.

The MLP's activation, HF's ``FastGELUActivation`` (``gelu_fast``: 0.5 x (1 + tanh(0.7978845608 x
(1 + 0.044715 x^2)))), is computed as ``F.gelu(approximate="tanh")``: the same function (the
constants agree to 4e-12) in one fused kernel instead of seven elementwise passes. That makes the
toy's MLP 1.5x faster and its whole block 1.2x (2 cores); ``mlp_out`` stays within 1e-6 of
``blk.mlp`` (``tests/test_hooks.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.activations import FastGELUActivation

from utils.arch.core import Adapter, Sites, attend


class VivitAdapter(Adapter):
    arch = "vivit"
    has_cls = True
    n_prefix = 1
    final_norm_per_token = True
    attention_hooks = ("attn.hook_z", "attn.hook_pattern", "attn.hook_pattern_cls")
    components = {"attention": "hook_attn_out", "mlp": "hook_mlp_out"}
    head_sites = {"attention": "attn.hook_z"}

    def __init__(self, model):
        self.model = model
        self.base = model.vivit
        self.blocks = self.base.layers
        cfg = model.config
        self.n_layers, self.n_heads, self.d_model = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.tubelet = tuple(cfg.tubelet_size)
        ft, fh, fw = self.tubelet
        self.grid = (cfg.num_frames // ft, cfg.image_size // fh, cfg.image_size // fw)
        self.final_norm = self.base.layernorm
        self.classifier = model.classifier

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.base.embeddings(pixel_values)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, d_model)`` -> ``(batch, head, tokens, d_head)``."""
        b, n, _ = t.shape
        return t.view(b, n, self.n_heads, self.d_head).transpose(1, 2)

    def attention(self, layer: int, x: torch.Tensor, sites: Sites) -> torch.Tensor:
        blk = self.blocks[layer]
        att = blk.attention
        h = blk.layernorm_before(x)
        q, k, v = (self._heads(proj(h)) for proj in (att.q_proj, att.k_proj, att.v_proj))
        z = attend(q, k, v, att.scaling, sites, "attn", cls_query=True)  # (batch, head, tokens, d_head)
        z = sites("attn.hook_z", z.transpose(1, 2))  # (batch, tokens, head, d_head)
        attn_out = sites("hook_attn_out", att.o_proj(z.reshape(*x.shape[:2], self.d_model)))
        return x + attn_out

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[layer]
        h, mlp = blk.layernorm_after(x), blk.mlp
        if type(mlp.activation_fn) is FastGELUActivation:  # fused (module docstring); eval: no dropout
            return mlp.fc2(F.gelu(mlp.fc1(h), approximate="tanh"))
        return mlp(h)

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        return resid[:, 0]

    readout_rows = slice(0, 1)  # the CLS token

    def readout_block(self, layer: int, x: torch.Tensor, start_at_mid: bool = False) -> torch.Tensor:
        """The block for the CLS row only: keys and values of every token, the CLS query, then
        the CLS row's output projection and MLP (``(batch, 1, d_model)``)."""
        if not start_at_mid:
            blk = self.blocks[layer]
            att = blk.attention
            h = blk.layernorm_before(x)
            q = self._heads(att.q_proj(h[:, :1]))
            k, v = self._heads(att.k_proj(h)), self._heads(att.v_proj(h))
            z = F.scaled_dot_product_attention(q, k, v, scale=att.scaling)  # (batch, head, 1, d_head)
            x = x[:, :1] + att.o_proj(z.transpose(1, 2).reshape(x.shape[0], 1, self.d_model))
        else:
            x = x[:, :1]
        return x + self.mlp(layer, x)

    def W_O(self, layer: int, component: str = "attention") -> torch.Tensor:
        w = self.blocks[layer].attention.o_proj.weight  # (d_model, head * d_head)
        return w.T.reshape(self.n_heads, self.d_head, self.d_model)

    def b_O(self, layer: int, component: str = "attention") -> torch.Tensor:
        return self.blocks[layer].attention.o_proj.bias

    def token_index(self, t: int, row: int, col: int) -> int:
        _, R, C = self.grid
        return 1 + (t * R + row) * C + col

    def token_position(self, token: int) -> tuple[int, int, int]:
        _, R, C = self.grid
        p = token - 1
        return p // (R * C), (p // C) % R, p % C

    def token_dla_names(self, layer: int) -> list[str]:
        return [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_pattern_cls"]

    def attention_by_source(self, layer: int, cache: dict, batch_index: int):
        """CLS output of the attention = sum over source tokens s and heads h of
        ``A_h[CLS, s] v_s^h W_O^h`` plus ``b_O`` (the pattern rows sum to one)."""
        blk = self.blocks[layer]
        x = cache[f"blocks.{layer}.hook_resid_pre"][batch_index]  # (tokens, d_model)
        v = blk.attention.v_proj(blk.layernorm_before(x)).view(x.shape[0], self.n_heads, self.d_head)
        ov = torch.einsum("thd,hdm->thm", v, self.W_O(layer))  # (tokens, head, d_model)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern_cls"][batch_index]  # (head, tokens)
        return torch.einsum("ht,thm->tm", pattern, ov), self.b_O(layer)
