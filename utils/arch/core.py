"""The architecture-generic hooked core: one runner, one small adapter per architecture.

``HookedVideoTransformer`` runs a HuggingFace video classifier one step at a time and exposes
its intermediates under TransformerLens names (``blocks.{l}.hook_resid_pre`` ...). What differs
between architectures lives in an ``Adapter`` (``utils.arch.vivit``, ``utils.arch.timesformer``,
``utils.arch.videomae``): the embedding, the attention sites of a block, the MLP, the token
layout (CLS or not, token <-> (time step, row, col)) and the readout (CLS token or the mean
over tokens, then the final norm and the classifier). The core never branches on an
architecture's name; adding one is adding an adapter file and its tests.

Every block, whatever the architecture, has

=================================  ===========================================================
``blocks.{l}.hook_resid_pre``      residual stream entering block l           (batch, tokens, d_model)
``blocks.{l}.hook_attn_out``       everything the attention step(s) add       (batch, tokens, d_model)
``blocks.{l}.hook_resid_mid``      the state the MLP's LayerNorm reads        (batch, tokens, d_model)
``blocks.{l}.hook_mlp_out``        MLP output before the residual add         (batch, tokens, d_model)
``blocks.{l}.hook_resid_post``     resid_mid + mlp_out                        (batch, tokens, d_model)
=================================  ===========================================================

plus the adapter's attention sites (its module docstring has the table), ``hook_embed`` and
``ln_final.hook_normalized``. ``resid_mid = resid_pre + attn_out`` for every architecture, so a
run (and a patching sweep, ``utils.patching``) can start from a cached ``resid_mid``.

A hook function has the TransformerLens signature ``fn(activation, name) -> activation | None``
(``None`` keeps the activation, edits made in place included; a returned tensor replaces it and
must have its shape); every site's edit flows downstream. Runs need the model in eval mode;
inputs move to the model's device; a ``grad=True`` run may start from a cache made under
``torch.inference_mode`` (such tensors are cloned first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.labels import kinetics_labels
from utils.toy_models import sample_frame_indices

HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]

def parse_name(name: str) -> tuple[int | None, str]:
    """``"blocks.3.hook_mlp_out"`` -> ``(3, "hook_mlp_out")``; global names -> ``(None, name)``."""
    if name.startswith("blocks."):
        _, layer, rest = name.split(".", 2)
        return int(layer), rest
    return None, name


@dataclass
class Run:
    """The result of ``HookedVideoTransformer.run``: logits ``(batch, classes)`` and the cache."""

    logits: torch.Tensor
    cache: dict[str, torch.Tensor]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.cache[name]


def call_hook(fn: HookFn, value: torch.Tensor, name: str) -> torch.Tensor:
    """``fn(value, name)``, checked: ``None`` keeps ``value``; a replacement must have its shape,
    is moved to its device, and is cloned out of inference mode when autograd is on."""
    out = fn(value, name)
    if out is None or out is value:
        return value
    if not isinstance(out, torch.Tensor) or out.shape != value.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"hook on {name} returned {got}; it must return None or a tensor of "
                         f"shape {tuple(value.shape)}")
    out = out.to(value.device)
    if torch.is_grad_enabled() and out.is_inference():
        out = out.clone()
    return out


class Sites:
    """One block's hook points during a run: ``sites(name, value)`` applies the hook of
    ``blocks.{l}.{name}`` (if any) and caches the result (if asked); ``sites.wants(name)`` says
    whether ``name`` is hooked or asked for (so costly activations are computed only then)."""

    def __init__(self, layer: int, hooks: dict[str, HookFn], cache: dict | None, names: frozenset | set):
        self.prefix = f"blocks.{layer}."
        self.hooks, self.cache, self.names = hooks, cache, names

    def __call__(self, name: str, value: torch.Tensor) -> torch.Tensor:
        full = self.prefix + name
        fn = self.hooks.get(full)
        if fn is not None:
            value = call_hook(fn, value, full)
        if self.cache is not None and full in self.names:
            self.cache[full] = value
        return value

    def hooked(self, name: str) -> bool:
        return (self.prefix + name) in self.hooks

    def wants(self, name: str) -> bool:
        return (self.prefix + name) in self.names or self.hooked(name)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, sites: Sites, site: str,
           groups: int | None = None, cls_query: bool = False) -> torch.Tensor:
    """Softmax attention with the pattern sites of ``site`` (e.g. ``"attn"``); returns ``z``
    ``(N, head, query, d_head)`` for ``q, k, v`` of shape ``(N, head, seq, d_head)``.

    ``N = batch * groups`` when one sequence of the model holds several attention groups
    (TimeSformer's frames or positions); hooks then see the pattern as ``(batch, group, head,
    query, key)``, else as ``(batch, head, query, key)``. ``{site}.hook_pattern`` is built only
    when asked or hooked (otherwise a fused SDPA kernel runs). With ``cls_query`` (query 0 is the
    CLS token) ``{site}.hook_pattern_cls`` is that query's row ``(batch, [group,] head, key)``,
    computed in O(tokens) per head; an edited row becomes the CLS query's weights (its ``z`` is
    recomputed as ``row @ V``).
    """
    def to_hook(t):  # (N, head, ...) -> the shape hooks see
        return t if groups is None else t.reshape(-1, groups, *t.shape[1:])

    def from_hook(t):
        return t if groups is None else t.reshape(-1, *t.shape[2:])

    want_pattern = sites.wants(f"{site}.hook_pattern")
    if want_pattern:
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (N, head, query, key)
        pattern = from_hook(sites(f"{site}.hook_pattern", to_hook(F.softmax(scores, dim=-1, dtype=torch.float32))))
        z = torch.matmul(pattern.to(v.dtype), v)
    else:
        z = F.scaled_dot_product_attention(q, k, v, scale=scale)
    name = f"{site}.hook_pattern_cls"
    if cls_query and sites.wants(name):
        if want_pattern:
            cls_row = pattern[:, :, 0]  # (N, head, key)
        else:  # O(tokens) per head: the CLS query only
            cls_scores = torch.matmul(q[:, :, :1], k.transpose(-1, -2))[:, :, 0] * scale
            cls_row = F.softmax(cls_scores, dim=-1, dtype=torch.float32)
        hooked_row = sites.hooked(name)
        before = cls_row.clone() if hooked_row else None
        shown = to_hook(cls_row)
        new_row = sites(name, shown)
        if hooked_row and (new_row is not shown or not torch.equal(new_row, to_hook(before))):
            # a hook replaced or edited the CLS row in place: the CLS query reads the new row
            z_cls = torch.matmul(from_hook(new_row).to(v.dtype)[:, :, None], v)  # (N, head, 1, d_head)
            z = torch.cat([z_cls, z[:, :, 1:]], dim=2)
    return z


class Adapter:
    """What the core needs to know about one architecture (subclasses fill it in).

    Attributes set by subclasses: ``model`` (the HF classifier), ``blocks`` (its list of layers),
    ``embeddings`` (the module ``embed`` runs),
    ``n_layers``, ``n_heads``, ``d_model``, ``d_head``, ``grid`` (time steps, rows, cols),
    ``tubelet`` (frames, rows, cols of pixels per token), ``has_cls``, ``n_prefix`` (tokens before
    the patches), ``attention_hooks`` (the adapter's own per-block sites, in order),
    ``components`` (component -> output hook), ``head_sites`` (component -> its per-head
    ``hook_z`` site) and ``final_norm`` / ``classifier`` modules.
    """

    arch = "generic"
    has_cls = True
    n_prefix = 1
    final_norm_per_token = True  # ln_final.hook_normalized over tokens (CLS readout), else pooled
    # The readout (CLS or token mean, then the final norm) is linear in the stream, so DLA reads
    # components through it with the norm's scale frozen. False (V-JEPA 2's attentive pooler): DLA
    # uses ``readout_gradient`` instead.
    linear_readout = True
    dla_frozen = "final LayerNorm scale frozen"  # what DLA holds fixed at the run (figure titles)
    readout_name = "CLS"  # what the readout is called in figures and captions ("CLS logit lens")

    # ------------------------------------------------------------------ facts known without a model
    # (read by utils.models, utils.toy_models and the training recipe: an architecture's facts live
    # in its adapter file and nowhere else)
    hf_class: type | None = None  # the HuggingFace video classifier
    processor_class: type | None = None  # what reads a checkpoint folder's preprocessor_config.json
    hub_checkpoint = ""  # the public Kinetics-400 checkpoint the architecture's profiles mirror
    shape_profile = ""  # the profile with that checkpoint's configuration and random weights
    toy_profile = ""  # the profile of its toy model, trained here on the synthetic world
    title = ""  # the architecture's name in figures and tables
    toy_steps = 250  # optimiser steps of its toy model (utils.train)
    toy_train_sdpa = True  # train its toy model with SDPA attention
    colour = ""  # its colour where architectures are compared (notebook 07)
    toy_frames = 16  # frames its toy model reads from a 16-frame synthetic clip
    # per-head / per-token sites: which dimension of a one-run activation (no batch dim) the
    # token positions and the heads index (utils.patching.Patch masks by them)
    site_dims: dict[str, tuple[int, int]] = {}
    readout_attention_site = ""  # the block site whose rows show what the readout attends to
    component_colours: dict[str, str] = {}  # component -> colour in every figure
    attention_steps: tuple[str, ...] = ("attention",)  # the attention components, in run order

    @staticmethod
    def toy_card(actions) -> str:
        """Its toy model's card: what the model is and how it compares with the hub checkpoint."""
        raise NotImplementedError

    @classmethod
    def token_geometry(cls, config) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``(tubelet, grid)`` of a config: pixels per token (frames, rows, cols) and the patch
        grid (time steps, rows, cols)."""
        raise NotImplementedError

    @staticmethod
    def input_frames(config) -> int:
        """How many frames the model reads (its config's name for it)."""
        return config.num_frames

    @staticmethod
    def input_size(config) -> int:
        """Pixels per side of the frames the model reads."""
        return config.image_size

    @staticmethod
    def frame_indices(clip_frames: int, num_frames: int) -> np.ndarray:
        """Which frames of a ``clip_frames`` clip a model reading ``num_frames`` frames sees:
        every k-th from frame 0 when ``clip_frames = k * num_frames``, else evenly spaced
        (``utils.toy_models.sample_frame_indices``, the rule the toy models were trained with)."""
        return sample_frame_indices(clip_frames, num_frames)

    def readout_attention_keys(self) -> int:
        """How many keys one readout-attention row spreads over (uniform attention: 1 / this)."""
        return self.n_prefix + self.grid[0] * self.grid[1] * self.grid[2]

    def readout_attention_map(self, act: torch.Tensor, head: int, by_time_step) -> torch.Tensor:
        """``(time step, row, col)``: the readout's attention of ``head`` from one run's
        ``readout_attention_site`` activation ``act`` (no batch dim), the prefix dropped;
        ``by_time_step`` turns patch values in token order into the grid. The default is for a
        readout without a CLS (VideoMAE's token mean, V-JEPA 2's pooler): the mean query row of
        ``attn.hook_pattern`` ``(head, query, key)``."""
        return by_time_step(act[head].mean(0)[self.n_prefix:])

    @staticmethod
    def hub_processor():
        """The processor of ``hub_checkpoint`` (for checkpoint folders without one)."""
        raise NotImplementedError

    @staticmethod
    def shape_config():
        """``hub_checkpoint``'s exact configuration (for ``shape_profile``)."""
        raise NotImplementedError

    @staticmethod
    def toy_config(num_labels: int, id2label: dict[int, str]):
        """The toy model's configuration: ViViT-B's depth and heads at width 96 on 96 x 96 frames."""
        raise NotImplementedError

    @staticmethod
    def toy_processor():
        """The processor saved with the toy model (x / 127.5 - 1 at 96 x 96 for every toy)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward pieces
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, frame, 3, H, W)`` -> tokens: the HF embedding module (``embeddings``)."""
        return self.embeddings(pixel_values)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, d_model)`` -> ``(batch, head, tokens, d_head)``."""
        b, n, _ = t.shape
        return t.view(b, n, self.n_heads, self.d_head).transpose(1, 2)

    def _per_head(self, weight: torch.Tensor) -> torch.Tensor:
        """An output projection's ``(d_model, head * d_head)`` weight -> ``(head, d_head, d_model)``."""
        return weight.T.reshape(self.n_heads, self.d_head, self.d_model)

    def attention(self, layer: int, x: torch.Tensor, sites: Sites) -> torch.Tensor:
        """Run the attention step(s) of block ``layer`` on resid_pre ``x``; call ``sites`` for
        the adapter's sites and ``hook_attn_out``; return resid_mid (before its hook)."""
        raise NotImplementedError

    def mlp(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """MLP output (before the residual add) of block ``layer`` on resid_mid ``x``."""
        raise NotImplementedError

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, ...)`` -> ``(batch, ...)``: what the final norm reads (linear unless
        ``linear_readout`` is False)."""
        raise NotImplementedError

    def readout_gradient(self, resid: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For a readout that is not linear (``linear_readout = False``): ``(g (tokens, d_model),
        k)`` with ``logit[target] = sum_s g_s . x_s + k`` exact at one run's final residual
        ``resid`` ``(tokens, d_model)``, the readout's non-linear parts frozen at that run."""
        raise NotImplementedError(f"{type(self).__name__} has a linear readout: use the frozen final norm")

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm, readout and classifier on a final residual ``(batch, tokens, d_model)``, as
        the HF model computes them (no hooks; autograd as the caller has it)."""
        if self.final_norm_per_token:
            return self.classifier(self.readout_tokens(self.final_norm(resid)))
        return self.classifier(self.final_norm(self.readout_tokens(resid)))

    # Optional (``readout_rows`` not None): the last block computed for the readout's rows only,
    # when a run needs nothing from it but the logits (``HookedVideoTransformer.run``).
    readout_rows: slice | None = None  # the rows of the stream the readout reads (ViViT: CLS)

    def readout_block(self, layer: int, x: torch.Tensor, start_at_mid: bool = False) -> torch.Tensor:
        """Block ``layer`` on ``x`` (its resid_pre, or resid_mid if ``start_at_mid``), computed
        for the ``readout_rows`` only: ``(batch, len(readout_rows), d_model)``, whose readout is
        the full block's (no site is hooked or cached)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ weights
    # The output projection of a block's one attention step, as a path from the block (ViViT:
    # ``attention.o_proj``); an adapter with several attention steps overrides W_O and b_O instead.
    out_proj: str | None = None

    def _out_proj(self, layer: int) -> nn.Module:
        if self.out_proj is None:
            raise NotImplementedError(f"{type(self).__name__} names no out_proj: it must define W_O and b_O")
        return self.blocks[layer].get_submodule(self.out_proj)

    def W_O(self, layer: int, component: str = "attention") -> torch.Tensor:
        """``(head, d_head, d_model)``: how the per-head ``hook_z`` of ``component`` writes."""
        return self._per_head(self._out_proj(layer).weight)

    def b_O(self, layer: int, component: str = "attention") -> torch.Tensor:
        return self._out_proj(layer).bias

    def head_rows(self, component: str) -> slice:
        """Which tokens of the stream the rows of ``component``'s ``hook_z`` write to."""
        return slice(None)

    # ------------------------------------------------------------------ token geometry
    def token_index(self, t: int, row: int, col: int) -> int:
        """The prefix (CLS, if any), then the patches by time step, row, column (the order of a
        Conv3d tubelet embedding; TimeSformer overrides it)."""
        _, R, C = self.grid
        return self.n_prefix + (t * R + row) * C + col

    def token_position(self, token: int) -> tuple[int, int, int]:
        _, R, C = self.grid
        p = token - self.n_prefix
        return p // (R * C), (p // C) % R, p % C

    def check_cell(self, t: int, row: int, col: int) -> None:
        T, R, C = self.grid
        if not (0 <= t < T and 0 <= row < R and 0 <= col < C):
            raise IndexError(f"patch ({t}, {row}, {col}) outside the grid {self.grid}")

    def check_patch_token(self, token: int) -> int:
        """``token`` minus the prefix, after checking that it is a patch token."""
        T, R, C = self.grid
        first, last = self.n_prefix, self.n_prefix + T * R * C - 1
        if not first <= token <= last:
            raise IndexError(f"token {token} is not a patch token ({first}..{last})")
        return token - self.n_prefix

    # ------------------------------------------------------------------ token DLA
    def token_dla_input(self) -> str:
        """The residual site that the decomposed attention (``token_dla``) reads."""
        return "hook_resid_pre"

    def token_dla_names(self, layer: int) -> list[str]:
        raise NotImplementedError

    def attention_by_source(self, layer: int, cache: dict, batch_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Readout of the decomposed attention's output split by source token:
        ``(per_token (tokens, d_model), bias (d_model,))``; they sum to
        ``readout_tokens(attention output)``."""
        raise NotImplementedError


class HookedVideoTransformer:
    """Named, patchable activations of a loaded video transformer (see module docstring)."""

    def __init__(self, loaded, adapter: Adapter | None = None):
        from utils.arch import adapter_for  # the registry imports this module

        self.loaded = loaded
        self.model = loaded.model.eval()
        self.adapter = adapter or adapter_for(self.model)
        a = self.adapter
        self.arch = a.arch
        self.blocks = a.blocks
        self.cfg = self.model.config
        self.n_layers, self.n_heads, self.d_model, self.d_head = a.n_layers, a.n_heads, a.d_model, a.d_head
        self.grid = a.grid  # (time steps, rows, cols)
        self.has_cls = a.has_cls
        self.n_prefix = a.n_prefix
        self.n_tokens = a.n_prefix + a.grid[0] * a.grid[1] * a.grid[2]
        self.components = dict(a.components)
        self.head_sites = dict(a.head_sites)

    @property
    def device(self) -> torch.device:
        """Where the model's weights sit; inputs are moved here."""
        return next(self.model.parameters()).device

    def check_eval(self) -> None:
        """Raise if any module of the model is in training mode (dropout would act on the HF
        submodules this class calls, and not on its own attention)."""
        training = [name or "the model" for name, m in self.model.named_modules() if m.training]
        if training:
            raise RuntimeError(
                f"HookedVideoTransformer runs the model in eval mode only, but {training[0]} is in training mode "
                f"({len(training)} module(s)); call loaded.model.eval() first")

    # ------------------------------------------------------------------ names
    def block_hooks(self) -> tuple[str, ...]:
        """The sites of one block, in the order a run meets them."""
        return ("hook_resid_pre", *self.adapter.attention_hooks, "hook_attn_out", "hook_resid_mid",
                "hook_mlp_out", "hook_resid_post")

    def hook_names(self) -> list[str]:
        names = ["hook_embed"]
        for layer in range(self.n_layers):
            names += [f"blocks.{layer}.{h}" for h in self.block_hooks()]
        return names + ["ln_final.hook_normalized"]

    def _check_names(self, names: Iterable[str]) -> None:
        known = set(self.hook_names())
        bad = [n for n in names if n not in known]
        if bad:
            raise KeyError(
                f"unknown activation name(s) {bad}; layers are 0..{self.n_layers - 1} and names "
                f"look like 'blocks.3.hook_mlp_out' (see hook_names())"
            )

    # ------------------------------------------------------------------ weights and readout
    def W_O(self, layer: int, component: str | None = None) -> torch.Tensor:
        """``(head, d_head, d_model)`` output projection per head (``component`` defaults to the
        first attention component: ``attention`` for ViViT and VideoMAE)."""
        return self.adapter.W_O(layer, component or next(iter(self.head_sites)))

    def b_O(self, layer: int, component: str | None = None) -> torch.Tensor:
        return self.adapter.b_O(layer, component or next(iter(self.head_sites)))

    @property
    def W_U(self) -> torch.Tensor:
        """``(d_model, classes)`` classifier weights."""
        return self.adapter.classifier.weight.T

    @property
    def b_U(self) -> torch.Tensor:
        return self.adapter.classifier.bias

    @property
    def final_norm(self) -> torch.nn.LayerNorm:
        """The LayerNorm the classifier reads (``layernorm`` or VideoMAE's ``fc_norm``)."""
        return self.adapter.final_norm

    def readout_tokens(self, resid: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, ...)`` -> ``(batch, ...)``: the CLS token, or the mean over tokens."""
        return self.adapter.readout_tokens(resid)

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm + classifier on the readout of a residual ``(batch, tokens, d_model)``
        (under inference mode when ``resid`` was made there)."""
        with torch.inference_mode() if resid.is_inference() else nullcontext():
            return self.adapter.classifier(self.final_norm(self.readout_tokens(resid)))

    # ------------------------------------------------------------------ forward
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, frame, 3, H, W)`` -> ``(batch, tokens, d_model)``."""
        return self.adapter.embed(pixel_values)

    def block(self, layer: int, x: torch.Tensor, hooks: dict[str, HookFn] | None = None,
              cache: dict | None = None, names: set | frozenset = frozenset(),
              start_at_mid: bool = False) -> torch.Tensor:
        """Run block ``layer`` on ``x`` (its resid_pre, or its resid_mid if ``start_at_mid``)."""
        sites = Sites(layer, hooks or {}, cache, names)
        if not start_at_mid:
            x = sites("hook_resid_pre", x)
            x = self.adapter.attention(layer, x, sites)
        x = sites("hook_resid_mid", x)
        mlp_out = sites("hook_mlp_out", self.adapter.mlp(layer, x))
        return sites("hook_resid_post", x + mlp_out)

    def readout_only(self, names: Iterable[str] = (), hooks: Iterable[str] = ()) -> bool:
        """Whether a run asking for ``names`` with ``hooks`` may compute its last block for the
        readout's rows only (``Adapter.readout_block``): the adapter supports it, and nothing of
        the last block or the final norm is asked for or hooked. Saves most of a block per run
        (ViViT-B: the CLS query instead of 3137; logits equal up to float rounding)."""
        if self.adapter.readout_rows is None:
            return False
        last = f"blocks.{self.n_layers - 1}."
        return not any(n.startswith(last) or n == "ln_final.hook_normalized" for n in (*names, *hooks))

    def readout_state(self, x: torch.Tensor) -> torch.Tensor:
        """The readout's rows of a full state ``(batch, tokens, d_model)`` (what ``readout_block``
        returns, so the two can share a batch)."""
        return x[:, self.adapter.readout_rows]

    def head(self, resid_final: torch.Tensor, hooks=None, cache=None, names=frozenset()):
        """Readout, final norm and classifier: ``(batch, tokens, d)`` -> logits."""
        a = self.adapter
        name = "ln_final.hook_normalized"
        if a.final_norm_per_token:  # LayerNorm acts per token: normalise all, read the CLS
            normed = a.final_norm(resid_final)
        else:
            normed = a.final_norm(a.readout_tokens(resid_final))
        if hooks and name in hooks:
            normed = call_hook(hooks[name], normed, name)
        if cache is not None and name in names:
            cache[name] = normed
        return a.classifier(a.readout_tokens(normed) if a.final_norm_per_token else normed)

    def run(self, pixel_values: torch.Tensor | None = None, names: Iterable[str] = (),
            hooks: dict[str, HookFn] | None = None, start: tuple[str, torch.Tensor] | None = None,
            grad: bool = False) -> Run:
        """Forward pass returning logits and the activations named in ``names``.

        ``start=("blocks.5.hook_resid_pre", x)`` (or ``hook_resid_mid``) begins mid-network from
        a cached state instead of ``pixel_values``. Both move to the model's device. ``grad=True``
        keeps autograd on (an input made under ``inference_mode`` is cloned so it can be used).
        A run that asks for nothing of the last block computes that block for the readout's rows
        only (``readout_only``).
        """
        names = frozenset(names)
        hooks = dict(hooks or {})
        self._check_names(list(names) + list(hooks))
        self.check_eval()
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        cache: dict[str, torch.Tensor] = {}
        with ctx:
            if start is None:
                if pixel_values is None:
                    raise ValueError("run() needs pixel_values or start=(name, tensor)")
                x = self.embed(self._input(pixel_values, grad))
                if "hook_embed" in hooks:
                    x = call_hook(hooks["hook_embed"], x, "hook_embed")
                if "hook_embed" in names:
                    cache["hook_embed"] = x
                first, at_mid = 0, False
            else:
                start_name, x = start
                first, site = parse_name(start_name)
                if site not in ("hook_resid_pre", "hook_resid_mid"):
                    raise ValueError(f"a run can start at hook_resid_pre or hook_resid_mid, "
                                     f"not {start_name}")
                x = self._input(x, grad)
                at_mid = site == "hook_resid_mid"
            fast = self.readout_only(names, hooks)  # logits only from the last block
            for layer in range(first, self.n_layers):
                mid = at_mid and layer == first
                if fast and layer == self.n_layers - 1:
                    x = self.adapter.readout_block(layer, x, start_at_mid=mid)
                else:
                    x = self.block(layer, x, hooks, cache, names, start_at_mid=mid)
            logits = self.head(x, hooks, cache, names)
        return Run(logits, cache)

    def _input(self, x: torch.Tensor, grad: bool) -> torch.Tensor:
        """``x`` on the model's device; a tensor made under inference mode is cloned for a grad run."""
        x = x.to(self.device)
        return x.clone() if grad and x.is_inference() else x

    # ------------------------------------------------------------------ tokens and pixels
    def token_index(self, t: int, row: int, col: int) -> int:
        """Token index of the patch at time step ``t``, ``row``, ``col`` (the adapter's layout)."""
        self.adapter.check_cell(t, row, col)
        return self.adapter.token_index(t, row, col)

    def token_position(self, token: int) -> tuple[int, int, int]:
        """Inverse of ``token_index``: ``(t, row, col)`` of a patch token (not CLS)."""
        self.adapter.check_patch_token(token)
        return self.adapter.token_position(token)

    def pixel_box(self, token: int) -> tuple[slice, slice, slice]:
        """(frames, rows, cols) pixel slices that a patch token reads (its tubelet or patch)."""
        t, r, c = self.token_position(token)
        ft, fh, fw = self.adapter.tubelet
        return slice(t * ft, (t + 1) * ft), slice(r * fh, (r + 1) * fh), slice(c * fw, (c + 1) * fw)

    def patch_order(self) -> torch.Tensor:
        """``(t, row, col)`` -> index among the patch tokens (token minus the prefix)."""
        T, R, C = self.grid
        return torch.tensor([[[self.adapter.token_index(t, r, c) - self.n_prefix for c in range(C)]
                              for r in range(R)] for t in range(T)])

    def by_time_step(self, per_patch: torch.Tensor) -> torch.Tensor:
        """Patch values ``(..., patches)`` (prefix tokens dropped, token order) -> ``(..., t, row, col)``."""
        order = self.patch_order().to(per_patch.device)
        return per_patch[..., order]

    def to_token_order(self, per_cell: torch.Tensor) -> torch.Tensor:
        """Inverse of ``by_time_step``: ``(..., t, row, col)`` -> ``(..., patches)`` in token order."""
        order = self.patch_order().flatten().to(per_cell.device)
        flat = per_cell.reshape(*per_cell.shape[:-3], -1)
        out = torch.empty_like(flat)
        out[..., order] = flat
        return out


def vit_b_kinetics400(hidden_act: str) -> dict:
    """What the three Kinetics-400 checkpoints share: a ViT-B trunk (12 layers x 12 heads, 768
    wide, MLP 3072) on 224 px frames, and the 400 Kinetics class names."""
    names = kinetics_labels()
    return dict(image_size=224, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, hidden_act=hidden_act, num_labels=400, id2label=names,
                label2id={v: k for k, v in names.items()})
