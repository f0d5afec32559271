"""The course's exercises (utils.exercises, utils.checks): notebooks built from their sources, the
solutions pass every check, the stubs say "not implemented", and every common mistake a check
knows gets its own hint when a student makes it."""

import re

import pytest
import torch

from utils import checks, exercises

SOURCES = exercises.sources()


def _functions(text: str) -> dict:
    """Run a percent-format exercise script and return its namespace (its checks run too)."""
    namespace: dict = {"__name__": "exercise"}
    exec(compile(text, "exercise", "exec"), namespace)  # noqa: S102 - our own exercise sources
    return namespace


def test_there_are_exercises_and_each_has_stubs():
    assert len(SOURCES) >= 3
    for source in SOURCES:
        text = source.read_text()
        assert text.count(exercises.START) == text.count(exercises.END) >= 1, source.name
        assert re.search(r"\*\*Difficulty\*\*.*\*\*Importance\*\*.*\*\*Time\*\*", text), source.name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_committed_notebooks_are_built_from_the_source(source):
    for path, text in exercises.built(source).items():
        assert path.is_file(), f"{path} is missing: run python -m utils.exercises"
        assert path.read_text() == text, f"{path} is stale: run python -m utils.exercises"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_solution_passes_every_check(source, capsys):
    _functions(exercises.solution_text(source.read_text()))
    out = capsys.readouterr().out
    calls = re.findall(r"^check_\w+\(", source.read_text(), flags=re.M)
    assert len(calls) >= 1 and out.count(": correct") == len(calls), out


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_student_version_fails_with_not_implemented(source):
    with pytest.raises(NotImplementedError, match="is not implemented yet"):
        _functions(exercises.student_text(source.read_text()))


def test_unbalanced_markers_are_named():
    with pytest.raises(ValueError, match="no # END SOLUTION"):
        exercises.student_text("def f():\n    # SOLUTION\n    return 1\n")
    with pytest.raises(ValueError, match="never opened"):
        exercises.student_text("def f():\n    return 1\n    # END SOLUTION\n")


# ---------------------------------------------------------------------------- planted mistakes, as students make them
def lens_without_layernorm(hooked, run, target):
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    return torch.stack([hooked.adapter.classifier(run[n][0, 0])[target] for n in names])


def lens_on_token_mean(hooked, run, target):
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    return torch.stack([hooked.adapter.classifier(hooked.final_norm(run[n][0].mean(0)))[target] for n in names])


def lens_without_embedding(hooked, run, target):
    names = [f"blocks.{i}.hook_resid_post" for i in range(hooked.n_layers)]
    return torch.stack([hooked.adapter.classifier(hooked.final_norm(run[n][0, 0]))[target] for n in names])


def _dla(hooked, run, target, per_component_ln=False, centre=True, gamma=True):
    final = run[f"blocks.{hooked.n_layers - 1}.hook_resid_post"][0, 0]
    sigma = (final.var(unbiased=False) + hooked.final_norm.eps).sqrt()
    out = torch.zeros(hooked.n_layers, 2)
    for layer in range(hooked.n_layers):
        for j, hook in enumerate(("hook_attn_out", "hook_mlp_out")):
            c = run[f"blocks.{layer}.{hook}"][0, 0]
            if per_component_ln:
                out[layer, j] = hooked.adapter.classifier(hooked.final_norm(c))[target]
            else:
                c = c - c.mean() if centre else c
                out[layer, j] = (c / sigma * (hooked.final_norm.weight if gamma else 1)) @ hooked.W_U[:, target]
    return out


def patch_backwards(hooked, source_run, target_pixels, layer, hook):
    """Patches the target's activation into the source clip: the direction reversed."""
    _, _, strike, gutter = checks.toy_pair()
    target_run = checks.full_run(gutter)
    return checks.patched_final(hooked, strike, target_run, layer, hook)


def _recovery(patched, target, source, mistake=""):
    d_patch, d_full = (patched - target).double(), (source - target).double()
    dot = float((d_patch * d_full).sum())
    out = {"recovery_notebook_pct": 100 * float(d_patch.norm(dim=-1).mean() / d_full.norm(dim=-1).mean()),
           "recovery_eq2_pct": 100 * (1 if dot > 0 else -1) * float(d_patch.norm() / d_full.norm()),
           "recovery_projection_pct": 100 * dot / float((d_full * d_full).sum())}
    if mistake == "mean first":
        out["recovery_notebook_pct"] = 100 * float(d_patch.mean(0).norm() / d_full.mean(0).norm())
    if mistake == "norm":
        out["recovery_projection_pct"] = 100 * dot / float(d_full.norm())
    if mistake == "sign":
        out["recovery_eq2_pct"] = abs(out["recovery_eq2_pct"])
    return out


def _head_atp(hooked, source_run, target_run, target_pixels, metric, mistake=""):
    """Exercise 4's answer as students get it wrong: the difference reversed, the gradient on the
    source run, the gradient alone, or the CLS row only."""
    L = hooked.n_layers
    sites = [f"blocks.{la}.attn.hook_z" for la in range(L)]
    final = f"blocks.{L - 1}.hook_resid_post"
    grad_run = source_run if mistake == "source gradient" else target_run
    x0 = grad_run["blocks.0.hook_resid_pre"].clone().requires_grad_(True)
    run = hooked.run(start=("blocks.0.hook_resid_pre", x0), names=set(sites) | {final}, grad=True)
    grads = torch.autograd.grad(metric(run[final]).sum(), [run[s] for s in sites])
    out = torch.zeros(L, hooked.n_heads)
    for la, (site, g) in enumerate(zip(sites, grads, strict=True)):
        diff = source_run[site][0] - target_run[site][0]
        if mistake == "reversed":
            diff = -diff
        if mistake == "gradient only":
            diff = torch.ones_like(diff)
        prod = diff * g[0]
        out[la] = (prod[:1] if mistake == "cls only" else prod).sum(dim=(0, 2))
    return out


PLANTED = [
    (checks.check_readout_logit_lens, lens_without_layernorm, "the final LayerNorm was left out"),
    (checks.check_readout_logit_lens, lens_on_token_mean, "the mean over all tokens was read instead of the CLS"),
    (checks.check_readout_logit_lens, lens_without_embedding, "the embedding (layer 0) was left out"),
    (checks.check_component_dla, lambda h, r, t: _dla(h, r, t, per_component_ln=True), "applied to each component"),
    (checks.check_component_dla, lambda h, r, t: _dla(h, r, t, centre=False), "the components were not centred"),
    (checks.check_component_dla, lambda h, r, t: _dla(h, r, t, gamma=False), "weight (gamma) was left out"),
    (checks.check_patch_component, patch_backwards, "the patch went the other way"),
    (checks.check_recovery_measures, lambda p, t, s: _recovery(p, t, s, "mean first"), "norm of the mean"),
    (checks.check_recovery_measures, lambda p, t, s: _recovery(p, t, s, "norm"), "not the squared norm"),
    (checks.check_recovery_measures, lambda p, t, s: _recovery(p, t, s, "sign"), "eq. 2 lost its sign"),
    (checks.check_head_attribution, lambda *a: _head_atp(*a, mistake="reversed"), "the other way (target minus"),
    (checks.check_head_attribution, lambda *a: _head_atp(*a, mistake="source gradient"), "taken on the source run"),
    (checks.check_head_attribution, lambda *a: _head_atp(*a, mistake="gradient only"), "not multiplied by the"),
    (checks.check_head_attribution, lambda *a: _head_atp(*a, mistake="cls only"), "only the CLS token's row"),
]


@pytest.mark.parametrize("check, planted, says", PLANTED, ids=[p[2][:30] for p in PLANTED])
def test_each_common_mistake_gets_its_hint(check, planted, says):
    with torch.inference_mode(), pytest.raises(checks.ExerciseFailed, match=re.escape(says)) as err:
        check(planted)
    assert "Hint:" in str(err.value)


def test_every_mistake_a_check_knows_is_planted_here():
    planted = {(check.__name__, says) for check, _, says in PLANTED}
    for check, mistakes in checks.MISTAKES.items():
        for mistake in mistakes:
            assert any(c == check and says in mistake for c, says in planted), (check, mistake)


def test_a_wrong_answer_that_matches_no_mistake_is_still_wrong():
    with pytest.raises(checks.ExerciseFailed, match="matches no common mistake"):
        checks.check_readout_logit_lens(lambda h, r, t: lens_without_embedding(h, r, t).new_zeros(h.n_layers + 1))
    with pytest.raises(checks.ExerciseFailed, match="shape"):
        checks.check_component_dla(lambda h, r, t: torch.zeros(3))
