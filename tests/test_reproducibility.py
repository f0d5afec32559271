"""The spread of the toy tables across emulated machines, and the tolerances it sets
(``utils.reproducibility``, ``tests/tolerances.csv``)."""

import numpy as np
import pandas as pd
import pytest

from utils import paths
from utils import reproducibility as R


def write(folder, name, df):
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / f"{name}.csv", index=False, float_format="%.4f")


def test_column_spread_measures_floats_and_counts_other_changes():
    a = pd.DataFrame({"layer": [0, 1], "run": ["s", "g"], "x": [1.0, np.nan], "y": [0.5, 0.25]})
    b = a.assign(x=[1.0003, np.nan], run=["s", "s"])
    got = R.column_spread(a, b)
    assert got["x"] == pytest.approx(3e-4) and got["y"] == 0 and got["layer"] == 0 and got["run"] == 1
    assert R.column_spread(a, a.assign(x=[1.0, 2.0]))["x"] == np.inf  # missing on one side only
    assert R.column_spread(a, a.drop(columns="y")) == {"<shape or columns>": np.inf}


def test_tabulate_takes_the_largest_spread_over_runs_and_sets_the_tolerance(tmp_path):
    committed = tmp_path / "committed"
    base = pd.DataFrame({"layer": [0, 1], "value": [1.0, 2.0], "p": [0.1, 0.2]})
    write(committed, "t", base)
    write(tmp_path / "a", "t", base.assign(value=[1.001, 2.0]))
    write(tmp_path / "b", "t", base.assign(value=[1.0, 1.9995], p=[0.1, 0.2]))
    t = R.tabulate({"a": tmp_path / "a", "b": tmp_path / "b"}, committed).set_index("column")
    assert t.loc["value", "spread"] == pytest.approx(1e-3) and t.loc["value", "spread_b"] == pytest.approx(5e-4)
    assert t.loc["value", "tolerance"] == pytest.approx(R.SAFETY * 1e-3)
    assert t.loc["p", "tolerance"] == R.FLOOR and t.loc["layer", "kind"] == "exact" and t.loc["layer", "tolerance"] == 0


def test_every_committed_float_column_has_a_measured_tolerance():
    tol = R.load_tolerances()
    missing = []
    for csv in sorted((paths.FIGURES_DIR / "toy").glob("*.csv")):
        t = R.read_table(csv)
        missing += [(csv.stem, c) for c in t.columns if R.is_float_column(t, c) and (csv.stem, c) not in tol]
    assert not missing, f"no measured tolerance for {missing[:5]}: run python -m utils.reproducibility measure"
    assert min(tol.values()) >= R.FLOOR


def test_the_readme_states_the_measured_spread():
    text = (paths.REPO_ROOT / "README.md").read_text()
    start, end = text.find(R.README_START), text.find(R.README_END)
    assert 0 <= start < end, "README.md lacks the spread block"
    assert text[start:end + len(R.README_END)] == R.readme_block(), \
        "README's spread table is stale: python -m utils.reproducibility readme"


def test_only_environments_this_cpu_can_run_are_measured(monkeypatch):
    monkeypatch.setattr(R, "cpu_flags", lambda: {"avx", "avx2"})
    monkeypatch.setattr(R, "native_capability", lambda: "DEFAULT")
    assert R.runnable(["native", "isa-avx2", "isa-avx512", "1-thread"]) == ["native", "isa-avx2", "1-thread"]
    monkeypatch.setattr(R, "native_capability", lambda: "AVX2")  # avx2 is then the native run itself
    assert R.runnable(["native", "isa-avx2", "isa-default"]) == ["native", "isa-default"]
