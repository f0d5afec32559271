"""Checks for the course's exercises (``notebooks/exercises``): each runs the student's function on
the toy model and the canonical pair, compares it with the package's own computation, and, when
they differ, says which common mistake the answer matches.

A check raises ``ExerciseFailed`` (an ``AssertionError``) with a specific hint, lets a stub's
``NotImplementedError`` through unchanged, and prints one line when the answer is right. The
mistakes each check recognises are listed in ``MISTAKES`` (``tests/test_exercises.py`` plants
each one and checks that its hint comes back).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch

from utils import attribution, patching
from utils.data import CANONICAL_SEED
from utils.hooks import HookedVideoTransformer
from utils.synthetic import render_clip

ATOL = 1e-4  # float32 runs: answers closer than this (relative to the largest value) are the same


class ExerciseFailed(AssertionError):
    """The student's answer differs from the package's; the message says how and what to try."""


@cache
def toy_pair():
    """``(hooked, target class, strike pixels, gutter pixels)``: the toy ViViT and the canonical pair
    (seed ``CANONICAL_SEED``, never used in training), rendered and preprocessed as notebook 00 does."""
    from utils.models import load_model

    loaded = load_model("toy", device="cpu")
    loaded.model.requires_grad_(False)  # no exercise needs gradients: cached activations mix freely with weights
    hooked = HookedVideoTransformer(loaded)
    with torch.inference_mode():
        px = [loaded.preprocess(render_clip("bowling", CANONICAL_SEED, o, num_frames=loaded.num_frames,
                                            size=loaded.image_size)) for o in ("strike", "gutter")]
    return hooked, loaded.target_index, px[0], px[1]


def full_run(pixels: torch.Tensor):
    """A run of the toy model caching every activation."""
    hooked = toy_pair()[0]
    return hooked.run(pixels, names=hooked.hook_names())


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, dict):
        raise ExerciseFailed(f"{what} returned a dict; return a tensor")
    try:
        return torch.as_tensor(x, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ExerciseFailed(f"{what} returned {type(x).__name__}, which is not a tensor of numbers ({err})") from None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=ATOL * (1 + float(b.abs().max())), rtol=0))


def _judge(name: str, got: torch.Tensor, want: torch.Tensor, mistakes: dict[str, tuple[torch.Tensor, str]]) -> None:
    if _close(got, want):
        print(f"{name}: correct")
        return
    for mistake, (value, hint) in mistakes.items():
        if _close(got, value):
            raise ExerciseFailed(f"{name}: not yet. It looks like {mistake}. Hint: {hint}")
    if got.shape != want.shape:
        raise ExerciseFailed(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    err = float((got - want).abs().max())
    raise ExerciseFailed(f"{name}: not yet: off by up to {err:.4g} from the package's answer, and it matches no "
                         f"common mistake; print both and compare layer by layer")


# ---------------------------------------------------------------------------- exercise 1: readout logit lens
def _lens(hooked, run, target, final_norm: bool, where: str = "readout") -> torch.Tensor:
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    x = torch.stack([run[n][0] for n in names])  # (layer, tokens, d)
    x = x[:, 0] if where == "readout" else x.mean(1)
    with torch.inference_mode():
        return hooked.adapter.classifier(hooked.final_norm(x) if final_norm else x)[:, target].double()


def lens_mistakes(hooked, run, target, want: torch.Tensor) -> dict[str, tuple[torch.Tensor, str]]:
    return {
        "the final LayerNorm was left out": (
            _lens(hooked, run, target, final_norm=False),
            "the classifier reads the *normalised* residual: apply hooked.final_norm before hooked.adapter.classifier"),
        "the mean over all tokens was read instead of the CLS token": (
            _lens(hooked, run, target, final_norm=True, where="mean"),
            "ViViT's classifier reads token 0, the CLS token (hooked.readout_tokens picks it)"),
        "the embedding (layer 0) was left out": (
            want[1:],
            "layer 0 is the embedding (hook_embed): n_layers + 1 values in all"),
    }


def check_readout_logit_lens(fn: Callable) -> None:
    """Exercise 1: ``fn(hooked, run, target)`` -> the target logit of the readout after the
    embedding and after each block, ``(n_layers + 1,)``."""
    hooked, target, strike, _ = toy_pair()
    run = full_run(strike)
    got = _as_tensor(fn(hooked, run, target), "readout_logit_lens")
    want = torch.tensor(attribution.logit_lens_readout(hooked, run, target).logit.to_numpy(), dtype=torch.float64)
    _judge("readout_logit_lens", got, want, lens_mistakes(hooked, run, target, want))


# ---------------------------------------------------------------------------- exercise 2: DLA, frozen LayerNorm
def _dla(hooked, run, target, centre: bool = True, gamma: bool = True, frozen: bool = True) -> torch.Tensor:
    L = hooked.n_layers
    final = run[f"blocks.{L - 1}.hook_resid_post"][0, 0]
    ln, w = hooked.final_norm, hooked.W_U[:, target]
    sigma = torch.sqrt(final.var(unbiased=False) + ln.eps)
    out = torch.zeros(L, 2, dtype=torch.float64)
    with torch.inference_mode():
        for layer in range(L):
            for j, hook in enumerate(("hook_attn_out", "hook_mlp_out")):
                c = run[f"blocks.{layer}.{hook}"][0, 0]
                if not frozen:
                    out[layer, j] = float(hooked.adapter.classifier(ln(c))[target])
                    continue
                c = c - c.mean() if centre else c
                out[layer, j] = float((c / sigma * (ln.weight if gamma else 1)) @ w)
    return out


def dla_mistakes(hooked, run, target) -> dict[str, tuple[torch.Tensor, str]]:
    return {
        "the LayerNorm was applied to each component on its own": (
            _dla(hooked, run, target, frozen=False),
            "a LayerNorm of a sum is not the sum of LayerNorms: divide every component by the *final* residual's "
            "scale sigma (frozen), then multiply by the LayerNorm's weight and the classifier's column"),
        "the components were not centred": (
            _dla(hooked, run, target, centre=False),
            "LayerNorm subtracts the mean over d_model: subtract each component's own mean before projecting"),
        "the LayerNorm's weight (gamma) was left out": (
            _dla(hooked, run, target, gamma=False),
            "after dividing by sigma, multiply elementwise by hooked.final_norm.weight"),
    }


def check_component_dla(fn: Callable) -> None:
    """Exercise 2: ``fn(hooked, run, target)`` -> ``(n_layers, 2)``: the direct logit attribution of
    each layer's attention output (column 0) and MLP output (column 1), final LayerNorm frozen."""
    hooked, target, strike, _ = toy_pair()
    run = full_run(strike)
    got = _as_tensor(fn(hooked, run, target), "component_dla")
    df = attribution.direct_logit_attribution(hooked, run, target, per_head=False)
    by = df.set_index(["component", "layer"]).logit
    want = torch.tensor([[by[(c, layer)] for c in ("attention", "mlp")] for layer in range(hooked.n_layers)],
                        dtype=torch.float64)
    _judge("component_dla", got, want, dla_mistakes(hooked, run, target))


# ---------------------------------------------------------------------------- exercise 3: patching and recovery
def patched_final(hooked, into: torch.Tensor, source_run, layer: int, hook: str) -> torch.Tensor:
    """The final residual of a run on ``into`` with ``blocks.{layer}.{hook}`` replaced by ``source_run``'s."""
    name, final = f"blocks.{layer}.{hook}", f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    return hooked.run(into, names={final}, hooks={name: lambda act, _n: source_run[name]})[final][0]


def check_patch_component(fn: Callable, layer: int = 6, hook: str = "hook_attn_out") -> None:
    """Exercise 3a: ``fn(hooked, source_run, target_pixels, layer, hook)`` -> the final residual
    ``(tokens, d_model)`` of the target clip with ``blocks.{layer}.{hook}`` taken from the source run."""
    hooked, _, strike, gutter = toy_pair()
    source, target = full_run(strike), full_run(gutter)
    got = _as_tensor(fn(hooked, source, gutter, layer, hook), "patch_component")
    want = patched_final(hooked, gutter, source, layer, hook).double()
    mistakes = {"the patch went the other way (target into source)": (
        patched_final(hooked, strike, target, layer, hook).double(),
        "run the *target* clip (gutter) and replace its activation by the *source* run's (strike)")}
    _judge("patch_component", got, want, mistakes)


def _recovery_variants(patched, target, source) -> dict[str, dict]:
    d_patch, d_full = (patched - target).double(), (source - target).double()
    right = patching.recovery(patched, target, source)
    return {
        "the notebook measure took the norm of the mean instead of the mean of the norms": {
            **right, "recovery_notebook_pct": 100 * float(d_patch.mean(0).norm() / d_full.mean(0).norm())},
        "the projection was divided by the norm, not the squared norm": {
            **right, "recovery_projection_pct": 100 * float((d_patch * d_full).sum() / d_full.norm())},
        "eq. 2 lost its sign": {**right, "recovery_eq2_pct": abs(right["recovery_eq2_pct"])},
    }


RECOVERY_HINTS = {
    "the notebook measure took the norm of the mean instead of the mean of the norms":
        "the author's measure is mean over tokens of ||d_patch[t]|| divided by mean over tokens of ||d_full[t]||",
    "the projection was divided by the norm, not the squared norm":
        "project onto the unit direction and divide by its length: d_patch . d_full / ||d_full||^2",
    "eq. 2 lost its sign": "eq. 2 is ||d_patch|| / ||d_full|| times the sign of d_patch . d_full",
}
KEYS = ("recovery_notebook_pct", "recovery_eq2_pct", "recovery_projection_pct")


def check_recovery_measures(fn: Callable) -> None:
    """Exercise 3b: ``fn(patched, target, source)`` (three ``(tokens, d_model)`` final residuals)
    -> a dict with the three recovery measures, in percent."""
    hooked, _, strike, gutter = toy_pair()
    source, target = full_run(strike), full_run(gutter)
    final = f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    # layer 0's MLP: its patch moves the final residual *away* from the source (eq. 2 < 0), so a lost sign shows
    patched = patched_final(hooked, gutter, source, 0, "hook_mlp_out")
    got = fn(patched, target[final][0], source[final][0])
    if not isinstance(got, dict) or set(KEYS) - set(got):
        raise ExerciseFailed(f"recovery_measures must return a dict with the keys {KEYS}; got {got!r}")
    as_vec = lambda d: torch.tensor([float(d[k]) for k in KEYS], dtype=torch.float64)  # noqa: E731
    want = patching.recovery(patched, target[final][0], source[final][0])
    variants = _recovery_variants(patched, target[final][0], source[final][0])
    _judge("recovery_measures", as_vec(got), as_vec(want),
           {m: (as_vec(v), RECOVERY_HINTS[m]) for m, v in variants.items()})


# ---------------------------------------------------------------------------- exercise 4: attribution patching
def readout_metric(hooked, source_run, target_run):
    """The readout projection (``utils.atp.readout_projection``) of the pair: 0 on the target run,
    100 on the source run, linear in the final residual."""
    from utils import atp

    final = f"blocks.{hooked.n_layers - 1}.hook_resid_post"
    return atp.readout_projection(hooked, source_run[final], target_run[final])


def _head_atp(hooked, diff_run, grad_pixels, metric, cls_only: bool = False, times_diff: bool = True,
              minus_run=None) -> torch.Tensor:
    """Per-head AtP ``(layer, head)`` with the gradient taken on ``grad_pixels``' run and the
    difference ``diff_run - minus_run`` (the common mistakes vary these)."""
    L = hooked.n_layers
    sites = [f"blocks.{la}.attn.hook_z" for la in range(L)]
    final = f"blocks.{L - 1}.hook_resid_post"
    with torch.enable_grad():
        x0 = hooked.run(grad_pixels, names={"blocks.0.hook_resid_pre"})["blocks.0.hook_resid_pre"]
        run = hooked.run(start=("blocks.0.hook_resid_pre", x0.clone().requires_grad_(True)),
                         names=set(sites) | {final}, grad=True)
        grads = torch.autograd.grad(metric(run[final]).sum(), [run[s] for s in sites])
    out = torch.zeros(L, hooked.n_heads, dtype=torch.float64)
    for la, (site, g) in enumerate(zip(sites, grads, strict=True)):
        d = (diff_run[site][0] - minus_run[site][0]).double() if times_diff else torch.ones_like(g[0]).double()
        prod = d * g[0].double()  # (tokens, head, d_head)
        out[la] = (prod[:1] if cls_only else prod).sum(dim=(0, 2))
    return out


def check_head_attribution(fn: Callable) -> None:
    """Exercise 4: ``fn(hooked, source_run, target_run, target_pixels, metric)`` -> AtP of every
    head, ``(n_layers, n_heads)``: ``sum over tokens and d_head of (z_source - z_target) * dM/dz`` at
    the target run."""
    from utils import atp
    from utils.patching import head_patches

    hooked, _, strike, gutter = toy_pair()
    source, target = full_run(strike), full_run(gutter)
    with torch.inference_mode(False):  # gradients, even when the caller runs under inference mode
        metric = readout_metric(hooked, source, target)
        got = _as_tensor(fn(hooked, source, target, gutter, metric), "head_attribution")
        want = atp.atp(hooked, head_patches(hooked, source.cache), metric,
                       target_cache={"blocks.0.hook_resid_pre": target["blocks.0.hook_resid_pre"]})
        want = want.reshape(hooked.n_layers, hooked.n_heads)
        mistakes = {
            "the difference was taken the other way (target minus source)": (
                -want, "AtP estimates patching the *source* value in: (z_source - z_target) . gradient"),
            "the gradient was taken on the source run": (
                _head_atp(hooked, source, strike, metric, minus_run=target),
                "linearise around the run being patched: the gradient of the metric on the *target* (gutter) run"),
            "the gradient was not multiplied by the activation difference": (
                _head_atp(hooked, source, gutter, metric, times_diff=False),
                "a gradient says how sensitive the metric is; the estimate is that sensitivity times the change "
                "(z_source - z_target), summed"),
            "only the CLS token's row was summed": (
                _head_atp(hooked, source, gutter, metric, cls_only=True, minus_run=target),
                "a head writes to every token, and every token can reach the readout through later attention: sum "
                "over all tokens"),
        }
    _judge("head_attribution", got, want, mistakes)


MISTAKES = {  # check -> the mistakes it recognises (tests/test_exercises.py plants each)
    "check_readout_logit_lens": ("the final LayerNorm was left out",
                                 "the mean over all tokens was read instead of the CLS token",
                                 "the embedding (layer 0) was left out"),
    "check_component_dla": ("the LayerNorm was applied to each component on its own",
                            "the components were not centred", "the LayerNorm's weight (gamma) was left out"),
    "check_patch_component": ("the patch went the other way (target into source)",),
    "check_recovery_measures": tuple(RECOVERY_HINTS),
    "check_head_attribution": ("the difference was taken the other way (target minus source)",
                               "the gradient was taken on the source run",
                               "the gradient was not multiplied by the activation difference",
                               "only the CLS token's row was summed"),
}
