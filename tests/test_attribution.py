import pytest
import torch

from utils.attribution import (
    direct_logit_attribution,
    dla_names,
    dla_total,
    logit_lens_cls,
    logit_lens_frames,
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
            heads = df[(df.layer == layer) & df.component.isin(["attn_head", "attn_bias"])].logit.sum()
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
    lens = logit_lens_cls(toy_hooked, run, 0)
    assert len(lens) == 13 and lens.layer.tolist() == list(range(13))
    assert lens.logit.iloc[-1] == pytest.approx(float(run.logits[0, 0]), abs=1e-4)
    frames = logit_lens_frames(toy_hooked, run, 0)
    assert frames.shape == (13, 8)


def test_notebook_score_is_token_dot_classifier_row(toy_hooked, toy_pair):
    run = toy_hooked.run(toy_pair[0], names={"blocks.11.hook_resid_post"})
    s = notebook_token_score(toy_hooked, run, 0)
    with torch.no_grad():
        want = run["blocks.11.hook_resid_post"][0, 1:] @ toy_hooked.model.classifier.weight[0]
    torch.testing.assert_close(s, want)
    assert s.shape == (288,)
