"""The real model's route, offline: the paper checkpoint as the hub serves it (generic
``LABEL_n`` names, transformers 4.x keys, a processor feeding [-3, 1]) from a filled HF cache
and from a folder; the target class, device and preprocessing choices; your own pair CSVs."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hubfiles import COMMIT, fill_hub_cache, save_tf4_checkpoint, small_hub_like_vivit

from utils import paths
from utils.clipsets import PairsCSVError, read_pairs_csv
from utils.labels import ModelLoadError, name_classes, resolve_device, resolve_target
from utils.models import load_model
from utils.runner import run_all
from utils.synthetic import render_pair
from utils.video import write_video

NB = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
KINETICS = paths.KINETICS_LABELS.read_text().splitlines()


@pytest.fixture(scope="module")
def hub_model():
    return small_hub_like_vivit(seed=3)


@pytest.fixture(scope="module")
def hub_folder(hub_model, tmp_path_factory):
    return save_tf4_checkpoint(hub_model, tmp_path_factory.mktemp("vivit-b"))


# ---------------------------------------------------------------- labels and target
def test_generic_400_class_names_become_kinetics_names(hub_folder):
    cfg = json.loads((hub_folder / "config.json").read_text())
    assert cfg["id2label"]["31"] == "LABEL_31"  # as the hub serves it
    m = load_model(str(hub_folder))
    assert m.target_index == 31 and m.target_label == "bowling"
    assert m.id2label[357] == "throwing ball" and m.id2label[227] == "playing cricket"
    assert m.labels_source == "data/kinetics400_labels.txt"
    assert [m.id2label[i] for i in range(400)] == KINETICS


def test_target_by_name_or_index_and_never_class_zero(hub_folder):
    assert load_model(str(hub_folder), target="Playing Cricket").target_index == 227
    assert load_model(str(hub_folder), target="31").target_index == 31
    assert load_model(str(hub_folder), target=84).target_label == "dancing ballet"
    with pytest.raises(ModelLoadError, match=r"no class of that name.*'bowling'"):
        load_model(str(hub_folder), target="bowlingg")
    with pytest.raises(ModelLoadError, match="400 classes, numbered 0..399"):
        load_model(str(hub_folder), target=400)


def test_generic_names_without_400_classes_are_not_guessed():
    id2label = {i: f"LABEL_{i}" for i in range(10)}
    cfg = type("C", (), {"id2label": dict(id2label)})()
    assert name_classes(cfg) == "checkpoint" and cfg.id2label == id2label
    with pytest.raises(ModelLoadError, match="generic names.*TARGET=31") as err:
        resolve_target(id2label, "bowling")
    assert "LABEL_" in str(err.value)
    assert resolve_target(id2label, 7) == 7


def test_folder_checks_missing_unexpected_and_mismatched_keys(hub_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(hub_folder / "model.safetensors")
    for name, edit in (("missing", lambda s: s.pop("vivit.encoder.layer.3.output.dense.weight")),
                       ("unexpected", lambda s: s.__setitem__("vivit.extra.weight", torch.zeros(2))),
                       ("mismatched", lambda s: s.__setitem__("classifier.bias", torch.zeros(7)))):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("config.json", "preprocessor_config.json"):
            (folder / f).write_bytes((hub_folder / f).read_bytes())
        bad = dict(state)
        edit(bad)
        save_file(bad, str(folder / "model.safetensors"), metadata={"format": "pt"})
        with pytest.raises(ModelLoadError, match=f"{name}_keys"):
            load_model(str(folder))


# ---------------------------------------------------------------- preprocessing
def test_checkpoint_preprocessing_feeds_minus3_to_1_and_original_feeds_minus1_to_1(hub_folder):
    m = load_model(str(hub_folder))
    assert m.input_range() == pytest.approx((-3.0, 1.0), abs=1e-5)
    assert m.processor.size == {"shortest_edge": 224} and m.processor.crop_size == {"height": 224, "width": 224}
    o = load_model(str(hub_folder), preprocess="original")
    assert o.input_range() == pytest.approx((-1.0, 1.0), abs=1e-5)
    clip = render_pair(5, num_frames=8, size=64)[0]
    a, b = m.preprocess(clip), o.preprocess(clip)
    torch.testing.assert_close(a, 2 * b - 1, atol=1e-5, rtol=0)  # [-3, 1] = 2 * [-1, 1] - 1


def test_folder_without_processor_and_paper_shape_use_the_hub_processor(hub_folder, tmp_path):
    folder = tmp_path / "noproc"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        (folder / f).write_bytes((hub_folder / f).read_bytes())
    m = load_model(str(folder))
    assert m.processor.size == {"shortest_edge": 224}  # the class default would resize to 256
    assert m.input_range() == pytest.approx((-3.0, 1.0), abs=1e-5)
    assert load_model("paper-shape").processor.to_dict() == m.processor.to_dict()


# ---------------------------------------------------------------- devices
def test_device_choices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelLoadError, match="not a device"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="DEVICE=cuda: no CUDA GPU"):
            resolve_device("cuda")


ACCELERATORS = [d for d in ("cuda",) if torch.cuda.is_available()]


@pytest.mark.skipif(not ACCELERATORS, reason="no accelerator on this machine: CPU-only run")
@pytest.mark.parametrize("device", ACCELERATORS)
def test_cpu_and_accelerator_agree(device):
    """float32 everywhere; logits, DLA and a patching sweep agree to 1e-3 (relative)."""
    from utils.attribution import direct_logit_attribution, dla_names
    from utils.hooks import HookedVideoTransformer
    from utils.patching import component_sweep

    out = {}
    for dev in ("cpu", device):
        m = load_model("toy", device=dev)
        h = HookedVideoTransformer(m)
        s, g = (m.preprocess(x) for x in render_pair(400_042))
        run = h.run(s, names=dla_names(h))
        out[dev] = (m.logits(s), direct_logit_attribution(h, run, m.target_index).value.to_numpy(),
                    component_sweep(h, s, g, m.target_index).recovery_projection_pct.to_numpy())
    for a, b in zip(out["cpu"], out[device], strict=True):
        np.testing.assert_allclose(np.asarray(b, dtype=float), np.asarray(a, dtype=float), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- bad inputs stop before writing
def snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")} if root.exists() else {}


@pytest.fixture
def roots(tmp_path):
    return {k: tmp_path / k for k in ("figures", "data", "build")}


def run_bad(roots, **kwargs):
    with pytest.raises(SystemExit) as info:
        run_all(NB, kwargs.pop("profile", "toy"), html=False, figures_root=roots["figures"],
                data_root=roots["data"], build_root=roots["build"], **kwargs)
    assert all(snapshot(r) == {} for r in roots.values()), "something was written"
    return str(info.value)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    files = {}
    for i in range(3):
        s, g = render_pair(700_000 + i, num_frames=20, size=96)
        files[f"s{i}"] = write_video(d / f"lane{i}_strike.mp4", s)
        files[f"g{i}"] = write_video(d / f"lane{i}_gutter.mp4", g)
    (d / "notes.mp4").write_text("not a video")
    return d


def write_csv(path, rows, header="pair_id,strike_path,gutter_path,matched"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("kwargs, message", [
    ({"target_class": "bowlng"}, "TARGET='bowlng'"),
    ({"target_class": "17"}, "TARGET=17: the model of PROFILE=toy has 6 classes"),
    ({"device": "tpu"}, "DEVICE='tpu' is not a device"),
    ({"preprocess": "imagenet"}, "PREPROCESS='imagenet' is not a preprocessing mode"),
])
def test_bad_target_device_preprocess_stop_before_writing(roots, kwargs, message):
    msg = run_bad(roots, **kwargs)
    assert message in msg, msg
    if "target_class" in kwargs and not kwargs["target_class"].isdigit():
        assert "Nearest class names: 0 'bowling'" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_stops_before_writing(roots):
    assert "DEVICE=cuda: no CUDA GPU is available" in run_bad(roots, device="cuda")


def test_pair_csv_with_missing_and_non_video_files_names_each_row(roots, clip_files, tmp_path):
    csv = write_csv(tmp_path / "pairs.csv", [
        ("lane0", "lane0_strike.mp4", "lane0_gutter.mp4", 1),
        ("lane1", "lane1_strike.mp4", "nowhere.mp4", 1),
        ("lane2", "notes.mp4", "lane2_gutter.mp4", 0),
        ("lane0", "lane1_strike.mp4", "lane1_gutter.mp4", "maybe"),
    ])
    csv_in_clips = clip_files / "pairs.csv"
    csv_in_clips.write_text(csv.read_text())
    msg = run_bad(roots, pairs_csv=str(csv_in_clips))
    assert "3 bad row(s)" in msg and str(csv_in_clips) in msg
    assert "line 3 (pair lane1): gutter_path" in msg and "nowhere.mp4 does not exist" in msg
    assert "line 4 (pair lane2): strike_path" in msg and "not a video" in msg
    assert "line 5 (pair lane0): pair_id 'lane0' repeats line 2" in msg and "matched='maybe'" in msg
    assert "line 2" not in msg.split("repeats line 2")[0].split("line 5")[0]  # the good row is not named


def test_pair_csv_without_its_columns_or_file(tmp_path):
    with pytest.raises(PairsCSVError, match="no such file"):
        read_pairs_csv(tmp_path / "none.csv")
    bad = write_csv(tmp_path / "cols.csv", [("a", "b")], header="id,strike")
    with pytest.raises(PairsCSVError, match="missing column.*pair_id.*strike_path.*gutter_path"):
        read_pairs_csv(bad)
    with pytest.raises(PairsCSVError, match="lists no pairs"):
        read_pairs_csv(write_csv(tmp_path / "empty.csv", []))


def test_pair_csv_rows_and_frame_counts(clip_files):
    csv = write_csv(clip_files / "ok.csv", [("lane0", "lane0_strike.mp4", "lane0_gutter.mp4", 1),
                                            ("lane1", str(clip_files / "lane1_strike.mp4"), "lane2_gutter.mp4", 0)],
                    header="pair_id,strike_path,gutter_path,matched")
    rows = read_pairs_csv(csv, min_frames=16)
    assert [(r.name, r.matched) for r in rows] == [("pair-lane0", True), ("unmatched-lane1", False)]
    with pytest.raises(PairsCSVError, match="has only 20 frames; the model reads 32"):
        read_pairs_csv(csv, min_frames=32)


@pytest.mark.slow
def test_pair_csv_runs_notebooks_00_and_06_through_the_real_decode_path(clip_files, tmp_path):
    csv = write_csv(clip_files / "three.csv", [(f"lane{i}", f"lane{i}_strike.mp4", f"lane{i}_gutter.mp4", 1)
                                               for i in range(3)])
    nb06 = next(n for n in NB if n.name.startswith("06_"))
    final = run_all([NB[0], nb06], "toy", html=False, figures_root=tmp_path / "f", data_root=tmp_path / "d",
                    build_root=tmp_path / "b", pairs_csv=str(csv))
    manifest = json.loads((tmp_path / "d" / "toy" / "manifest.json").read_text())
    ids = [c["id"] for c in manifest["clips"]]
    assert ids[:2] == ["canonical_strike", "canonical_gutter"]
    assert {f"pair-lane{i}_{o}" for i in range(3) for o in ("strike", "gutter")} <= set(ids)
    assert all(str(clip_files) in c["source"] for c in manifest["clips"])
    # the clips were decoded from the MP4s: 20 frames sampled to the model's 16
    assert all(c["frames"] == 16 for c in manifest["clips"])
    table = pd.read_csv(final / "table7_patching_pairs.csv")
    assert set(table.kind) >= {"matched"} and (table.n_pairs == 3).all()


# ---------------------------------------------------------------- the paper route, offline
@pytest.mark.slow
def test_make_figures_paper_from_a_filled_hub_cache_names_class_31_bowling(hub_model, hub_folder, tmp_path):
    cache = fill_hub_cache(tmp_path / "hub", hub_model, clip_seed=400_042)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "utils.runner", "--profile", "paper", "--no-html",
                          "--figures-root", str(tmp_path / "f"), "--data-root", str(tmp_path / "d"),
                          "--build-root", str(tmp_path / "b"), *map(str, NB)],
                         capture_output=True, text=True, env=env, cwd=paths.REPO_ROOT, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "running over TCP" not in out.stdout + out.stderr
    manifest = json.loads((tmp_path / "d" / "paper" / "manifest.json").read_text())
    assert (manifest["target_index"], manifest["target"]) == (31, "bowling")
    assert manifest["preprocess"] == "checkpoint" and manifest["pixel_range"] == pytest.approx([-3, 1], abs=1e-5)
    assert COMMIT in manifest["clips"][0]["source"]  # the clip came from the dataset cache
    tables = sorted((tmp_path / "f" / "paper").glob("*.md"))
    assert len(tables) >= 10
    for t in tables:
        text = t.read_text()
        assert "'bowling' (class 31)" in text, f"{t.name} does not name the target"
        assert "PREPROCESS=checkpoint" in text, f"{t.name} does not record the preprocessing"
        assert "LABEL_" not in text, t.name
    ablation = pd.read_csv(tmp_path / "f" / "paper" / "table1_ablation_strike.csv")
    assert "bowling" in set(ablation["class"]) and not ablation["class"].str.startswith("LABEL_").any()
    # the same files as a folder give the same target
    folder = cache / "models--google--vivit-b-16x2-kinetics400" / "snapshots" / COMMIT
    m = load_model(str(folder))
    assert (m.target_index, m.target_label) == (31, "bowling")
