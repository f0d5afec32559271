import pandas as pd
import pytest
import torch

from utils.attribution import (
    direct_logit_attribution,
    dla_names,
    dla_total,
    logit_lens_readout,
    logit_lens_time_steps,
    notebook_token_score,
    token_dla,
    token_dla_names,
)


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_dla_terms_sum_to_the_logit(which, request):
    hooked = request.getfixturevalue(f"{which}_hooked")
    x = request.getfixturevalue("tiny_pixels")[:1] if which == "tiny" else request.getfixturevalue("toy_pair")[0]
    run = hooked.run(x, names=dla_names(hooked))
    for target in range(run.logits.shape[-1]):
        df = direct_logit_attribution(hooked, run, target)
        logit = float(run.logits[0, target])
        assert abs(dla_total(df) - logit) < 1e-4 * max(1, abs(logit))
        for layer in range(hooked.n_layers):  # heads + bias = the layer's attention term
            heads = df[(df.layer == layer) & df.component.isin(["attention_head", "attention_bias"])].logit.sum()
            whole = df[(df.layer == layer) & (df.component == "attention")].logit.item()
            assert heads == pytest.approx(whole, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("which", ["tiny", "toy"])
def test_token_dla_sums_to_the_logit(which, request):
    hooked = request.getfixturevalue(f"{which}_hooked")
    x = request.getfixturevalue("tiny_pixels")[:1] if which == "tiny" else request.getfixturevalue("toy_pair")[1]
    run = hooked.run(x, names=token_dla_names(hooked))
    t = token_dla(hooked, run, 0)
    assert t["tokens"].shape == (hooked.n_tokens,)
    assert abs(t["total"] - t["logit"]) < 1e-4 * max(1, abs(t["logit"]))


def test_logit_lens_ends_at_the_models_logit(toy_hooked, toy_pair):
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(12)]
    run = toy_hooked.run(toy_pair[0], names=names)
    lens = logit_lens_readout(toy_hooked, run, 0)
    assert len(lens) == 13 and lens.layer.tolist() == list(range(13))
    assert lens.logit.iloc[-1] == pytest.approx(float(run.logits[0, 0]), abs=1e-4)
    frames = logit_lens_time_steps(toy_hooked, run, 0)
    assert frames.shape == (13, 8)


def test_notebook_score_is_token_dot_classifier_row(toy_hooked, toy_pair):
    run = toy_hooked.run(toy_pair[0], names={"blocks.11.hook_resid_post"})
    s = notebook_token_score(toy_hooked, run, 0)
    with torch.no_grad():
        want = run["blocks.11.hook_resid_post"][0, 1:] @ toy_hooked.model.classifier.weight[0]
    torch.testing.assert_close(s, want)
    assert s.shape == (288,)


def test_residual_ig_is_complete_and_its_gap_is_the_models(tiny_hooked, tiny_pixels):
    """Integrated gradients at the last block's input add up to logit(x) - logit(baseline), and
    that gap is what the model gives when the patch tokens are set to their mean by a hook."""
    from utils.attribution import check_completeness, residual_ig, residual_ig_names

    h = tiny_hooked
    site = residual_ig_names(h)[0]
    run = h.run(tiny_pixels[:1], names=residual_ig_names(h))
    ig = residual_ig(h, run, 1, steps=64)
    assert ig["tokens"].shape == (h.n_tokens - 1,)
    assert ig["total"] == pytest.approx(float(ig["tokens"].sum()))

    def to_mean(x, _name):  # (batch, tokens, d_model)
        x = x.clone()
        x[:, 1:] = x[:, 1:].mean(1, keepdim=True)
        return x

    clean = float(h.run(tiny_pixels[:1]).logits[0, 1])
    baseline = float(h.run(tiny_pixels[:1], hooks={site: to_mean}).logits[0, 1])
    assert ig["logit"] == pytest.approx(clean, abs=1e-5)
    assert ig["gap"] == pytest.approx(clean - baseline, abs=1e-5)
    assert abs(ig["gap"]) > 1e-3  # a real gap to explain
    assert abs(ig["total"] - ig["gap"]) < 1e-3 * abs(ig["gap"]) + 1e-5
    coarse = residual_ig(h, run, 1, steps=2)
    assert abs(coarse["total"] - coarse["gap"]) > 10 * abs(ig["total"] - ig["gap"])  # error falls with steps
    table = pd.DataFrame([{"ig_total": ig["total"], "gap": ig["gap"]}])
    assert check_completeness(table).tolerance.iloc[0] > 0
    with pytest.raises(AssertionError, match="completeness"):
        check_completeness(pd.DataFrame([{"ig_total": ig["total"] + 0.1, "gap": ig["gap"]}]))


def test_input_ig_is_complete(tiny_hooked, tiny_pixels):
    from utils.attribution import integrated_gradients

    ig = integrated_gradients(tiny_hooked, tiny_pixels[:1], 1, steps=64)
    zero = float(tiny_hooked.run(torch.zeros_like(tiny_pixels[:1])).logits[0, 1])
    assert ig["gap"] == pytest.approx(float(tiny_hooked.run(tiny_pixels[:1]).logits[0, 1]) - zero, abs=1e-5)
    assert ig["tokens"].shape == (tiny_hooked.n_tokens - 1,)
    assert abs(ig["total"] - ig["gap"]) < 2e-3 * abs(ig["gap"]) + 1e-5


def test_ig_quadrature_is_the_midpoint_rule():
    """For f(x) = sum x_i^3 along the path from 0, IG_i = x_i^3 exactly; the midpoint rule with
    n nodes gives x_i^3 (1 - 1/(4 n^2)), whatever the batching of the nodes."""
    from utils.attribution import _integrate

    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)  # (1, 3)
    for steps, batch in ((8, 3), (5, 8)):
        ig = _integrate(lambda xs: (xs**3).sum((-1, -2)), x, torch.zeros_like(x), steps, batch)
        torch.testing.assert_close(ig, x**3 * (1 - 1 / (4 * steps**2)))
