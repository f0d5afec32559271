"""make bench's bookkeeping (utils.bench): refreshing the end-to-end rows keeps every measured case."""

import json

import pandas as pd

from utils import bench, paths


def test_refreshing_the_end_to_end_rows_keeps_the_measured_cases(tmp_path, monkeypatch):
    bench_dir, build = tmp_path / "benchmarks", tmp_path / "build"
    bench_dir.mkdir()
    (build / "toy").mkdir(parents=True)
    monkeypatch.setattr(paths, "BENCH_DIR", bench_dir)
    monkeypatch.setattr(paths, "BUILD_DIR", build)
    measured = pd.DataFrame([{"case": "patching sweep, toy", "measure": "wall time (s)", "naive": 1.0, "ours": 0.4,
                              "ratio": 0.4, "target": "<= 0.6", "runs": 5, "note": "x"},
                             {"case": "make figures PROFILE=toy", "measure": "wall time (s)", "naive": float("nan"),
                              "ours": 228.5, "ratio": float("nan"), "target": "< 300 s", "runs": 1, "note": "old"}])
    measured.to_csv(bench_dir / "results.csv", index=False)
    (bench_dir / "results.md").write_text("# Benchmarks\n\nMachine: m. Measured by `make bench` on 2026-12-03 in "
                                          "1116 s; ratios compare two medians.\n\n| table |\n")
    (build / "toy" / "timings.json").write_text(json.dumps({"total_seconds": 261.0, "finished": "2026-12-03 16:07",
                                                            "notebooks": {"00_data_prep": 17.0}}))
    md = bench.refresh_end_to_end()
    got = pd.read_csv(bench_dir / "results.csv")
    assert list(got.case) == ["patching sweep, toy", "make figures PROFILE=toy"]
    assert got.ours.tolist() == [0.4, 261.0] and "00_data_prep 17s" in got.note.iloc[1]
    assert "Measured by `make bench` on 2026-12-03 in 1116 s" in md and md.count("End-to-end rows refreshed") == 1
    assert bench.refresh_end_to_end().count("End-to-end rows refreshed") == 1  # a second refresh does not stack
