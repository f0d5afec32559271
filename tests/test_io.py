import matplotlib.pyplot as plt
import pandas as pd
import pytest

from utils.io import atomic_path, ensure_writable_dir, save_figure, save_table


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a ta")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new but incomplete")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_tables_and_figures_are_byte_identical_when_rewritten(tmp_path):
    df = pd.DataFrame({"layer": [0, 1], "component": ["attention", "mlp"], "value": [1 / 3, 2 / 3]})
    a = {k: p.read_bytes() for k, p in save_table(df, tmp_path, "t", caption="c").items()}
    b = {k: p.read_bytes() for k, p in save_table(df, tmp_path, "t", caption="c").items()}
    assert a == b and set(a) == {"csv", "md", "tex"}
    assert b"\\toprule" in a["tex"] and b"0.3333" in a["csv"]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    f1 = {k: p.read_bytes() for k, p in save_figure(fig, tmp_path, "f").items()}
    f2 = {k: p.read_bytes() for k, p in save_figure(fig, tmp_path, "f").items()}
    assert f1 == f2 and set(f1) == {"png", "pdf"}


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot create output folder .*a_file/figures"):
        ensure_writable_dir(blocker / "figures")
