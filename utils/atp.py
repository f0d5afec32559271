"""Attribution patching: activation patching estimated from gradients (notebook 08).

Exact patching (``utils.patching``) costs one partial forward pass per node. Attribution
patching (AtP; Nanda 2023, Kramár et al. 2024) replaces it by a first-order Taylor estimate,
for every node at once, from the two clean runs and one backward pass. For a metric ``M`` of
the target run and a node whose activation is ``a`` (any ``Patch`` of ``utils.patching``:
a whole site, some positions, some heads),

    exact:  M(target run with a := a_source) - M(target run)
    AtP:    (a_source - a_target) . dM/da |target                 (summed over the node's entries)
    IG:     (a_source - a_target) . mean_k dM/da |a_target + alpha_k (a_source - a_target)

IG (integrated gradients along the activation path, as in EAP-IG; Hanna et al. 2024) moves
the whole activation of one site from its target to its source value in ``m`` steps (trapezoid
rule on ``alpha_k = k / m``) and averages the gradients; by the fundamental theorem of calculus
it converges, as ``m`` grows, to the exact effect of patching the whole site, and its per-node
parts (heads, time steps, positions of that site) sum to it. AtP is exact when ``M`` is linear
in the node: e.g. the last MLP output under ``readout_projection``, or under ``target_logit``
with the final norm's scale frozen.

Metrics (``Metric``; functions of the final residual stream ``(batch, tokens, d_model)``):

* ``readout_projection`` - ``100 (r - r_target) . (r_source - r_target) / ||r_source - r_target||^2``
  with ``r`` what the classifier reads (CLS, or VideoMAE's token mean): percent of the way from
  the target run to the source run; 0 on the target, 100 on the source. Linear.
* ``target_logit`` - the analysed class's logit minus the target run's. ``freeze_norm=True``
  divides by the target run's LayerNorm scale instead of the patched run's (linear).
* ``logit_difference`` - an output metric (ACDC, EAP-IG): the analysed class's logit, or, for a
  model with a contrast class (``toy-outcome``: ``bowling strike`` minus ``bowling gutter``), the
  difference of the two logits.
* ``negative_kl`` - minus the KL divergence from a reference run's class distribution (the full
  model on the clean input) to the run's: 0 on the reference run itself, below elsewhere.

The direction names of notebook 06 apply: ``strike->gutter`` patches strike (source) into gutter
(target), as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from utils.hooks import HookedVideoTransformer
from utils.patching import Patch, parse_name

Tensor = torch.Tensor


@dataclass
class Metric:
    """``fn(final residual (batch, tokens, d_model)) -> (batch,)``, differentiable."""

    name: str
    fn: Callable[[Tensor], Tensor]

    def __call__(self, resid: Tensor) -> Tensor:
        return self.fn(resid)


def final_site(hooked: HookedVideoTransformer) -> str:
    return f"blocks.{hooked.n_layers - 1}.hook_resid_post"


def readout_projection(hooked: HookedVideoTransformer, source_resid: Tensor, target_resid: Tensor) -> Metric:
    """Percent of the way from target to source along what the classifier reads (module
    docstring); ``source_resid``, ``target_resid``: final residuals ``(1, tokens, d_model)``."""
    r_t = hooked.readout_tokens(target_resid.detach())[0]
    d_full = hooked.readout_tokens(source_resid.detach())[0] - r_t
    if float(d_full.norm()) == 0.0:
        raise ValueError("readout_projection: the source and target runs read out the same vector; "
                         "the projection is undefined (patch between two different clips)")
    scale = 100 / (d_full @ d_full)

    def fn(resid):
        return ((hooked.readout_tokens(resid) - r_t) @ d_full) * scale

    return Metric("readout_projection", fn)


def target_logit(hooked: HookedVideoTransformer, target_class: int, target_resid: Tensor,
                 freeze_norm: bool = False) -> Metric:
    """The target class's logit minus the target run's. With ``freeze_norm`` the final norm
    divides by the target run's standard deviation (its scale is a constant): linear."""
    norm, w, b = hooked.final_norm, hooked.W_U[:, target_class], hooked.b_U[target_class]
    target_resid = target_resid.detach().clone()  # out of inference mode
    if freeze_norm:
        if not hooked.adapter.linear_readout:
            raise ValueError(f"target_logit(freeze_norm=True): {type(hooked.adapter).__name__}'s readout is not a "
                             "final norm on a linear readout; use freeze_norm=False")
        r_t = hooked.readout_tokens(target_resid)
        sigma_t = (r_t.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()

    def logit(resid):
        r = hooked.readout_tokens(resid)
        if freeze_norm:
            normed = (r - r.mean(-1, keepdim=True)) / sigma_t * norm.weight + norm.bias
        else:
            normed = norm(r)
        return normed @ w + b

    base = logit(target_resid)[0].detach()
    return Metric("target_logit" + ("_frozen_norm" if freeze_norm else ""), lambda resid: logit(resid) - base)


def logits(hooked: HookedVideoTransformer, resid: Tensor) -> Tensor:
    """Logits ``(batch, classes)`` of final residuals ``(batch, tokens, d_model)``, differentiable
    (the readout, the final norm and the classifier: ``HookedVideoTransformer.head`` without hooks;
    under inference mode when ``resid`` was made there)."""
    with torch.inference_mode() if resid.is_inference() else nullcontext():
        return hooked.adapter.classifier(hooked.final_norm(hooked.readout_tokens(resid)))


def logit_difference(hooked: HookedVideoTransformer, classes: int | tuple[int, int]) -> Metric:
    """The logit of ``classes`` (one class index), or the first class's logit minus the second's."""
    if isinstance(classes, int):
        return Metric("logit", lambda resid: logits(hooked, resid)[:, classes])
    a, b = classes

    def fn(resid):
        out = logits(hooked, resid)
        return out[:, a] - out[:, b]

    return Metric("logit_difference", fn)


def negative_kl(hooked: HookedVideoTransformer, reference_resid: Tensor) -> Metric:
    """``-KL(p_reference || p_run)`` over the classes, ``p`` the softmax of the logits; the
    reference is a final residual ``(1, tokens, d_model)`` (the full model on the clean input)."""
    with torch.no_grad():
        log_p = torch.log_softmax(logits(hooked, reference_resid.detach()).double(), -1).clone()

    def fn(resid):
        log_q = torch.log_softmax(logits(hooked, resid).double(), -1)
        return -(log_p.exp() * (log_p - log_q)).sum(-1)

    return Metric("negative_kl", fn)


def output_metrics(hooked: HookedVideoTransformer, clean_resid: Tensor, counterfactual_resid: Tensor,
                   classes: int | tuple[int, int]) -> dict[str, Metric]:
    """The three circuit metrics of one pair, by name: ``readout`` (the projection), ``logit``
    (``logit_difference`` of ``classes``) and ``kl`` (``negative_kl`` to the clean run)."""
    return {"readout": readout_projection(hooked, clean_resid, counterfactual_resid),
            "logit": logit_difference(hooked, classes),
            "kl": negative_kl(hooked, clean_resid)}


def _start(hooked: HookedVideoTransformer, layer: int, target_cache: dict | None, target_pixels: Tensor | None):
    """Where a gradient run begins: the target's cached ``resid_pre`` of ``layer`` if given."""
    name = f"blocks.{layer}.hook_resid_pre"
    if target_cache is not None and name in target_cache:  # a leaf that gradients can reach
        return {"start": (name, target_cache[name].clone().requires_grad_(True))}
    if target_pixels is None:
        raise ValueError(f"give target_pixels, or a target_cache holding {name}")
    return {"pixel_values": target_pixels}


def gradients(hooked: HookedVideoTransformer, sites: Sequence[str], metric: Metric | Sequence[Metric],
              target_pixels: Tensor | None = None, target_cache: dict | None = None):
    """One forward pass of the target run and one backward pass per metric: ``(activations,
    dM/d activation)`` at every site in ``sites`` (one run each, no batch dim); with several
    metrics the gradients are a list, one dict per metric. With ``target_cache`` holding the
    ``resid_pre`` of the earliest layer among ``sites``, the run starts there. ``metric`` may also
    be a function of the target's final residual that returns the metric(s): the target then needs
    no run of its own to define them."""
    layers = [parse_name(s)[0] for s in sites]
    first = min((la for la in layers if la is not None), default=0)
    if any(la is None for la in layers):
        first, target_cache = 0, None
    final = final_site(hooked)
    run = hooked.run(names=set(sites) | {final}, grad=True, **_start(hooked, first, target_cache, target_pixels))
    if callable(metric) and not isinstance(metric, Metric):  # a metric made from this run's own final residual
        metric = metric(run[final].detach())
    metrics = [metric] if isinstance(metric, Metric) else list(metric)
    acts = [run[s] for s in sites]
    out_a = {s: a[0].detach() for s, a in zip(sites, acts, strict=True)}
    out_g = []
    for i, m in enumerate(metrics):
        grads = torch.autograd.grad(m(run[final]).sum(), acts, allow_unused=True, retain_graph=i < len(metrics) - 1)
        out_g.append({s: torch.zeros_like(out_a[s]) if g is None else g[0].detach()
                      for s, g in zip(sites, grads, strict=True)})
    return out_a, (out_g[0] if isinstance(metric, Metric) else out_g)


def _site_rows(p: Patch, act: Tensor, grad: Tensor) -> Tensor:
    """``sum over the patch's entries of (source - target) * gradient``."""
    diff = p.value.to(act.device, act.dtype) - act
    if p.positions is not None or p.heads is not None:
        diff = diff * p.mask(act)
    return (diff.double() * grad.double()).sum()


def atp(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric | Sequence[Metric],
        target_pixels: Tensor | None = None, target_cache: dict | None = None) -> Tensor | list[Tensor]:
    """First-order estimate of each patch's effect on ``metric`` (``(patch,)``, float64), from
    one gradient run of the target (``gradients``); several metrics share the forward pass and
    give a list. The patches carry the source values."""
    sites = sorted({p.hook for p in patches})
    acts, grads = gradients(hooked, sites, metric, target_pixels, target_cache)
    one = isinstance(grads, dict)
    out = [torch.stack([_site_rows(p, acts[p.hook], g[p.hook]) for p in patches]) for g in ([grads] if one else grads)]
    return out[0] if one else out


def exact(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric, target_cache: dict,
          batch_size: int | None = None) -> Tensor:
    """Exact effect of each patch on ``metric`` (``(patch,)``, float64): ``utils.patching.run_patches``
    from the target's cache (``needed_target_names``) minus the unpatched target."""
    from utils.patching import run_patches

    final = final_site(hooked)
    acts, _ = run_patches(hooked, target_cache, patches, read=final, batch_size=batch_size)
    with torch.inference_mode():
        base = metric(target_cache[final].to(acts.device))
        return (metric(acts) - base).double().cpu()


def ig_gradients(hooked: HookedVideoTransformer, site: str, source_value: Tensor, metric: Metric, target_cache: dict,
                 steps: int = 8) -> dict[int, Tensor]:
    """Mean gradient of ``metric`` along the straight path that moves the whole activation at
    ``site`` from the target run's value to ``source_value``, by the trapezoid rule with ``m``
    steps for every ``m`` dividing ``steps`` that is a power of two (the grids are nested: one
    run of ``steps + 1`` points serves all). Returns ``{m: mean gradient}`` (one run, no batch
    dim); ``m = 0`` holds the plain gradient at the target (AtP).

    The runs start from the target's cached ``resid_pre`` of the site's layer, one batch row per
    point of the path.
    """
    if steps < 1 or steps & (steps - 1):
        raise ValueError(f"steps must be a power of two (1, 2, 4, ...), not {steps}")
    layer, _ = parse_name(site)
    start_name = f"blocks.{layer}.hook_resid_pre"
    n = steps + 1
    alphas = torch.linspace(0, 1, n, dtype=torch.float64)
    x0 = target_cache[start_name].to(hooked.device)
    src = source_value.to(hooked.device)

    def interpolate(act, _name):
        a = alphas.to(act.device, act.dtype).view(-1, *[1] * (act.ndim - 1))
        return (act + a * (src - act)).detach().requires_grad_(True)

    final = final_site(hooked)
    run = hooked.run(start=(start_name, x0.expand(n, *x0.shape[1:])), names={site, final},
                     hooks={site: interpolate}, grad=True)
    (g,) = torch.autograd.grad(metric(run[final]).sum(), [run[site]])
    g = g.detach().double()
    out = {0: g[0]}
    m = 1
    while m <= steps:
        idx = torch.arange(0, n, steps // m)  # m + 1 nested points
        w = torch.ones(m + 1, dtype=torch.float64)
        w[0] = w[-1] = 0.5
        out[m] = torch.einsum("k,k...->...", w / m, g[idx])
        m *= 2
    return out


def ig(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric, target_cache: dict,
       source_cache: dict, steps: int = 8) -> dict[int, Tensor]:
    """IG estimates (``{m: (patch,)}``, ``m`` = 1, 2, 4 .. ``steps``; ``m = 0``: AtP) of every
    patch, each site's whole activation moved along its own path (``ig_gradients``); a patch's
    estimate sums its entries. The patches' sites must be in ``source_cache`` and their values
    must be the source run's (partial patches: parts of the site)."""
    out: dict[int, list] = {}
    for site in dict.fromkeys(p.hook for p in patches):
        grads = ig_gradients(hooked, site, source_cache[site][0], metric, target_cache, steps)
        act = target_cache[site][0].to(hooked.device) if site in target_cache else None
        if act is None:
            raise KeyError(f"target_cache lacks {site}: run the target with names including it")
        for m, g in grads.items():
            out.setdefault(m, []).extend((p, _site_rows(p, act, g)) for p in patches if p.hook == site)
    order = {id(p): i for i, p in enumerate(patches)}
    return {m: torch.stack([v for _, v in sorted(rows, key=lambda pv: order[id(pv[0])])]) for m, rows in out.items()}


# ----------------------------------------------------------------------------- AtP* (Kramár et al. 2024)


def _patched(p: Patch, act: Tensor) -> Tensor:
    """The activation ``act`` (one run, no batch dim) with ``p`` written into it."""
    value = p.value.to(act.device, act.dtype)
    if p.positions is None and p.heads is None:
        return value.expand_as(act).clone()
    return torch.where(p.mask(act), value, act)


def _attention_step(hooked: HookedVideoTransformer, layer: int, x: Tensor) -> Tensor:
    """``resid_pre -> resid_mid`` of block ``layer`` (every attention step of the block, exact)."""
    from utils.arch.core import Sites

    with torch.inference_mode():
        return hooked.adapter.attention(layer, x.to(hooked.device), Sites(layer, {}, None, frozenset()))


def qk_fix_deltas(hooked: HookedVideoTransformer, patches: Sequence[Patch], target_cache: dict,
                  batch_size: int = 8) -> list[Tensor | None]:
    """For every patch of a ``hook_resid_pre`` site, the exact change it makes to the block's
    ``resid_mid`` (its attention recomputed with the patched tokens: queries, keys, values and the
    softmax); None for other sites. What AtP*'s QK fix linearises after."""
    out: list[Tensor | None] = [None] * len(patches)
    by_site: dict[str, list[int]] = {}
    for i, p in enumerate(patches):
        if parse_name(p.hook)[1] == "hook_resid_pre":
            by_site.setdefault(p.hook, []).append(i)
    for site, idx in by_site.items():
        layer = parse_name(site)[0]
        act = target_cache[site][0].to(hooked.device)
        mid = target_cache.get(f"blocks.{layer}.hook_resid_mid")
        base = (mid[0].to(hooked.device) if mid is not None else _attention_step(hooked, layer, act[None])[0])
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            x = torch.stack([_patched(patches[i], act) for i in chunk])
            delta = _attention_step(hooked, layer, x) - base
            for i, d in zip(chunk, delta, strict=True):
                out[i] = d.clone()
    return out


def _qk_sites(patches: Sequence[Patch]) -> list[str]:
    """The gradient sites AtP* needs: ``resid_mid`` for resid_pre patches, the patch's own site otherwise."""
    sites = []
    for p in patches:
        layer, site = parse_name(p.hook)
        sites.append(f"blocks.{layer}.hook_resid_mid" if site == "hook_resid_pre" else p.hook)
    return sites


def _qk_rows(patches, sites, deltas, acts, grads) -> Tensor:
    rows = []
    for p, site, delta in zip(patches, sites, deltas, strict=True):
        g = grads[site]
        if delta is None:
            rows.append(_site_rows(p, acts[site], g))
        else:
            rows.append((delta.double() * g.double()).sum())
    return torch.stack(rows)


def _qk_terms(patches, sites, deltas, acts) -> list[tuple[str, list[int], Tensor | None, Tensor]]:
    """What ``_qk_rows`` multiplies with the gradient, prepared once for many gradients and grouped
    so that each group is one matrix product: ``(site, patch numbers, flat indices (k, m) or None for
    every entry, float64 values (k, m))``; a patch's row is ``values . grad[site].flatten()[indices]``."""
    groups: dict[tuple, tuple[list, list, list]] = {}
    for n, (p, site, delta) in enumerate(zip(patches, sites, deltas, strict=True)):
        if delta is not None:
            idx, v = None, delta.flatten()
        else:
            act = acts[site]
            diff = (p.value.to(act.device, act.dtype) - act).flatten()
            idx = None if p.positions is None and p.heads is None else p.mask(act).flatten().nonzero().squeeze(1)
            v = diff if idx is None else diff[idx]
        numbers, indices, values = groups.setdefault((site, None if idx is None else len(idx)), ([], [], []))
        numbers.append(n)
        indices.append(idx)
        values.append(v.double())
    return [(site, numbers, None if size is None else torch.stack(indices), torch.stack(values))
            for (site, size), (numbers, indices, values) in groups.items()]


def _term_rows(terms, grads) -> Tensor:
    """``_qk_rows`` from ``_qk_terms``: one row per patch, in the patches' order."""
    out = torch.empty(sum(len(numbers) for _, numbers, _, _ in terms), dtype=torch.float64)
    for site, numbers, idx, values in terms:
        g = grads[site].double().flatten()
        rows = values @ g if idx is None else (values * g[idx]).sum(1)
        out[torch.tensor(numbers)] = rows.cpu()
    return out


def atp_qk_fix(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric | Sequence[Metric],
               target_cache: dict, deltas: Sequence[Tensor | None] | None = None) -> Tensor | list[Tensor]:
    """AtP with Kramár et al.'s QK fix (``(patch,)``, float64). A node written into a block's
    ``resid_pre`` (a time step, a position) reaches the metric first through that block's
    attention, whose softmax AtP linearises (and misses when saturated); the fix computes that
    attention exactly with the patched tokens and takes the first-order estimate only after it:

        AtP_QK(n) = (resid_mid(patched) - resid_mid(target)) . dM/d resid_mid |target

    Other nodes (heads' ``hook_z``, components) come after their own softmax: plain AtP.
    ``target_cache`` needs each patched layer's ``resid_pre`` (and ``hook_resid_mid`` saves a run);
    ``deltas`` (``qk_fix_deltas``) may be given when computed already."""
    sites = _qk_sites(patches)
    deltas = qk_fix_deltas(hooked, patches, target_cache) if deltas is None else deltas
    acts, grads = gradients(hooked, sorted(set(sites)), metric, target_cache=target_cache)
    one = isinstance(grads, dict)
    out = [_qk_rows(patches, sites, deltas, acts, g) for g in ([grads] if one else grads)]
    return out[0] if one else out


def graddrop_gradients(hooked: HookedVideoTransformer, sites: Sequence[str], metric: Metric | Sequence[Metric],
                       target_cache: dict, layer: int):
    """``gradients`` with the backward pass through block ``layer``'s components dropped
    (GradDrop: its attention and MLP outputs are constants for the backward pass; the residual
    stream still carries the gradient past the block). The forward pass is the target run's, one
    for all metrics; returns ``(activations, gradients)``, the gradients a list with several metrics."""
    names = sorted(set(sites))
    first = min(parse_name(s)[0] for s in names)
    drop = {f"blocks.{layer}.{hook}": (lambda a, _name: a.detach()) for hook in hooked.components.values()}
    final = final_site(hooked)
    run = hooked.run(names=set(names) | {final}, hooks=drop, grad=True,
                     **_start(hooked, first, target_cache, None))
    acts = [run[s] for s in names]
    live = [a for a in acts if a.requires_grad]  # a dropped block's own outputs are constants now
    metrics = [metric] if isinstance(metric, Metric) else list(metric)
    out = []
    for i, m in enumerate(metrics):
        found = iter(torch.autograd.grad(m(run[final]).sum(), live, allow_unused=True,
                                         retain_graph=i < len(metrics) - 1))
        grads = [next(found) if a.requires_grad else None for a in acts]
        out.append({s: torch.zeros_like(a[0]) if g is None else g[0].detach()
                    for s, a, g in zip(names, acts, grads, strict=True)})
    return {s: a[0].detach() for s, a in zip(names, acts, strict=True)}, (out[0] if isinstance(metric, Metric)
                                                                         else out)


def graddrop_sweep(hooked: HookedVideoTransformer, sites: Sequence[str], metric: Metric | Sequence[Metric],
                   target_cache: dict, layers: Sequence[int] | None = None, plain: bool = False):
    """``graddrop_gradients`` for every block in ``layers`` (default: each block after the earliest
    site's), from one forward pass instead of one per block: yields ``(layer, activations,
    gradients)`` with the gradients of the sites *below* ``layer`` (zeros at and above it: what
    GradDrop leaves unchanged there is the plain gradient). With ``plain`` the first item is
    ``(None, activations, gradients)``: ``gradients``' plain gradients, from the same pass.

    Dropping block ``l`` changes the backward pass only where it crosses that block: the gradient
    reaching its ``resid_post`` is the plain one (the blocks above are untouched), the block with its
    components held constant passes it to its ``resid_pre`` unchanged (the residual stream's skip is
    all that is left), and everything below ``resid_pre`` is the plain graph again, seeded with that
    gradient. Several metrics share every pass: the target run is repeated along the batch, one
    row per metric. Equal to ``graddrop_gradients`` up to float rounding (tests/test_circuits.py)."""
    names = sorted(set(sites))
    first = min(parse_name(s)[0] for s in names)
    L = hooked.n_layers
    layers = list(range(first + 1, L)) if layers is None else [la for la in layers if la > first]
    if not layers and not plain:
        return
    metrics = [metric] if isinstance(metric, Metric) else list(metric)
    M = len(metrics)
    start = _start(hooked, first, target_cache, None)
    name, x0 = start["start"]
    final = final_site(hooked)
    pre = {la: f"blocks.{la}.hook_resid_pre" for la in range(first + 1, L)}
    run = hooked.run(names=set(names) | set(pre.values()) | {final}, grad=True,
                     start=(name, x0.detach().expand(M, *x0.shape[1:]).clone().requires_grad_(True)))
    post = {la: run[pre[la + 1]] if la + 1 < L else run[final] for la in layers}  # each block's resid_post
    acts = {s: run[s][0].detach() for s in names}

    def split(found, wanted):  # (metric row) -> {site: gradient}, zeros where no gradient reaches
        found = dict(zip(wanted, found, strict=True))
        return [{s: torch.zeros_like(acts[s]) if found.get(s) is None else found[s][i].detach() for s in names}
                for i in range(M)]

    total = sum(m(run[final][i:i + 1]).sum() for i, m in enumerate(metrics))
    wanted = [post[la] for la in layers] + ([run[s] for s in names] if plain else [])
    found = torch.autograd.grad(total, wanted, retain_graph=True, allow_unused=True)
    seeds = dict(zip(layers, found[:len(layers)], strict=True))
    if plain:
        grads = split(found[len(layers):], names)
        yield None, acts, (grads[0] if isinstance(metric, Metric) else grads)
    for la in layers:
        # block la with its components held constant is resid_post = resid_pre + constants: the
        # identity for the gradient (tests/test_circuits.py), so resid_post's gradient seeds resid_pre
        below = [s for s in names if parse_name(s)[0] < la]
        with torch.enable_grad():
            grads = split(torch.autograd.grad(run[pre[la]], [run[s] for s in below], grad_outputs=seeds[la],
                                              retain_graph=True, allow_unused=True), below)
        yield la, acts, (grads[0] if isinstance(metric, Metric) else grads)


def atp_family(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric | Sequence[Metric],
               target_cache: dict, deltas: Sequence[Tensor | None] | None = None) -> dict:
    """AtP (``atp``), AtP with the QK fix (``atp_qk_fix``) and AtP* (``atp_star``) of ``patches``,
    keyed ``atp``, ``atp_qk``, ``atp_star``, from one gradient sweep of the target
    (``graddrop_sweep``: its plain pass serves AtP and the QK fix). Each value is ``(patch,)``,
    float64, or a list with several metrics; equal to the three functions' (tests/test_circuits.py)."""
    one = isinstance(metric, Metric)
    metrics = [metric] if one else list(metric)
    sites = _qk_sites(patches)
    own = [p.hook for p in patches]
    deltas = qk_fix_deltas(hooked, patches, target_cache) if deltas is None else deltas
    node_layer = torch.tensor([parse_name(p.hook)[0] for p in patches])
    dropped = [layer for layer in range(hooked.n_layers) if (layer > node_layer).any()]
    sweep = graddrop_sweep(hooked, sorted(set(sites) | set(own)), metrics, target_cache, dropped, plain=True)
    _, acts, grads = next(sweep)  # the plain gradients first
    terms = _qk_terms(patches, sites, deltas, acts)  # the forward values are the target's throughout
    first_order = _qk_terms(patches, own, [None] * len(patches), acts)  # AtP: each node's own site
    plain_atp = [_term_rows(first_order, g) for g in grads]
    signed = [_term_rows(terms, g) for g in grads]  # the QK fix
    plain = [q.abs() for q in signed]
    totals = [torch.zeros(len(patches), dtype=torch.float64) for _ in metrics]
    for _ in range(hooked.n_layers - len(dropped)):  # the blocks with no node below: the plain estimate
        for total, p in zip(totals, plain, strict=True):
            total += p
    for layer, _acts, grads in sweep:
        downstream = layer > node_layer
        for total, p, g in zip(totals, plain, grads, strict=True):
            total += torch.where(downstream, _term_rows(terms, g).abs().cpu(), p)
    star = [total / max(hooked.n_layers - 1, 1) for total in totals]
    out = {"atp": plain_atp, "atp_qk": signed, "atp_star": star}
    return {k: v[0] for k, v in out.items()} if one else out


def atp_star(hooked: HookedVideoTransformer, patches: Sequence[Patch], metric: Metric | Sequence[Metric],
             target_cache: dict, deltas: Sequence[Tensor | None] | None = None) -> Tensor | list[Tensor]:
    """AtP* (Kramár et al. 2024): the QK fix (``atp_qk_fix``) and GradDrop against cancellation.
    A node whose direct and indirect effects cancel in the gradient looks unimportant to AtP; for
    each block ``l`` GradDrop recomputes the estimate with the gradient through block ``l``'s
    components dropped (``graddrop_gradients``), and scores the node by the mean magnitude

        AtP*(n) = sum_l |AtP_QK,drop l(n)| / (L - 1)

    an unsigned ranking score (``(patch,)``, float64; a list with several metrics), compared with
    ``|exact|``. Dropping a block at or before a node's own layer leaves the node's gradient as it
    is (the block is not downstream of what the node writes), so those terms are the plain QK-fix
    estimate. Costs one forward pass of the target (repeated along the batch, one row per metric),
    its backward pass, and per block after the earliest node's a backward below it seeded with the
    plain gradient at the block's output (``graddrop_sweep``); ``atp_family`` returns AtP and the QK fix
    from the same pass."""
    return atp_family(hooked, patches, metric, target_cache, deltas)["atp_star"]
