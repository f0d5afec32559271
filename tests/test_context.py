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
