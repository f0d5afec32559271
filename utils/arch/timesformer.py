"""TimeSformer adapter (``TimesformerForVideoClassification``, divided space-time attention, e.g.
``facebook/timesformer-base-finetuned-k400``).

Tokens: a Conv2d embeds each frame's 16 x 16 patches; CLS first, then the patches ordered
(row, col, frame): ``token = 1 + (row * cols + col) * frames + frame`` (``TimesformerEmbeddings``
adds the time embedding on a ``(batch * patches, frames, d)`` view and flattens it back). Each
token is one frame's patch (a "time step" here is a frame; ``tubelet = (1, 16, 16)``).

A block (``TimesformerLayer``, ``attention_type="divided_space_time"``), line by line:

1. temporal: the patch tokens of each position (row, col) attend over the frames:
   ``temporal_layernorm`` -> ``temporal_attention`` (qkv, then ``output.dense``) ->
   ``temporal_dense``, added to the patch tokens only. CLS takes no part:
   ``resid_mid_time = resid_pre + attn_time_out`` with ``attn_time_out`` zero at CLS.
2. spatial: per frame, the sequence [CLS, that frame's patches in (row, col) order] goes
   through ``layernorm_before`` -> ``attention`` (qkv, ``output.dense``); the CLS is the same
   vector in every frame's sequence, and its T outputs are averaged:
   ``resid_mid = resid_mid_time + attn_space_out``.
3. MLP: ``layernorm_after`` -> ``intermediate`` -> ``output``; ``resid_post = resid_mid + mlp_out``.

Readout: final ``timesformer.layernorm`` on every token, classifier on the CLS token.

==========================================  =======================================================
``hook_embed``                              after patch + position + time embedding (batch, tokens, d_model)
``blocks.{l}.hook_resid_pre``               residual stream entering block l      (batch, tokens, d_model)
``blocks.{l}.attn_time.hook_z``             temporal per-head outputs before W_O  (batch, patches, head, d_head);
                                            row i is token i + 1 (CLS has no temporal query)
``blocks.{l}.attn_time.hook_pattern``       temporal pattern per position         (batch, position, head, query, key);
                                            position = row * cols + col, query/key = frames
``blocks.{l}.hook_attn_time_out``           temporal output after ``temporal_dense`` (batch, tokens, d_model), 0 at CLS
``blocks.{l}.hook_resid_mid_time``          resid_pre + attn_time_out             (batch, tokens, d_model)
``blocks.{l}.attn_space.hook_z``            spatial per-head outputs before W_O   (batch, tokens, head, d_head);
                                            the CLS row is the mean over frames of the CLS query's z
``blocks.{l}.attn_space.hook_pattern``      spatial pattern per frame             (batch, frame, head, query, key);
                                            query/key 0 = CLS, 1 + row * cols + col = that frame's patch
``blocks.{l}.attn_space.hook_pattern_cls``  the CLS query's row in each frame     (batch, frame, head, key)
``blocks.{l}.hook_attn_space_out``          spatial output (CLS: mean over frames) (batch, tokens, d_model)
``blocks.{l}.hook_attn_out``                attn_time_out + attn_space_out        (batch, tokens, d_model)
``blocks.{l}.hook_resid_mid``               resid_pre + attn_out (what ``layernorm_after`` reads)
``blocks.{l}.hook_mlp_out``                 MLP output before the residual add    (batch, tokens, d_model)
``blocks.{l}.hook_resid_post``              resid_mid + mlp_out                   (batch, tokens, d_model)
``ln_final.hook_normalized``                final LayerNorm output                (batch, tokens, d_model)
==========================================  =======================================================

Components: ``{"attention_time": "hook_attn_time_out", "attention_space": "hook_attn_space_out",
"mlp": "hook_mlp_out"}``; ``hook_attn_out`` is their attention sum (hooking it replaces both).
The temporal W_O is ``temporal_dense`` composed with ``temporal_attention.output.dense`` (both
linear), so ``attn_time_out = z W_O + b_O`` holds per head as for the other architectures.
"""

from __future__ import annotations

import torch
from transformers import (
    AutoImageProcessor,
    TimesformerConfig,
    TimesformerForVideoClassification,
    VideoMAEImageProcessorPil,
)

from utils.arch.core import Adapter, Sites, attend, vit_b_kinetics400
from utils.toy_models import IMAGE_SIZE, TOY_WIDTH, labels_config, toy_processor


class TimesformerAdapter(Adapter):
    arch = "timesformer"
    hf_class = TimesformerForVideoClassification
    processor_class = AutoImageProcessor
    hub_checkpoint = "facebook/timesformer-base-finetuned-k400"
    shape_profile = "timesformer-shape"
    toy_profile = "toy-timesformer"
    title = "TimeSformer"  # in figures and tables
    colour = "#CC79A7"  # the model's colour where architectures are compared
    toy_steps = 250  # optimiser steps of its toy model (utils.train; the toy ViViT: 700)
    toy_train_sdpa = False  # transformers' TimeSformer attention is hand-written: no SDPA path

    @staticmethod
    def toy_card(actions) -> str:
        """Its toy model's card: what the model is and how it compares with the hub checkpoint
        (``utils.train`` adds the preprocessing, the recipe and the held-out accuracy)."""
        return f"""A 12-layer, 12-head TimeSformer (`TimesformerForVideoClassification`, transformers) trained
from scratch on this repository's synthetic world (`utils/synthetic.py`) to name the action of
a clip. It is the toy counterpart of `facebook/timesformer-base-finetuned-k400`, trained with
the toy ViViT's data and recipe, so that the two architectures can be compared on one world.

| | toy-timesformer | TimeSformer-B (`facebook/timesformer-base-finetuned-k400`) |
|---|---|---|
| layers x heads | 12 x 12 | 12 x 12 |
| hidden / MLP width | 96 / 384 (d_head 8) | 768 / 3072 (d_head 64) |
| input | 8 frames x 96 x 96 | 8 frames x 224 x 224 |
| patch | 16 x 16 per frame (2-D) | 16 x 16 per frame (2-D) |
| attention | divided space-time: temporal (8 frames), spatial (36 + CLS), MLP | the same |
| position | learned space (36 + CLS) and time (8) embeddings | the same |
| tokens | 8 x 6 x 6 = 288 patches + CLS = 289 | 8 x 14 x 14 = 1568 + CLS = 1569 |
| classifier | linear on the final CLS (after the last layer norm) | the same |
| classes | {len(actions)} ({", ".join(actions)}) | 400 (Kinetics-400) |

Each layer attends first over time (the 8 frames of one patch position, CLS left out), then
over space (the 36 patches of one frame plus the CLS; the CLS outputs of the 8 frames are
averaged), then applies its MLP.

Frames: the model reads 8 frames, frames 0, 2, 4, ..., 14 of the world's 16-frame clips
(`utils.toy_models.frame_indices("timesformer")`), so its frame t is the first frame of the
toy ViViT's tubelet t. Inputs must be sampled to these 8 frames before the processor."""
    toy_frames = 8  # frames 0, 2, ..., 14 of a 16-frame clip (as the hub checkpoint reads 8)
    site_dims = {
        "attn_time.hook_z": (0, 1),  # (patches, head, d_head): row = token - 1 (no CLS row)
        "attn_space.hook_z": (0, 1),  # (tokens, head, d_head)
        "attn_space.hook_pattern_cls": (2, 1),  # (frame, head, key within the frame)
    }
    readout_attention_site = "attn_space.hook_pattern_cls"  # the CLS query's row in each frame
    # the temporal step lighter, the spatial step darker than the other models' attention blue
    component_colours = {"attention_time": "#9ecae1", "attention_space": "#08519c", "mlp": "#E69F00"}
    attention_steps = ("attention_time", "attention_space")

    def readout_attention_keys(self) -> int:
        return 1 + self.grid[1] * self.grid[2]  # the spatial step: CLS and one frame's patches

    def readout_attention_map(self, act, head, by_time_step):
        return act[:, head, 1:].reshape(self.grid)  # (frame, head, 1 + rows * cols): one CLS row per frame

    @classmethod
    def token_geometry(cls, config):
        p = config.patch_size
        return (1, p, p), (config.num_frames, config.image_size // p, config.image_size // p)

    @staticmethod
    def hub_processor() -> VideoMAEImageProcessorPil:
        """The k400 TimeSformer's processor: short side 224, crop 224, x / 255, mean 0.45, std 0.225."""
        return VideoMAEImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                         image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])

    @staticmethod
    def shape_config() -> TimesformerConfig:
        """TimeSformer-B on Kinetics-400, as ``facebook/timesformer-base-finetuned-k400``."""
        return TimesformerConfig(
            patch_size=16,  # -> 14 x 14 patches per frame
            num_channels=3,
            num_frames=8,  # -> 8 x 196 = 1568 patch tokens + CLS
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            layer_norm_eps=1e-6,
            qkv_bias=True,
            attention_type="divided_space_time",
            drop_path_rate=0,
            **vit_b_kinetics400("gelu"),
        )

    @staticmethod
    def toy_config(num_labels: int, id2label: dict[int, str]) -> TimesformerConfig:
        """The toy TimeSformer: 12 x 12 heads, 96 wide, divided space-time attention on 8 x 96 x 96."""
        return TimesformerConfig(
            image_size=IMAGE_SIZE,
            patch_size=16,  # -> 6 x 6 = 36 patches per frame, 8 x 36 = 288 + CLS = 289 tokens
            num_channels=3,
            num_frames=TimesformerAdapter.toy_frames,
            **TOY_WIDTH,
            drop_path_rate=0,  # int in the config schema
            layer_norm_eps=1e-6,
            qkv_bias=True,
            attention_type="divided_space_time",
            num_labels=num_labels,
            **labels_config(id2label),
        )

    toy_processor = staticmethod(toy_processor)
    has_cls = True
    n_prefix = 1
    final_norm_per_token = True
    attention_hooks = (
        "attn_time.hook_z", "attn_time.hook_pattern", "hook_attn_time_out", "hook_resid_mid_time",
        "attn_space.hook_z", "attn_space.hook_pattern", "attn_space.hook_pattern_cls", "hook_attn_space_out",
    )
    components = {"attention_time": "hook_attn_time_out", "attention_space": "hook_attn_space_out",
                  "mlp": "hook_mlp_out"}
    head_sites = {"attention_time": "attn_time.hook_z", "attention_space": "attn_space.hook_z"}

    def __init__(self, model):
        cfg = model.config
        if cfg.attention_type != "divided_space_time":
            raise ValueError(f"the TimeSformer adapter supports attention_type 'divided_space_time', "
                             f"not {cfg.attention_type!r}")
        self.model = model
        self.base = model.timesformer
        self.blocks = self.base.encoder.layer
        self.embeddings = self.base.embeddings  # the module embed() runs
        self.n_layers, self.n_heads, self.d_model = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.tubelet, self.grid = self.token_geometry(cfg)
        self.final_norm = self.base.layernorm
        self.classifier = model.classifier

    def _qkv(self, attention, h: torch.Tensor):
        """``TimesformerSelfAttention``'s fused projection: ``(N, seq, d)`` -> q, k, v ``(N, head, seq, d_head)``."""
        n, s, _ = h.shape
        qkv = attention.qkv(h).reshape(n, s, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _space_sequences(self, y: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, d)`` -> ``(batch * frame, 1 + rows * cols, d)``: per frame, CLS then
        that frame's patches in (row, col) order."""
        T, R, C = self.grid
        b, _, d = y.shape
        cls = y[:, :1].repeat(1, T, 1).reshape(b * T, 1, d)
        patches = y[:, 1:].reshape(b, R * C, T, d).permute(0, 2, 1, 3).reshape(b * T, R * C, d)
        return torch.cat([cls, patches], 1)

    def attention(self, layer: int, x: torch.Tensor, sites: Sites) -> torch.Tensor:
        T, R, C = self.grid
        P = R * C
        b, n, d = x.shape
        blk = self.blocks[layer]
        # temporal: (batch * position, frame, d); rows of the patch tokens in token order
        h = blk.temporal_layernorm(x[:, 1:].reshape(b * P, T, d))
        att = blk.temporal_attention.attention
        z = attend(*self._qkv(att, h), att.scale, sites, "attn_time", groups=P)  # (b*P, head, T, d_head)
        z = sites("attn_time.hook_z", z.transpose(1, 2).reshape(b, P * T, self.n_heads, self.d_head))
        out = blk.temporal_dense(blk.temporal_attention.output.dense(z.reshape(b, P * T, d)))
        attn_time_out = sites("hook_attn_time_out", torch.cat([out.new_zeros(b, 1, d), out], 1))
        mid_time = sites("hook_resid_mid_time", x + attn_time_out)
        # spatial: (batch * frame, 1 + rows * cols, d)
        seq = self._space_sequences(mid_time)
        att = blk.attention.attention
        z = attend(*self._qkv(att, blk.layernorm_before(seq)), att.scale, sites, "attn_space",
                   groups=T, cls_query=True)  # (b*T, head, 1 + P, d_head)
        z = z.transpose(1, 2).reshape(b, T, 1 + P, self.n_heads, self.d_head)
        z_cls = z[:, :, :1].mean(1)  # (b, 1, head, d_head): the CLS outputs averaged over frames
        z_patch = z[:, :, 1:].transpose(1, 2).reshape(b, P * T, self.n_heads, self.d_head)
        z = sites("attn_space.hook_z", torch.cat([z_cls, z_patch], 1))  # (b, tokens, head, d_head)
        attn_space_out = sites("hook_attn_space_out", blk.attention.output.dense(z.reshape(b, n, d)))
        if sites.wants("hook_attn_out"):
            attn_out = sites("hook_attn_out", attn_time_out + attn_space_out)
            if sites.hooked("hook_attn_out"):
                return x + attn_out
        return mid_time + attn_space_out

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[layer]
        return blk.output(blk.intermediate(blk.layernorm_after(x)))

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        return resid[:, 0]

    def W_O(self, layer: int, component: str = "attention_space") -> torch.Tensor:
        blk = self.blocks[layer]
        if component == "attention_space":
            w = blk.attention.output.dense.weight  # (d_model, head * d_head)
        elif component == "attention_time":
            w = blk.temporal_dense.weight @ blk.temporal_attention.output.dense.weight
        else:
            raise KeyError(f"TimeSformer attention components: attention_time, attention_space; not {component!r}")
        return self._per_head(w)

    def b_O(self, layer: int, component: str = "attention_space") -> torch.Tensor:
        blk = self.blocks[layer]
        if component == "attention_space":
            return blk.attention.output.dense.bias
        if component == "attention_time":
            return blk.temporal_dense(blk.temporal_attention.output.dense.bias)
        raise KeyError(f"TimeSformer attention components: attention_time, attention_space; not {component!r}")

    def head_rows(self, component: str) -> slice:
        return slice(1, None) if component == "attention_time" else slice(None)

    def token_index(self, t: int, row: int, col: int) -> int:
        T, _, C = self.grid
        return 1 + (row * C + col) * T + t

    def token_position(self, token: int) -> tuple[int, int, int]:
        T, _, C = self.grid
        p = token - 1
        cell = p // T
        return p % T, cell // C, cell % C

    def token_dla_input(self) -> str:
        return "hook_resid_mid_time"

    def token_dla_names(self, layer: int) -> list[str]:
        return [f"blocks.{layer}.hook_resid_mid_time", f"blocks.{layer}.attn_space.hook_pattern_cls"]

    def attention_by_source(self, layer: int, cache: dict, batch_index: int):
        """CLS output of the spatial attention = mean over frames f of ``sum_s sum_h
        A_h^f[CLS, s] v_s^h W_O^h`` + ``b_O``: a patch token is a key in its own frame only;
        the CLS is a key in every frame."""
        T, R, C = self.grid
        blk = self.blocks[layer]
        y = cache[f"blocks.{layer}.hook_resid_mid_time"][batch_index : batch_index + 1]  # (1, tokens, d)
        seq = self._space_sequences(y)  # (frame, 1 + P, d)
        _, _, v = self._qkv(blk.attention.attention, blk.layernorm_before(seq))  # (frame, head, 1 + P, d_head)
        ov = torch.einsum("fhsd,hdm->fshm", v, self.W_O(layer, "attention_space"))  # (frame, 1 + P, head, d)
        pattern = cache[f"blocks.{layer}.attn_space.hook_pattern_cls"][batch_index]  # (frame, head, 1 + P)
        per_key = torch.einsum("fhs,fshm->fsm", pattern, ov) / T  # (frame, 1 + P, d)
        per_token = torch.cat([per_key[:, 0].sum(0, keepdim=True),  # CLS: a key in every frame
                               per_key[:, 1:].transpose(0, 1).reshape(R * C * T, -1)])  # (row, col, frame)
        return per_token, self.b_O(layer, "attention_space")
