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

import json

import numpy as np
import torch
import torch.nn.functional as F
from transformers import VivitConfig, VivitForVideoClassification, VivitImageProcessor
from transformers.activations import FastGELUActivation

from utils import paths
from utils.arch.core import Adapter, Sites, attend, vit_b_kinetics400


class VivitAdapter(Adapter):
    arch = "vivit"
    hf_class = VivitForVideoClassification
    processor_class = VivitImageProcessor
    hub_checkpoint = "google/vivit-b-16x2-kinetics400"  # the paper's model
    shape_profile = "paper-shape"
    toy_profile = "toy"
    title = "ViViT"  # in figures and tables
    colour = "#0072B2"  # the model's colour where architectures are compared
    toy_frames = 16
    site_dims = {
        "attn.hook_z": (0, 1),  # (tokens, head, d_head)
        "attn.hook_pattern": (1, 0),  # (head, query, key)
        "attn.hook_pattern_cls": (1, 0),  # (head, key)
    }
    readout_attention_site = "attn.hook_pattern_cls"  # the CLS query's row
    component_colours = {"attention": "#0072B2", "mlp": "#E69F00"}  # blue, orange

    def readout_attention_map(self, act, head, by_time_step):
        return by_time_step(act[head][self.n_prefix:])  # (head, tokens) -> the CLS row over patches

    @classmethod
    def token_geometry(cls, config):
        tubelet = tuple(int(v) for v in config.tubelet_size)
        ft, fh, fw = tubelet
        return tubelet, (config.num_frames // ft, config.image_size // fh, config.image_size // fw)

    @staticmethod
    def frame_indices(clip_frames: int, num_frames: int) -> np.ndarray:
        """ViViT samples evenly over the clip (``linspace``, rounded): all frames when the lengths agree."""
        if clip_frames == num_frames:
            return np.arange(clip_frames)
        return np.linspace(0, clip_frames - 1, num_frames).round().astype(int)

    @staticmethod
    def hub_processor() -> VivitImageProcessor:
        """The processor of ``google/vivit-b-16x2-kinetics400`` from the shipped copy of its config."""
        return VivitImageProcessor.from_dict(json.loads(paths.VIVIT_HUB_PROCESSOR.read_text()))

    @staticmethod
    def shape_config() -> VivitConfig:
        """ViViT-B/16x2 on Kinetics-400, exactly as ``google/vivit-b-16x2-kinetics400``."""
        return VivitConfig(num_frames=32, tubelet_size=[2, 16, 16], layer_norm_eps=1e-6, qkv_bias=True,
                           **vit_b_kinetics400("gelu_fast"))

    @staticmethod
    def toy_config(num_labels: int, id2label: dict[int, str]) -> VivitConfig:
        """The toy ViViT: 12 layers x 12 heads like ViViT-B, but 96 wide on 16 x 96 x 96 clips."""
        return VivitConfig(
            image_size=96,
            num_frames=16,
            tubelet_size=[2, 16, 16],  # -> 8 x 6 x 6 = 288 patches + CLS = 289 tokens
            hidden_size=96,
            num_hidden_layers=12,
            num_attention_heads=12,  # d_head = 8
            intermediate_size=384,
            hidden_act="gelu_fast",
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            layer_norm_eps=1e-6,
            qkv_bias=True,
            num_labels=num_labels,
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
        )

    @staticmethod
    def toy_processor() -> VivitImageProcessor:
        """The toy model's preprocessing: 96 x 96 RGB, scaled to [-1, 1] (x / 127.5 - 1)."""
        return VivitImageProcessor(do_resize=True, size={"height": 96, "width": 96}, do_center_crop=False,
                                   do_rescale=True, rescale_factor=1 / 127.5, offset=True, do_normalize=False)
    has_cls = True
    n_prefix = 1
    final_norm_per_token = True
    attention_hooks = ("attn.hook_z", "attn.hook_pattern", "attn.hook_pattern_cls")
    components = {"attention": "hook_attn_out", "mlp": "hook_mlp_out"}
    head_sites = {"attention": "attn.hook_z"}
    out_proj = "attention.o_proj"  # W_O and b_O (the base Adapter)

    def __init__(self, model):
        self.model = model
        self.base = model.vivit
        self.blocks = self.base.layers
        self.embeddings = self.base.embeddings  # the module embed() runs
        cfg = model.config
        self.n_layers, self.n_heads, self.d_model = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.tubelet, self.grid = self.token_geometry(cfg)
        self.final_norm = self.base.layernorm
        self.classifier = model.classifier

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
