"""How far the committed toy tables move on other machines, and the tolerances that follow.

A fresh ``make figures`` on another CPU does not write the same floats: vector kernels of
another width (AVX-512, AVX2, plain SSE), another thread count, another GPU sum the same
numbers in another order. The toy tables carry 4 decimals, so most of that noise is
invisible, but a few quantities amplify it (a value that sits on a rounding or ranking
boundary). This module measures that spread on one machine by *emulating* others:

* ``ATEN_CPU_CAPABILITY=default`` / ``avx2`` / ``avx512``: PyTorch's CPU kernels of another
  vector width (a capability the CPU lacks falls back to its best);
* 1 thread instead of the machine's cores (another reduction order in PyTorch and BLAS);

runs the toy pipeline under each (``python -m utils.reproducibility measure``, about 4
minutes a run on 2 cores), and writes ``tests/tolerances.csv``: for every table and float
column, the largest difference from the committed value seen in any run (``spread``) and the
tolerance the regression test allows (``tolerance = max(FLOOR, SAFETY * spread)``).

    python -m utils.reproducibility measure            # run every environment, then tabulate
    python -m utils.reproducibility tabulate RUN_DIR   # tabulate runs already made

Strings, integers and booleans must match exactly: a spread there is a bug to fix, not a
tolerance to widen (``tabulate`` reports it and exits non-zero).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from utils import paths
from utils.runner import THREAD_VARIABLES

FLOOR = 2e-4  # two units of the CSVs' 4th decimal: the rounding of two runs can differ by one each way
SAFETY = 4.0  # tolerance = SAFETY x the largest spread measured (other CPUs may move further than ours)
TOLERANCES_CSV = paths.REPO_ROOT / "tests" / "tolerances.csv"  # written by `measure`, read by the tests
ENVIRONMENTS = {  # emulated machines: environment variables set for one toy run each (in this order)
    "native": {},  # this machine as it is (its best vector ISA, all its cores): the reference run
    "1-thread": dict.fromkeys(THREAD_VARIABLES, "1"),  # every thread pool the runner's lanes size
    "isa-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "isa-avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "isa-default": {"ATEN_CPU_CAPABILITY": "default"},  # PyTorch's kernels without AVX
    # an older x86 machine: every library on its SSE kernels (PyTorch, MKL, oneDNN, OpenBLAS, NumPy)
    "sse-machine": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                    "DNNL_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Nehalem",
                    "NPY_DISABLE_CPU_FEATURES": "X86_V3"},
    # other BLAS kernels than this CPU's: OpenBLAS's Sandy Bridge path (AVX, no FMA), MKL's AVX path
    "other-blas": {"OPENBLAS_CORETYPE": "Sandybridge", "MKL_ENABLE_INSTRUCTIONS": "AVX"},
}
ISA_FLAGS = {"isa-avx2": "avx2", "isa-avx512": "avx512f"}  # CPU flag an environment needs to differ from default


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is missing."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def runnable(names) -> list[str]:
    """The environments worth a run on this CPU: an ISA the CPU lacks falls back to what it has
    (and may not be safe to ask for), so it is left out, and said so."""
    flags = cpu_flags()
    native = native_capability()
    out = []
    for name in names:
        need = ISA_FLAGS.get(name)
        if need and need not in flags:
            print(f"skipping {name}: this CPU has no {need}")
            continue
        if need and ENVIRONMENTS[name].get("ATEN_CPU_CAPABILITY", "").upper() == native:
            print(f"skipping {name}: it is this CPU's own choice ({native}), the native run")
            continue
        out.append(name)
    return out


def native_capability() -> str:
    """The vector ISA PyTorch picks on this CPU by itself (``AVX2``, ``AVX512``, ``DEFAULT``, ...)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip().upper()


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV as ``utils.io.save_table`` writes it: empty cells stay missing, strings stay strings."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def column_spread(committed: pd.DataFrame, fresh: pd.DataFrame) -> dict[str, float]:
    """Per column of two tables of the same shape: the largest absolute float difference
    (missing on both sides: no difference; on one side: inf), or for any other column the
    number of cells that differ."""
    if list(committed.columns) != list(fresh.columns) or committed.shape != fresh.shape:
        return {"<shape or columns>": float("inf")}
    out = {}
    for col in committed.columns:
        w, g = committed[col], fresh[col]
        both = w.isna() & g.isna()
        if pd.api.types.is_float_dtype(w) and pd.api.types.is_float_dtype(g):
            diff = (g - w).abs().where(~both, 0.0).fillna(np.inf)
            out[col] = float(diff.max()) if len(diff) else 0.0
        else:
            out[col] = float((~((g == w) | both)).sum())
    return out


def is_float_column(table: pd.DataFrame, col: str) -> bool:
    return pd.api.types.is_float_dtype(table[col])


def tabulate(runs: dict[str, Path], committed: Path | None = None, only_written: bool = False) -> pd.DataFrame:
    """One row per (table, column) of the committed tables: ``kind`` (float or exact), the spread
    in each run (columns ``spread_<run>``), ``spread`` (the largest) and ``tolerance``. With
    ``only_written``, tables that some run did not write (a run of some notebooks) are left out."""
    committed = committed or paths.FIGURES_DIR / "toy"
    rows = []
    for csv in sorted(committed.glob("*.csv")):
        if only_written and not all((folder / csv.name).exists() for folder in runs.values()):
            continue
        want = read_table(csv)
        per_run = {}
        for name, folder in runs.items():
            f = folder / csv.name
            per_run[name] = column_spread(want, read_table(f)) if f.exists() else {"<missing>": float("inf")}
        for col in want.columns:
            kind = "float" if is_float_column(want, col) else "exact"
            spreads = {f"spread_{k}": v.get(col, v.get("<shape or columns>", v.get("<missing>", np.inf)))
                       for k, v in per_run.items()}
            spread = max(spreads.values()) if spreads else 0.0
            tol = max(FLOOR, SAFETY * spread) if kind == "float" else 0.0
            rows.append({"table": csv.stem, "column": col, "kind": kind, **spreads, "spread": spread,
                         "tolerance": tol})
    return pd.DataFrame(rows)


def input_spread(runs: dict[str, Path]) -> pd.DataFrame:
    """The same for the findings' inputs (``utils.findings.save_inputs`` in each run's data folder,
    per-pair values that no committed table holds): the spread of every float column against the
    first run's, and the scale (``max |value|``) of the column. ``kind`` is ``input``."""
    from utils.findings import INPUTS_FILE, input_frames, load_inputs

    found = {k: p for k, p in runs.items() if (p / INPUTS_FILE).is_file()}
    if len(found) < 2:
        return pd.DataFrame()
    frames = {k: input_frames(load_inputs(p)) for k, p in found.items()}
    first, *others = found
    rows = []
    for name, ref in frames[first].items():
        for col in ref.columns:
            if not is_float_column(ref, col):
                continue
            spreads = {f"spread_{k}": column_spread(ref[[col]], frames[k][name][[col]])[col] for k in others}
            spread = max(spreads.values())
            scale = float(ref[col].abs().max()) if len(ref) else 0.0
            rows.append({"table": f"findings_inputs:{name}", "column": col, "kind": "input", **spreads,
                         "spread": spread, "scale": scale, "tolerance": SAFETY * spread})
    return pd.DataFrame(rows)


def load_tolerances(path: str | Path = TOLERANCES_CSV, kind: str = "float") -> dict[tuple[str, str], float]:
    """``{(table, column): tolerance}`` of one kind of row of ``tests/tolerances.csv``: ``float``
    (committed tables) or ``input`` (the findings' inputs, table ``findings_inputs:<name>``)."""
    t = read_table(path)  # a column named "null" stays a name, not a missing value
    t = t[t.kind == kind]
    return {(r.table, r.column): float(r.tolerance) for r in t.itertuples()}


README_START = "<!-- spread:start -->"  # README markers around the generated spread table
README_END = "<!-- spread:end -->"


def spread_summary(tolerances: pd.DataFrame) -> pd.DataFrame:
    """Per committed table: the largest spread of any float column across the emulated machines,
    that column, and the largest tolerance the regression test allows; inputs rows left out."""
    t = tolerances[tolerances.kind == "float"]
    rows = []
    for table, d in t.groupby("table", sort=True):
        worst = d.loc[d.spread.idxmax()]
        rows.append({"table": table, "largest spread": float(worst.spread),
                     "in column": worst.column if worst.spread > 0 else "-",
                     "largest tolerance": float(d.tolerance.max())})
    return pd.DataFrame(rows)


def readme_block(path: str | Path = TOLERANCES_CSV) -> str:
    """What README.md holds between ``README_START`` and ``README_END``: ``spread_summary`` of
    ``tests/tolerances.csv`` as a Markdown table, with the environments it was measured in."""
    t = pd.read_csv(path, keep_default_na=False, na_values=[""])
    runs = [c.removeprefix("spread_") for c in t.columns if c.startswith("spread_")]
    s = spread_summary(t)
    lines = [README_START,
             "<!-- generated from tests/tolerances.csv by `python -m utils.reproducibility readme`; do not edit -->",
             f"Measured on emulated machines ({', '.join(runs)}; `utils/reproducibility.py` says what each sets); "
             f"tolerance = max({FLOOR:g}, {SAFETY:g} x spread) per column:", "",
             "| table | largest spread | in column | largest tolerance |", "|---|---|---|---|"]
    lines += [f"| {r.table} | {r['largest spread']:.2g} | {r['in column']} | {r['largest tolerance']:.2g} |"
              for _, r in s.iterrows()]
    return "\n".join(lines + [README_END])


def update_readme(readme: str | Path | None = None) -> bool:
    """Rewrite README.md's spread block from ``tests/tolerances.csv``; True if it changed."""
    readme = Path(readme or paths.REPO_ROOT / "README.md")
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} lacks the markers {README_START} ... {README_END}")
    new = text[:start] + readme_block() + text[end + len(README_END):]
    if new == text:
        return False
    readme.write_text(new)
    return True


def notebooks(prefixes=None) -> list[Path]:
    """The numbered notebooks, all or those whose number is in ``prefixes`` (``["00", "09"]``)."""
    found = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in found if not prefixes or nb.name[:2] in prefixes]


def run_environment(name: str, env: dict, root: Path, prefixes=None) -> Path:
    """``make figures`` (toy; or the notebooks numbered ``prefixes``) under ``env`` into
    ``root/name``; returns the figures folder."""
    folder = root / name
    cmd = [sys.executable, "-m", "utils.runner", "--profile", "toy", "--no-html",
           "--figures-root", str(folder / "figures"), "--data-root", str(folder / "data"),
           "--build-root", str(folder / "build"), *map(str, notebooks(prefixes))]
    print(f"== {name}: {' '.join(f'{k}={v}' for k, v in env.items()) or '(this machine as it is)'}", flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, cwd=paths.REPO_ROOT)
    return folder / "figures" / "toy"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="run the toy pipeline under every environment, then tabulate")
    m.add_argument("--root", type=Path, default=paths.BUILD_DIR / "spread")
    m.add_argument("--only", nargs="*", default=None, help="environment names (default: all)")
    m.add_argument("--notebooks", nargs="*", default=None,
                   help="numbers of the notebooks to run (e.g. 00 09: new tables); the rows of the tables they do "
                   "not write are kept from tests/tolerances.csv")
    t = sub.add_parser("tabulate", help="tabulate runs already made under ROOT/<environment>/figures/toy")
    t.add_argument("root", type=Path)
    sub.add_parser("readme", help="rewrite README.md's spread table from tests/tolerances.csv")
    args = parser.parse_args(argv)
    if args.cmd == "readme":
        print("README spread table rewritten" if update_readme() else "README spread table already up to date")
        return 0
    if args.cmd == "measure":
        for name in runnable(args.only or ENVIRONMENTS):
            run_environment(name, ENVIRONMENTS[name], args.root, args.notebooks)
    root = args.root
    subset = getattr(args, "notebooks", None)
    found = sorted(root.glob("*/figures/toy"), key=lambda p: (p.parent.parent.name != "native", str(p)))
    runs = {p.parent.parent.name: p for p in found}
    table = tabulate(runs, only_written=bool(subset))
    inputs = input_spread({k: p.parent.parent / "data" / "toy" for k, p in runs.items()})
    both = pd.concat([table, inputs], ignore_index=True)
    if subset and TOLERANCES_CSV.is_file():  # keep what this run did not measure
        old = pd.read_csv(TOLERANCES_CSV, keep_default_na=False, na_values=[""])
        both = pd.concat([old[~old.table.isin(set(both.table))], both], ignore_index=True)
        both = both.sort_values(["kind", "table"], kind="stable").reset_index(drop=True)
    both = both[["table", "column", "kind", "spread", "tolerance"] + [c for c in both if c.startswith("spread_")]
                + (["scale"] if "scale" in both else [])]
    both.to_csv(TOLERANCES_CSV, index=False, float_format="%.6g", lineterminator="\n")
    exact = table[(table.kind == "exact") & (table.spread > 0)]
    floats = table[table.kind == "float"].sort_values("spread", ascending=False)
    print(f"runs: {', '.join(runs)}; wrote {TOLERANCES_CSV}")
    update_readme()
    print(floats.head(15).to_string(index=False))
    if len(exact):
        print("columns that must match exactly but moved:\n" + exact.to_string(index=False))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
