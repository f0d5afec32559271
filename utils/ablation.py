"""Ablations: remove tokens or components and watch the top-5 logits (Tables 1 and 2).

Top-10% token ablation (paper.md). The author's notebook scores the final-layer patch
tokens with the bowling classifier row (no LayerNorm), keeps the top
``int(0.1 * patches)`` (313 of 3136), and zeroes a 16x16 pixel square for each at frame
``idx // 196``. That is the tubelet's *time step* (0..15), used as a *frame* index (0..31):
it hits the wrong frame and only one of the tubelet's two frames.

* ``mode="faithful"`` repeats that exactly (score, frame indexing);
* ``mode="corrected"`` zeroes the whole tubelet: both of its frames, at its position.

Zeroing happens on ``pixel_values`` after preprocessing, as in the notebook. A small change
means little unless random patches move the logit less: ``top_vs_random`` ranks the
top-scored ablation among ``n_draws`` random ablations of as many patches. Components
and heads are ablated by patching in a constant (zero, or the mean over reference runs),
reusing the batched patching machinery.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from utils import memo
from utils.attribution import notebook_token_score, token_dla, token_dla_names
from utils.hooks import HookedVideoTransformer, clean_run
from utils.patching import Patch, auto_batch_size, needed_target_names, run_patches
from utils.stats import empirical_quantile

MODES = ("faithful", "corrected")


def top_k(logits: torch.Tensor, id2label: dict, k: int = 5) -> list[tuple[int, str, float]]:
    """``[(class index, label, logit), ...]`` of the k largest logits ``(classes,)``."""
    vals, idx = logits.topk(min(k, logits.numel()))
    return [(int(i), id2label[int(i)], float(v)) for v, i in zip(vals, idx, strict=True)]


def before_after(logits_before: torch.Tensor, logits_after: torch.Tensor, id2label: dict,
                 k: int = 5, include: int | None = None) -> pd.DataFrame:
    """The paper's table layout: the top-k classes before, with their logits after.

    ``include``: a class (the target) that gets a row even when it is not in the top k, with
    its true rank, so its change is always reported.
    """
    rows = []
    ranks = (logits_before > logits_before[:, None]).sum(1) + 1  # 1-based rank of each class
    chosen = [i for i, _, _ in top_k(logits_before, id2label, k)]
    if include is not None and include not in chosen:
        chosen.append(include)
    for i in chosen:
        before, after = float(logits_before[i]), float(logits_after[i])
        rows.append({"rank": int(ranks[i]), "class": id2label[i], "class_index": i, "logit_before": before,
                     "logit_after": after, "change": after - before})
    return pd.DataFrame(rows)


def n_top(n_patches: int, fraction: float = 0.1) -> int:
    """How many patches the top-fraction ablation removes: ``int(fraction * n)`` (313 of 3136)."""
    return int(fraction * n_patches)


def zero_tubelets(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, tokens, mode: str,
                  fill: float = 0.0) -> torch.Tensor:
    """Copy of ``pixel_values (1, frame, 3, H, W)`` with the pixels of ``tokens`` set to ``fill``.

    ``faithful``: frame = the token's time step (the notebook's ``idx // 196``), one frame;
    ``corrected``: both frames of the token's tubelet.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    px = pixel_values.clone()
    ft = hooked.loaded.tubelet[0]
    for tok in tokens:
        t, _, _ = hooked.token_position(int(tok))
        frames, rows, cols = hooked.pixel_box(int(tok))
        if mode == "faithful":
            frames = slice(t, t + 1)  # the tubelet index used as a frame index
        assert frames.stop - frames.start in (1, ft)
        px[:, frames, :, rows, cols] = fill
    return px


def top_fraction_ablation(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int,
                          mode: str = "faithful", fraction: float = 0.1,
                          score: str = "notebook", k: int = 5, run=None) -> dict:
    """Ablate the top ``fraction`` of patches by ``score`` (``notebook``: final-layer token .
    W_target, as the author; ``dla``: per-token DLA through the last layer's attention).

    ``run``: the clean run of ``pixel_values`` caching ``ablation_names`` (reused across modes
    instead of recomputed; default: ``utils.hooks.clean_run``). Returns ``tokens`` (chosen token
    indices), ``n_ablated``, ``logits_before``, ``logits_after``, ``run`` and ``table`` (top-k
    before/after, with mode and n_ablated columns).
    """
    if run is None:
        run = clean_run(hooked, pixel_values, ablation_names(hooked))
    if score == "notebook":
        s = notebook_token_score(hooked, run, target)  # (patches,)
    elif score == "dla":
        s = token_dla(hooked, run, target)["tokens"][hooked.n_prefix:]
    else:
        raise ValueError(f"score must be 'notebook' or 'dla', got {score!r}")
    n = n_top(s.numel(), fraction)
    tokens = (torch.topk(s, n).indices + hooked.n_prefix).tolist()  # patch index -> token (CLS is token 0)
    after = ablated_logits(hooked, pixel_values, tokens, mode)
    table = before_after(run.logits[0], after, hooked.loaded.id2label, k, include=target)
    table.insert(0, "mode", mode)
    table.insert(1, "score", score)
    table.insert(2, "n_ablated", n)
    return {"tokens": tokens, "n_ablated": n, "logits_before": run.logits[0],
            "logits_after": after, "table": table, "run": run}


def ablated_logits(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, tokens, mode: str) -> torch.Tensor:
    """Logits ``(classes,)`` of ``pixel_values (1, frame, 3, H, W)`` with ``tokens`` zeroed
    (``zero_tubelets``), shared between the notebooks of one kernel (``utils.memo``): notebook
    06's top-10% and random ablations reuse those of notebook 05."""
    key = ("ablated_logits", memo.model_fingerprint(hooked.model), str(hooked.device),
           memo.tensor_fingerprint(pixel_values), mode, tuple(sorted(int(t) for t in tokens)))
    return memo.memoized(key, lambda: hooked.run(zero_tubelets(hooked, pixel_values, tokens, mode)).logits[0])


def ablation_names(hooked: HookedVideoTransformer) -> set[str]:
    """Activations the top-fraction scores need."""
    return {f"blocks.{hooked.n_layers - 1}.hook_resid_post"} | set(token_dla_names(hooked))


def random_tokens(hooked: HookedVideoTransformer, n: int, seed: int) -> list[int]:
    """``n`` distinct random patch tokens (a control for the top-fraction ablation)."""
    rng = np.random.default_rng(seed)
    n_patches = hooked.n_tokens - hooked.n_prefix
    return (rng.choice(n_patches, size=n, replace=False) + hooked.n_prefix).tolist()


def random_token_sets(hooked: HookedVideoTransformer, n: int, n_draws: int, seed: int) -> list[list[int]]:
    """``n_draws`` independent sets of ``n`` distinct random patch tokens (one generator)."""
    rng = np.random.default_rng(seed)
    n_patches = hooked.n_tokens - hooked.n_prefix
    return [(rng.choice(n_patches, size=n, replace=False) + hooked.n_prefix).tolist() for _ in range(n_draws)]


def random_ablation_deltas(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int, n: int,
                           n_draws: int = 20, mode: str = "corrected", seed: int = 0,
                           logit_before: float | None = None, batch_size: int | None = None) -> np.ndarray:
    """``(n_draws,)`` change of the target logit when ``n`` random patches are zeroed (``mode``
    as ``zero_tubelets``), one independent draw of tokens each; the null against which a
    scored selection of ``n`` patches is judged. Draws run ``batch_size`` at a time (default: 10 for
    small models; one at a time at paper scale, where a batch_size is no faster per clip on a CPU
    and a draw that notebook 05 ran already, its random control, is reused: ``ablated_logits``)."""
    if logit_before is None:
        logit_before = float(hooked.run(pixel_values).logits[0, target])
    deltas = []
    sets = random_token_sets(hooked, n, n_draws, seed)
    batch_size = batch_size or (10 if auto_batch_size(hooked) > 1 else 1)
    if batch_size == 1:
        return np.array([float(ablated_logits(hooked, pixel_values, toks, mode)[target]) - logit_before
                         for toks in sets], dtype=np.float32)
    for i in range(0, n_draws, batch_size):
        px = torch.cat([zero_tubelets(hooked, pixel_values, toks, mode) for toks in sets[i : i + batch_size]])
        deltas.append(hooked.run(px).logits[:, target].detach().cpu().numpy() - logit_before)  # (chunk,)
    return np.concatenate(deltas)


def top_vs_random(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int, n_draws: int = 20,
                  mode: str = "corrected", scores: tuple[str, ...] = ("notebook", "dla"),
                  fraction: float = 0.1, seed: int = 0, run=None) -> pd.DataFrame:
    """Where each top-scored ablation falls among ``n_draws`` random ablations of as many
    patches (the same random draws for every score). One row per score:

    ``score``, ``top_delta`` (change of the target logit when the top ``fraction`` by that
    score is zeroed), ``random_median`` (median change over the random draws),
    ``share_random_lower`` (share of random draws that lower the logit at least as much as the
    top-scored set: 0 when the score finds the patches that matter most, about 0.5 when it
    does no better than chance), ``rank`` (1: the top-scored set lowers the logit most of all
    ``n_draws + 1`` ablations), ``n_draws``, ``n_ablated``, ``mode``.
    """
    if run is None:
        run = hooked.run(pixel_values, names=ablation_names(hooked))
    before = float(run.logits[0, target])
    n = n_top(hooked.n_tokens - hooked.n_prefix, fraction)
    rand = random_ablation_deltas(hooked, pixel_values, target, n, n_draws, mode, seed, before)  # (n_draws,)
    rows = []
    for score in scores:
        res = top_fraction_ablation(hooked, pixel_values, target, mode=mode, fraction=fraction, score=score, run=run)
        top = float(res["logits_after"][target]) - before
        rows.append({"score": score, "top_delta": top, "random_median": float(np.median(rand)),
                     "share_random_lower": empirical_quantile(top, rand), "rank": int((rand < top).sum()) + 1,
                     "n_draws": n_draws, "n_ablated": n, "mode": mode})
    return pd.DataFrame(rows)


def ablate_embedding_tokens(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, tokens,
                            how: str = "zero") -> torch.Tensor:
    """Logits ``(classes,)`` with ``tokens`` replaced at ``hook_embed`` by zeros (``how="zero"``)
    or by the clip's mean patch embedding (``how="mean"``, taken before any replacement)."""
    if how not in ("zero", "mean"):
        raise ValueError(f"how must be 'zero' or 'mean', got {how!r}")
    idx = list(tokens)

    def fn(x, _name):  # (batch, tokens, d_model)
        x = x.clone()
        if how == "zero":
            x[:, idx] = 0.0
        else:
            x[:, idx] = x[:, hooked.n_prefix:].mean(1, keepdim=True)  # (batch, 1, d_model)
        return x

    return hooked.run(pixel_values, hooks={"hook_embed": fn}).logits[0]


def component_names(hooked: HookedVideoTransformer, heads: bool = False, layers=None) -> list[str]:
    """The sites ``component_ablation`` replaces: every component's output (and, with ``heads``,
    every per-head ``hook_z``) of ``layers`` (default: all)."""
    layers = range(hooked.n_layers) if layers is None else layers
    names = [f"blocks.{i}.{s}" for i in layers for s in hooked.components.values()]
    if heads:
        names += [f"blocks.{i}.{s}" for i in layers for s in hooked.head_sites.values()]
    return names


def reference_means(hooked: HookedVideoTransformer, reference_pixels: torch.Tensor, names,
                    shared: tuple[torch.Tensor, ...] = ()) -> dict[str, torch.Tensor]:
    """Mean of each activation in ``names`` over the runs of ``reference_pixels (runs, frame, 3,
    H, W)``, position by position. Runs go one clip at a time (memory stays that of one run);
    a clip equal to one of ``shared`` takes its clean run from ``utils.hooks.clean_run``
    (notebook 05: the canonical pair, whose runs the notebook has anyway)."""
    names = list(names)
    total: dict[str, torch.Tensor] = {}
    for i in range(len(reference_pixels)):
        px = reference_pixels[i : i + 1]
        use_shared = any(px.shape == s.shape and torch.equal(px, s.to(px.device)) for s in shared)
        run = clean_run(hooked, px, names) if use_shared else hooked.run(px, names=names)
        for n in names:
            total[n] = run[n][0].clone() if n not in total else total[n].add_(run[n][0])
    return {n: t / len(reference_pixels) for n, t in total.items()}


def component_ablation(hooked: HookedVideoTransformer, pixel_values: torch.Tensor, target: int,
                       how: str = "zero", reference_pixels: torch.Tensor | None = None,
                       heads: bool = False, batch_size: int | None = None, layers=None,
                       reference: dict[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Change in the target logit when each layer's attention output or MLP output (or, with
    ``heads``, each head's ``hook_z``) is replaced by zeros or by its mean over the reference
    runs ``reference_pixels (runs, frame, 3, H, W)`` (position by position, ``reference_means``;
    or ``reference``, those means computed already). ``layers``: the layers ablated (default:
    all). The clean run comes from ``utils.hooks.clean_run``; the ablated runs compute logits
    only (``run_patches(logits_only=True)``).

    Columns: ``layer``, ``component`` (attention / mlp / head), ``head``, ``how``,
    ``target_logit``, ``delta_target_logit``.
    """
    layers = list(range(hooked.n_layers) if layers is None else layers)
    sites = list(hooked.components.items())  # (component, output hook); TimeSformer: two attention steps
    head_sites = list(hooked.head_sites.items())  # (component, its per-head hook_z)
    names = component_names(hooked, heads, layers)
    if how == "mean":
        if reference is None:
            if reference_pixels is None:
                raise ValueError("mean ablation needs reference_pixels (runs to average over)")
            reference = reference_means(hooked, reference_pixels, names)
        value = reference
    elif how == "zero":
        value = None
    else:
        raise ValueError(f"how must be 'zero' or 'mean', got {how!r}")
    run = clean_run(hooked, pixel_values, needed_target_names(hooked) + names)

    def const(name):
        return torch.zeros_like(run[name][0]) if value is None else value[name]

    patches = [Patch(f"blocks.{i}.{s}", const(f"blocks.{i}.{s}"),
                     label={"layer": i, "component": c, "head": -1})
               for i in layers for c, s in sites]
    if heads:  # component "<attention component>_head": attention_head; TimeSformer attention_time_head, ...
        patches += [Patch(f"blocks.{i}.{site}", const(f"blocks.{i}.{site}"), heads=[h],
                          label={"layer": i, "component": f"{comp}_head", "head": h})
                    for i in layers for comp, site in head_sites for h in range(hooked.n_heads)]
    _, logits = run_patches(hooked, run.cache, patches, batch_size=batch_size, logits_only=True)
    base = float(run.logits[0, target])
    rows = [{**p.label, "how": how, "target_logit": float(lg[target]),
             "delta_target_logit": float(lg[target]) - base}
            for p, lg in zip(patches, logits, strict=True)]
    return pd.DataFrame(rows)
