"""Direct logit attribution (DLA) and the logit lens, exact against the forward pass.

The classifier reads one vector per clip, the *readout* of the last residual
(``hooked.readout_tokens``): the CLS token for ViViT and TimeSformer, the mean over all tokens
for VideoMAE, then the final LayerNorm (``hooked.final_norm``: ``layernorm`` or ``fc_norm``):
``logit_c = w_c . LN(x) + b_c`` with ``LN(x) = gamma * (x - mean(x)) / sigma + beta``.
The readout is linear in the residual, so the readout vector is a sum of components'
readouts, ``x = embed + sum_l attn_out_l + sum_l mlp_out_l`` (TimeSformer: two attention
outputs per layer), and with the LayerNorm scale ``sigma`` *frozen* at its value on this
input, ``LN`` is linear in them, so

    logit_c = sum_components (w_c * gamma) . (component - mean(component)) / sigma
              + (w_c . beta + b_c)

Each attention output splits further into heads, ``attn_out = sum_h z_h W_O^h + b_O``, and
the last layer's attention output (its readout) into source tokens,
``attn_out[CLS] = sum_s sum_h A_h[CLS, s] (v_s^h W_O^h) + b_O`` (the value bias is inside
``v``; the pattern rows sum to one; the adapter's ``attention_by_source`` says how for each
architecture: TimeSformer averages its spatial CLS over frames, VideoMAE averages the pattern
over the pooled queries). Every decomposition here returns its terms and the
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

from utils.hooks import HookedVideoTransformer


def dla_names(hooked: HookedVideoTransformer) -> list[str]:
    """Activations a DLA needs: every component's output and every per-head ``hook_z``."""
    names = ["hook_embed"]
    for layer in range(hooked.n_layers):
        names += [f"blocks.{layer}.{hook}" for hook in hooked.components.values()]
        names += [f"blocks.{layer}.{site}" for site in hooked.head_sites.values()]
    return names + [f"blocks.{hooked.n_layers - 1}.hook_resid_post"]


def readout(hooked: HookedVideoTransformer, act: torch.Tensor, batch_index: int = 0) -> torch.Tensor:
    """The readout (CLS token or token mean) of one run's activation ``(batch_index, tokens, ...)``."""
    return hooked.readout_tokens(act[batch_index : batch_index + 1])[0]


def head_readout(hooked: HookedVideoTransformer, component: str, z: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Readout of a per-head ``hook_z`` ``(rows, head, d_head)`` of one run, with its rows put at
    the tokens they write to (``adapter.head_rows``), and the readout weight of the bias
    (1 for a CLS readout of an attention that writes to CLS, 0 where it does not)."""
    rows = hooked.adapter.head_rows(component)
    full = z.new_zeros(1, hooked.n_tokens, *z.shape[1:])
    full[0, rows] = z
    where = z.new_zeros(1, hooked.n_tokens)
    where[0, rows] = 1.0
    return hooked.readout_tokens(full)[0], float(hooked.readout_tokens(where)[0])


@torch.inference_mode()
def frozen_ln_direction(hooked: HookedVideoTransformer, resid_cls: torch.Tensor, target: int):
    """For a readout vector ``(d_model,)`` (the CLS residual, or the token mean for VideoMAE):
    the direction ``u`` with ``logit = u . (c - mean c) + k`` for the readout c of any
    component, and the constant ``k`` (final LN bias and classifier bias)."""
    ln = hooked.final_norm
    var = resid_cls.var(unbiased=False)
    sigma = torch.sqrt(var + ln.eps)
    w = hooked.W_U[:, target]
    u = w * ln.weight / sigma
    k = w @ ln.bias + hooked.b_U[target]
    return u, k


def _project(u: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
    """``u . (v - mean v)`` over the last dimension."""
    return (vecs - vecs.mean(-1, keepdim=True)) @ u


class _ReadoutTerms:
    """Reads stream-shaped terms of one run through its readout, towards one logit.

    A linear readout (CLS or token mean, then the final LayerNorm): ``u . (r - mean r)`` of the
    term's readout ``r`` with the norm's scale frozen (``frozen_ln_direction``). Otherwise
    (V-JEPA 2's attentive pooler): ``sum_s g_s . term_s`` with the per-token directions ``g`` of
    ``adapter.readout_gradient`` (the pooler frozen at the run). Either way the terms of a
    decomposition of the final residual add up to the logit minus ``constant``.
    """

    def __init__(self, hooked: HookedVideoTransformer, resid_final: torch.Tensor, target: int):
        self.hooked = hooked
        if hooked.adapter.linear_readout:
            self.u, self.constant = frozen_ln_direction(hooked, hooked.readout_tokens(resid_final[None])[0], target)
            self.g = None
        else:
            self.g, self.constant = hooked.adapter.readout_gradient(resid_final, target)

    def whole(self, act: torch.Tensor) -> torch.Tensor:
        """A term ``(tokens, d_model)`` of one run."""
        if self.g is None:
            return _project(self.u, self.hooked.readout_tokens(act[None])[0])
        return (self.g * act).sum()

    def vector(self, vec: torch.Tensor) -> torch.Tensor:
        """A term written as one ``(d_model,)`` vector at every token (a bias)."""
        if self.g is None:
            return _project(self.u, vec)
        return self.g.sum(0) @ vec

    def heads(self, component: str, z: torch.Tensor, W_O: torch.Tensor, b_O: torch.Tensor):
        """Per head of ``component`` (``z`` its one-run ``hook_z`` ``(rows, head, d_head)``): the
        heads' terms ``(head,)`` and the output bias's."""
        if self.g is None:
            zr, bias_weight = head_readout(self.hooked, component, z)
            per = torch.einsum("hd,hdm->hm", zr, W_O)  # (head, d_model)
            bias = b_O if bias_weight == 1.0 else bias_weight * b_O
            return _project(self.u, per), _project(self.u, bias)
        g = self.g[self.hooked.adapter.head_rows(component)]  # (rows, d_model)
        return torch.einsum("shd,hdm,sm->h", z, W_O, g), g.sum(0) @ b_O


@torch.inference_mode()
def direct_logit_attribution(hooked: HookedVideoTransformer, run, target: int, batch_index: int = 0,
                             per_head: bool = True) -> pd.DataFrame:
    """Terms of the target logit: embed, each layer's attention (per head + bias) and MLP.

    ``run`` is a ``Run`` with ``dla_names`` cached. Returns a tidy DataFrame with columns
    ``component`` (embed / attention / attention_head / attention_bias / mlp / constant; TimeSformer:
    attention_time / attention_time_head / attention_time_bias and the same for
    attention_space), ``layer``, ``head`` and ``logit`` (its contribution), every term read
    through the model's readout (``_ReadoutTerms``). Per-head rows + the bias row sum to the
    layer's attention row; the rows that are not per-head (``*_head``, ``*_bias``) sum to the logit.
    """
    c = run.cache
    L = hooked.n_layers
    terms = _ReadoutTerms(hooked, c[f"blocks.{L - 1}.hook_resid_post"][batch_index], target)
    rows = [("embed", -1, -1, float(terms.whole(c["hook_embed"][batch_index])))]
    for layer in range(L):
        for component, hook in hooked.components.items():
            rows.append((component, layer, -1, float(terms.whole(c[f"blocks.{layer}.{hook}"][batch_index]))))
            if per_head and component in hooked.head_sites:
                z_site = c[f"blocks.{layer}.{hooked.head_sites[component]}"][batch_index]  # (rows, head, d_head)
                per, bias = terms.heads(component, z_site, hooked.W_O(layer, component), hooked.b_O(layer, component))
                kind = component  # one label per head kind: attention_head, attention_time_head, ...
                for h, val in enumerate(per.tolist()):
                    rows.append((f"{kind}_head", layer, h, val))
                rows.append((f"{kind}_bias", layer, -1, float(bias)))
    rows.append(("constant", -1, -1, float(terms.constant)))
    return pd.DataFrame(rows, columns=["component", "layer", "head", "logit"])


def dla_total(df: pd.DataFrame) -> float:
    """Sum of the non-overlapping DLA terms (should equal the model's logit): every row but
    the per-head split (``*_head``, ``*_bias``)."""
    return float(df[~df.component.str.endswith(("_head", "_bias"))].logit.sum())


@torch.inference_mode()
def logit_lens_readout(hooked: HookedVideoTransformer, run, target: int, batch_index: int = 0) -> pd.DataFrame:
    """Target logit of final LN + classifier applied to the readout (CLS residual; token mean
    for VideoMAE) after each layer.

    ``layer`` 0 is the embedding, ``l`` the output of block ``l - 1``, and ``n_layers`` is the
    model's output (equal to its logit). Needs ``hook_embed`` and every ``hook_resid_post``.
    """
    resids = [readout(hooked, run.cache["hook_embed"], batch_index)]
    resids += [readout(hooked, run.cache[f"blocks.{i}.hook_resid_post"], batch_index) for i in range(hooked.n_layers)]
    x = torch.stack(resids)  # (layer, d_model)
    logits = hooked.adapter.classifier(hooked.final_norm(x))  # (layer, classes)
    probs = logits.softmax(-1)
    return pd.DataFrame({
        "layer": range(len(resids)),
        "logit": logits[:, target].tolist(),
        "prob": probs[:, target].tolist(),
        "rank": (logits > logits[:, target : target + 1]).sum(-1).tolist(),
    })


@torch.inference_mode()
def logit_lens_time_steps(hooked: HookedVideoTransformer, run, target: int, batch_index: int = 0) -> torch.Tensor:
    """``(layer, time step)``: target logit of the readout (final LN + classifier) on each patch
    token read alone (for a CLS or mean readout: the token itself; V-JEPA 2: the pooler over that
    one token), averaged over the patches of each time step (tubelet time step; a frame for TimeSformer);
    layer 0 = embedding."""
    p = hooked.n_prefix
    resids = [run.cache["hook_embed"][batch_index, p:]]
    resids += [run.cache[f"blocks.{i}.hook_resid_post"][batch_index, p:] for i in range(hooked.n_layers)]
    x = torch.stack(resids)  # (layer, patches, d_model)
    alone = hooked.readout_tokens(x.reshape(-1, 1, x.shape[-1])).reshape(x.shape)  # each token read alone
    logit = hooked.adapter.classifier(hooked.final_norm(alone))[..., target]  # (layer, patches)
    return hooked.by_time_step(logit).mean((-1, -2))  # (layer, time step)


def token_dla_names(hooked: HookedVideoTransformer) -> list[str]:
    last = hooked.n_layers - 1
    return hooked.adapter.token_dla_names(last) + [f"blocks.{last}.hook_mlp_out",
                                                   f"blocks.{last}.hook_resid_post"]


@torch.inference_mode()
def token_dla(hooked: HookedVideoTransformer, run, target: int, batch_index: int = 0) -> dict:
    """Per-source-token attribution of the target logit through the last layer's attention
    (TimeSformer: its spatial attention, the one that writes to CLS).

    Returns ``tokens`` ``(tokens,)`` (in token order, CLS first where there is one) and the
    remaining exact terms: ``resid_pre`` (the readout of the residual that attention reads:
    ``hook_resid_pre``, TimeSformer ``hook_resid_mid_time``), ``attention_bias``, ``mlp`` and
    ``constant``; ``total`` is their sum and ``logit`` the model's logit. A readout that is not
    linear (V-JEPA 2) is read through ``readout_gradient``'s directions ``g``: a source token's
    term is ``sum_h sum_q A_h[q, s] g_q . (v_s^h W_O^h)`` (``adapter.attention_by_source_terms``).
    """
    last = hooked.n_layers - 1
    c = run.cache
    terms = _ReadoutTerms(hooked, c[f"blocks.{last}.hook_resid_post"][batch_index], target)
    x = c[f"blocks.{last}.{hooked.adapter.token_dla_input()}"][batch_index]  # (tokens, d_model)
    if terms.g is None:
        per_token, bias = hooked.adapter.attention_by_source(last, c, batch_index)  # (tokens, d_model), (d_model,)
        tokens, bias_term = _project(terms.u, per_token), terms.vector(bias)
    else:
        tokens, bias_term = hooked.adapter.attention_by_source_terms(last, c, batch_index, terms.g)
    out = {
        "tokens": tokens,
        "resid_pre": float(terms.whole(x)),
        "attention_bias": float(bias_term),
        "mlp": float(terms.whole(c[f"blocks.{last}.hook_mlp_out"][batch_index])),
        "constant": float(terms.constant),
        "logit": float(run.logits[batch_index, target]),
    }
    out["total"] = float(tokens.sum()) + out["resid_pre"] + out["attention_bias"] + out["mlp"] + out["constant"]
    return out


@torch.inference_mode()
def notebook_token_score(hooked: HookedVideoTransformer, run, target: int, batch_index: int = 0) -> torch.Tensor:
    """The author's simpler score: final-layer patch tokens . W_target (no LayerNorm).

    ``(patches,)`` in token order; needs the last ``hook_resid_post``.
    """
    last = run.cache[f"blocks.{hooked.n_layers - 1}.hook_resid_post"][batch_index, hooked.n_prefix:]
    return last @ hooked.W_U[:, target]


def _integrate(f, x: torch.Tensor, base: torch.Tensor, steps: int, batch_size: int) -> torch.Tensor:
    """Integrated gradients of the scalar-per-row function ``f`` along the straight path from
    ``base`` to ``x`` (same shape): ``(x - base) * mean_k grad f(base + a_k (x - base))`` with
    midpoint nodes ``a_k = (k + 0.5) / steps``. ``f`` maps ``(n, *x.shape)`` to ``(n,)``."""
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # (steps,)
    grads = torch.zeros_like(x)
    for i in range(0, steps, batch_size):
        a = alphas[i : i + batch_size].view(-1, *([1] * x.dim()))
        xs = (base + a * (x - base)).detach().requires_grad_(True)  # (chunk, *x.shape)
        (g,) = torch.autograd.grad(f(xs).sum(), xs)
        grads += g.sum(0)
    return ((x - base) * grads / steps).detach()


def integrated_gradients(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int,
                         steps: int = 32, batch_size: int = 8, baseline: torch.Tensor | None = None) -> dict:
    """Integrated gradients of the target logit w.r.t. the input, summed per tubelet (token).

    ``IG_i = (x_i - x'_i) * mean_k dlogit/dx_i (x' + (k + 0.5)/steps * (x - x'))`` (midpoint
    rule), baseline ``x'`` zeros in ``pixel_values`` space by default. Returns ``tokens``
    ``(patches,)`` (pixels of each tubelet summed, in token order), ``total`` (their sum), and ``gap`` =
    logit(x) - logit(x'), which ``total`` approximates (completeness).
    """
    x = pixel_values[0]  # (frame, 3, H, W)
    base = torch.zeros_like(x) if baseline is None else baseline
    # memory-efficient attention (no tokens x tokens matrix kept for the backward pass);
    # one step at a time at paper scale, where a batch_size of 8 would need tens of GB
    batch_size = batch_size if hooked.n_tokens <= 1024 else 1
    ig = _integrate(lambda xs: hooked.run(xs, grad=True).logits[:, target], x, base, steps, batch_size)
    ft, fh, fw = hooked.adapter.tubelet
    T, R, C = hooked.grid
    per_cell = ig.reshape(T, ft, 3, R, fh, C, fw).sum((1, 2, 4, 6))  # (t, row, col)
    per_token = hooked.to_token_order(per_cell)  # (patches,) in token order
    gap = float(hooked.run(torch.stack([x, base])).logits[:, target].diff().neg())
    return {"tokens": per_token, "total": float(per_token.sum()), "gap": gap}


def residual_ig_names(hooked: HookedVideoTransformer) -> list[str]:
    """Activations ``residual_ig`` needs (the same site as ``token_dla``)."""
    return [f"blocks.{hooked.n_layers - 1}.hook_resid_pre"]


def residual_ig(hooked: HookedVideoTransformer, run, target: int, steps: int = 32, batch_size: int = 8,
                batch_index: int = 0) -> dict:
    """Integrated gradients of the target logit w.r.t. the *patch tokens of the last block's
    input* (``blocks.{L-1}.hook_resid_pre``), the site where ``token_dla`` splits the logit
    into source tokens, so the two attributions compare like with like.

    Path: every patch token goes from the clip's mean patch token (baseline: no token stands
    out) to its own value, CLS (where there is one) stays at its value; the last block, the final LayerNorm and the
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
    p = hooked.n_prefix
    x = run.cache[site][batch_index].clone()  # (tokens, d_model); a plain tensor, also after inference mode
    base = x.clone()
    base[p:] = x[p:].mean(0)  # every patch token at the mean patch token, CLS unchanged

    def f(xs):  # (n, tokens, d_model) -> (n,)
        return hooked.run(start=(site, xs), grad=True).logits[:, target]

    batch_size = batch_size if hooked.n_tokens <= 1024 else 1
    ig = _integrate(f, x, base, steps, batch_size)  # (tokens, d_model); CLS row is zero
    per_token = ig[p:].sum(-1)  # (patches,)
    with torch.inference_mode():
        logit, base_logit = hooked.run(start=(site, torch.stack([x, base]))).logits[:, target].tolist()
    return {"tokens": per_token, "total": float(per_token.sum()), "logit": logit,
            "baseline_logit": base_logit, "gap": logit - base_logit}


def complete_residual_ig(hooked: HookedVideoTransformer, run, target: int, steps: int = 16, rtol: float = 0.01,
                         atol: float = 1e-3, max_steps: int = 512, batch_index: int = 0) -> dict:
    """``residual_ig`` with ``steps``, doubled until completeness holds (``|total - gap| <= atol
    + rtol |gap|``, as ``check_completeness``) or ``max_steps`` is passed; the result's
    ``steps`` says how many were used. The midpoint rule's error depends on how curved the
    path is: 16 steps suffice for the toy ViViT, toy TimeSformer needs 64."""
    while True:
        ig = residual_ig(hooked, run, target, steps=steps, batch_index=batch_index)
        ig["steps"] = steps
        if abs(ig["total"] - ig["gap"]) <= atol + rtol * abs(ig["gap"]) or steps * 2 > max_steps:
            return ig
        steps *= 2


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
