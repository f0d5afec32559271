"""utils.across (notebook 07) and its findings in utils.findings: the measures on the tiny model
against the reference implementations they stand for, the statistics on made-up tables, and
the README's across-architectures block against the committed table 17."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_loaded

from utils import across as A
from utils import findings as F
from utils import memo, paper, paths
from utils.arch.core import Run
from utils.data import PAIR_SEED_BASE, Prepared
from utils.deltas import delta_names
from utils.hooks import HookedVideoTransformer
from utils.pairs import analyse_pair, probe_features
from utils.patching import component_sweep

LAYERS = [0, 2]


def tiny32():
    """The tiny ViViT of conftest, its processor set to the model's 32 x 32 (toy: 96)."""
    loaded = tiny_loaded()
    loaded.processor.size = {"height": 32, "width": 32}
    return loaded


@pytest.fixture(scope="module")
def tiny_small():
    return tiny32()


@pytest.fixture(scope="module")
def tiny_clips():
    """Three made-up pairs of 4-frame 32 x 32 clips; each pair's clips agree in frames 0-1."""
    rng = np.random.default_rng(3)
    clips = {}
    for i in range(3):
        s = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        g = s.copy()
        g[2:] = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        clips[f"pair{i:03d}_strike"], clips[f"pair{i:03d}_gutter"] = s, g
    return clips


class Clips:
    """What ``probe_features`` reads: ``pixels(id)``."""

    def __init__(self, ids, pixels):
        self.ids, self.px = list(ids), pixels

    def pixels(self, clip_id):
        return self.px[self.ids.index(clip_id)][None]


# ---------------------------------------------------------------------------- clips
def test_pair_specs_are_notebook_00s_pairs():
    assert A.pair_specs(3) == [("pair000", PAIR_SEED_BASE), ("pair001", PAIR_SEED_BASE + 1),
                               ("pair002", PAIR_SEED_BASE + 2)]
    assert A.divergence_step() == 3  # frame 6 of 16, two frames per time step


def test_shared_pairs_need_both_clips_byte_identical(tiny_small, tiny_clips):
    px = A.model_pixels(tiny_small, tiny_clips)
    ids = list(tiny_clips)
    data = Prepared({}, ids[:4], torch.zeros(4), px[:4].clone())  # pairs 0 and 1 prepared
    assert A.shared_pairs(data, px, ids) == ["pair000", "pair001"]
    data.pixel_values[3, 0, 0, 0, 0] += 1e-6  # pair001's gutter clip differs in one value
    assert A.shared_pairs(data, px, ids) == ["pair000"]
    assert A.shared_pairs(None, px, ids) == []


# ---------------------------------------------------------------------------- runs and measures
def test_batched_runs_match_single_runs_and_features_match_probe_features(tiny_small, tiny_clips):
    hooked = HookedVideoTransformer(tiny_small)
    px = A.model_pixels(tiny_small, tiny_clips)
    names = A.run_names(hooked, LAYERS)
    run = A.clean_runs(hooked, px, names, batch_size=4)  # two batches of 4 and 2 clips
    assert run.logits.shape[0] == len(px) and all(v.shape[0] == len(px) for v in run.cache.values())
    for i in (0, 5):
        single = hooked.run(px[i : i + 1], names=names)
        one = A.clip_run(run, i)
        torch.testing.assert_close(one.logits, single.logits, rtol=1e-5, atol=1e-5)
        for k in names:
            torch.testing.assert_close(one[k], single[k], rtol=1e-5, atol=1e-5)
    feats = A.probe_features_from_runs(hooked, run)
    ref = probe_features(hooked, Clips(tiny_clips, px), list(tiny_clips))
    np.testing.assert_allclose(feats["readout"], ref["readout"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats["time_step_mean"], ref["time_step_mean"].numpy(), rtol=1e-5, atol=1e-5)


def test_time_profile_finds_the_time_step_that_differs(tiny_hooked):
    T, R, C = tiny_hooked.grid  # (2, 2, 2)
    g = torch.Generator().manual_seed(0)
    base = {n: torch.randn(1, tiny_hooked.n_tokens, tiny_hooked.d_model, generator=g) for n in delta_names(tiny_hooked)}
    other = {n: v.clone() for n, v in base.items()}
    t1 = [tiny_hooked.token_index(1, r, c) for r in range(R) for c in range(C)]  # the tokens of time step 1
    other["hook_embed"][0, t1] += 2.0  # only time step 1 differs at the embedding
    last = delta_names(tiny_hooked)[-1]
    other[last][0, tiny_hooked.n_prefix:] += 1.0  # every patch token differs by a vector of norm sqrt(d)
    prof = A.time_profile(tiny_hooked, Run(None, base), Run(None, other))
    assert len(prof) == (tiny_hooked.n_layers + 1) * T
    emb = prof[prof.layer == -1].set_index("time_step")
    assert emb.share.tolist() == [0.0, 1.0] and emb.norm[1] == pytest.approx(2.0 * tiny_hooked.d_model ** 0.5)
    fin = prof[prof.layer == tiny_hooked.n_layers - 1]
    assert fin.share.tolist() == pytest.approx([0.5, 0.5])
    assert np.isnan(prof[prof.layer == 0].share).all()  # no difference at all: no shares
    pre = A.pre_divergence_share(prof.assign(model="m", pair="p"), step=1)
    assert pre.set_index("layer").share[-1] == 0.0 and pre.set_index("layer").share[tiny_hooked.n_layers - 1] == 0.5


def test_analyse_model_patches_as_component_sweep_and_shares_notebook_06s_pairs(tiny_clips):
    loaded = tiny32()
    hooked = HookedVideoTransformer(loaded)
    ids = list(tiny_clips)
    px = A.model_pixels(loaded, tiny_clips)
    data = Prepared({}, ids[:2], torch.zeros(2), px[:2].clone())  # notebook 00 prepared pair000 alone
    memo.clear()
    analyse_pair(hooked, {"strike": px[:1], "gutter": px[1:2]}, loaded.target_index, "pair000", "matched", True)
    hits = memo.stats["hits"]
    res = A.analyse_model("tiny", loaded, tiny_clips, LAYERS, data=data, n_perm=20, n_splits=3)
    assert memo.stats["hits"] == hits + 1  # notebook 06's result handed over
    assert res.shared == ["pair000"]
    p = res.patching
    assert set(p.direction) == {"strike->gutter"} and sorted(p.layer.unique()) == LAYERS
    assert len(p) == 3 * len(LAYERS) * 2 and set(p.pair) == {"pair000", "pair001", "pair002"}
    for k, pair in enumerate(["pair000", "pair001", "pair002"]):  # both paths: the sweep of single runs
        runs = [hooked.run(px[i : i + 1], names=A.run_names(hooked, LAYERS)) for i in (2 * k, 2 * k + 1)]
        want = component_sweep(hooked, None, None, loaded.target_index, layers=LAYERS, runs=tuple(runs))
        got = p[p.pair == pair].sort_values(["layer", "component"]).reset_index(drop=True)
        want = want.sort_values(["layer", "component"]).reset_index(drop=True)
        for col in ("recovery_notebook_pct", "recovery_projection_pct", "delta_target_logit"):
            np.testing.assert_allclose(got[col], want[col], rtol=1e-4, atol=1e-4, err_msg=f"{pair} {col}")
    d = res.deltas
    assert len(d) == 3 * (hooked.n_layers + 1) and (d[d.layer == -1].mean_token_norm > 0).all()
    t = res.time
    assert np.allclose(t.groupby(["pair", "layer"]).share.sum(), 1.0)
    # frames 0-1 (time step 0) agree within each pair: no difference there at the embedding
    assert (t[(t.layer == -1) & (t.time_step == 0)].share == 0).all()
    assert set(res.probes.feature) == {"readout", "time_step_mean"}
    assert res.probes.groupby(["feature", "layer", "time_step"]).size().eq(3).all()  # one row per pair
    assert (res.probe_tests.n_perm == 20).all() and res.probe_tests.p_value.between(0, 1).all()
    assert len(res.clips) == 6 and set(res.clips.run) == {"strike", "gutter"}


# ---------------------------------------------------------------------------- statistics
def made_up_tables(n=10, seed=0):
    """Per-pair tables shaped like ``combine``'s for a ViViT-like and a TimeSformer-like model."""
    rng = np.random.default_rng(seed)
    pairs = [f"pair{i:03d}" for i in range(n)]
    comps = {"A": {"attention": 20, "mlp": 30}, "B": {"attention_time": 10, "attention_space": 25, "mlp": 5}}
    patching = pd.DataFrame([{"model": m, "pair": p, "direction": "strike->gutter", "layer": lay, "component": c,
                              "recovery_notebook_pct": v + rng.normal(0, 1), "recovery_projection_pct": 1.0}
                             for m, cs in comps.items() for p in pairs for lay in (4, 7, 10) for c, v in cs.items()])
    deltas = pd.DataFrame([{"model": m, "pair": p, "layer": lay,
                            "mean_token_norm": (1.0 + (lay >= 5) * (lay - 4) * (0.5 if m == "A" else 0.0))}
                           for m in comps for p in pairs for lay in range(-1, 12)])
    time = pd.DataFrame([{"model": m, "pair": p, "layer": lay, "time_step": t,
                          "share": (0.0 if lay < 0 and t < 3 else (0.1 if t < 3 else 0.7 / 5))}
                         for m in comps for p in pairs for lay in range(-1, 12) for t in range(8)])
    probes = pd.DataFrame([{"model": m, "feature": f, "layer": lay, "time_step": t, "pair": p,
                            "accuracy": 1.0 if (m == "A" and lay == 6 and t in (-1, 5)) else 0.5}
                           for m in comps for f, ts in (("readout", [-1]), ("time_step_mean", range(8)))
                           for lay in range(12) for t in ts for p in pairs])
    tests = probes.groupby(["model", "feature", "layer", "time_step"], as_index=False).accuracy.mean()
    tests["p_value"] = np.where(tests.accuracy == 1.0, 0.001, 1.0)
    tests["null_q95"] = 0.7
    clips = pd.DataFrame([{"model": m, "pair": p, "run": r, "target_logit": 5.0, "is_target": True}
                          for m in comps for p in pairs for r in ("strike", "gutter")])
    return {"deltas": deltas, "time": time, "patching": patching, "probes": probes, "probe_tests": tests,
            "clips": clips}


def test_summary_table_reads_the_made_up_effects():
    tables = made_up_tables()
    s = A.summary_table(tables, [4, 7, 10], step=3).set_index(["model", "measure"])
    assert s.loc[("A", "MLP minus attention recovery (points)")].estimate == pytest.approx(10, abs=1)
    # B: MLP against the sum of its two attention steps (time 10 + space 25): 5 - 35
    assert s.loc[("B", "MLP minus attention recovery (points)")].estimate == pytest.approx(-30, abs=1)
    assert s.loc[("B", "time minus space attention recovery (points)")].estimate == pytest.approx(-15, abs=1)
    assert ("A", "time minus space attention recovery (points)") not in s.index
    ref = A.paper_mid_means([4, 7, 10])
    assert ref["mlp"] == pytest.approx(np.mean([paper.TABLE3[(lay, "mlp")] for lay in (4, 7, 10)]))
    assert s.loc[("A", "mlp recovery (%)")].paper == pytest.approx(ref["mlp"])
    assert s.loc[("A", "delta norm, layer 11 / layer 5 (x)")].estimate == pytest.approx(4.5 / 1.5)
    assert s.loc[("B", "delta norm, layer 11 / layer 5 (x)")].estimate == pytest.approx(1.0)
    pre = s.loc[("A", "share of the layer-11 delta before the divergence (time step 3)")]
    assert pre.estimate == pytest.approx(0.3) and pre.ci_low == pytest.approx(0.3)
    best = s.loc[("A", "readout-token probe, best layer: held-out accuracy")]
    assert (best.estimate, best["where"], best.p_value) == (1.0, "layer 6", 0.001)
    tsb = s.loc[("A", "time-step probe, best layer and time step: held-out accuracy")]
    assert tsb["where"] == "layer 6, time step 5"
    assert (s.n_pairs == 10).all()
    fig = A.across_figure(tables, 3)
    assert len(fig.axes) >= 6
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_summary_intervals_resample_pairs():
    """An interval is the bootstrap of one value per pair: here MLP minus attention of model A,
    computed by hand from the per-pair rows."""
    from utils.stats import bootstrap_ci

    tables = made_up_tables(n=7, seed=1)
    s = A.summary_table(tables, [4, 7, 10], step=3).set_index(["model", "measure"])
    p = tables["patching"]
    w = p[p.model == "A"].pivot_table(index=["pair", "layer"], columns="component", values="recovery_notebook_pct")
    per_pair = (w.mlp - w.attention).groupby(level="pair").mean()
    assert len(per_pair) == 7
    row = s.loc[("A", "MLP minus attention recovery (points)")]
    assert (row.estimate, row.ci_low, row.ci_high) == pytest.approx(bootstrap_ci(per_pair.values))
    assert row.n_pairs == 7


# ---------------------------------------------------------------------------- findings and README
def test_across_findings_quote_the_table_and_apply_the_rules(tmp_path):
    s = A.summary_table(made_up_tables(), [4, 7, 10], step=3)
    lines = F.across_findings(s)
    text = "\n".join(lines)
    assert lines[0].startswith("Two toy architectures over the same 10 matched pairs")  # A and B
    assert "MLPs recover more than attention in A;" in text and "attention recovers more in B" in text
    assert "the spatial step carries more" in text
    assert "grows with depth (interval above 1) in A." in text
    assert "A 30.00% [95% CI 30.00, 30.00]" in text
    assert "linearly readable (p < 0.05) in A;" in text
    assert f"{A.paper_mid_means([4, 7, 10])['diff']:+.2f} points" in text
    s.loc[s.measure.str.startswith("MLP minus"), ["estimate", "ci_low", "ci_high"]] = [1.0, -1.0, 3.0]
    assert "MLPs recover more than attention in neither;" in "\n".join(F.across_findings(s))
    s.loc[0, "where"] = "a | b"
    s.loc[s.measure.str.startswith("MLP minus"), "where"] = "a | b"
    with pytest.raises(ValueError, match="'|'"):
        F.across_findings(s)


def test_update_across_rewrites_only_its_block(tmp_path):
    from utils.io import save_table

    s = A.summary_table(made_up_tables(), [4, 7, 10], step=3)
    save_table(s, tmp_path, "table17_across_architectures")
    findings = pd.DataFrame({"claim": ["c"], "toy evidence": ["e"], "verdict": [F.SUPPORTED]})
    save_table(findings, tmp_path, "findings")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{F.README_START}\nold\n{F.README_END}\n\n## across\n\n"
                      f"{F.ACROSS_START}\nold text\n{F.ACROSS_END}\n\n## next\n")
    args = ["--readme", str(readme), "--findings", str(tmp_path / "findings.md"),
            "--across", str(tmp_path / "table17_across_architectures.csv")]
    assert F.main(["--check", *args]) == 1
    assert F.main(args) == 0
    text = readme.read_text()
    assert "old text" not in text and text.endswith("## next\n") and "## across" in text
    assert F.readme_current_block(readme, F.ACROSS_START, F.ACROSS_END) == \
        F.across_block(tmp_path / "table17_across_architectures.csv")
    assert F.main(["--check", *args]) == 0
    readme.write_text(text.replace("MLPs recover", "MLPs recovered"))
    assert F.main(["--check", *args]) == 1
    plain = tmp_path / "plain.md"  # a README without the markers is left alone
    plain.write_text(f"{F.README_START}\nx\n{F.README_END}\n")
    assert F.update_block(plain, F.ACROSS_START, F.ACROSS_END,
                          F.across_block(tmp_path / "table17_across_architectures.csv")) is False


def test_readme_across_block_is_the_committed_table_17():
    """README.md's across-architectures findings must be figures/toy/table17_across_architectures.csv's
    sentences word for word; after notebook 07 rewrites the table, run `python -m utils.findings`."""
    assert F.readme_current_block(paths.REPO_ROOT / "README.md", F.ACROSS_START, F.ACROSS_END) == F.across_block(), (
        "README's across-architectures findings differ from table 17: run `.venv/bin/python -m utils.findings`")


def test_per_layer_leads_names_the_layers_whose_intervals_are_apart():
    rows = [("V", "mlp", 4, 30, 28, 32), ("V", "attention", 4, 20, 18, 22),  # MLP ahead
            ("V", "mlp", 7, 20, 15, 25), ("V", "attention", 7, 22, 18, 26),  # overlap: neither
            ("V", "mlp", 10, 10, 8, 12), ("V", "attention", 10, 30, 28, 32),  # attention ahead
            ("T", "mlp", 4, 30, 28, 32), ("T", "attention_time", 4, 20, 18, 22),
            ("T", "attention_space", 4, 29, 27, 31)]
    t = pd.DataFrame(rows, columns=["model", "component", "layer", "estimate", "ci_low", "ci_high"])
    t["measure"] = "recovery_notebook_pct"
    assert F.per_layer_leads(t) == "T: no layer apart; V: MLP ahead at layer 4; attention ahead at layer 10"
