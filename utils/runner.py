"""Execute the notebooks headless for one profile (``make figures``).

    python -m utils.runner --profile toy notebooks/0*.ipynb

Each notebook runs under papermill with the parameters it declares (profile, output and
data folders, videos, pair count), all in one kernel whose namespace is cleared between
notebooks (``SharedKernel``: the imports are paid once); the executed copy goes to
``build/<profile>/`` with an HTML rendering beside it. Figures and tables are written into a staging folder
``figures/<profile>.partial`` that replaces ``figures/<profile>`` only once every notebook has
succeeded: a failure never leaves a mix of old and new outputs that looks complete. On
failure the runner deletes the staging folder, names the notebook and the failing cell
(the executed notebook in ``build/`` keeps the traceback) and exits non-zero. Inputs
(profile, videos, output folders) are checked before anything is written (``preflight``).

With ``--lanes 2`` (``make figures LANES=2``) notebook 00 runs first (every other notebook reads
the data it prepares), then the others are split over two kernels side by side, each on its share
of the threads, a notebook that needs another's results in the same kernel after it
(``FOLLOWS``). A notebook does not keep two threads busy all the time, so two lanes of one
thread each can save wall time on 2 cores. One lane stays the default: a kernel's thread
count moves the last digit of some tables, and the tables of ``make figures`` must equal those a
notebook writes in Jupyter (every core). Lanes do not move the numbers otherwise
(``tests/test_notebooks.py`` compares a one-lane and a two-lane run on equal threads byte for byte).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from utils import paths


class NotebookFailed(RuntimeError):
    pass


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# A notebook that must run after another, in the same kernel, when both are in one run: 09 judges the
# claims on what 06 kept (findings_inputs.pkl); 07 takes 06's per-pair results from utils.memo (the
# same numbers, not computed twice). 08 reuses 06's results the same way when it shares 06's kernel
# and computes them itself otherwise (the same numbers at equal threads): as the longest notebook it
# is better off in a lane of its own.
FOLLOWS = {
    "07_across_architectures": "06_beyond_the_paper",
    "09_controls": "06_beyond_the_paper",
}
# Seconds per notebook of a toy run on two cores, to balance the lanes before a run of this profile
# has written its own build/<profile>/timings.json (which is used instead when present).
TYPICAL_SECONDS = {"00_data_prep": 17, "01_attention_visualization": 5, "02_logit_lens": 5, "03_delta_norms": 4,
                   "04_activation_patching": 4, "05_ablation": 8, "06_beyond_the_paper": 40,
                   "07_across_architectures": 30, "08_circuit_discovery": 130, "09_controls": 22}


def cores() -> int:
    """Cores this process may use (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_lanes(notebooks: list[Path], lanes: int, seconds: dict[str, float] | None = None
               ) -> tuple[list[Path], list[list[Path]]]:
    """``(head, lanes)``: the notebooks that run first, alone (data preparation, ``00_*``), and the
    others split over at most ``lanes`` lists, each run in order in one kernel. A notebook named in
    ``FOLLOWS`` goes to the lane of the one it follows (when that one runs); the chains are then dealt
    longest first to the lane with the least expected time (``seconds`` per notebook stem, default
    ``TYPICAL_SECONDS``). With one lane: ``(notebooks, [])``, the serial run."""
    seconds = {**TYPICAL_SECONDS, **(seconds or {})}
    head = [nb for nb in notebooks if nb.stem.startswith("00_")]
    rest = [nb for nb in notebooks if nb not in head]
    if lanes <= 1 or len(rest) <= 1:
        return list(notebooks), []
    chains: list[list[Path]] = []
    chain_of: dict[str, list[Path]] = {}
    for nb in rest:
        lead = FOLLOWS.get(nb.stem)
        if lead in chain_of:
            chain_of[lead].append(nb)
            chain_of[nb.stem] = chain_of[lead]
        else:
            chain_of[nb.stem] = [nb]
            chains.append(chain_of[nb.stem])

    def cost(nbs):
        return sum(seconds.get(nb.stem, 10.0) for nb in nbs)

    plan: list[list[Path]] = [[] for _ in range(min(lanes, len(chains)))]
    for chain in sorted(chains, key=cost, reverse=True):
        min(plan, key=cost).extend(chain)
    order = {nb: i for i, nb in enumerate(notebooks)}
    return head, [sorted(lane, key=order.get) for lane in plan]


def _html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    out.write_text(body)
    return out


# Run before each notebook in the shared kernel: close figures, forget every name the previous
# notebook made, and number cells from 1 again; imported modules stay, which is the point.
RESET_CODE = """\
__import__("matplotlib.pyplot").pyplot.close("all")
get_ipython().run_line_magic("reset", "-f")
__import__("gc").collect()
get_ipython().execution_count = 1
"""


class SharedKernel:
    """One Python kernel that runs every notebook of a ``make figures`` run in turn.

    A fresh kernel per notebook spends most of 10 s per notebook starting up and importing
    torch, transformers, pandas and matplotlib (7.7 s of import cell alone on 2 cores), more
    than most toy notebooks compute. Here the imports are paid once; before each notebook
    ``RESET_CODE`` clears the namespace (``%reset -f``), so a notebook sees only what it makes
    itself, as in a fresh kernel: every random draw in ``utils`` is seeded where it happens, so
    no notebook's numbers depend on the one before (``tests/test_notebooks.py`` checks that a
    notebook gives the same tables byte for byte after other notebooks).

    The kernel talks to the runner over local IPC sockets in a private folder rather than TCP:
    nothing listens on the network, and the kernel has no "running over TCP without
    encryption" warning to print.
    """

    def __init__(self, cwd: Path, warm_modules: list[str] | tuple = (), threads: int | None = None):
        """Start the kernel in ``cwd``; with ``warm_modules``, it imports them at once, in the
        background, while the runner goes on (checking inputs, say); with ``threads``, its
        OpenMP/BLAS thread pools have that many threads (one lane's share of the cores)."""
        from jupyter_client.manager import KernelManager

        class ClientTrackingManager(KernelManager):
            """Remembers every client it makes: papermill's client of a kernel it did not start
            is never stopped (each holds sockets, a zmq context and a heartbeat thread)."""

            def client(self, **kwargs):
                made = super().client(**kwargs)
                clients.append(made)
                return made

        clients: list = []
        self._clients = clients
        self.sockets = Path(tempfile.mkdtemp(prefix="vivit-kernel-"))
        self.km = ClientTrackingManager(kernel_name="python3", transport="ipc", ip=str(self.sockets / "kernel-ipc"))
        # errors still reach the cells; the kernel's own log stays quiet
        env = dict(os.environ)
        if threads:
            env.update({k: str(threads) for k in THREAD_VARIABLES})
        self.km.start_kernel(cwd=str(cwd), env=env, extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        self._warm = None
        if warm_modules:  # a failed import is left for the notebook's own import cell to report
            self._warm = self.km.client()
            self._warm.start_channels()
            self._warm.wait_for_ready(timeout=120)  # a request sent before that can hang the kernel
            self._warm.execute(f"for _m in {list(warm_modules)!r}:\n    try:\n        __import__(_m)\n"
                               "    except Exception:\n        pass", silent=True, store_history=False)

    def stop_clients(self) -> None:
        """Stop every client of this kernel that is still connected (the last notebook's)."""
        while self._clients:
            client = self._clients.pop()
            if client.channels_running:
                client.stop_channels()

    def reset(self) -> None:
        """Clear the namespace before the next notebook (see ``RESET_CODE``)."""
        if self._warm is None:
            self.stop_clients()
        kc = self.km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            reply = kc.execute_interactive(RESET_CODE, silent=True, store_history=False, timeout=120)
            if reply["content"]["status"] != "ok":
                raise NotebookFailed(f"the kernel could not be reset between notebooks: "
                                     f"{reply['content'].get('evalue', reply['content']['status'])}")
        finally:
            kc.stop_channels()
            if self._warm is not None:  # the kernel answered the reset, so the imports are done
                self._warm = None
            self.stop_clients()

    def interrupt(self) -> None:
        """Interrupt the cell running in this kernel, from another thread: SIGINT to the kernel
        process, so the notebook fails at once with KeyboardInterrupt and the lane that runs it
        returns. (Shutting the kernel down instead left that lane waiting forever: the blocking
        client papermill gets reads its IOPub channel with no timeout, inside the event loop that
        would have noticed the dead kernel.)"""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)

    def close(self) -> None:
        self.stop_clients()
        try:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        finally:
            shutil.rmtree(self.sockets, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def imported_modules(notebooks: list[Path]) -> list[str]:
    """Top-level modules the notebooks import (``import x`` / ``from x import y``), in order."""
    import ast

    found: dict[str, None] = {}
    for nb in notebooks:
        for cell in json.loads(Path(nb).read_text()).get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            try:
                tree = ast.parse("".join(cell.get("source", "")))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.Import):
                    found.update(dict.fromkeys(a.name for a in node.names))
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found[node.module] = None
    return list(found)


def execute(notebook: Path, out_nb: Path, parameters: dict, cwd: Path, kernel: SharedKernel | None = None) -> None:
    """Run one notebook with papermill (in ``kernel``, or in a kernel of its own); raise
    NotebookFailed naming the failing cell."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    params = {k: v for k, v in parameters.items() if k in declared and v is not None}
    own = kernel is None
    try:
        if own:
            kernel = SharedKernel(cwd)
        kernel.reset()
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params, kernel_name="python3",
                            progress_bar=False, cwd=str(cwd), km=kernel.km)
    except pm.PapermillExecutionError as err:
        raise NotebookFailed(
            f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
            f"the executed notebook with the traceback is {out_nb}"
        ) from None
    except NotebookFailed:
        raise
    except Exception as err:  # noqa: BLE001 - the kernel died (out of memory?), a timeout ...
        raise NotebookFailed(
            f"{notebook.name} failed: {type(err).__name__}: {err} (a kernel that dies is usually out "
            f"of memory: lower batch sizes or pair counts); the partial notebook is {out_nb}"
        ) from None
    finally:
        if own and kernel is not None:
            kernel.close()


def preflight(profile: str, strike_video: str, gutter_video: str, roots: list[Path],
              device: str = "cpu", target_class: str = "", preprocess: str = "checkpoint",
              pairs_csv: str = "") -> None:
    """Check every input before anything is written; raise SystemExit with one clear message."""
    from utils.arch import ADAPTERS
    from utils.clipsets import PairsCSVError, read_pairs_csv
    from utils.io import ensure_writable_dir
    from utils.labels import ModelLoadError, check_preprocess, name_classes, resolve_device, resolve_target
    from utils.models import check_model_dir, profile_config
    from utils.profiles import PROFILES
    from utils.video import VideoError, probe_timestamps

    if profile not in PROFILES:
        path = Path(profile).expanduser()
        if not path.exists():
            raise SystemExit(f"error: unknown PROFILE={profile!r}; choose one of {', '.join(PROFILES)} "
                             "or the path of a HuggingFace ViViT, TimeSformer or VideoMAE checkpoint directory")
        try:
            check_model_dir(path)
        except ModelLoadError as err:
            raise SystemExit(f"error: PROFILE={profile}: {err}") from None
    try:
        resolve_device(device)
        check_preprocess(preprocess)
        config = profile_config(profile)
        name_classes(config)
        resolve_target({int(k): v for k, v in config.id2label.items()}, target_class,
                       where=f"the model of PROFILE={profile}", default=getattr(config, "default_target", None))
    except ModelLoadError as err:
        raise SystemExit(f"error: {err}") from None
    if bool(strike_video) != bool(gutter_video):
        raise SystemExit("error: pass both STRIKE_VIDEO and GUTTER_VIDEO, or neither")
    need = int(ADAPTERS[config.model_type].input_frames(config))  # frames the model reads
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
    if pairs_csv:
        try:
            read_pairs_csv(pairs_csv, min_frames=need)
        except PairsCSVError as err:
            raise SystemExit(f"error: {err}") from None
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
            extra_parameters: dict | None = None, device: str = "auto", target_class: str = "bowling",
            preprocess: str = "checkpoint", pairs_csv: str = "", lanes: int | None = None) -> Path:
    """Run ``notebooks`` in order; return the final figures folder (see module docstring).

    ``figures_root``, ``data_root`` and ``build_root`` default to the repository's
    ``figures/``, ``data/`` and ``build/`` (tests point them at temporary folders). ``lanes``:
    kernels that run notebooks side by side after notebook 00 (None: one).
    """
    from utils.io import ensure_writable_dir, write_text

    slug = paths.profile_slug(profile)
    root = figures_root or paths.FIGURES_DIR
    target_class = target_class or "bowling"
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("MPLBACKEND", "agg")
    build = (build_root or paths.BUILD_DIR) / slug
    lanes = max(1, int(lanes or 1))
    head, lane_plan = plan_lanes(list(notebooks), lanes, _earlier_timings(build))
    threads = max(1, (int(os.environ.get("OMP_NUM_THREADS") or 0) or cores()) // len(lane_plan)) if lane_plan else None
    # the kernels start and import what the notebooks import while the inputs are checked
    warm = imported_modules(notebooks)
    kernels = [SharedKernel(paths.REPO_ROOT, warm, threads=threads) for _ in range(max(1, len(lane_plan)))] \
        if notebooks else []
    try:
        preflight(profile, strike_video, gutter_video,
                  [root, (data_root or paths.DATA_DIR), (build_root or paths.BUILD_DIR)],
                  device=device, target_class=target_class, preprocess=preprocess, pairs_csv=pairs_csv)
    except BaseException:
        _close_all(kernels)
        raise
    final = root / slug
    staging = root / f"{slug}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # a rerun starts clean
    try:
        ensure_writable_dir(staging)
        ensure_writable_dir(build)
    except PermissionError as err:
        _close_all(kernels)
        raise SystemExit(f"error: {err}") from None
    parameters = {
        "profile": profile,
        "output_dir": str(staging),
        "data_dir": str((data_root or paths.DATA_DIR) / slug),
        "strike_video": str(Path(strike_video).expanduser().resolve()) if strike_video else "",
        "gutter_video": str(Path(gutter_video).expanduser().resolve()) if gutter_video else "",
        "n_pairs": pairs,
        "device": device or "auto",
        "target_class": str(target_class),
        "preprocess": preprocess or "checkpoint",
        "pairs_csv": str(Path(pairs_csv).expanduser().resolve()) if pairs_csv else "",
        **(extra_parameters or {}),
    }
    t0 = time.time()
    timings: dict[str, float] = {}
    done = False
    html_jobs = ThreadPoolExecutor(1, thread_name_prefix="html") if html else None  # HTML of one notebook
    pending = []  # while the next one runs
    position = {nb: k for k, nb in enumerate(notebooks, 1)}
    failed: list[NotebookFailed] = []

    def run_one(nb: Path, kernel: SharedKernel, lane: str = "") -> None:
        out_nb = build / nb.name
        print(f"== [{position[nb]}/{len(notebooks)}] {nb.stem}  (profile {profile}{lane})", flush=True)
        t = time.time()
        execute(nb, out_nb, parameters, paths.REPO_ROOT, kernel)
        timings[nb.stem] = time.time() - t
        if html_jobs is not None:
            pending.append(html_jobs.submit(_html, out_nb))
        print(f"   done in {timings[nb.stem]:.0f}s -> {out_nb}", flush=True)

    def run_lane(k: int, lane: list[Path]) -> None:
        for nb in lane:
            if failed:  # another lane failed: stop here
                return
            try:
                run_one(nb, kernels[k], f", lane {k + 1} of {len(lane_plan)}")
            except NotebookFailed as err:
                if not failed:
                    failed.append(err)
                    for other in kernels:  # the other lanes' notebooks stop at once
                        if other is not kernels[k]:
                            other.interrupt()
                return

    try:
        try:
            for nb in head:
                run_one(nb, kernels[0])
            if lane_plan:
                print(f"   the other {sum(map(len, lane_plan))} notebooks in {len(lane_plan)} lanes of "
                      f"{threads} thread{'s' * (threads != 1)}: " +
                      "; ".join(", ".join(nb.stem[:2] for nb in lane) for lane in lane_plan), flush=True)
                with ThreadPoolExecutor(len(lane_plan), thread_name_prefix="lane") as pool:
                    for job in [pool.submit(run_lane, k, lane) for k, lane in enumerate(lane_plan)]:
                        job.result()
                if failed:
                    raise failed[0]
        except NotebookFailed as err:
            print(f"FAILED: {err}", file=sys.stderr, flush=True)
            print(f"no figure or table of this run was kept; {final} is unchanged", file=sys.stderr)
            raise SystemExit(1) from None
        for job in pending:
            job.result()  # an HTML export that failed raises here
        done = True
    finally:
        _close_all(kernels)
        if html_jobs is not None:
            html_jobs.shutdown(wait=True, cancel_futures=not done)
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
        "notebooks": {nb.stem: round(timings[nb.stem], 1) for nb in notebooks},
        "lanes": [[nb.stem for nb in lane] for lane in lane_plan] or [[nb.stem for nb in notebooks]],
        "finished": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}, indent=1) + "\n")
    print(f"all {len(notebooks)} notebooks ran in {time.time() - t0:.0f}s; figures and tables in "
          f"{final}", flush=True)
    return final


def _close_all(kernels: list[SharedKernel]) -> None:
    for kernel in kernels:
        kernel.close()


def _earlier_timings(build: Path) -> dict[str, float]:
    """Seconds per notebook of this profile's last run (``build/<profile>/timings.json``), if any."""
    try:
        return {k: float(v) for k, v in json.loads((build / "timings.json").read_text())["notebooks"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


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
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--target", default="bowling", help="analysed class: a name or an index")
    parser.add_argument("--preprocess", default="checkpoint", help="checkpoint | original")
    parser.add_argument("--pairs-csv", default="", help="a CSV of your own video pairs")
    parser.add_argument("--no-html", action="store_true")
    parser.add_argument("--lanes", default="", help="kernels side by side after notebook 00 (blank: 1; see the "
                        "module's docstring)")
    parser.add_argument("--figures-root", type=Path, default=None, help="default: figures/")
    parser.add_argument("--data-root", type=Path, default=None, help="default: data/")
    parser.add_argument("--build-root", type=Path, default=None, help="default: build/")
    args = parser.parse_args(argv)
    pairs = int(args.pairs) if str(args.pairs).strip() else None
    missing = [str(n) for n in args.notebooks if not n.is_file()]
    if missing:
        raise SystemExit(f"error: notebook(s) not found: {', '.join(missing)}")
    run_all(args.notebooks, args.profile, args.strike_video, args.gutter_video, pairs,
            html=not args.no_html, figures_root=args.figures_root, data_root=args.data_root,
            build_root=args.build_root, device=args.device, target_class=args.target,
            preprocess=args.preprocess, pairs_csv=args.pairs_csv,
            lanes=int(args.lanes) if str(args.lanes).strip() else None)


if __name__ == "__main__":
    main()
