"""VideoMAE adapter (``VideoMAEForVideoClassification``, e.g. ``MCG-NJU/videomae-base-finetuned-kinetics``).

Tokens: Conv3d tubelets (2 x 16 x 16) + a fixed sin-cos position table, **no CLS**: token
``(t * rows + row) * cols + col`` (time step, row, column). Block: pre-LN attention
(``layernorm_before`` -> ``query`` / ``key`` (no bias) / ``value`` -> ``output.dense``), pre-LN
MLP (``layernorm_after`` -> ``intermediate`` -> ``output.dense``; HF's ``VideoMAEOutput`` adds
the residual itself, the adapter calls its ``dense`` only). Readout with ``use_mean_pooling``
(the Kinetics checkpoint): the mean over all tokens -> ``fc_norm`` -> classifier
(``videomae.layernorm`` is None); without it, the final ``layernorm`` and token 0.

=================================  ===========================================================
``hook_embed``                     tokens after tubelet + position embedding  (batch, tokens, d_model)
``blocks.{l}.hook_resid_pre``      residual stream entering block l           (batch, tokens, d_model)
``blocks.{l}.attn.hook_z``         per-head attention outputs before W_O      (batch, tokens, head, d_head)
``blocks.{l}.attn.hook_pattern``   full attention pattern                     (batch, head, query, key)
``blocks.{l}.hook_attn_out``       attention block output (after W_O + bias)  (batch, tokens, d_model)
``blocks.{l}.hook_resid_mid``      resid_pre + attn_out                       (batch, tokens, d_model)
``blocks.{l}.hook_mlp_out``        MLP output before the residual add         (batch, tokens, d_model)
``blocks.{l}.hook_resid_post``     resid_mid + mlp_out                        (batch, tokens, d_model)
``ln_final.hook_normalized``       ``fc_norm`` of the token mean              (batch, d_model)
=================================  ===========================================================

No ``attn.hook_pattern_cls`` (there is no CLS query). Components: ``{"attention":
"hook_attn_out", "mlp": "hook_mlp_out"}``. Each token contributes ``1 / tokens`` of its
projection to the readout (mean pooling is linear).
"""

from __future__ import annotations

import torch
from transformers import (
    AutoImageProcessor,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    VideoMAEImageProcessorPil,
)

from utils.arch.core import Adapter, Sites, attend, vit_b_kinetics400
from utils.toy_models import CLIP_FRAMES, IMAGE_SIZE, TOY_WIDTH, labels_config, toy_processor


class VideoMAEAdapter(Adapter):
    arch = "videomae"
    hf_class = VideoMAEForVideoClassification
    processor_class = AutoImageProcessor
    hub_checkpoint = "MCG-NJU/videomae-base-finetuned-kinetics"
    shape_profile = "videomae-shape"
    toy_profile = "toy-videomae"
    title = "VideoMAE"  # in figures and tables
    colour = "#009E73"  # the model's colour where architectures are compared
    toy_steps = 250  # optimiser steps of its toy model (utils.train; the toy ViViT: 700)
    toy_train_sdpa = True

    @staticmethod
    def toy_card(actions) -> str:
        """Its toy model's card: what the model is and how it compares with the hub checkpoint
        (``utils.train`` adds the preprocessing, the recipe and the held-out accuracy)."""
        return f"""A 12-layer, 12-head VideoMAE encoder with a classification head
(`VideoMAEForVideoClassification`, transformers) trained from scratch (no masked-autoencoder
pre-training) on this repository's synthetic world (`utils/synthetic.py`) to name the action
of a clip. It is the toy counterpart of `MCG-NJU/videomae-base-finetuned-kinetics`, trained with
the toy ViViT's data and recipe, so that the architectures can be compared on one world.

| | toy-videomae | VideoMAE-B (`MCG-NJU/videomae-base-finetuned-kinetics`) |
|---|---|---|
| layers x heads | 12 x 12 | 12 x 12 |
| hidden / MLP width | 96 / 384 (d_head 8) | 768 / 3072 (d_head 64) |
| input | 16 frames x 96 x 96 | 16 frames x 224 x 224 |
| tubelet | 2 x 16 x 16 | 2 x 16 x 16 |
| tokens | 8 x 6 x 6 = 288 patches, no CLS | 8 x 14 x 14 = 1568, no CLS |
| position | fixed sin-cos table (not learned) | the same |
| attention bias | query and value, none on key | the same |
| classifier | mean over all tokens, `fc_norm` (LayerNorm), linear | the same |
| classes | {len(actions)} ({", ".join(actions)}) | 400 (Kinetics-400) |"""
    toy_frames = CLIP_FRAMES
    site_dims = {
        "attn.hook_z": (0, 1),  # (tokens, head, d_head)
        "attn.hook_pattern": (1, 0),  # (head, query, key)
    }
    readout_attention_site = "attn.hook_pattern"  # no CLS: the mean over queries (the readout is the token mean)
    component_colours = {"attention": "#0072B2", "mlp": "#E69F00"}
    readout_name = "token-mean"  # no CLS: the classifier reads the mean over tokens

    @classmethod
    def token_geometry(cls, config):
        t, p = config.tubelet_size, config.patch_size
        return (t, p, p), (config.num_frames // t, config.image_size // p, config.image_size // p)

    @staticmethod
    def hub_processor() -> VideoMAEImageProcessorPil:
        """The Kinetics VideoMAE's processor: short side 224, crop 224, x / 255, ImageNet mean and std."""
        return VideoMAEImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])

    @staticmethod
    def shape_config() -> VideoMAEConfig:
        """VideoMAE-B on Kinetics-400, as ``MCG-NJU/videomae-base-finetuned-kinetics``."""
        return VideoMAEConfig(
            patch_size=16,
            num_channels=3,
            num_frames=16,
            tubelet_size=2,  # -> 8 x 14 x 14 = 1568 tokens, no CLS
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            layer_norm_eps=1e-12,  # the transformers default, as the checkpoint's config
            qv_bias=True,  # 4.x: qkv_bias (query and value bias, no key bias)
            use_mean_pooling=True,  # mean over tokens -> fc_norm -> classifier
            **vit_b_kinetics400("gelu"),
        )

    @staticmethod
    def toy_config(num_labels: int, id2label: dict[int, str]) -> VideoMAEConfig:
        """The toy VideoMAE: 12 x 12 heads, 96 wide, tubelet 2 x 16 x 16 on 16 x 96 x 96, mean pooling."""
        return VideoMAEConfig(
            image_size=IMAGE_SIZE,
            patch_size=16,
            num_channels=3,
            num_frames=CLIP_FRAMES,
            tubelet_size=2,  # -> 8 x 6 x 6 = 288 tokens, no CLS
            **TOY_WIDTH,
            layer_norm_eps=1e-12,  # the transformers default, as the hub checkpoint's config
            qv_bias=True,  # bias on query and value, none on key (VideoMAE's qkv_bias)
            use_mean_pooling=True,  # mean over tokens + fc_norm -> classifier (the Kinetics checkpoint)
            num_labels=num_labels,
            **labels_config(id2label),
        )

    toy_processor = staticmethod(toy_processor)
    has_cls = False
    n_prefix = 0
    attention_hooks = ("attn.hook_z", "attn.hook_pattern")
    components = {"attention": "hook_attn_out", "mlp": "hook_mlp_out"}
    head_sites = {"attention": "attn.hook_z"}
    out_proj = "attention.output.dense"  # W_O and b_O (the base Adapter)

    def __init__(self, model):
        cfg = model.config
        self.model = model
        self.base = model.videomae
        self.blocks = self.base.encoder.layer
        self.embeddings = self.base.embeddings  # the module embed() runs
        self.n_layers, self.n_heads, self.d_model = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.tubelet, self.grid = self.token_geometry(cfg)
        self.mean_pooling = model.fc_norm is not None
        self.final_norm_per_token = not self.mean_pooling
        self.final_norm = model.fc_norm if self.mean_pooling else self.base.layernorm
        self.classifier = model.classifier

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.base.embeddings(pixel_values, None)

    def attention(self, layer: int, x: torch.Tensor, sites: Sites) -> torch.Tensor:
        blk = self.blocks[layer]
        att = blk.attention.attention
        h = blk.layernorm_before(x)
        q, k, v = (self._heads(proj(h)) for proj in (att.query, att.key, att.value))
        z = attend(q, k, v, att.scaling, sites, "attn")  # (batch, head, tokens, d_head)
        z = sites("attn.hook_z", z.transpose(1, 2))  # (batch, tokens, head, d_head)
        attn_out = sites("hook_attn_out", blk.attention.output.dense(z.reshape(*x.shape[:2], self.d_model)))
        return x + attn_out

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[layer]
        return blk.output.dense(blk.intermediate(blk.layernorm_after(x)))

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        return resid.mean(1) if self.mean_pooling else resid[:, 0]

    def token_dla_names(self, layer: int) -> list[str]:
        return [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_pattern"]

    def attention_by_source(self, layer: int, cache: dict, batch_index: int):
        """Readout of the attention output = ``sum_s sum_h a_h[s] v_s^h W_O^h + b_O`` with
        ``a_h[s]`` the pattern column of key s averaged over the queries the readout pools
        (all of them with mean pooling, query 0 otherwise). Needs the full pattern."""
        blk = self.blocks[layer]
        x = cache[f"blocks.{layer}.hook_resid_pre"][batch_index]  # (tokens, d_model)
        v = blk.attention.attention.value(blk.layernorm_before(x)).view(x.shape[0], self.n_heads, self.d_head)
        ov = torch.einsum("thd,hdm->thm", v, self.W_O(layer))  # (tokens, head, d_model)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][batch_index]  # (head, query, key)
        weights = self.readout_tokens(pattern.transpose(0, 1)[None])[0]  # (head, key)
        return torch.einsum("ht,thm->tm", weights, ov), self.b_O(layer)
