import pytest
import torch

from utils.ablation import before_after, component_ablation, n_top, top_fraction_ablation, zero_tubelets


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
