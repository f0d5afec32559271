"""Writing outputs atomically: a figure or table is either complete or absent.

Every file goes to a temporary name beside its target and is renamed into place only once
it is fully written, so an error or an interrupt midway never leaves a half-written output
that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pandas as pd


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create output folder {path} ({err.strerror}); "
                              "choose another output_dir") from None
    if not os.access(path, os.W_OK):
        raise PermissionError(f"output folder {path} is not writable; choose another "
                              "output_dir or fix its permissions")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str, caption: str = "",
               float_format: str = "%.4f") -> dict[str, Path]:
    """Save ``df`` as ``name.csv`` (machines), ``name.md`` (people) and ``name.tex`` (papers).

    Numbers are written with ``float_format`` so reruns reproduce the files byte for byte.
    """
    out_dir = Path(out_dir)
    files = {}
    with atomic_path(out_dir / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
    files["csv"] = out_dir / f"{name}.csv"
    md = df.to_markdown(index=False, floatfmt=float_format.lstrip("%"))
    files["md"] = write_text(out_dir / f"{name}.md", (f"{caption}\n\n" if caption else "") + md + "\n")
    # booktabs rules (\toprule, \midrule, \bottomrule), special characters escaped
    tex = df.to_latex(index=False, float_format=lambda x: float_format % x, escape=True,
                      caption=caption or None, label=f"tab:{name}")
    files["tex"] = write_text(out_dir / f"{name}.tex", tex)
    return files


class SavedFigure(dict):
    """What ``save_figure`` returns: ``{"png": path, "pdf": path}``. As the last expression of a
    notebook cell it shows nothing more (the figure itself is already shown inline)."""

    def _ipython_display_(self):
        pass


def show_inline(png: Path) -> bool:
    """Show a saved PNG as the cell's output when running in an IPython kernel (Jupyter, nbconvert,
    papermill); a plain Python process shows nothing. The PNG's bytes are shown, not the live
    figure, so what a student sees is exactly the file the README links, whatever the backend."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover - IPython ships with jupyter, a dependency
        return False
    if get_ipython() is None:
        return False
    display(Image(data=Path(png).read_bytes(), format="png"))
    return True


def save_figure(fig, out_dir: str | Path, name: str, show: bool = True) -> SavedFigure:
    """Save a matplotlib figure as ``name.png`` (README) and ``name.pdf`` (papers); in a notebook,
    show the PNG inline (``show_inline``) and close the figure, so that it appears once, where it
    was saved, under every backend (``agg`` in ``make figures``, inline in Jupyter)."""
    out_dir = Path(out_dir)
    files = SavedFigure()
    for ext, kwargs in (("png", {"dpi": 130, "metadata": {"Software": None}}),
                        ("pdf", {"metadata": {"CreationDate": None, "Producer": None}})):
        with atomic_path(out_dir / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **kwargs)
        files[ext] = out_dir / f"{name}.{ext}"
    if show:
        show_inline(files["png"])
    import matplotlib.pyplot as plt

    plt.close(fig)  # the inline backend would otherwise draw it a second time at the end of the cell
    return files
