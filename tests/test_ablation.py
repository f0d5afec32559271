import numpy as np
import pytest
import torch

from utils.ablation import (
    ablate_embedding_tokens,
    ablated_logits,
    before_after,
    component_ablation,
    n_top,
    random_ablation_deltas,
    random_token_sets,
    reference_means,
    top_fraction_ablation,
    top_vs_random,
    zero_tubelets,
)
from utils.attribution import token_dla_names


def test_ten_percent_of_paper_patches_is_313():
    assert n_top(3136) == 313 and n_top(288) == 28


def test_faithful_hits_the_time_step_as_frame_corrected_hits_both_frames(toy_hooked):
    px = torch.ones(1, 16, 3, 96, 96)
    tok = toy_hooked.token_index(5, 2, 3)  # tubelet frames 10-11, rows 32-47, cols 48-63
    faithful = zero_tubelets(toy_hooked, px, [tok], "faithful")
    corrected = zero_tubelets(toy_hooked, px, [tok], "corrected")
    zero_f = (faithful == 0).all(2)[0].nonzero()  # (frame, row, col) of zeroed pixels
    zero_c = (corrected == 0).all(2)[0].nonzero()
    assert set(zero_f[:, 0].tolist()) == {5}  # frame idx // patches-per-step = 5 (wrong frame)
    assert set(zero_c[:, 0].tolist()) == {10, 11}
    for z in (zero_f, zero_c):
        assert set(z[:, 1].tolist()) == set(range(32, 48)) and set(z[:, 2].tolist()) == set(range(48, 64))
    assert len(zero_f) == 256 and len(zero_c) == 512


def test_top_fraction_ablation_table(toy_hooked, toy_pair):
    res = top_fraction_ablation(toy_hooked, toy_pair[0], 0, mode="corrected")
    t = res["table"]
    assert res["n_ablated"] == 28 and len(set(res["tokens"])) == 28
    assert list(t["rank"]) == [1, 2, 3, 4, 5] and (t["mode"] == "corrected").all()
    assert t.logit_before.is_monotonic_decreasing
    torch.testing.assert_close(torch.tensor(t.change.values), torch.tensor((t.logit_after - t.logit_before).values))
    with pytest.raises(ValueError, match="mode"):
        top_fraction_ablation(toy_hooked, toy_pair[0], 0, mode="sideways")


def test_before_after_layout():
    before = torch.tensor([1.0, 5.0, 3.0])
    df = before_after(before, before - 1, {0: "a", 1: "b", 2: "c"}, k=2)
    assert df["class"].tolist() == ["b", "c"] and df.change.tolist() == [-1.0, -1.0]


def test_zero_ablating_a_component_equals_doing_it_by_hand(tiny_hooked, tiny_pixels):
    df = component_ablation(tiny_hooked, tiny_pixels[:1], 1, how="zero")
    row = df[(df.layer == 1) & (df.component == "mlp")].iloc[0]
    manual = tiny_hooked.run(tiny_pixels[:1], hooks={"blocks.1.hook_mlp_out": lambda x, n: torch.zeros_like(x)})
    assert row.target_logit == pytest.approx(float(manual.logits[0, 1]), abs=1e-5)
    mean = component_ablation(tiny_hooked, tiny_pixels[:1], 1, how="mean", reference_pixels=tiny_pixels, heads=True)
    assert len(mean) == 2 * 3 + 3 * 3
    with pytest.raises(ValueError, match="reference_pixels"):
        component_ablation(tiny_hooked, tiny_pixels[:1], 1, how="mean")


def test_dla_score_ablates_the_top_dla_tokens(toy_hooked, toy_pair):
    from utils.attribution import token_dla

    h, px = toy_hooked, toy_pair[0]
    res = top_fraction_ablation(h, px, 0, mode="corrected", score="dla")
    dla = token_dla(h, h.run(px, names=token_dla_names(h)), 0)["tokens"][1:]  # (patches,)
    want = set((torch.topk(dla, 28).indices + 1).tolist())
    assert set(res["tokens"]) == want and res["n_ablated"] == 28
    assert res["table"].score.eq("dla").all()
    manual = h.run(zero_tubelets(h, px, sorted(want), "corrected")).logits[0]
    torch.testing.assert_close(res["logits_after"], manual)
    notebook = top_fraction_ablation(h, px, 0, mode="corrected", score="notebook", run=res["run"])
    assert set(notebook["tokens"]) != want  # the two scores pick different patches
    with pytest.raises(ValueError, match="score"):
        top_fraction_ablation(h, px, 0, score="saliency")


def test_ablate_embedding_tokens_matches_a_forward_hook_on_the_hf_model(tiny, tiny_hooked, tiny_pixels):
    px = tiny_pixels[:1]
    tokens = [2, 5]
    for how in ("zero", "mean"):
        def replace(module, inputs, out, how=how):  # (batch, tokens, d_model)
            out = out.clone()
            out[:, tokens] = 0.0 if how == "zero" else out[:, 1:].mean(1, keepdim=True)
            return out

        handle = tiny.model.vivit.embeddings.register_forward_hook(replace)
        try:
            with torch.no_grad():
                want = tiny.model(pixel_values=px).logits[0]
        finally:
            handle.remove()
        got = ablate_embedding_tokens(tiny_hooked, px, tokens, how=how)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(got, tiny_hooked.run(px).logits[0])  # it did change something
    torch.testing.assert_close(ablate_embedding_tokens(tiny_hooked, px, []), tiny_hooked.run(px).logits[0])
    with pytest.raises(ValueError, match="how"):
        ablate_embedding_tokens(tiny_hooked, px, tokens, how="noise")


def test_random_draws_are_distinct_patch_sets_and_their_deltas_are_exact(tiny_hooked, tiny_pixels):
    h, px = tiny_hooked, tiny_pixels[:1]
    sets = random_token_sets(h, 3, 20, seed=4)
    assert len(sets) == 20 and sets == random_token_sets(h, 3, 20, seed=4)
    assert all(len(set(s)) == 3 and min(s) >= 1 and max(s) < h.n_tokens for s in sets)
    assert len({tuple(sorted(s)) for s in sets}) > 1
    deltas = random_ablation_deltas(h, px, 1, 3, n_draws=20, seed=4, batch_size=7)
    before = float(h.run(px).logits[0, 1])
    for k in (0, 13):
        manual = float(h.run(zero_tubelets(h, px, sets[k], "corrected")).logits[0, 1]) - before
        assert deltas[k] == pytest.approx(manual, abs=1e-5)


def test_top_vs_random_ranks_the_top_set_among_the_draws(toy_hooked, toy_pair):
    h, px = toy_hooked, toy_pair[0]
    t = top_vs_random(h, px, 0, n_draws=20, seed=0)
    assert t.score.tolist() == ["notebook", "dla"] and (t.n_ablated == 28).all()
    rand = random_ablation_deltas(h, px, 0, 28, n_draws=20, seed=0)
    for r in t.itertuples():
        single = top_fraction_ablation(h, px, 0, mode="corrected", score=r.score)
        top = float(single["logits_after"][0] - single["logits_before"][0])
        assert r.top_delta == pytest.approx(top, abs=1e-5)
        assert r.share_random_lower == pytest.approx(float((rand <= top).mean()))
        assert r.rank == 1 + int((rand < top).sum())
        # the draws run batched in top_vs_random and again here: float32 logits agree to ~1e-5, not
        # 1e-6, on every machine (CI saw 1.4e-6), as for top_delta above
        assert r.random_median == pytest.approx(float(np.median(rand)), abs=1e-5)


def test_component_ablation_of_some_layers_is_those_rows_of_all_layers(tiny_hooked, tiny_pixels):
    """``layers`` keeps the rows of those layers (same numbers); precomputed ``reference``
    means equal ``reference_pixels``; the means are those of single-clip runs."""
    px = tiny_pixels[:1]
    full = component_ablation(tiny_hooked, px, 1, how="mean", reference_pixels=tiny_pixels, heads=True)
    part = component_ablation(tiny_hooked, px, 1, how="mean", reference_pixels=tiny_pixels, heads=True, layers=[2])
    assert (part.layer == 2).all() and len(part) == 2 + 3
    want = full[full.layer == 2].reset_index(drop=True)
    np.testing.assert_allclose(part.target_logit, want.target_logit, rtol=0, atol=1e-6)
    names = ["blocks.2.hook_mlp_out", "blocks.0.attn.hook_z"]
    means = reference_means(tiny_hooked, tiny_pixels, names, shared=(px,))
    for n in names:
        single = torch.stack([tiny_hooked.run(tiny_pixels[i : i + 1], names={n})[n][0] for i in range(2)])
        torch.testing.assert_close(means[n], single.mean(0), rtol=1e-6, atol=1e-6)
    again = component_ablation(tiny_hooked, px, 1, how="mean", layers=[2], heads=True,
                               reference=reference_means(tiny_hooked, tiny_pixels, [
                                   "blocks.2.hook_attn_out", "blocks.2.hook_mlp_out", "blocks.2.attn.hook_z"]))
    np.testing.assert_allclose(again.target_logit, part.target_logit, rtol=0, atol=0)


def test_ablated_logits_are_a_plain_run_and_random_draws_one_at_a_time_agree(tiny_hooked, tiny_pixels):
    """``ablated_logits`` is the run of the zeroed pixels (shared through ``utils.memo``);
    draws one at a time (paper scale's default) equal batched draws."""
    h, px = tiny_hooked, tiny_pixels[:1]
    got = ablated_logits(h, px, [3, 1], "corrected")
    torch.testing.assert_close(got, h.run(zero_tubelets(h, px, [1, 3], "corrected")).logits[0], rtol=0, atol=0)
    one = random_ablation_deltas(h, px, 1, 3, n_draws=6, seed=2, batch_size=1)
    many = random_ablation_deltas(h, px, 1, 3, n_draws=6, seed=2, batch_size=6)
    np.testing.assert_allclose(one, many, rtol=0, atol=1e-5)
