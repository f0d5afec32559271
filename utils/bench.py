"""Benchmarks (``make bench``): the heavy paths, optimised vs naive, measured in one run.

* Patching sweep (12 layers x {attention, MLP}, strike into gutter):
  naive = one full forward per patch from the pixels, every activation cached;
  ours  = prefix reuse (start at the patched layer from the cached clean residual) plus
  batched patched runs. Median wall time of ``--reps`` runs each, same process, same input.
* CLS-attention capture for every layer and head: peak memory of ours
  (``attn.hook_pattern_cls``: one O(tokens) row per head) vs the HF model with eager
  attention and ``output_attentions=True``. Each case runs in a fresh subprocess; the
  figure is the rise of its peak resident memory over its own baseline after loading.
* Every head's patching effect: attribution patching (``utils.atp``: a source run and the
  target run's forward and backward pass) vs exact head patching (a patched run per head from
  the cached prefix), each from the pixels; the note gives their rank agreement. At paper scale
  exact patching of all 144 heads takes minutes on a CPU: ``--exact-reps`` (default 1) runs.
* End-to-end ``make figures``: the runner records each run's timings in
  ``build/<profile>/timings.json``; the latest are reported (not rerun here).

``--device`` (``make bench DEVICE=...``) runs the sweeps on a GPU; there the memory figure is
the rise of ``torch.cuda.max_memory_allocated``. Results: ``benchmarks/results.md`` and
``benchmarks/results.csv`` (CPU), or ``results-<card>.md/csv`` for a GPU run, with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import pandas as pd
import torch

from utils import paths
from utils.io import atomic_path, write_text


def _machine(device: torch.device) -> str:
    cpu = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
           f"{torch.get_num_threads()} threads, Python {platform.python_version()}")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}); host {cpu}"
    return cpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(cases: dict, device, label: str) -> tuple[dict, dict]:
    """Run each case ``name: (fn, reps)`` interleaved, ``reps`` times; returns ``(median wall
    time per case, last result per case)``."""
    times = {k: [] for k in cases}
    results = {}
    for rep in range(max(r for _, r in cases.values())):
        for name, (fn, reps) in cases.items():
            if rep >= reps:
                continue
            _sync(device)
            t = time.perf_counter()
            results[name] = fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
            print(f"  {label} {name}: {times[name][-1]:.2f}s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}, results


def _pair(loaded):
    from utils.data import CANONICAL_SEED
    from utils.synthetic import render_pair

    s, g = render_pair(CANONICAL_SEED, num_frames=loaded.num_frames, size=loaded.image_size)
    return loaded.preprocess(s).to(loaded.device), loaded.preprocess(g).to(loaded.device)


def bench_sweep(profile: str, reps: int, batch_size: int, device: str = "cpu") -> dict:
    from utils.hooks import HookedVideoTransformer
    from utils.models import load_model
    from utils.patching import component_patches, naive_patches, needed_target_names, run_patches

    loaded = load_model(profile, device=device)
    hooked = HookedVideoTransformer(loaded)
    strike, gutter = _pair(loaded)
    L = hooked.n_layers
    src_names = {f"blocks.{i}.{s}" for i in range(L) for s in ("hook_attn_out", "hook_mlp_out")}

    def ours():
        src = hooked.run(strike, names=src_names)
        tgt = hooked.run(gutter, names=needed_target_names(hooked))
        return run_patches(hooked, tgt.cache, component_patches(hooked, src.cache), batch_size=batch_size or None)

    def naive():
        src = hooked.run(strike, names=src_names)
        return naive_patches(hooked, gutter, component_patches(hooked, src.cache))

    med, results = _timed({"naive": (naive, reps), "ours": (ours, reps)}, loaded.device, f"{profile} sweep")
    a, b = results["ours"][0], results["naive"][0]
    rel = float((a - b).abs().max() / b.abs().max())
    return {"case": f"patching sweep, {profile} ({hooked.n_tokens} tokens, {2 * L} patches)",
            "measure": "wall time (s)", "naive": med["naive"], "ours": med["ours"],
            "ratio": med["ours"] / med["naive"], "target": "<= 0.6", "runs": reps,
            "note": f"max relative difference ours vs naive: {rel:.1e}"}


def bench_atp(profile: str, reps: int, exact_reps: int, device: str = "cpu") -> dict:
    """Every head's patching effect (strike into gutter, readout metric): attribution patching
    (one source run, one target run with its backward pass) vs exact head patching (one source
    run, one target run, one patched run per head from the cached prefix), from the pixels."""
    from scipy.stats import spearmanr

    from utils import atp
    from utils.hooks import HookedVideoTransformer
    from utils.models import load_model
    from utils.patching import head_patches, needed_target_names

    loaded = load_model(profile, device=device)
    hooked = HookedVideoTransformer(loaded)
    strike, gutter = _pair(loaded)
    L, final = hooked.n_layers, atp.final_site(hooked)
    src_names = {f"blocks.{i}.{s}" for i in range(L) for s in hooked.head_sites.values()} | {final}

    def ours():
        src = hooked.run(strike, names=src_names)
        metric = lambda tgt_final: atp.readout_projection(hooked, src[final], tgt_final)  # noqa: E731
        return atp.atp(hooked, head_patches(hooked, src.cache), metric, target_pixels=gutter)

    def naive():
        src = hooked.run(strike, names=src_names)
        tgt = hooked.run(gutter, names=needed_target_names(hooked))
        metric = atp.readout_projection(hooked, src[final], tgt[final])
        return atp.exact(hooked, head_patches(hooked, src.cache), metric, tgt.cache)

    med, results = _timed({"naive": (naive, exact_reps), "ours": (ours, reps)}, loaded.device, f"{profile} heads")
    rho = spearmanr(results["naive"].numpy(), results["ours"].numpy()).statistic
    n = len(results["ours"])
    return {"case": f"every head's effect, {profile} ({n} heads): AtP vs exact patching",
            "measure": "wall time (s)", "naive": med["naive"], "ours": med["ours"],
            "ratio": med["ours"] / med["naive"], "target": "<= 0.05", "runs": min(reps, exact_reps),
            "note": f"AtP {reps} runs, exact {exact_reps}; Spearman rho AtP vs exact "
                    f"{rho:.3f} (readout metric, strike into gutter)"}


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_child(profile: str, mode: str, device: str = "cpu") -> None:
    """Subprocess body: print the peak-memory rise (MiB) of one CLS-attention capture."""
    from utils.hooks import HookedVideoTransformer
    from utils.models import load_model

    loaded = load_model(profile, device=device)
    hooked = HookedVideoTransformer(loaded)
    x, _ = _pair(loaded)
    with torch.inference_mode():
        hooked.run(x)  # warm-up: allocator pools and kernels exist before the baseline
    base = _peak_mib(loaded.device)
    with torch.inference_mode():
        if mode == "ours":
            run = hooked.run(x, names={f"blocks.{i}.attn.hook_pattern_cls" for i in range(hooked.n_layers)})
            rows = torch.stack([run[f"blocks.{i}.attn.hook_pattern_cls"] for i in range(hooked.n_layers)])
        else:
            out = loaded.model(pixel_values=x, output_attentions=True)
            rows = torch.stack([a[:, :, 0] for a in out.attentions])
    peak = _peak_mib(loaded.device)
    print(json.dumps({"rise_mib": peak - base, "shape": list(rows.shape)}))


def bench_memory(profile: str, device: str = "cpu") -> dict:
    res = {}
    for mode in ("naive", "ours"):
        out = subprocess.run([sys.executable, "-m", "utils.bench", "--memory-child", profile, mode,
                              "--device", device], capture_output=True, text=True, check=True)
        res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {profile} CLS capture {mode}: +{res[mode]['rise_mib']:.0f} MiB", flush=True)
    memory = "GPU memory" if device.startswith("cuda") else "RSS"
    return {"case": f"CLS attention, all layers x heads, {profile}", "measure": "peak memory rise (MiB)",
            "naive": res["naive"]["rise_mib"], "ours": res["ours"]["rise_mib"],
            "ratio": res["ours"]["rise_mib"] / max(res["naive"]["rise_mib"], 1e-9), "target": "<= 0.25",
            "runs": 1, "note": f"rows {res['ours']['shape']}; rise of peak {memory} above the peak of a plain forward "
                               "pass (warm-up); naive = HF eager, output_attentions=True"}


def end_to_end() -> list[dict]:
    rows = []
    for profile in ("toy", "paper-shape"):
        f = paths.BUILD_DIR / paths.profile_slug(profile) / "timings.json"
        if f.is_file():
            t = json.loads(f.read_text())
            rows.append({"case": f"make figures PROFILE={profile}", "measure": "wall time (s)",
                         "naive": float("nan"), "ours": t["total_seconds"], "ratio": float("nan"),
                         "target": "< 300 s" if profile == "toy" else "< 480 s", "runs": 1,
                         "note": f"recorded by the runner on {t['finished']}; "
                                 + ", ".join(f"{k} {v:.0f}s" for k, v in t["notebooks"].items())})
    return rows


def refresh_end_to_end() -> str:
    """``--end-to-end``: the CPU results with only the ``make figures`` rows replaced by the runner's
    latest timings; every measured case (and the line saying when it was measured) is kept as it
    is. For a change that moves the end-to-end time and none of the measured paths."""
    out = paths.BENCH_DIR
    old = pd.read_csv(out / "results.csv")
    df = pd.concat([old[~old.case.str.startswith("make figures")], pd.DataFrame(end_to_end())], ignore_index=True)
    header = (out / "results.md").read_text().split("\n\n")[1].split(" End-to-end rows refreshed")[0]
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    md = (f"# Benchmarks\n\n{header} End-to-end rows refreshed from the runner's timings on "
          f"{time.strftime('%Y-%m-%d')} (`python -m utils.bench --end-to-end`).\n\n"
          + df.to_markdown(index=False, floatfmt=".3f") + "\n")
    write_text(out / "results.md", md)
    return md


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmarks: optimised vs naive paths.")
    parser.add_argument("--reps", type=int, default=5, help="runs per toy case (median)")
    parser.add_argument("--paper-reps", type=int, default=2, help="runs per paper-shape case")
    parser.add_argument("--exact-reps", type=int, default=1,
                        help="runs of exact head patching at paper scale (about 150 patched runs each)")
    parser.add_argument("--batch-size", type=int, default=0, help="0: automatic")
    parser.add_argument("--skip-paper", action="store_true", help="toy only (quick check)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--end-to-end", action="store_true",
                        help="only refresh the make figures rows of benchmarks/results.md from the runner's latest "
                             "timings (the measured cases are kept)")
    parser.add_argument("--memory-child", nargs=2, metavar=("PROFILE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.end_to_end:
        print(refresh_end_to_end())
        return
    from utils.labels import ModelLoadError, resolve_device

    try:
        device = resolve_device(args.device)
    except ModelLoadError as err:
        raise SystemExit(f"error: {err}") from None
    if args.memory_child:
        _memory_child(*args.memory_child, device=str(device))
        return
    t0 = time.time()
    dev = str(device)
    rows = [bench_sweep("toy", args.reps, args.batch_size, dev), bench_memory("toy", dev),
            bench_atp("toy", args.reps, args.reps, dev)]
    if not args.skip_paper:
        rows += [bench_sweep("paper-shape", args.paper_reps, args.batch_size, dev), bench_memory("paper-shape", dev),
                 bench_atp("paper-shape", args.paper_reps, args.exact_reps, dev)]
    if device.type == "cpu":
        rows += end_to_end()
    df = pd.DataFrame(rows)
    out = paths.BENCH_DIR
    stem = "results" if device.type == "cpu" else "results-" + torch.cuda.get_device_name(device).replace(" ", "-")
    with atomic_path(out / f"{stem}.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    md = (f"# Benchmarks\n\nMachine: {_machine(device)}. Measured by `make bench` on "
          f"{time.strftime('%Y-%m-%d')} in {time.time() - t0:.0f} s; ratios compare two medians "
          f"measured in the same run (ratio = ours / naive; lower is better).\n\n"
          + df.to_markdown(index=False, floatfmt=".3f") + "\n")
    write_text(out / f"{stem}.md", md)
    print(md)


if __name__ == "__main__":
    main()
