"""Execute the notebooks headless for one profile (``make figures``).

    python -m utils.runner --profile toy notebooks/0*.ipynb

Each notebook runs under papermill with the parameters it declares (profile, output and
data folders, videos, pair count); the executed copy goes to ``build/<profile>/`` with an
HTML rendering beside it. Figures and tables are written into a staging folder
``figures/<profile>.partial`` that replaces ``figures/<profile>`` only once every notebook has
succeeded: a failure never leaves a mix of old and new outputs that looks complete. On
failure the runner deletes the staging folder, names the notebook and the failing cell
(the executed notebook in ``build/`` keeps the traceback) and exits non-zero. Inputs
(profile, videos, output folders) are checked before anything is written (``preflight``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from utils import paths


class NotebookFailed(RuntimeError):
    pass


def _html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    out.write_text(body)
    return out


def execute(notebook: Path, out_nb: Path, parameters: dict, cwd: Path) -> None:
    """Run one notebook with papermill; raise NotebookFailed naming the failing cell."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    params = {k: v for k, v in parameters.items() if k in declared and v is not None}
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params, kernel_name="python3",
                            progress_bar=False, cwd=str(cwd))
    except pm.PapermillExecutionError as err:
        raise NotebookFailed(
            f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
            f"the executed notebook with the traceback is {out_nb}"
        ) from None
    except Exception as err:  # noqa: BLE001 - the kernel died (out of memory?), a timeout ...
        raise NotebookFailed(
            f"{notebook.name} failed: {type(err).__name__}: {err} (a kernel that dies is usually out "
            f"of memory: lower batch sizes or pair counts); the partial notebook is {out_nb}"
        ) from None


def expected_frames(profile: str) -> int:
    """Frames the profile's model reads, from its config alone (no weights loaded)."""
    if profile == "toy":
        cfg = paths.TOY_MODEL_DIR / "config.json"
    elif profile in ("paper", "paper-shape"):
        return 32
    else:
        cfg = Path(profile).expanduser() / "config.json"
    return int(json.loads(cfg.read_text()).get("num_frames", 32)) if cfg.is_file() else 32


def preflight(profile: str, strike_video: str, gutter_video: str, roots: list[Path]) -> None:
    """Check every input before anything is written; raise SystemExit with one clear message."""
    from utils.io import ensure_writable_dir
    from utils.models import PROFILES, ModelLoadError, check_model_dir
    from utils.video import VideoError, probe_timestamps

    if profile not in PROFILES:
        path = Path(profile).expanduser()
        if not path.exists():
            raise SystemExit(f"error: unknown PROFILE={profile!r}; choose one of {', '.join(PROFILES)} "
                             "or the path of a HuggingFace ViViT checkpoint directory")
        try:
            check_model_dir(path)
        except ModelLoadError as err:
            raise SystemExit(f"error: PROFILE={profile}: {err}") from None
    if bool(strike_video) != bool(gutter_video):
        raise SystemExit("error: pass both STRIKE_VIDEO and GUTTER_VIDEO, or neither")
    need = expected_frames(profile)
    for name, video in (("STRIKE_VIDEO", strike_video), ("GUTTER_VIDEO", gutter_video)):
        if not video:
            continue
        try:
            n = len(probe_timestamps(video))
        except VideoError as err:
            raise SystemExit(f"error: {name}: {err}") from None
        if n < need:
            raise SystemExit(f"error: {name}={video} has only {n} frames; the model reads {need}. "
                             f"Use a longer clip (at least {need} frames).")
    for root in roots:  # every output folder must be creatable and writable
        probe = root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.is_file() or not os.access(probe, os.W_OK):
            try:
                ensure_writable_dir(root)
            except PermissionError as err:
                raise SystemExit(f"error: {err}") from None


def run_all(notebooks: list[Path], profile: str, strike_video: str = "", gutter_video: str = "",
            pairs: int | None = None, html: bool = True, figures_root: Path | None = None,
            data_root: Path | None = None, build_root: Path | None = None,
            extra_parameters: dict | None = None) -> Path:
    """Run ``notebooks`` in order; return the final figures folder (see module docstring).

    ``figures_root``, ``data_root`` and ``build_root`` default to the repository's
    ``figures/``, ``data/`` and ``build/`` (tests point them at temporary folders).
    """
    from utils.io import ensure_writable_dir, write_text

    slug = paths.profile_slug(profile)
    root = figures_root or paths.FIGURES_DIR
    preflight(profile, strike_video, gutter_video,
              [root, (data_root or paths.DATA_DIR), (build_root or paths.BUILD_DIR)])
    final = root / slug
    staging = root / f"{slug}.partial"
    build = (build_root or paths.BUILD_DIR) / slug
    shutil.rmtree(staging, ignore_errors=True)  # a rerun starts clean
    try:
        ensure_writable_dir(staging)
        ensure_writable_dir(build)
    except PermissionError as err:
        raise SystemExit(f"error: {err}") from None
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("MPLBACKEND", "agg")
    parameters = {
        "profile": profile,
        "output_dir": str(staging),
        "data_dir": str((data_root or paths.DATA_DIR) / slug),
        "strike_video": strike_video or "",
        "gutter_video": gutter_video or "",
        "n_pairs": pairs,
        **(extra_parameters or {}),
    }
    t0 = time.time()
    timings = {}
    done = False
    try:
        for k, nb in enumerate(notebooks, 1):
            out_nb = build / nb.name
            print(f"== [{k}/{len(notebooks)}] {nb.stem}  (profile {profile})", flush=True)
            t = time.time()
            try:
                execute(nb, out_nb, parameters, build)
            except NotebookFailed as err:
                print(f"FAILED: {err}", file=sys.stderr, flush=True)
                print(f"no figure or table of this run was kept; {final} is unchanged", file=sys.stderr)
                raise SystemExit(1) from None
            timings[nb.stem] = time.time() - t
            if html:
                _html(out_nb)
            print(f"   done in {timings[nb.stem]:.0f}s -> {out_nb}", flush=True)
        done = True
    finally:
        if not done:  # a failure or an interrupt: nothing half-written stays behind
            shutil.rmtree(staging, ignore_errors=True)
    old = root / f"{slug}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    write_text(build / "timings.json", json.dumps({
        "profile": profile, "total_seconds": round(time.time() - t0, 1),
        "notebooks": {k: round(v, 1) for k, v in timings.items()},
        "finished": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}, indent=1) + "\n")
    print(f"all {len(notebooks)} notebooks ran in {time.time() - t0:.0f}s; figures and tables in "
          f"{final}", flush=True)
    return final


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)  # `kill` cleans up like Ctrl-C
    parser = argparse.ArgumentParser(description="Run the analysis notebooks for one profile.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--strike-video", default="")
    parser.add_argument("--gutter-video", default="")
    parser.add_argument("--pairs", default="", help="number of matched pairs (blank: default)")
    parser.add_argument("--no-html", action="store_true")
    args = parser.parse_args(argv)
    pairs = int(args.pairs) if str(args.pairs).strip() else None
    missing = [str(n) for n in args.notebooks if not n.is_file()]
    if missing:
        raise SystemExit(f"error: notebook(s) not found: {', '.join(missing)}")
    run_all(args.notebooks, args.profile, args.strike_video, args.gutter_video, pairs,
            html=not args.no_html)


if __name__ == "__main__":
    main()
