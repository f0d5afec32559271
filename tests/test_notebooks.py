"""The notebooks: stored clean, parameterised, and run end to end on the toy profile."""

import ast
import json

import pandas as pd
import papermill
import pytest

from utils import paths
from utils.runner import run_all

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_exist_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_one_literal_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, f"{path.name} has outputs"
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(params[0]["source"]))
    for stmt in tree.body:  # literals only: papermill replaces this cell
        assert isinstance(stmt, ast.Assign), ast.dump(stmt)
        ast.literal_eval(stmt.value)  # raises on anything but a literal
    src = "".join(params[0]["source"])
    assert all("#" in line for line in src.splitlines() if "=" in line), "comment every parameter"
    declared = papermill.inspect_notebook(str(path))  # papermill must parse every line
    assert set(declared) == {t.targets[0].id for t in tree.body}
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"][0].startswith("# ")
    imported = {a.asname or a.name for c in code for node in ast.walk(ast.parse("".join(c["source"])))
                if isinstance(node, ast.ImportFrom | ast.Import) for a in node.names}
    assert not imported & set(declared), f"parameters shadow imports: {imported & set(declared)}"
    text = "".join("".join(c["source"]) for c in code)
    assert "sys.path" not in text and "os.chdir" not in text


@pytest.fixture(scope="session")
def toy_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    final = run_all(NOTEBOOKS, "toy", html=False, figures_root=root / "figures",
                    data_root=root / "data", build_root=root / "build")
    return final


@pytest.mark.slow
def test_toy_run_produces_every_figure_and_table(toy_outputs):
    names = {p.name for p in toy_outputs.iterdir()}
    for stem in ("fig0_canonical_pair", "fig1_attention_L10H8", "fig2_logit_lens", "fig3_token_attribution",
                 "fig4_cls_attention_L9H8", "fig5_delta_norms", "fig6_probe_accuracy", "fig7_patching"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    for stem in ("table1_ablation_strike", "table2_ablation_gutter", "table3_patching"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= names, stem
    assert not any(n.endswith(".partial") for n in names)


@pytest.mark.slow
def test_toy_tables_hold_the_recorded_numbers(toy_outputs):
    t3 = pd.read_csv(toy_outputs / "table3_patching.csv")
    assert list(t3.columns[:6]) == ["layer", "component", "recovery_notebook_pct", "recovery_eq2_pct",
                                    "recovery_projection_pct", "delta_target_logit"]
    assert len(t3) == 24 and set(t3.component) == {"attention", "mlp"}
    assert (t3.recovery_notebook_pct >= 0).all()
    assert (t3.recovery_projection_pct.abs() <= t3.recovery_eq2_pct.abs() + 1e-4).all()  # |cos| <= 1
    for name in ("table1_ablation_strike", "table2_ablation_gutter"):
        t = pd.read_csv(toy_outputs / f"{name}.csv")
        assert set(t["mode"]) == {"faithful", "corrected", "random control"}
        assert (t.n_ablated == 28).all()
    pred = pd.read_csv(toy_outputs / "table0_predictions.csv")
    assert len(pred) == 2 * (1 + 32 + 16)
    assert pred[pred.clip_id.str.startswith("canonical")].is_target.all()
    dla = pd.read_csv(toy_outputs / "fig2c_dla.csv")
    lens = pd.read_csv(toy_outputs / "fig2_logit_lens.csv")
    for run in ("strike", "gutter"):
        d = dla[(dla.run == run) & dla.component.isin(["embed", "attention", "mlp", "constant"])]
        final = lens[(lens.run == run) & (lens.layer == 12)].logit.item()
        assert d.logit.sum() == pytest.approx(final, abs=2e-3)  # 4-decimal CSVs


@pytest.mark.slow
def test_rerun_reproduces_the_tables_byte_for_byte(toy_outputs, tmp_path):
    """A second run (data prep, delta norms, patching) into fresh folders: identical tables."""
    rerun = run_all([NOTEBOOKS[0], NOTEBOOKS[3], NOTEBOOKS[4]], "toy", html=False,
                    figures_root=tmp_path / "figures", data_root=tmp_path / "data", build_root=tmp_path / "build")
    for name in ("table3_patching.csv", "table3_patching.md", "table3_patching.tex", "fig5_delta_norms.csv",
                 "fig6_probe_accuracy.csv", "table0_predictions.csv"):
        assert (rerun / name).read_bytes() == (toy_outputs / name).read_bytes(), name


def test_committed_toy_tables_match_the_notebooks_stable_columns():
    t3 = pd.read_csv(paths.FIGURES_DIR / "toy" / "table3_patching.csv")
    assert {"layer", "component", "recovery_notebook_pct", "recovery_eq2_pct", "recovery_projection_pct",
            "delta_target_logit"} <= set(t3.columns)
