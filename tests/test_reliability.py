"""Bad inputs at the top level: one clear message, a non-zero exit, and no output touched."""

import json
from pathlib import Path

import numpy as np
import pytest

from utils import paths
from utils.runner import main, run_all
from utils.synthetic import render_clip
from utils.video import write_video

NB = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")} if root.exists() else {}


@pytest.fixture
def roots(tmp_path):
    r = {k: tmp_path / k for k in ("figures", "data", "build")}
    (r["figures"] / "toy").mkdir(parents=True)
    (r["figures"] / "toy" / "table3_patching.csv").write_text("previous results\n")
    return r


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    good = write_video(d / "good.mp4", render_clip("bowling", 1, "strike", num_frames=40))
    short = write_video(d / "short.mp4", render_clip("bowling", 1, "strike", num_frames=6))
    text = d / "notes.mp4"
    text.write_text("not a video")
    truncated = d / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:3000])
    portrait = write_video(d / "portrait.mp4", np.zeros((40, 160, 90, 3), np.uint8))
    notvivit = d / "bert"
    notvivit.mkdir()
    (notvivit / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return {"good": good, "short": short, "text": text, "truncated": truncated, "portrait": portrait,
            "missing": d / "missing.mp4", "notvivit": notvivit}


def run_bad(roots, profile="toy", strike="", gutter="", notebooks=NB, **extra):
    before = {k: snapshot(v) for k, v in roots.items()}
    with pytest.raises(SystemExit) as info:
        run_all(notebooks, profile, strike, gutter, html=False, figures_root=roots["figures"],
                data_root=roots["data"], build_root=roots["build"], extra_parameters=extra or None)
    after = {k: snapshot(v) for k, v in roots.items()}
    assert before["figures"] == after["figures"], "figures were created or altered"
    assert (roots["figures"] / "toy" / "table3_patching.csv").read_text() == "previous results\n"
    return str(info.value)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("text", "not a video"),
    ("truncated", "truncated"),
    ("short", "only 6 frames; the model reads 16"),
])
def test_bad_video(roots, videos, case, message):
    msg = run_bad(roots, strike=str(videos[case]), gutter=str(videos["good"]))
    assert message in msg and str(videos[case]) in msg
    assert snapshot(roots["data"]) == {} and snapshot(roots["build"]) == {}


def test_only_one_video(roots, videos):
    assert "both STRIKE_VIDEO and GUTTER_VIDEO" in run_bad(roots, strike=str(videos["good"]))


def test_unknown_profile(roots):
    assert "unknown PROFILE='vivit-large'" in run_bad(roots, profile="vivit-large")


def test_model_directory_that_is_not_vivit(roots, videos):
    msg = run_bad(roots, profile=str(videos["notvivit"]))
    assert "'bert' model; the supported video classifiers are" in msg and "vjepa2" in msg


def test_output_folder_not_writable(roots, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as info:
        run_all(NB, "toy", html=False, figures_root=blocker / "figures", data_root=roots["data"],
                build_root=roots["build"])
    assert "cannot create output folder" in str(info.value) and "a_file" in str(info.value)


def test_cli_exits_non_zero_with_the_message(capsys, roots):
    with pytest.raises(SystemExit) as info:
        main(["--profile", "nonsense", "--no-html", str(NB[0])])
    assert info.value.code != 0 and "unknown PROFILE" in str(info.value.code)


def test_portrait_video_is_accepted_by_preflight(videos):
    from utils.runner import preflight

    preflight("toy", str(videos["portrait"]), str(videos["good"]), [])  # no SystemExit


@pytest.mark.slow
def test_layer_out_of_range_fails_in_the_notebook_and_leaves_no_figures(roots):
    msg = run_bad(roots, notebooks=NB[:2], layer=12, n_pairs=0, unmatched_pairs=0)
    assert msg == "1"  # the runner printed the notebook, cell and message, then exit 1
    assert not (roots["figures"] / "toy" / "fig0_canonical_pair.png").exists()
    executed = json.loads((roots["build"] / "toy" / "01_attention_visualization.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and "layer=12 is out of range" in errors[0]["evalue"]


@pytest.mark.slow
def test_toy_profile_never_touches_the_network(roots, monkeypatch):
    """Notebook 00 on toy with every socket connection made to fail (kernel included)."""
    import subprocess
    import sys

    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network disabled by the test')\n"
        "socket.create_connection = refuse\n"
        "orig = socket.socket.connect\n"
        "def guarded(self, addr):\n"
        "    if isinstance(addr, tuple) and addr[0] not in ('127.0.0.1', 'localhost', '::1'):\n"
        "        raise OSError(f'network disabled by the test: {addr}')\n"
        "    return orig(self, addr)\n"
        "socket.socket.connect = guarded\n"
    )
    site = roots["build"].parent / "sitecustomize_dir"
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    env_path = f"{site}:{paths.REPO_ROOT}"
    monkeypatch.setenv("PYTHONPATH", env_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # must hold without the offline flag
    out = subprocess.run([sys.executable, "-c", (
        "from pathlib import Path; from utils.runner import run_all; from utils import paths; "
        f"run_all([paths.NOTEBOOKS_DIR / '00_data_prep.ipynb'], 'toy', html=False, "
        f"figures_root=Path(r'{roots['figures']}'), data_root=Path(r'{roots['data']}'), "
        f"build_root=Path(r'{roots['build']}'), extra_parameters={{'n_pairs': 1, 'unmatched_pairs': 0}})")],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (roots["figures"] / "toy" / "fig0_canonical_pair.png").exists()
    # the guard was really active in that environment
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.socket().connect(('192.0.2.1', 80))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "network disabled by the test" in probe.stderr


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_interrupt_midway_leaves_no_half_written_output(roots, monkeypatch, failure):
    """The second notebook is interrupted after writing one figure: nothing of the run stays."""
    import utils.runner as runner

    calls = []

    def fake_execute(nb, out_nb, parameters, cwd, kernel=None):
        calls.append(nb.name)
        (Path(parameters["output_dir"]) / f"fig_from_{nb.stem}.png").write_bytes(b"half")
        if len(calls) == 2:
            raise failure("interrupted")

    monkeypatch.setattr(runner, "execute", fake_execute)
    before = snapshot(roots["figures"])
    with pytest.raises(failure):
        run_all(NB[:3], "toy", html=False, figures_root=roots["figures"], data_root=roots["data"],
                build_root=roots["build"])
    assert snapshot(roots["figures"]) == before
    assert not (roots["figures"] / "toy.partial").exists()
