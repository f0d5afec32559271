"""``utils.context``: the automatic lighter settings at paper scale on a CPU."""

from types import SimpleNamespace

import torch

from utils.context import auto_setting, paper_scale_cpu


def fake(tokens: int, d_model: int = 768, device: str = "cpu"):
    return SimpleNamespace(n_tokens=tokens, d_model=d_model, device=torch.device(device))


def test_paper_scale_on_a_cpu_gets_the_light_setting_and_says_so(capsys):
    paper, toy = fake(3137), fake(129, 128)
    assert paper_scale_cpu(paper) and not paper_scale_cpu(toy)
    assert not paper_scale_cpu(fake(3137, device="meta"))  # any accelerator: full settings
    assert auto_setting("draws", -1, 20, 3, toy) == 20
    assert capsys.readouterr().out == ""
    assert auto_setting("draws", -1, 20, 3, paper, "one forward each") == 3
    said = capsys.readouterr().out
    assert "draws = 3 (one forward each)" in said and "set the parameter draws = 20" in said
    assert auto_setting("draws", 7, 20, 3, paper) == 7  # a value given is a value taken
    assert auto_setting("draws", 0, 20, 3, paper) == 0


def test_one_helper_resolves_every_automatic_parameter(capsys):
    from utils.context import AUTO, is_toy

    toy, gpu = fake(129, 128), fake(3137, device="cuda")
    assert auto_setting("n_pairs", AUTO, 20) == 20 and auto_setting("n_pairs", 5, 20) == 5  # a fixed default
    # notebook 08: full for toy, the light value at paper scale, ``other`` for other profiles on a CPU
    off = dict(light=0, other=1, what="AtP")
    assert auto_setting("pairs", AUTO, 8, hooked=toy, profile="toy", **off) == 8
    assert auto_setting("pairs", AUTO, 8, hooked=toy, profile="toy-outcome", **off) == 8  # circuits beside toy's
    assert auto_setting("pairs", AUTO, 8, hooked=toy, profile="toy-videomae", **off) == 1
    assert "profile 'toy-videomae' on a CPU" in capsys.readouterr().out
    assert auto_setting("pairs", AUTO, 8, hooked=fake(3137), profile="paper", **off) == 0
    assert auto_setting("pairs", AUTO, 8, hooked=gpu, profile="paper", **off) == 8  # an accelerator: full
    assert is_toy("toy") and is_toy("toy-outcome") and not is_toy("paper-shape") and not is_toy("toys/folder")


def test_the_seed_spread_gets_null_pairs_as_toy_does():
    """The seed column compares verdicts claim by claim: the seed toys' notebook 09 must run the
    same controls as toy's, so their notebook 00 prepares null pairs too."""
    from utils.context import NULL_PAIR_PROFILES
    from utils.train import SEED_SPREAD

    assert set(NULL_PAIR_PROFILES) == {"toy", *(f"toy-seed{s}" for s in SEED_SPREAD)}
