"""The reader's paragraphs of notebooks 01-05 (utils.reading): the words follow the numbers across
their thresholds, the numbers they quote are the ones given, and the paper's values come from
utils.paper."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils import paper
from utils import reading as R


def test_data_reading_states_the_premise_and_where_the_clips_part():
    pred = pd.DataFrame({"clip_id": ["canonical_strike", "canonical_gutter", "pair000_strike", "pair000_gutter"],
                         "outcome": ["strike", "gutter", "strike", "gutter"], "is_target": [True, True, True, False]})
    text = R.data_reading(pred, "bowling", 6, 2)
    assert "3 of 4 prepared clips (gutter 1 of 2, strike 2 of 2)" in text
    assert "the premise fails for 1 clip(s)" in text and "differ from frame 6 (time step 3" in text
    real = R.data_reading(pred.assign(is_target=True), "bowling")
    assert "the premise holds for every clip" in real and "identical up to" not in real


def test_attention_reading_says_whether_the_maps_part_where_the_clips_do():
    n = 288
    parting = R.attention_reading(10, 8, np.array([0.01, 0.02, 0.02, 0.20, 0.25]), 3,
                                  {"strike": 8 / n, "gutter": 6 / n}, n)
    assert "The paper says its CLS attention tracks" in parting  # L10H8 is the paper's head
    assert "the CLS attention of layer 10 head 8 tracks" in R.attention_reading(9, 8, np.zeros(2), None,
                                                                                {"strike": 0.1}, n)
    assert "time step 3" in parting and "part where the clips do" in parting
    assert "different maps" not in parting and "similar maps" in parting  # max 0.25: under SIMILAR_MAP
    assert "peaked on a few patches" in parting and f"{1 / n:.4f}" in parting and "(6.0-8.0x uniform)" in parting
    flat = R.attention_reading(10, 8, np.array([0.05, 0.05, 0.05, 0.06, 0.05]), 3,
                               {"strike": 1.2 / n, "gutter": 1.1 / n}, n)
    assert "nothing here says the head watches the outcome" in flat and "nearly the same map" in flat
    assert "close to uniform" in flat and "(1.1-1.2x uniform)" in flat
    assert "(3.0x uniform)" in R.attention_reading(10, 8, np.zeros(2), None, {"strike": 3 / n, "gutter": 3 / n}, n)
    real = R.attention_reading(10, 8, np.array([0.5, 0.6]), None, {"strike": 0.01, "gutter": 0.01}, n, untrained=True)
    assert "different maps" in real and "first differ" not in real and R.UNTRAINED in real


def _lens(first_top: dict, final: dict, n_layers: int = 12) -> pd.DataFrame:
    """A logit lens whose target ranks top from ``first_top[run]`` on (None: never)."""
    rows = []
    for run, first in first_top.items():
        for layer in range(n_layers + 1):
            top = first is not None and layer >= first
            rows.append({"run": run, "layer": layer, "logit": final[run] if layer == n_layers else 0.1 * layer,
                         "rank": 0 if top else 3})
    return pd.DataFrame(rows)


def test_logit_lens_reading_compares_the_depth_with_the_papers():
    dla = pd.DataFrame({"run": ["strike"] * 5 + ["gutter"], "component": ["mlp", "attention", "mlp", "mlp", "embed",
                                                                              "mlp"],
                        "layer": [11, 10, 9, 3, -1, 11], "logit": [2.5, -1.25, 0.5, 0.1, 9.0, 8.0]})
    comps = ["attention", "mlp"]  # the embedding's and the gutter run's larger terms are not quoted
    late = R.logit_lens_reading("bowling", 12, _lens({"strike": 10, "gutter": 11}, {"strike": 7.5, "gutter": 7.25}),
                                dla, comps, 0.9, 288)
    assert "at layer 10 (strike)" in late and "as late as" in late and f"layer {paper.LENS_RISES_FROM}" in late
    assert "mlp 11 (+2.50), attention 10 (-1.25), mlp 9 (+0.50)" in late and "7.50 and 7.25" in late
    assert "a fair proxy" in late
    early = R.logit_lens_reading("bowling", 12, _lens({"strike": 2, "gutter": None}, {"strike": 1.0, "gutter": 0.5}),
                                 dla, comps, -0.8, 288)
    assert "earlier than" in early and "never (gutter)" in early and "anti-correlated" in early


def _deltas(norms):
    layers = list(range(-1, len(norms) - 1))
    return pd.DataFrame({"layer": layers, "mean_token_norm": norms, "relative": np.linspace(0.01, 0.5, len(norms))})


def test_delta_norms_reading_measures_the_cascade_against_the_papers_growth():
    probes = pd.DataFrame({"probe": ["two CLS vectors (paper)"] * 3 + ["CLS, pairs held out"] * 3,
                           "scored_on": ["its own 2 training vectors"] * 3 + ["held-out pairs"] * 3,
                           "layer": [0, 1, 2] * 2, "accuracy": [1.0, 1.0, 1.0, 0.5, 0.55, 0.8]})
    growth = paper.FIG5[11] / paper.FIG5[paper.GROWTH_FROM]
    norms = [0.1] + [1.0] * 6 + [1.0 * growth * 1.1] * 6  # embedding, layers 0-11: x(1.1 growth) from layer 5
    text = R.delta_norms_reading(_deltas(norms), probes, 12)
    assert "grows as the paper's does" in text and f"x{growth * 1.1:.2f} from layer 5" in text
    assert "At the embedding it is 0.100" in text
    assert "here so do: two CLS vectors (paper)" in text and "CLS, pairs held out" in text
    assert "50% at layer 0, 80% at best (layer 2)" in text and ".." not in text
    weak = R.delta_norms_reading(_deltas([0.1] + [1.0] * 6 + [1.5] * 6), probes[probes.accuracy < 1], 12,
                                 paper_profile=True)
    assert "less than the paper's" in weak and "none of ours does" in weak and "embedding" not in weak


def test_patching_reading_counts_where_the_mlp_leads_and_quotes_the_papers_range():
    rows = []
    for layer in range(12):
        for comp, v in (("attention", 40.0), ("mlp", 50.0 if layer < 8 else 30.0)):
            rows.append({"layer": layer, "component": comp, "recovery_notebook_pct": v,
                         "recovery_projection_pct": v - 10 + (70 if (layer, comp) == (11, "mlp") else 0)})
    text = R.patching_reading(pd.DataFrame(rows), ["attention", "mlp"])
    assert "at 8 of the 12 layers patched: the MLP leads at most layers" in text
    assert "attention 38-54%, MLP 42-60%" in text  # paper.TABLE3's ranges
    assert "90.0% (mlp 11): no single component reaches 100%" in text
    assert "exceeds the projection by 7.1 points" in text  # 10 points in 23 cells, -60 in the last: 170 / 24
    rows = [dict(r, recovery_notebook_pct=60 - r["recovery_notebook_pct"]) for r in rows]
    assert "does not lead" in R.patching_reading(pd.DataFrame(rows), ["attention", "mlp"])


def test_ablation_reading_weighs_the_faithful_ablation_against_random_patches():
    def change(faithful, corrected, random, stays=True):
        return {"change": {"faithful": faithful, "corrected": corrected, "random": random}, "logit_before": 7.0,
                "stays_top": stays}

    comp = pd.DataFrame({"how": ["mean", "mean", "mean", "zero", "mean"],
                         "component": ["mlp", "attention", "attention_head", "mlp", "mlp"],
                         "layer": [11, 8, 9, 10, 10], "run": ["strike", "gutter", "strike", "strike", "gutter"],
                         "delta_target_logit": [-2.0, -0.5, -9.0, -7.0, -0.1]})  # head and zero rows: not quoted
    changes = {"strike": change(-0.5, -0.4, -0.1), "gutter": change(-0.05, 0, -0.2, False)}
    text = R.ablation_reading("bowling", changes, "random", comp, 12)
    assert text.startswith("**Does removing") and "In the strike clip" in text
    assert "-0.500 (faithful)" in text and "more than random patches" in text and "no more than random" in text
    assert "is no longer the top class" in text
    assert f"(the paper: {paper.TABLE1_STRIKE[0][2] - paper.TABLE1_STRIKE[0][1]:+.3f})" in text
    assert "(the paper: -0.016)" in text and "among layers 8-11 (component_layers) is mlp 11 (strike, -2.000)" in text
    every_layer = R.ablation_reading("bowling", changes, "random", comp[comp.layer != 9], 3)  # layers 8, 10, 11
    assert "under mean ablation is mlp 11" in every_layer
    assert "mean ablation" not in R.ablation_reading("bowling", changes, "random")


@pytest.mark.parametrize("notebook", ["00_data_prep", "01_attention_visualization", "02_logit_lens", "03_delta_norms",
                                      "04_activation_patching", "05_ablation"])
def test_each_notebook_closes_with_its_generated_reading(notebook):
    """The notebooks print no hand-built bullet list: their last code cell displays utils.reading's paragraph."""
    import json

    from utils import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / f"{notebook}.ipynb").read_text())["cells"]
    last = "".join([c for c in cells if c["cell_type"] == "code"][-1]["source"])
    assert "reading." in last and "display(Markdown(" in last and "lines" not in last, last


def test_the_findings_and_the_readings_import_no_model_code():
    """``python -m utils.findings`` ends every ``make figures``: it reads tables and writes text, so
    it must not pay for torch and transformers (7 s of a 5-minute budget when it did)."""
    code = ("import sys; import utils.findings, utils.reading; "
            "heavy = sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "", f"utils.findings / utils.reading import {out.stdout.strip()}"
