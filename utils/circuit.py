"""Edge attribution patching and circuit runs: which connections carry the outcome (notebook 08).

The graph. Every component writes into the residual stream and reads the sum of everything
written before it, so the model is a graph of *senders* (the embedding, each attention head,
each MLP) and *receivers* (each attention step's and each MLP's input, and the readout). An
edge ``u -> v`` is u's output as it reaches v's input; u must come before v in the forward
pass. Receivers are whole components: all heads of an attention step read one LayerNorm'd
residual (splitting it per head's query, key and value would multiply the cost of a circuit
run by the number of heads).

A circuit is a set of kept edges. Running it on a clean input (``circuit_run``) gives each
receiver the clean run's outputs along kept edges and a reference along the others:

    input_v = residual_v - sum over dropped edges u -> v of (out_u - ref_u)

where ``out_u`` is u's output in this run (it moves with the circuit's own inputs) and ``ref_u``
the counterfactual run's output (the other outcome of the pair) or its mean over reference
clips (mean ablation). All edges kept: the model's own forward pass. None kept: every
receiver reads the reference (with the counterfactual: exactly the counterfactual run).

Edge scores (EAP, Syed et al. 2023): ``(ref_u - out_u) . dM/d input_v`` on the clean run, the
first-order change in M when the edge is dropped; all edges in one forward and one backward
pass. ``dM/d input_v`` is the gradient at the residual state v reads minus that at the state
it writes (``state_after = state_before + out_v(LayerNorm(state_before))``).

Faithfulness of a circuit: ``100 (M(circuit) - M(empty)) / (M(full) - M(empty))`` with M the
readout projection of ``utils.atp`` (percent of the way from the counterfactual to the clean
readout): 100% for the full graph, 0% for the empty one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from utils.atp import Metric, final_site, readout_projection
from utils.hooks import HookedVideoTransformer
from utils.stats import top_indices

Tensor = torch.Tensor


@dataclass(frozen=True)
class Node:
    name: str  # "embed", "L3.attention.H5", "L3.mlp", "readout"; receivers "L3.attention", "L3.mlp"
    layer: int  # -1: the embedding; n_layers: the readout
    component: str  # embed | attention | attention_time | attention_space | mlp | readout
    head: int | None = None


class Graph:
    """Senders, receivers and which edges exist, for one hooked model (module docstring)."""

    def __init__(self, hooked: HookedVideoTransformer):
        self.hooked = hooked
        L = hooked.n_layers
        self.components = list(hooked.components)
        self.states = [h for h in hooked.block_hooks() if h.startswith("hook_resid_")]
        if len(self.states) != len(self.components) + 1:
            raise ValueError(f"{hooked.arch}: expected one residual state between components, got "
                             f"{self.states} for {self.components}")
        k = len(self.components)
        senders, s_order, receivers, r_order = [Node("embed", -1, "embed")], [-1], [], []
        for layer in range(L):
            for ci, comp in enumerate(self.components):
                order = layer * k + ci
                receivers.append(Node(f"L{layer}.{comp}", layer, comp))
                r_order.append(order)
                if comp in hooked.head_sites:
                    senders += [Node(f"L{layer}.{comp}.H{h}", layer, comp, h) for h in range(hooked.n_heads)]
                    s_order += [order] * hooked.n_heads
                else:
                    senders.append(Node(f"L{layer}.{comp}", layer, comp))
                    s_order.append(order)
        receivers.append(Node("readout", L, "readout"))
        r_order.append(L * k)
        self.senders, self.receivers = senders, receivers
        self.valid = torch.tensor(s_order)[:, None] < torch.tensor(r_order)[None, :]  # (sender, receiver)
        self.sender_index = {n.name: i for i, n in enumerate(senders)}
        self.receiver_index = {n.name: i for i, n in enumerate(receivers)}
        # where each layer x component's senders sit in the sender list
        self.blocks = {}
        for i, n in enumerate(senders):
            if n.layer >= 0:
                a, _ = self.blocks.get((n.layer, n.component), (i, i))
                self.blocks[(n.layer, n.component)] = (a, i + 1)

    @property
    def n_edges(self) -> int:
        return int(self.valid.sum())

    def edges(self) -> pd.DataFrame:
        """One row per edge: ``sender``, ``receiver``, their layers and components, the head."""
        s, r = torch.nonzero(self.valid, as_tuple=True)
        return pd.DataFrame({
            "sender": [self.senders[i].name for i in s.tolist()],
            "receiver": [self.receivers[j].name for j in r.tolist()],
            "sender_layer": [self.senders[i].layer for i in s.tolist()],
            "sender_component": [self.senders[i].component for i in s.tolist()],
            "head": [self.senders[i].head if self.senders[i].head is not None else -1 for i in s.tolist()],
            "receiver_layer": [self.receivers[j].layer for j in r.tolist()],
            "receiver_component": [self.receivers[j].component for j in r.tolist()],
            "s": s.numpy(), "r": r.numpy(),
        })

    def cache_names(self) -> set[str]:
        """What ``sender_outputs`` needs from a run."""
        h = self.hooked
        names = {"hook_embed"}
        for layer in range(h.n_layers):
            for comp in self.components:
                names.add(f"blocks.{layer}.{h.head_sites.get(comp, h.components[comp])}")
        return names

    def _layer_outputs(self, layer: int, comp: str, act: Tensor) -> Tensor:
        """``(batch, senders of (layer, comp), tokens, d_model)`` from the component's cached site."""
        h = self.hooked
        if comp not in h.head_sites:
            return act[:, None]
        a = h.adapter
        per_head = torch.einsum("brhd,hdm->bhrm", act, a.W_O(layer, comp).detach().to(act.dtype))
        rows = a.head_rows(comp)
        if rows == slice(None):
            return per_head
        out = per_head.new_zeros(act.shape[0], h.n_heads, h.n_tokens, h.d_model)
        out[:, :, rows] = per_head
        return out

    def sender_outputs(self, cache: dict) -> Tensor:
        """``(batch, sender, tokens, d_model)``: what each sender writes into the residual
        stream (a head: its ``z W_O``, without the bias, which no run changes)."""
        h = self.hooked
        parts = [cache["hook_embed"][:, None]]
        for layer in range(h.n_layers):
            for comp in self.components:
                site = f"blocks.{layer}.{h.head_sites.get(comp, h.components[comp])}"
                parts.append(self._layer_outputs(layer, comp, cache[site]))
        return torch.cat(parts, 1)

    def receiver_gradients(self, grads: dict[str, Tensor]) -> Tensor:
        """``(batch, receiver, tokens, d_model)``: dM/d(input of each receiver) from dM/d(each
        residual state) (``grads``: name -> gradient)."""
        h = self.hooked
        parts = []
        for layer in range(h.n_layers):
            for ci in range(len(self.components)):
                before = grads[f"blocks.{layer}.{self.states[ci]}"]
                after = grads[f"blocks.{layer}.{self.states[ci + 1]}"]
                parts.append(before - after)
        parts.append(grads[final_site(h)])
        return torch.stack(parts, 1)

    def state_names(self) -> list[str]:
        return [f"blocks.{layer}.{s}" for layer in range(self.hooked.n_layers) for s in self.states]


def edge_scores(graph: Graph, clean_pixels: Tensor, reference: Tensor, metric,
                counterfactual_pixels: Tensor | None = None, ig_steps: int = 0) -> Tensor:
    """Edge scores (``(sender, receiver)``, float64, 0 where no edge): ``(ref_u - out_u) . g_v``
    with ``reference`` (``(sender, tokens, d_model)``: the counterfactual run's sender outputs, or
    their mean) and ``out_u`` the clean run's outputs.

    * EAP (``ig_steps = 0``): ``g_v = dM/d input_v`` on the clean run: one forward and one
      backward pass.
    * EAP-IG (``ig_steps = m > 0``, Hanna et al. 2024): ``g_v`` is averaged over ``m`` runs whose
      *input* moves from the counterfactual clip to the clean one,
      ``x_k = x_cf + (k / m) (x_clean - x_cf)``, ``k = 1..m`` (the patch embedding is linear, so
      this is EAP-IG's interpolation of the input embeddings); needs ``counterfactual_pixels``.
      One batched forward and backward pass of ``m`` runs.
    """
    h = graph.hooked
    states = graph.state_names()
    uniq = list(dict.fromkeys(states + [final_site(h)]))
    names = set(states) | graph.cache_names() | {final_site(h)}
    clean_pixels = clean_pixels.to(h.device)
    if ig_steps > 0:
        if counterfactual_pixels is None:
            raise ValueError("EAP-IG (ig_steps > 0) interpolates from the counterfactual clip: "
                             "pass counterfactual_pixels")
        cf = counterfactual_pixels.to(h.device)
        alphas = torch.arange(1, ig_steps + 1, device=h.device, dtype=clean_pixels.dtype) / ig_steps
        inputs = cf + alphas.view(-1, *[1] * (clean_pixels.dim() - 1)) * (clean_pixels - cf)
        grad_run = h.run(inputs, names=set(uniq), grad=True)
        tensors = [grad_run[s] for s in uniq]
        with torch.inference_mode():
            clean_cache = h.run(clean_pixels, names=graph.cache_names()).cache
    else:
        grad_run = h.run(clean_pixels, names=names, grad=True)
        tensors = [grad_run[s] for s in uniq]
        clean_cache = {k: v.detach() for k, v in grad_run.cache.items()}
    grads = torch.autograd.grad(metric(grad_run[final_site(h)]).sum(), tensors, allow_unused=True)
    by_name = {s: (torch.zeros_like(t) if g is None else g).detach().sum(0, keepdim=True) / len(t)
               for s, t, g in zip(uniq, tensors, grads, strict=True)}  # mean over the m runs
    g_in = graph.receiver_gradients(by_name)[0].double()  # (receiver, tokens, d)
    with torch.no_grad():
        clean_out = graph.sender_outputs(clean_cache)[0].double()
    delta = reference.to(clean_out.device).double() - clean_out  # (sender, tokens, d)
    scores = torch.einsum("std,rtd->sr", delta, g_in).cpu()
    return scores * graph.valid


def circuit_run(graph: Graph, clean_pixels: Tensor, reference: Tensor, keep: Tensor) -> Tensor:
    """The final residual ``(circuit, tokens, d_model)`` of one clean input run once per circuit
    (``keep``: ``(circuit, sender, receiver)`` bool; edges that do not exist are ignored)
    with every dropped edge carrying ``reference`` (``(sender, tokens, d_model)``) instead of
    the sender's own output (module docstring)."""
    h = graph.hooked
    B = keep.shape[0]
    dev = h.device
    drop = (graph.valid[None] & ~keep.bool()).to(dev)  # (circuit, sender, receiver)
    ref = reference.to(dev, torch.float32)
    delta = torch.empty(B, len(graph.senders), h.n_tokens, h.d_model, device=dev)  # each sender filled before read
    total = torch.zeros(B, h.n_tokens, h.d_model, device=dev)  # the sum of every filled sender's delta
    filled = [0]  # senders computed so far (the sender list follows the forward order)
    before = graph.valid.sum(0).tolist()  # receiver -> senders before it (a prefix of the sender list)
    correction = {}  # receiver index -> its current correction (circuit, tokens, d)

    def record(first, outputs):
        d = outputs - ref[first:first + outputs.shape[1]]
        delta[:, first:first + outputs.shape[1]] = d
        total.add_(d.sum(1))
        filled[0] = first + outputs.shape[1]

    def on_embed(act, _name):
        record(0, act[:, None])

    def on_site(layer, comp):
        first = graph.blocks[(layer, comp)][0]

        def fn(act, _name):
            record(first, graph._layer_outputs(layer, comp, act))

        return fn

    def gathered(mask):  # (circuit, tokens, d): each circuit's sum of delta over the senders in mask
        b, s = torch.nonzero(mask, as_tuple=True)
        return torch.zeros_like(total).index_add_(0, b, delta[b, s])

    def corr(j):
        """Sum of delta over the dropped edges into receiver j. Every sender filled so far comes
        before j, so the dropped ones are those not kept: whichever of the two sets is smaller is
        gathered (a small circuit keeps a few edges and drops the rest: ``total`` minus the kept)."""
        n = filled[0]
        if n != before[j]:  # pragma: no cover - a hook order that breaks the sender list's forward order
            raise RuntimeError(f"receiver {graph.receivers[j].name} read with {n} senders filled, not {before[j]}")
        dropped = drop[:, :n, j]
        if 2 * int(dropped.sum()) <= dropped.numel():
            return gathered(dropped)
        return total - gathered(~dropped)

    k = len(graph.components)

    def on_state(layer, si):
        def fn(act, _name):
            out = act
            if si > 0:  # the previous component's input correction rode along its skip path
                out = out + correction.pop(layer * k + si - 1)
            if si < k:
                j = layer * k + si
                correction[j] = corr(j)
                out = out - correction[j]
            elif layer == h.n_layers - 1:  # after the last block: the readout's input
                out = out - corr(len(graph.receivers) - 1)
            return out

        return fn

    hooks = {"hook_embed": on_embed}
    for layer in range(h.n_layers):
        for comp in graph.components:
            hooks[f"blocks.{layer}.{h.head_sites.get(comp, h.components[comp])}"] = on_site(layer, comp)
        for si, s in enumerate(graph.states):
            hooks[f"blocks.{layer}.{s}"] = on_state(layer, si)
    px = clean_pixels.to(dev).expand(B, *clean_pixels.shape[1:])
    final = final_site(h)
    return h.run(px, names={final}, hooks=hooks)[final]


def mean_reference(graph: Graph, pixels: Tensor, batch_size: int = 8) -> Tensor:
    """Sender outputs averaged over clips (``(clip, frame, 3, H, W)``): the mean-ablation reference."""
    total = None
    for i in range(0, len(pixels), batch_size):
        run = graph.hooked.run(pixels[i:i + batch_size], names=graph.cache_names())
        out = graph.sender_outputs(run.cache).double().sum(0)
        total = out if total is None else total + out
    return (total / len(pixels)).float()


def top_edges(scores: Tensor, graph: Graph, n: int) -> Tensor:
    """``(sender, receiver)`` bool: the ``n`` existing edges of largest ``|score|``. Scores that agree
    to ``utils.stats.RANK_RESOLUTION`` of the largest are ties, broken by edge index: every machine
    keeps the same edges (``torch.topk`` would order near-ties, and the many exact zeros, by float
    noise and by its own kernel's choice)."""
    valid = graph.valid.flatten().cpu()
    existing = torch.nonzero(valid).flatten()  # (edge,) flat indices of the existing edges
    keep = torch.zeros_like(valid, dtype=torch.bool)
    if n > 0:
        magnitude = scores.flatten().cpu()[existing].abs().double().numpy()
        keep[existing[torch.from_numpy(top_indices(magnitude, min(n, len(existing))))]] = True
    return keep.view_as(scores).to(graph.valid.device) & graph.valid


def faithfulness(graph: Graph, clean_pixels: Tensor, reference: Tensor, counterfactual_resid: Tensor,
                 clean_resid: Tensor, scores: Tensor, sizes: list[int], batch_size: int = 8,
                 counterfactual: bool = False, metrics: dict[str, Metric] | None = None) -> pd.DataFrame:
    """The metrics of the top-``n`` circuit for every ``n`` in ``sizes``, on one clean input.
    ``counterfactual_resid``, ``clean_resid``: final residuals ``(1, tokens, d_model)``;
    ``metrics``: name -> ``Metric`` (default: ``readout``, the projection they define). The
    full circuit is the clean run; the empty one is run, unless ``counterfactual`` says that
    ``reference`` holds the counterfactual run's own outputs: then it is that run.

    One row per size and metric: ``n_edges``, ``metric_name``, ``metric`` (unnormalised),
    ``metric_empty``, ``metric_full`` and this pair's own ratio ``faithfulness_pct`` (module
    docstring; ``utils.faithfulness`` averages the metrics over pairs before normalising)."""
    h = graph.hooked
    metrics = metrics or {"readout": readout_projection(h, clean_resid, counterfactual_resid)}
    with torch.inference_mode():
        run = [n for n in sizes if n < graph.n_edges]  # every edge kept: the clean run itself
        keeps = [top_edges(scores, graph, n) for n in run]
        if not counterfactual:
            keeps.append(torch.zeros_like(graph.valid))
        finals = [circuit_run(graph, clean_pixels, reference, torch.stack(keeps[i:i + batch_size]))
                  for i in range(0, len(keeps), batch_size)] if keeps else []
        rows = []
        for name, metric in metrics.items():
            full = float(metric(clean_resid.to(h.device)).double())
            v = torch.cat([metric(f).double().cpu() for f in finals]).numpy() if finals else np.zeros(0)
            if counterfactual:
                empty = float(metric(counterfactual_resid.to(h.device)).double())
            else:
                empty, v = float(v[-1]), v[:-1]
            v = np.array([full if n >= graph.n_edges else v[run.index(n)] for n in sizes])
            rows.append(pd.DataFrame({"n_edges": sizes, "metric_name": name, "metric": v,
                                      "faithfulness_pct": 100 * (v - empty) / (full - empty),
                                      "metric_empty": empty, "metric_full": full}))
    return pd.concat(rows, ignore_index=True)
