"""Named activations of a HuggingFace ViViT, in the TransformerLens style.

``HookedViViT`` runs the HF model's own submodules (``embeddings``, each ``VivitLayer``'s
LayerNorms, q/k/v/o projections and MLP, the final LayerNorm and the classifier) one step at
a time and exposes every intermediate under the names interpretability readers know:

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

Why step-by-step instead of ``register_forward_hook``: a run can start mid-network from a
cached state (``start=``), which is what makes patching sweeps cheap; no hook ever stays
registered on the model, whatever goes wrong; and the attention pattern is computed only
where asked (the CLS row costs O(tokens) per head, never tokens^2). ``tests/test_hooks.py``
checks every name against the HF forward pass and against plain PyTorch forward hooks.

A hook function has the TransformerLens signature ``fn(activation, name) -> activation | None``
(``None`` keeps the activation, edits made in place included; a returned tensor replaces it and
must have its shape). Every site's edit flows downstream, ``attn.hook_pattern_cls`` included: an
edited CLS row becomes the CLS query's attention weights, so the CLS entry of ``attn.hook_z``
is recomputed as ``row @ V`` (the other queries keep theirs). Token 0 is CLS; patch tokens follow in the
order of the HF tubelet embedding: time step, then row, then column (``token_index``).

Runs need the model in eval mode (``HookedViViT`` puts it there; a module switched back to
training raises, since dropout would act on some steps and not others). Inputs
(``pixel_values``, a ``start=`` tensor) move to the model's device; cached activations stay
there (``utils.plotting.to_numpy`` brings them to the CPU). A ``grad=True`` run may start from
a cache made under ``torch.inference_mode`` (the default run): such tensors are cloned first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.models import LoadedModel

HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]

BLOCK_HOOKS = (
    "hook_resid_pre",
    "attn.hook_z",
    "attn.hook_pattern",
    "attn.hook_pattern_cls",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)


def parse_name(name: str) -> tuple[int | None, str]:
    """``"blocks.3.hook_mlp_out"`` -> ``(3, "hook_mlp_out")``; global names -> ``(None, name)``."""
    if name.startswith("blocks."):
        _, layer, rest = name.split(".", 2)
        return int(layer), rest
    return None, name


@dataclass
class Run:
    """The result of ``HookedViViT.run``: logits ``(batch, classes)`` and the cached activations."""

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


class HookedViViT:
    """Named, patchable activations of a loaded ViViT (see module docstring)."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.vivit = self.model.vivit
        self.blocks = self.vivit.layers
        self.cfg = self.model.config
        self.n_layers = self.cfg.num_hidden_layers
        self.n_heads = self.cfg.num_attention_heads
        self.d_model = self.cfg.hidden_size
        self.d_head = self.d_model // self.n_heads
        self.grid = loaded.grid  # (time steps, rows, cols)
        self.n_tokens = loaded.num_patches + 1

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
                f"HookedViViT runs the model in eval mode only, but {training[0]} is in training mode "
                f"({len(training)} module(s)); call loaded.model.eval() first")

    # ------------------------------------------------------------------ names
    def hook_names(self) -> list[str]:
        names = ["hook_embed"]
        for layer in range(self.n_layers):
            names += [f"blocks.{layer}.{h}" for h in BLOCK_HOOKS]
        return names + ["ln_final.hook_normalized"]

    def _check_names(self, names: Iterable[str]) -> None:
        known = set(self.hook_names())
        bad = [n for n in names if n not in known]
        if bad:
            raise KeyError(
                f"unknown activation name(s) {bad}; layers are 0..{self.n_layers - 1} and names "
                f"look like 'blocks.3.hook_mlp_out' (see HookedViViT.hook_names())"
            )

    # ------------------------------------------------------------------ weights
    def W_O(self, layer: int) -> torch.Tensor:
        """``(head, d_head, d_model)`` output projection per head."""
        w = self.blocks[layer].attention.o_proj.weight  # (d_model, head * d_head)
        return w.T.reshape(self.n_heads, self.d_head, self.d_model)

    def b_O(self, layer: int) -> torch.Tensor:
        return self.blocks[layer].attention.o_proj.bias

    @property
    def W_U(self) -> torch.Tensor:
        """``(d_model, classes)`` classifier weights."""
        return self.model.classifier.weight.T

    @property
    def b_U(self) -> torch.Tensor:
        return self.model.classifier.bias

    # ------------------------------------------------------------------ forward
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, frame, 3, H, W)`` -> ``(batch, tokens, d_model)``."""
        return self.vivit.embeddings(pixel_values)

    def block(self, layer: int, x: torch.Tensor, hooks: dict[str, HookFn] | None = None,
              cache: dict | None = None, names: set | frozenset = frozenset(),
              start_at_mid: bool = False) -> torch.Tensor:
        """Run block ``layer`` on ``x`` (its resid_pre, or its resid_mid if ``start_at_mid``)."""
        hooks = hooks or {}
        blk = self.blocks[layer]
        p = f"blocks.{layer}."

        def hp(name, value):
            fn = hooks.get(p + name)
            if fn is not None:
                value = call_hook(fn, value, p + name)
            if cache is not None and p + name in names:
                cache[p + name] = value
            return value

        if not start_at_mid:
            x = hp("hook_resid_pre", x)
            b, t, _ = x.shape
            h = blk.layernorm_before(x)
            att = blk.attention
            q = att.q_proj(h).view(b, t, self.n_heads, self.d_head).transpose(1, 2)
            k = att.k_proj(h).view(b, t, self.n_heads, self.d_head).transpose(1, 2)
            v = att.v_proj(h).view(b, t, self.n_heads, self.d_head).transpose(1, 2)
            # (batch, head, tokens, d_head) each
            want_pattern = (p + "attn.hook_pattern") in names or (p + "attn.hook_pattern") in hooks
            if want_pattern:
                scores = torch.matmul(q, k.transpose(2, 3)) * att.scaling  # (b, head, q, k)
                pattern = hp("attn.hook_pattern", F.softmax(scores, dim=-1, dtype=torch.float32))
                z = torch.matmul(pattern.to(v.dtype), v)
            else:
                z = F.scaled_dot_product_attention(q, k, v, scale=att.scaling)
            if (p + "attn.hook_pattern_cls") in names or (p + "attn.hook_pattern_cls") in hooks:
                if want_pattern:
                    cls_row = pattern[:, :, 0]  # (batch, head, key)
                else:  # O(tokens) per head: the CLS query only
                    cls_scores = torch.matmul(q[:, :, :1], k.transpose(2, 3))[:, :, 0] * att.scaling
                    cls_row = F.softmax(cls_scores, dim=-1, dtype=torch.float32)
                hooked_row = (p + "attn.hook_pattern_cls") in hooks
                before = cls_row.clone() if hooked_row else None  # (batch, head, key): O(tokens)
                new_row = hp("attn.hook_pattern_cls", cls_row)
                if hooked_row and (new_row is not cls_row or not torch.equal(new_row, before)):
                    # a hook replaced or edited the CLS row in place: the CLS query reads the new row
                    z_cls = torch.matmul(new_row.to(v.dtype)[:, :, None], v)  # (b, head, 1, d_head)
                    z = torch.cat([z_cls, z[:, :, 1:]], dim=2)
            z = hp("attn.hook_z", z.transpose(1, 2))  # (batch, tokens, head, d_head)
            attn_out = hp("hook_attn_out", att.o_proj(z.reshape(b, t, self.d_model)))
            x = hp("hook_resid_mid", x + attn_out)
        else:
            x = hp("hook_resid_mid", x)
        mlp_out = hp("hook_mlp_out", blk.mlp(blk.layernorm_after(x)))
        return hp("hook_resid_post", x + mlp_out)

    def head(self, resid_final: torch.Tensor, hooks=None, cache=None, names=frozenset()):
        """Final LayerNorm and classifier on the CLS token: ``(batch, tokens, d)`` -> logits."""
        normed = self.vivit.layernorm(resid_final)
        if hooks and "ln_final.hook_normalized" in hooks:
            normed = call_hook(hooks["ln_final.hook_normalized"], normed, "ln_final.hook_normalized")
        if cache is not None and "ln_final.hook_normalized" in names:
            cache["ln_final.hook_normalized"] = normed
        return self.model.classifier(normed[:, 0])

    def run(self, pixel_values: torch.Tensor | None = None, names: Iterable[str] = (),
            hooks: dict[str, HookFn] | None = None, start: tuple[str, torch.Tensor] | None = None,
            grad: bool = False) -> Run:
        """Forward pass returning logits and the activations named in ``names``.

        ``start=("blocks.5.hook_resid_pre", x)`` (or ``hook_resid_mid``) begins mid-network from
        a cached state instead of ``pixel_values``. Both move to the model's device. ``grad=True``
        keeps autograd on (an input made under ``inference_mode`` is cloned so it can be used).
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
            for layer in range(first, self.n_layers):
                x = self.block(layer, x, hooks, cache, names, start_at_mid=at_mid and layer == first)
            logits = self.head(x, hooks, cache, names)
        return Run(logits, cache)

    def _input(self, x: torch.Tensor, grad: bool) -> torch.Tensor:
        """``x`` on the model's device; a tensor made under inference mode is cloned for a grad run."""
        x = x.to(self.device)
        return x.clone() if grad and x.is_inference() else x

    # ------------------------------------------------------------------ tokens and pixels
    def token_index(self, t: int, row: int, col: int) -> int:
        """Token index of the patch at time step ``t``, ``row``, ``col`` (CLS is token 0)."""
        T, R, C = self.grid
        if not (0 <= t < T and 0 <= row < R and 0 <= col < C):
            raise IndexError(f"patch ({t}, {row}, {col}) outside the grid {self.grid}")
        return 1 + (t * R + row) * C + col

    def token_position(self, token: int) -> tuple[int, int, int]:
        """Inverse of ``token_index``: ``(t, row, col)`` of a patch token (not CLS)."""
        T, R, C = self.grid
        if not 1 <= token <= T * R * C:
            raise IndexError(f"token {token} is not a patch token (1..{T * R * C})")
        p = token - 1
        return p // (R * C), (p // C) % R, p % C

    def pixel_box(self, token: int) -> tuple[slice, slice, slice]:
        """(frames, rows, cols) pixel slices that a patch token reads (its tubelet)."""
        t, r, c = self.token_position(token)
        ft, fh, fw = self.loaded.tubelet
        return slice(t * ft, (t + 1) * ft), slice(r * fh, (r + 1) * fh), slice(c * fw, (c + 1) * fw)

    def by_frame(self, per_token: torch.Tensor) -> torch.Tensor:
        """Reshape patch values ``(..., patches)`` (CLS dropped) to ``(..., t, row, col)``."""
        return per_token.reshape(*per_token.shape[:-1], *self.grid)


def layer_sites(n_layers: int, site: str) -> list[str]:
    return [f"blocks.{layer}.{site}" for layer in range(n_layers)]
