"""How make figures splits the notebooks over lanes (``utils.runner.plan_lanes``)."""

from pathlib import Path

from utils.runner import FOLLOWS, plan_lanes

NBS = [Path(f"notebooks/{s}.ipynb") for s in (
    "00_data_prep", "01_attention_visualization", "02_logit_lens", "03_delta_norms", "04_activation_patching",
    "05_ablation", "06_beyond_the_paper", "07_across_architectures", "08_circuit_discovery", "09_controls")]


def stems(lanes):
    return [[nb.stem[:2] for nb in lane] for lane in lanes]


def test_one_lane_is_the_serial_run():
    assert plan_lanes(NBS, 1) == (NBS, [])


def test_data_prep_runs_first_and_every_other_notebook_once_in_order():
    head, lanes = plan_lanes(NBS, 2)
    assert head == NBS[:1] and len(lanes) == 2
    assert sorted(nb for lane in lanes for nb in lane) == sorted(NBS[1:])
    for lane in lanes:
        assert lane == sorted(lane)  # the order of the run inside each lane


def test_a_notebook_runs_after_the_one_it_follows_in_its_kernel():
    head, lanes = plan_lanes(NBS, 2)
    lane_of = {nb.stem: k for k, lane in enumerate(lanes) for nb in lane}
    for nb, lead in FOLLOWS.items():
        assert lane_of[nb] == lane_of[lead], nb
    head, lanes = plan_lanes([NBS[0], NBS[9], NBS[3]], 2)  # 09 without 06: a lane of its own
    assert stems(lanes) in ([["03"], ["09"]], [["09"], ["03"]])


def test_lanes_are_balanced_by_the_expected_seconds():
    seconds = {nb.stem: 10.0 for nb in NBS} | {"06_beyond_the_paper": 100.0}
    head, lanes = plan_lanes(NBS, 2, seconds)
    assert stems(lanes) == [["06", "07", "09"], ["01", "02", "03", "04", "05", "08"]]
    seconds["01_attention_visualization"] = 200.0  # now 01 alone outweighs the 06 chain
    head, lanes = plan_lanes(NBS, 2, seconds)
    assert stems(lanes) == [["01"], ["02", "03", "04", "05", "06", "07", "08", "09"]]
    head, lanes = plan_lanes(NBS, 2)  # the typical toy run: 08, the longest, beside the 06 chain
    assert ["08"] in [[s for s in lane if s in ("06", "08")] for lane in stems(lanes)]


def test_a_failing_lane_stops_the_other_and_the_run(tmp_path):
    """One lane's notebook fails while the other lane's sleeps: the sleeping notebook is
    interrupted, the run ends with SystemExit long before the sleep would end, and nothing of the
    run is kept (before the fix the run waited forever on the other lane)."""
    import time

    import nbformat
    import pytest

    from utils.runner import run_all

    def notebook(name: str, code: str) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        params = nbformat.v4.new_code_cell('profile = "toy"\noutput_dir = ""')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        path = tmp_path / "notebooks" / f"{name}.ipynb"
        path.parent.mkdir(exist_ok=True)
        nbformat.write(nb, path)
        return path

    notebooks = [notebook("00_head", "x = 1"), notebook("01_sleeps", "import time\ntime.sleep(120)"),
                 notebook("02_fails", "raise RuntimeError('planted failure')")]
    t0 = time.time()
    with pytest.raises(SystemExit):
        run_all(notebooks, "toy", html=False, figures_root=tmp_path / "figures", data_root=tmp_path / "data",
                build_root=tmp_path / "build", lanes=2)
    assert time.time() - t0 < 90, "the run waited for the sleeping lane"
    assert not list((tmp_path / "figures").glob("*")), "a failed run left outputs behind"
