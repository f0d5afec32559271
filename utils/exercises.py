"""The course's exercises: student and solution notebooks built from one source each.

A source is a Python script in jupytext's *percent* format, ``notebooks/exercises/src/NN_name.py``
(``# %%`` starts a code cell, ``# %% [markdown]`` a text cell). Inside a function the solution
sits between two marker lines::

    def readout_logit_lens(hooked, run, target):
        # SOLUTION
        ...the reference implementation...
        # END SOLUTION

``build`` writes two notebooks per source:

* ``notebooks/exercises/NN_name.ipynb`` (the student's): every solution block replaced by
  ``raise NotImplementedError("<function> is not implemented yet ...")`` at its indentation;
* ``notebooks/exercises/solutions/NN_name.ipynb``: the source with the marker lines dropped.

Both are committed (a student opens them without building anything); ``tests/test_exercises.py``
checks that they are what ``build`` makes of the sources, that the solutions pass every check
(``utils.checks``) and that the stubs fail with the "not implemented" message.

    python -m utils.exercises          # rebuild every exercise notebook from its source
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat

from utils import paths

EXERCISES_DIR = paths.NOTEBOOKS_DIR / "exercises"
SOURCE_DIR = EXERCISES_DIR / "src"
SOLUTIONS_DIR = EXERCISES_DIR / "solutions"
START, END = "# SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("{name} is not implemented yet: write it here, then rerun this cell")'


def _function_at(lines: list[str], i: int) -> str:
    """The name of the function whose body holds line ``i`` (the nearest ``def`` above it)."""
    for line in reversed(lines[:i]):
        m = re.match(r"\s*def (\w+)\(", line)
        if m:
            return m.group(1)
    raise ValueError(f"a {START} block at line {i + 1} is not inside a function")


def student_text(source: str, where: str = "source") -> str:
    """``source`` with each solution block replaced by its stub."""
    lines, out, i = source.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == START:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END), None)
            if end is None:
                raise ValueError(f"{where}: line {i + 1} opens a {START} block that no {END} line closes")
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB.format(name=_function_at(lines, i)))
            i = end + 1
            continue
        if line.strip() == END:
            raise ValueError(f"{where}: line {i + 1} closes a {START} block that was never opened")
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def solution_text(source: str) -> str:
    """``source`` with the marker lines dropped."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (START, END)) + "\n"


def to_notebook(text: str) -> nbformat.NotebookNode:
    """A percent-format script as a notebook without outputs (a Python 3 kernel)."""
    nb = jupytext.reads(text, fmt="py:percent")
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.metadata = {}
        cell.id = f"cell-{i}"  # stable ids: a rebuild writes the same bytes
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("[0-9][0-9]_*.py"))


def built(source: Path) -> dict[Path, str]:
    """What ``build`` writes for one source: path -> notebook text."""
    text = source.read_text()
    name = source.stem + ".ipynb"
    return {EXERCISES_DIR / name: nbformat.writes(to_notebook(student_text(text, str(source)))) + "\n",
            SOLUTIONS_DIR / name: nbformat.writes(to_notebook(solution_text(text))) + "\n"}


def build() -> list[Path]:
    """Write every exercise's student and solution notebook; returns the paths written."""
    written = []
    for source in sources():
        for path, text in built(source).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p.relative_to(paths.REPO_ROOT))
