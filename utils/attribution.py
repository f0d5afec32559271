"""Direct logit attribution (DLA) and the logit lens, exact against the forward pass.

The classifier reads the CLS token after the final LayerNorm:
``logit_c = w_c . LN(x) + b_c`` with ``LN(x) = gamma * (x - mean(x)) / sigma + beta``.
The CLS residual is a sum of components, ``x = embed + sum_l attn_out_l + sum_l mlp_out_l``,
and with the LayerNorm scale ``sigma`` *frozen* at its value on this input, ``LN`` is
linear in them, so

    logit_c = sum_components (w_c * gamma) . (component - mean(component)) / sigma
              + (w_c . beta + b_c)

Each attention output splits further into heads, ``attn_out = sum_h z_h W_O^h + b_O``, and
the last layer's CLS attention output into source tokens,
``attn_out[CLS] = sum_s sum_h A_h[CLS, s] (v_s^h W_O^h) + b_O`` (the value bias is inside
``v``; the pattern rows sum to one). Every decomposition here returns its terms and the
model's own logit, and ``tests/test_attribution.py`` checks that they add up.

Integrated gradients (Sundararajan et al. 2017) serve as a baseline attribution:
``integrated_gradients`` at the input (per tubelet), and ``residual_ig`` at the site where
``token_dla`` works (the patch tokens entering the last block), so the two maps compare like
with like. Both satisfy completeness (the terms add up to logit(x) - logit(baseline)) up to
the quadrature error, which ``check_completeness`` bounds.
"""

from __future__ import annotations

import pandas as pd
import torch

from utils.hooks import HookedViViT


def dla_names(hooked: HookedViViT) -> list[str]:
    """Activations a DLA needs."""
    names = ["hook_embed"]
    for layer in range(hooked.n_layers):
        names += [f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out",
                  f"blocks.{layer}.attn.hook_z"]
    return names + [f"blocks.{hooked.n_layers - 1}.hook_resid_post"]


@torch.inference_mode()
def frozen_ln_direction(hooked: HookedViViT, resid_cls: torch.Tensor, target: int):
    """For a CLS residual ``(d_model,)``: the direction ``u`` with ``logit = u . (c - mean c) + k``
    for any component c, and the constant ``k`` (final LN bias and classifier bias)."""
    ln = hooked.vivit.layernorm
    var = resid_cls.var(unbiased=False)
    sigma = torch.sqrt(var + ln.eps)
    w = hooked.W_U[:, target]
    u = w * ln.weight / sigma
    k = w @ ln.bias + hooked.b_U[target]
    return u, k


def _project(u: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
    """``u . (v - mean v)`` over the last dimension."""
    return (vecs - vecs.mean(-1, keepdim=True)) @ u


@torch.inference_mode()
def direct_logit_attribution(hooked: HookedViViT, run, target: int, batch: int = 0,
                             per_head: bool = True) -> pd.DataFrame:
    """Terms of the target logit: embed, each layer's attention (per head + bias) and MLP.

    ``run`` is a ``Run`` with ``dla_names`` cached. Returns a tidy DataFrame with columns
    ``component`` (embed / attention / attn_head / attn_bias / mlp / constant), ``layer``,
    ``head`` and ``logit`` (its contribution). Rows of kind attn_head + attn_bias sum to the
    layer's attention row; embed + attention + mlp + constant rows sum to the logit.
    """
    c = run.cache
    L = hooked.n_layers
    resid = c[f"blocks.{L - 1}.hook_resid_post"][batch, 0]
    u, k = frozen_ln_direction(hooked, resid, target)
    rows = [("embed", -1, -1, float(_project(u, c["hook_embed"][batch, 0])))]
    for layer in range(L):
        rows.append(("attention", layer, -1, float(_project(u, c[f"blocks.{layer}.hook_attn_out"][batch, 0]))))
        if per_head:
            z = c[f"blocks.{layer}.attn.hook_z"][batch, 0]  # (head, d_head)
            per = torch.einsum("hd,hdm->hm", z, hooked.W_O(layer))  # (head, d_model)
            for h, val in enumerate(_project(u, per).tolist()):
                rows.append(("attn_head", layer, h, val))
            rows.append(("attn_bias", layer, -1, float(_project(u, hooked.b_O(layer)))))
        rows.append(("mlp", layer, -1, float(_project(u, c[f"blocks.{layer}.hook_mlp_out"][batch, 0]))))
    rows.append(("constant", -1, -1, float(k)))
    return pd.DataFrame(rows, columns=["component", "layer", "head", "logit"])


def dla_total(df: pd.DataFrame) -> float:
    """Sum of the non-overlapping DLA terms (should equal the model's logit)."""
    return float(df[df.component.isin(["embed", "attention", "mlp", "constant"])].logit.sum())


@torch.inference_mode()
def logit_lens_cls(hooked: HookedViViT, run, target: int, batch: int = 0) -> pd.DataFrame:
    """Target logit of final LN + classifier applied to the CLS residual after each layer.

    ``layer`` 0 is the embedding, ``l`` the output of block ``l - 1``, and ``n_layers`` is the
    model's output (equal to its logit). Needs ``hook_embed`` and every ``hook_resid_post``.
    """
    resids = [run.cache["hook_embed"][batch, 0]]
    resids += [run.cache[f"blocks.{i}.hook_resid_post"][batch, 0] for i in range(hooked.n_layers)]
    x = torch.stack(resids)  # (layer, d_model)
    logits = hooked.model.classifier(hooked.vivit.layernorm(x))  # (layer, classes)
    probs = logits.softmax(-1)
    return pd.DataFrame({
        "layer": range(len(resids)),
        "logit": logits[:, target].tolist(),
        "prob": probs[:, target].tolist(),
        "rank": (logits > logits[:, target : target + 1]).sum(-1).tolist(),
    })


@torch.inference_mode()
def logit_lens_frames(hooked: HookedViViT, run, target: int, batch: int = 0) -> torch.Tensor:
    """``(layer, time step)``: target logit of final LN + classifier on each patch token,
    averaged over the patches of each tubelet time step; layer 0 = embedding."""
    resids = [run.cache["hook_embed"][batch, 1:]]
    resids += [run.cache[f"blocks.{i}.hook_resid_post"][batch, 1:] for i in range(hooked.n_layers)]
    x = torch.stack(resids)  # (layer, patches, d_model)
    logit = hooked.model.classifier(hooked.vivit.layernorm(x))[..., target]  # (layer, patches)
    return hooked.by_frame(logit).mean((-1, -2))  # (layer, time step)


def token_dla_names(hooked: HookedViViT) -> list[str]:
    last = hooked.n_layers - 1
    return [f"blocks.{last}.hook_resid_pre", f"blocks.{last}.attn.hook_pattern_cls",
            f"blocks.{last}.hook_mlp_out", f"blocks.{last}.hook_resid_post"]


@torch.inference_mode()
def token_dla(hooked: HookedViViT, run, target: int, batch: int = 0) -> dict:
    """Per-source-token attribution of the target logit through the last layer's attention.

    Returns ``tokens`` ``(tokens,)`` (CLS first) and the remaining exact terms:
    ``resid_pre`` (everything before the last block, at CLS), ``attn_bias``, ``mlp`` and
    ``constant``; ``total`` is their sum and ``logit`` the model's logit.
    """
    last = hooked.n_layers - 1
    c = run.cache
    blk = hooked.blocks[last]
    resid_final = c[f"blocks.{last}.hook_resid_post"][batch, 0]
    u, k = frozen_ln_direction(hooked, resid_final, target)
    x = c[f"blocks.{last}.hook_resid_pre"][batch]  # (tokens, d_model)
    with torch.inference_mode():
        v = blk.attention.v_proj(blk.layernorm_before(x))  # (tokens, head * d_head)
        v = v.view(x.shape[0], hooked.n_heads, hooked.d_head)  # (tokens, head, d_head)
        ov = torch.einsum("thd,hdm->thm", v, hooked.W_O(last))  # (tokens, head, d_model)
        pattern = c[f"blocks.{last}.attn.hook_pattern_cls"][batch]  # (head, tokens)
        per_token = torch.einsum("ht,thm->tm", pattern, ov)  # (tokens, d_model)
        tokens = _project(u, per_token)
        out = {
            "tokens": tokens,
            "resid_pre": float(_project(u, x[0])),
            "attn_bias": float(_project(u, hooked.b_O(last))),
            "mlp": float(_project(u, c[f"blocks.{last}.hook_mlp_out"][batch, 0])),
            "constant": float(k),
            "logit": float(run.logits[batch, target]),
        }
    out["total"] = float(tokens.sum()) + out["resid_pre"] + out["attn_bias"] + out["mlp"] + out["constant"]
    return out


@torch.inference_mode()
def notebook_token_score(hooked: HookedViViT, run, target: int, batch: int = 0) -> torch.Tensor:
    """The author's simpler score: final-layer patch tokens . W_target (no LayerNorm).

    ``(patches,)``; needs the last ``hook_resid_post``.
    """
    last = run.cache[f"blocks.{hooked.n_layers - 1}.hook_resid_post"][batch, 1:]
    return last @ hooked.W_U[:, target]


def _integrate(f, x: torch.Tensor, base: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """Integrated gradients of the scalar-per-row function ``f`` along the straight path from
    ``base`` to ``x`` (same shape): ``(x - base) * mean_k grad f(base + a_k (x - base))`` with
    midpoint nodes ``a_k = (k + 0.5) / steps``. ``f`` maps ``(n, *x.shape)`` to ``(n,)``."""
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # (steps,)
    grads = torch.zeros_like(x)
    for i in range(0, steps, batch):
        a = alphas[i : i + batch].view(-1, *([1] * x.dim()))
        xs = (base + a * (x - base)).detach().requires_grad_(True)  # (chunk, *x.shape)
        (g,) = torch.autograd.grad(f(xs).sum(), xs)
        grads += g.sum(0)
    return ((x - base) * grads / steps).detach()


def integrated_gradients(hooked: HookedViViT, pixel_values: torch.Tensor, target: int,
                         steps: int = 32, batch: int = 8, baseline: torch.Tensor | None = None) -> dict:
    """Integrated gradients of the target logit w.r.t. the input, summed per tubelet (token).

    ``IG_i = (x_i - x'_i) * mean_k dlogit/dx_i (x' + (k + 0.5)/steps * (x - x'))`` (midpoint
    rule), baseline ``x'`` zeros in ``pixel_values`` space by default. Returns ``tokens``
    ``(patches,)`` (pixels of each tubelet summed), ``total`` (their sum), and ``gap`` =
    logit(x) - logit(x'), which ``total`` approximates (completeness).
    """
    x = pixel_values[0]  # (frame, 3, H, W)
    base = torch.zeros_like(x) if baseline is None else baseline
    # memory-efficient attention (no tokens x tokens matrix kept for the backward pass);
    # one step at a time at paper scale, where a batch of 8 would need tens of GB
    batch = batch if hooked.n_tokens <= 1024 else 1
    ig = _integrate(lambda xs: hooked.run(xs, grad=True).logits[:, target], x, base, steps, batch)
    ft, fh, fw = hooked.loaded.tubelet
    T, R, C = hooked.grid
    per_token = ig.reshape(T, ft, 3, R, fh, C, fw).sum((1, 2, 4, 6)).reshape(-1)  # (patches,)
    gap = float(hooked.run(torch.stack([x, base])).logits[:, target].diff().neg())
    return {"tokens": per_token, "total": float(per_token.sum()), "gap": gap}


def residual_ig_names(hooked: HookedViViT) -> list[str]:
    """Activations ``residual_ig`` needs (the same site as ``token_dla``)."""
    return [f"blocks.{hooked.n_layers - 1}.hook_resid_pre"]


def residual_ig(hooked: HookedViViT, run, target: int, steps: int = 32, batch: int = 8,
                batch_index: int = 0) -> dict:
    """Integrated gradients of the target logit w.r.t. the *patch tokens of the last block's
    input* (``blocks.{L-1}.hook_resid_pre``), the site where ``token_dla`` splits the logit
    into source tokens, so the two attributions compare like with like.

    Path: every patch token goes from the clip's mean patch token (baseline: no token stands
    out) to its own value, CLS stays at its value; the last block, the final LayerNorm and the
    classifier run at every point of the path (attention pattern, LayerNorm scale and MLP all
    move, unlike DLA). A zero baseline would not do: the block reads patch tokens only through
    ``layernorm_before``, which is scale-invariant, so along ``alpha * x`` the logit stays flat
    until ``alpha`` is ~1e-3 and a quadrature rule misses the whole change.

    Returns ``tokens`` ``(patches,)`` (IG summed over ``d_model``), ``total`` (their sum),
    ``logit`` (the model's logit), ``baseline_logit`` (patch tokens at the mean) and ``gap`` =
    logit - baseline_logit, which ``total`` approximates (completeness; the error falls with
    ``steps``).
    """
    last = hooked.n_layers - 1
    site = f"blocks.{last}.hook_resid_pre"
    x = run.cache[site][batch_index].clone()  # (tokens, d_model); a plain tensor, also after inference mode
    base = x.clone()
    base[1:] = x[1:].mean(0)  # every patch token at the mean patch token, CLS unchanged

    def f(xs):  # (n, tokens, d_model) -> (n,)
        return hooked.run(start=(site, xs), grad=True).logits[:, target]

    batch = batch if hooked.n_tokens <= 1024 else 1
    ig = _integrate(f, x, base, steps, batch)  # (tokens, d_model); CLS row is zero
    per_token = ig[1:].sum(-1)  # (patches,)
    with torch.inference_mode():
        logit, base_logit = hooked.run(start=(site, torch.stack([x, base]))).logits[:, target].tolist()
    return {"tokens": per_token, "total": float(per_token.sum()), "logit": logit,
            "baseline_logit": base_logit, "gap": logit - base_logit}


def check_completeness(table: pd.DataFrame, rtol: float = 0.01, atol: float = 1e-3) -> pd.DataFrame:
    """Raise ``AssertionError`` unless, in every row, integrated gradients add up to the logit
    gap they explain: ``|ig_total - gap| <= atol + rtol * |gap|`` (columns ``ig_total``, ``gap``,
    as ``utils.pairs.ig_vs_dla_pairs`` writes them). Returns ``table`` with the ``tolerance``."""
    tol = atol + rtol * table.gap.abs()
    err = (table.ig_total - table.gap).abs()
    bad = table[err > tol]
    if len(bad):
        first = bad.iloc[0]
        raise AssertionError(
            f"integrated gradients miss completeness (|total - gap| > {atol} + {rtol} |gap|) in {len(bad)} "
            f"row(s), e.g. total {first.ig_total:.5f} vs gap {first.gap:.5f}; raise the number of steps")
    return table.assign(tolerance=tol)
