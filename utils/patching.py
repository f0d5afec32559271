"""Activation patching: a source run's activation replaces a target run's, then we measure.

The paper patches the *strike* run (source) into the *gutter* run (target), one component
at a time (the attention block output ``hook_attn_out`` or the MLP output before the
residual add ``hook_mlp_out``, at every position), and reads the signal at the last
layer's output ``blocks.11.hook_resid_post``. With ``D_patch = patched - target`` and
``D_full = source - target`` (``(tokens, d_model)`` each), three recovery measures:

* ``recovery_notebook_pct`` - the author's notebook (it produced Table 3):
  ``mean_t ||D_patch[t]|| / mean_t ||D_full[t]|| * 100``; unsigned, so any movement away
  from the target run counts as recovery.
* ``recovery_eq2_pct`` - equation (2) as printed:
  ``||D_patch|| / ||D_full|| * sign(D_patch . D_full) * 100`` (Frobenius norms).
* ``recovery_projection_pct`` - the directional projection
  ``(D_patch . D_full) / ||D_full||^2 * 100``: the share of the way from target to source.

Speed: a patched run never recomputes the blocks before the patched one - it starts from
the target run's cached ``resid_pre`` (or ``resid_mid`` for MLP-side patches) - and
several patched runs share one batched forward (``run_patches``). ``naive_patches`` is the
plain alternative (one full forward per patch, every activation cached) that the tests and
``make bench`` compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from utils.arch import ADAPTERS
from utils.hooks import HookedVideoTransformer, parse_name

MID_SITES = ("hook_resid_mid", "hook_mlp_out", "hook_resid_post")  # patchable from resid_mid
# A patch of a whole activation at these sites joins the batch at (stage, base + value); base
# None: the value is the state itself. ``hook_attn_out`` is the sum of every attention step of
# the block (TimeSformer: time + space), so resid_mid = resid_pre + attn_out for every adapter.
FULL_ENTRY = {"hook_resid_pre": ("pre", None), "hook_attn_out": ("mid", "pre"), "hook_resid_mid": ("mid", None),
              "hook_mlp_out": ("post", "mid"), "hook_resid_post": ("post", None)}


# Which dimension of a one-run activation (no batch dim) ``positions`` and ``heads`` index.
# positions are token indices: the query for ``attn.hook_pattern``, the key for ``_cls``.
SITE_DIMS = {site: dims for a in ADAPTERS.values() for site, dims in a.site_dims.items()}  # site: (token, head) dim


@dataclass
class Patch:
    """Replace activation ``hook`` by ``value`` (no batch dim) at ``positions`` / ``heads``.

    ``positions`` are token indices (for ``attn.hook_pattern``: query tokens; for
    ``attn.hook_pattern_cls``: key tokens); ``heads`` applies to the per-head sites
    ``attn.hook_z``, ``attn.hook_pattern`` and ``attn.hook_pattern_cls``. Both given: the
    positions of those heads only.
    """

    hook: str
    value: torch.Tensor
    positions: Sequence[int] | None = None  # token indices; None = all tokens
    heads: Sequence[int] | None = None  # per-head sites only; None = all heads
    label: dict = field(default_factory=dict)  # row information for result tables

    def __post_init__(self):
        site = parse_name(self.hook)[1]
        if self.heads is not None and site not in SITE_DIMS:
            raise ValueError(f"heads= applies to {sorted(SITE_DIMS)}, not {self.hook} "
                             "(its activation has no head dimension)")

    @property
    def layer(self) -> int:
        layer, _ = parse_name(self.hook)
        if layer is None:
            raise ValueError(f"patching {self.hook} is not supported; patch a blocks.* activation")
        return layer

    @property
    def at_mid(self) -> bool:
        return parse_name(self.hook)[1] in MID_SITES

    def mask(self, act: torch.Tensor) -> torch.Tensor:
        """Boolean mask over ``act`` (one run's activation): True where the patch writes."""
        token_dim, head_dim = SITE_DIMS.get(parse_name(self.hook)[1], (0, None))
        mask = torch.ones(act.shape, dtype=torch.bool, device=act.device)
        for dim, index in ((token_dim, self.positions), (head_dim, self.heads)):
            if index is None:
                continue
            sel = torch.zeros(act.shape[dim], dtype=torch.bool, device=act.device)
            sel[torch.as_tensor(index, dtype=torch.long, device=act.device)] = True
            shape = [1] * act.ndim
            shape[dim] = -1
            mask &= sel.view(shape)
        return mask

    def apply(self, act: torch.Tensor) -> None:
        """Write the patch into ``act`` (one run's activation, no batch dim) in place."""
        value = self.value.to(device=act.device, dtype=act.dtype)
        if value.shape != act.shape:
            raise ValueError(f"patch value for {self.hook} has shape {tuple(value.shape)}, the "
                             f"activation {tuple(act.shape)} (one run, no batch dim)")
        if self.positions is None and self.heads is None:
            act.copy_(value)
        else:
            act.copy_(torch.where(self.mask(act), value, act))


def recovery(patched: torch.Tensor, target: torch.Tensor, source: torch.Tensor) -> dict:
    """The three recovery measures (module docstring) for ``(tokens, d_model)`` activations."""
    d_patch = (patched - target).double()
    d_full = (source - target).double()
    dot = float((d_patch * d_full).sum())
    full_sq = float((d_full * d_full).sum())
    if full_sq == 0.0:  # source == target: recovery is undefined
        nan = float("nan")
        return dict.fromkeys(
            ("recovery_notebook_pct", "recovery_eq2_pct", "recovery_projection_pct"), nan)
    norm_ratio = float(d_patch.norm() / d_full.norm())
    sign = (dot > 0) - (dot < 0)
    return {
        "recovery_notebook_pct": 100 * float(d_patch.norm(dim=-1).mean() / d_full.norm(dim=-1).mean()),
        "recovery_eq2_pct": 100 * norm_ratio * sign,
        "recovery_projection_pct": 100 * dot / full_sq,
    }


def readout_recovery(hooked: HookedVideoTransformer, patched: torch.Tensor, target: torch.Tensor,
                     source: torch.Tensor) -> torch.Tensor:
    """``recovery_readout_pct``: the projection measure on what the classifier reads
    (``hooked.readout_tokens``: the CLS token, or VideoMAE's token mean) instead of every token,
    ``100 (r_patched - r_target) . (r_source - r_target) / ||r_source - r_target||^2`` for
    final residuals ``(batch, tokens, d_model)`` (``target``, ``source``: one run each) -> ``(batch,)``.
    Linear in the residual: the metric ``utils.atp`` differentiates."""
    r_t, r_s = hooked.readout_tokens(target[None].double()), hooked.readout_tokens(source[None].double())
    d_full = (r_s - r_t)[0]
    d_patch = hooked.readout_tokens(patched.double()) - r_t
    return 100 * (d_patch @ d_full) / (d_full @ d_full)


class _Done:
    """A batch row whose patch has been applied (later layers run it unpatched)."""

    hook = None

    def __init__(self, patch: Patch):
        self.patch = patch


def _row_hooks(rows: list, names: set[str]):
    """Hooks that apply each row's patch to its own batch row (rows may be None or _Done)."""

    def make(name):
        def fn(act, _name):
            act = act.clone()
            for r, p in enumerate(rows):
                if p is not None and p.hook == name:
                    p.apply(act[r])
            return act

        return fn

    return {name: make(name) for name in names if name}


def _cat(x: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    return new if x is None else torch.cat([x, new])


def _head_join(hooked: HookedVideoTransformer | None, p: Patch, target_cache: dict) -> torch.Tensor | None:
    """The resid_mid a whole-head patch leads to, without running its attention step, or None.

    A head's output reaches the residual stream linearly, ``attn_out = sum_h z_h W_O[h] + b_O``,
    so replacing heads ``H`` of the target's ``z`` (every token) gives
    ``resid_mid = resid_mid_target + sum_{h in H} (z_source[h] - z_target[h]) W_O[h]``: the patched run
    joins at resid_mid and skips its own layer's attention (the costliest step of a block). Only
    where that holds as written (one attention step then the MLP, every token's heads, the target's
    ``z`` cached); the numbers equal the hooked path's up to float rounding, and a self-patch
    (``z_source = z_target``) leaves resid_mid exactly as it was."""
    if hooked is None or p.heads is None or p.positions is not None:
        return None
    layer, site = parse_name(p.hook)
    comps = list(hooked.components)
    cached = target_cache.get(p.hook)
    if (comps != ["attention", "mlp"] or hooked.head_sites.get("attention") != site or cached is None
            or hooked.adapter.head_rows("attention") != slice(None)):
        return None
    mid = target_cache[f"blocks.{layer}.hook_resid_mid"][0]
    heads = torch.as_tensor(list(p.heads), dtype=torch.long, device=mid.device)
    z_t = cached[0].to(mid.device)  # (tokens, head, d_head)
    dz = p.value.to(device=mid.device, dtype=z_t.dtype).index_select(1, heads) - z_t.index_select(1, heads)
    w_o = hooked.adapter.W_O(layer, "attention").detach().to(device=mid.device, dtype=mid.dtype)
    return mid + torch.einsum("thd,hdm->tm", dz.to(mid.dtype), w_o.index_select(0, heads))


def _entry(p: Patch, target_cache: dict,
           hooked: HookedVideoTransformer | None = None) -> tuple[str, torch.Tensor, bool]:
    """Where a patched run joins the batch at its layer: ``(stage, state, needs_hook)``.

    A patch that replaces a whole activation needs no computation at its own site: a full
    ``hook_attn_out`` patch joins at resid_mid as ``resid_pre + value``, a full ``hook_mlp_out``
    patch joins after the block as ``resid_mid + value`` (bitwise what the hook would give), and a
    patch of whole heads joins at resid_mid through ``W_O`` (``_head_join``, given ``hooked`` and
    the target's ``z``). Other partial patches join before the block (attention side) or at
    resid_mid (MLP side) and are applied by a hook.
    """
    layer, site = parse_name(p.hook)
    pre = target_cache[f"blocks.{layer}.hook_resid_pre"][0]
    mid = target_cache[f"blocks.{layer}.hook_resid_mid"][0]
    if p.positions is None and p.heads is None and site in FULL_ENTRY:
        stage, base = FULL_ENTRY[site]
        value = p.value.to(pre.device)
        return stage, value if base is None else {"pre": pre, "mid": mid}[base] + value, False
    joined = _head_join(hooked, p, target_cache)
    if joined is not None:
        return "mid", joined, False
    return ("mid", mid, True) if p.at_mid else ("pre", pre, True)


def auto_batch_size(hooked: HookedVideoTransformer) -> int:
    """Patched runs per batched forward: 8 for small models; 1 at paper scale, where a CPU
    runs a batch of 4 slower per run than 4 single runs (measured: 69 s vs 57 s per sweep)."""
    return 8 if hooked.n_tokens * hooked.d_model <= 512 * 512 else 1


def needed_target_names(hooked: HookedVideoTransformer, read: str | None = None) -> list[str]:
    L = hooked.n_layers
    names = [f"blocks.{i}.hook_resid_pre" for i in range(L)]
    names += [f"blocks.{i}.hook_resid_mid" for i in range(L)]
    return names + [read or f"blocks.{L - 1}.hook_resid_post"]


def run_patches(hooked: HookedVideoTransformer, target_cache: dict, patches: Sequence[Patch],
                read: str | None = None, batch_size: int | None = None, progress: bool = False,
                logits_only: bool = False, readout_only: bool = False):
    """Run every patch on the target run, reusing its cached prefix, in batches.

    ``target_cache`` holds the target's ``resid_pre`` and ``resid_mid`` of every layer
    (``needed_target_names``). Returns ``(read activations (patch, tokens, d_model), logits
    (patch, classes))`` in the order of ``patches``; with ``logits_only`` the activations are
    ``None`` and the last block runs for the readout's rows only where the adapter allows it
    (``HookedVideoTransformer.readout_only``: the CLS query instead of every token). With
    ``readout_only`` the activations are the final residual's rows the readout reads
    (``HookedVideoTransformer.readout_state``), cut the same way; where the adapter cannot cut,
    every token (``hooked.readout_tokens`` reads either alike).
    """
    L = hooked.n_layers
    hooked.check_eval()
    batch_size = batch_size or auto_batch_size(hooked)
    read = read or f"blocks.{L - 1}.hook_resid_post"
    read_layer, read_site = parse_name(read)
    if read_site != "hook_resid_post" or read_layer is None:
        raise ValueError(f"read must be a blocks.N.hook_resid_post activation, not {read}")
    if readout_only and read_layer != L - 1:
        raise ValueError(f"readout_only reads the final residual, not {read}")
    short = (logits_only or readout_only) and hooked.readout_only()  # the last block for the readout's rows only
    order = sorted(range(len(patches)), key=lambda i: patches[i].layer)
    outs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for chunk in tqdm(chunks, desc="patched runs", disable=not progress, leave=False):
            rows: list[Patch] = []
            x = None
            read_val = None
            first = patches[chunk[0]].layer
            for layer in range(first, L):
                stages = {"pre": [], "mid": [], "post": []}
                for i in chunk:
                    if patches[i].layer == layer:
                        stage, start, hooked_patch = _entry(patches[i], target_cache, hooked)
                        stages[stage].append((patches[i], start, hooked_patch))
                # last block, logits only, no patch to apply inside it: the readout's rows only
                cut = short and layer == L - 1 and not any(h for st in ("pre", "mid") for _, _, h in stages[st])
                if stages["pre"]:
                    x = _cat(x, torch.stack([s for _, s, _ in stages["pre"]]))
                    rows += [p for p, _, _ in stages["pre"]]
                if x is not None:
                    x = (hooked.adapter.readout_block(layer, x) if cut
                         else hooked.block(layer, x, _row_hooks(rows, {p.hook for p in rows})))
                if stages["mid"]:
                    mid = torch.stack([s for _, s, _ in stages["mid"]])
                    if cut:
                        new = hooked.adapter.readout_block(layer, mid, start_at_mid=True)
                    else:
                        mid_rows = [p if h else None for p, _, h in stages["mid"]]
                        new = hooked.block(layer, mid, _row_hooks(mid_rows, {p.hook for p in mid_rows if p}),
                                           start_at_mid=True)
                    x = _cat(x, new)
                    rows += [p for p, _, _ in stages["mid"]]
                if stages["post"]:
                    post = torch.stack([s for _, s, _ in stages["post"]])
                    x = _cat(x, hooked.readout_state(post) if cut else post)
                    rows += [p for p, _, _ in stages["post"]]
                for r in range(len(rows)):  # rows never apply a patch twice
                    rows[r] = _Done(rows[r]) if not isinstance(rows[r], _Done) else rows[r]
                if layer == read_layer:
                    read_val = hooked.readout_state(x) if readout_only and short and not cut else x
            if read_val is None:
                raise ValueError(f"read={read} comes before the patched layer {first}")
            logits = hooked.head(x)
            index = {id(r.patch): k for k, r in enumerate(rows)}
            for i in chunk:
                k = index[id(patches[i])]
                outs[i] = (None if logits_only else read_val[k], logits[k])
    if logits_only:
        return None, torch.stack([outs[i][1] for i in range(len(patches))])
    acts = torch.stack([outs[i][0] for i in range(len(patches))])
    logits = torch.stack([outs[i][1] for i in range(len(patches))])
    return acts, logits


def naive_patches(hooked: HookedVideoTransformer, target_pixels: torch.Tensor, patches: Sequence[Patch],
                  read: str | None = None, cache_all: bool = True):
    """Baseline: one full forward per patch from the pixels, caching every activation."""
    read = read or f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    names = {n for n in hooked.hook_names() if not n.endswith(".hook_pattern")}  # no full patterns
    acts, logits = [], []
    for p in patches:
        def fn(act, _name, p=p):
            act = act.clone()
            p.apply(act[0])
            return act

        run = hooked.run(target_pixels, names=names if cache_all else {read}, hooks={p.hook: fn})
        acts.append(run[read][0])
        logits.append(run.logits[0])
    return torch.stack(acts), torch.stack(logits)


def component_patches(hooked: HookedVideoTransformer, source_cache: dict, layers=None, components=None) -> list[Patch]:
    """One full-position patch per layer x component (``hooked.components``: attention and MLP;
    TimeSformer: time attention, space attention and MLP) from the source run's cache."""
    layers = range(hooked.n_layers) if layers is None else layers
    components = tuple(hooked.components) if components is None else components
    out = []
    for layer in layers:
        for comp in components:
            hook = f"blocks.{layer}.{hooked.components[comp]}"
            out.append(Patch(hook, source_cache[hook][0], label={"layer": layer, "component": comp}))
    return out


def head_patches(hooked: HookedVideoTransformer, source_cache: dict, layers=None) -> list[Patch]:
    """One patch per layer x head of every per-head output (``hooked.head_sites``: ``attn.hook_z``;
    TimeSformer: ``attn_time.hook_z`` and ``attn_space.hook_z``), at all positions. With more than
    one attention step the rows carry a ``site`` label."""
    layers = range(hooked.n_layers) if layers is None else layers
    sites = hooked.head_sites
    out = []
    for layer in layers:
        for step, site in sites.items():
            hook = f"blocks.{layer}.{site}"
            extra = {"site": step} if len(sites) > 1 else {}
            out += [Patch(hook, source_cache[hook][0], heads=[h], label={"layer": layer, "head": h, **extra})
                    for h in range(hooked.n_heads)]
    return out


def time_step_patches(hooked: HookedVideoTransformer, source_cache: dict, layer: int) -> list[Patch]:
    """One patch per tubelet time step: the source's ``resid_pre`` of ``layer`` at all the
    patch tokens of that time step (which frames carry the signal)."""
    T, R, C = hooked.grid
    hook = f"blocks.{layer}.hook_resid_pre"
    return [Patch(hook, source_cache[hook][0],
                  positions=[hooked.token_index(t, r, c) for r in range(R) for c in range(C)],
                  label={"layer": layer, "time_step": t}) for t in range(T)]


def position_patches(hooked: HookedVideoTransformer, source_cache: dict, layer: int) -> list[Patch]:
    """One patch per spatial position (row, col): the source's ``resid_pre`` of ``layer`` at
    that position in every time step (where in the image the signal sits)."""
    T, R, C = hooked.grid
    hook = f"blocks.{layer}.hook_resid_pre"
    return [Patch(hook, source_cache[hook][0],
                  positions=[hooked.token_index(t, r, c) for t in range(T)],
                  label={"layer": layer, "row": r, "col": c}) for r in range(R) for c in range(C)]


def patch_table(hooked: HookedVideoTransformer, source_pixels: torch.Tensor, target_pixels: torch.Tensor,
                target_class: int, make_patches, read: str | None = None, batch_size: int | None = None,
                progress: bool = False, runs: tuple | None = None) -> pd.DataFrame:
    """Run the patches ``make_patches(source_cache)`` builds; one row per patch with its label,
    the three recovery measures and the change in target logit.

    ``runs=(source_run, target_run)`` reuses runs that already cache what is needed.
    """
    L = hooked.n_layers
    read = read or f"blocks.{L - 1}.hook_resid_post"
    if runs is None:
        sites = {*hooked.components.values(), *hooked.head_sites.values(), "hook_resid_pre"}
        all_sites = [f"blocks.{i}.{s}" for i in range(L) for s in sorted(sites)]
        src = hooked.run(source_pixels, names=set(all_sites) | {read})
        tgt = hooked.run(target_pixels, names=needed_target_names(hooked, read))
    else:
        src, tgt = runs
    patches = make_patches(src.cache)
    acts, logits = run_patches(hooked, tgt.cache, patches, read, batch_size, progress)
    readout = readout_recovery(hooked, acts, tgt[read][0], src[read][0])  # all rows at once: one readout each
    rows = []
    for p, act, lg, r in zip(patches, acts, logits, readout, strict=True):
        rows.append({
            **p.label,
            **recovery(act, tgt[read][0], src[read][0]),
            "delta_target_logit": float(lg[target_class] - tgt.logits[0, target_class]),
            "target_logit_patched": float(lg[target_class]),
            "recovery_readout_pct": float(r),
        })
    return pd.DataFrame(rows)


def paper_values(df: pd.DataFrame, reference: dict) -> list[float]:
    """The paper's number for each row of a sweep table (``reference``: ``{(layer, component):
    value}``, e.g. ``utils.paper.TABLE3``); NaN where the paper reports none."""
    return [reference.get((int(r.layer), r.component), float("nan")) for r in df.itertuples()]


def component_sweep(hooked: HookedVideoTransformer, source_pixels, target_pixels, target_class: int,
                    layers=None, components=None, batch_size: int | None = None,
                    progress: bool = False, runs=None) -> pd.DataFrame:
    """Table 3: every layer x component patched from source into target.

    Columns: ``layer``, ``component`` (attention / mlp), ``recovery_notebook_pct``,
    ``recovery_eq2_pct``, ``recovery_projection_pct``, ``delta_target_logit``,
    ``target_logit_patched``, ``recovery_readout_pct`` (``readout_recovery``).
    """
    return patch_table(
        hooked, source_pixels, target_pixels, target_class,
        lambda cache: component_patches(hooked, cache, layers, components),
        batch_size=batch_size, progress=progress, runs=runs,
    )
