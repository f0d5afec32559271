"""The reader's site: ``make site`` turns one profile's executed notebooks, README, findings and
figures into a static HTML site in ``site/`` that opens offline from ``site/index.html``.

Built with Sphinx and MyST-NB (``pip install -e .[site]``), chosen over Jupyter Book 2 (which
needs Node.js) and mkdocs-jupyter (whose themes load fonts and highlight.js from CDNs): Sphinx's
default theme ships every asset it uses, MyST-NB renders the notebooks already executed by
``make figures`` without running them again, and the only remote asset left, MathJax, is served
from the copy that ``jupyter-server-mathjax`` installs. Nothing on a page asks another host for
anything (``tests/test_site.py`` checks every page and stylesheet).

The source tree mirrors the repository (``README.md``, ``notebooks/``, ``figures/<profile>/``) so
that the README's relative links and images resolve on the site as they do on GitHub.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from utils import paths

SITE_DIR = paths.REPO_ROOT / "site"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"

CONF = '''\
# Written by utils/site.py for one `make site` build; not edited by hand.
project = "vivit-interp"
author = "vivit-interp contributors"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "figures/**"]  # the tables are gathered on one page (tables.md)
html_theme = "alabaster"
html_title = "vivit-interp: {profile}"
html_static_path = ["_static"]
html_theme_options = {{"description": "Attention Gathers, MLPs Compose: a reproduction you can run",
                      "fixed_sidebar": True, "show_powered_by": False}}
html_copy_source = False
html_show_sourcelink = False
nb_execution_mode = "off"  # the notebooks ran in `make figures`; the site shows those outputs
nb_ipywidgets_js = {{}}  # no widget JavaScript from a CDN
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
mathjax_path = "mathjax/MathJax.js?config={mathjax_config}"  # MathJax 2, served from the site itself
mathjax2_config = {{"tex2jax": {{"inlineMath": [["\\\\(", "\\\\)"]], "displayMath": [["\\\\[", "\\\\]"]]}}}}
suppress_warnings = ["myst.xref_missing", "myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]
'''


class SiteError(RuntimeError):
    """What is missing before a site can be built, and how to make it."""


def _mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as err:
        raise SiteError("make site needs the site packages: pip install -e '.[site]'") from err
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def executed_notebooks(build_dir: Path, names: list[str] | None = None) -> list[Path]:
    """The executed copies of every analysis notebook (or of ``names``, stems such as
    ``00_data_prep``), in order; a clear error names the first one missing or without outputs
    (the site shows what ``make figures`` computed)."""
    found = []
    for nb in sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        if names is not None and nb.stem not in names:
            continue
        run = build_dir / nb.name
        if not run.is_file():
            raise SiteError(f"{run} does not exist: run `make figures` (PROFILE={build_dir.name}) before "
                            f"`make site`")
        cells = json.loads(run.read_text())["cells"]
        if not any(c.get("outputs") for c in cells if c["cell_type"] == "code"):
            raise SiteError(f"{run} holds no outputs: it was not executed; run `make figures` again")
        found.append(run)
    return found


def _page(title: str, body: str) -> str:
    return f"# {title}\n\n{body.strip()}\n"


def _index(profile: str, notebooks: list[Path], exercises: list[Path]) -> str:
    nb_lines = "\n".join(f"notebooks/{p.stem}" for p in notebooks)
    ex_lines = "\n".join(f"notebooks/exercises/{p.stem}" for p in exercises)
    return f"""# vivit-interp

A reproduction of "Attention Gathers, MLPs Compose: A Causal Analysis of an Action-Outcome
Circuit in VideoViT", and a test of whether its methods support its claims. This site shows the
notebooks as `make figures` executed them for the **{profile}** profile, with every figure and
table they wrote; nothing on it needs a network connection.

* **Read**: start with the [course](notebooks/README.md) (reading order, objectives, glossary),
  then the notebooks in order.
* **Check a claim**: the [findings](findings.md) table gives every claim of the paper with its
  test and verdict; the [README](README.md) puts them in context.
* **Explore**: <a href="explorer/index.html">the interactive explorer</a> shows the canonical pair
  with the readout's attention for any layer, head and time step, the patching sweeps as heatmaps
  and the circuit as a graph (one self-contained page).
* **See**: the [gallery](gallery.md) holds every figure of the run, the [tables](tables.md) page
  every table.

```{{toctree}}
:maxdepth: 1
:caption: Start here

README
notebooks/README
findings
gallery
tables
```

```{{toctree}}
:maxdepth: 1
:caption: Notebooks ({profile})

{nb_lines}
```

```{{toctree}}
:maxdepth: 1
:caption: Exercises

{ex_lines}
```
"""


def _listing(title: str, intro: str, files: list[Path], section) -> str:
    """A page with one section per file (``section(file)``: its Markdown body)."""
    return _page(title, "\n\n".join([intro] + [f"## {f.stem}\n\n{section(f)}" for f in files]))


def _gallery(profile: str, figures: list[Path]) -> str:
    return _listing("Gallery", f"Every figure of the `{profile}` run (`figures/{profile}/`), in the order the "
                    "notebooks write them. Each notebook's page says how to read its figures.", figures,
                    lambda png: f"![{png.stem}](figures/{profile}/{png.name})")


def _tables(profile: str, tables: list[Path]) -> str:
    return _listing("Tables", f"Every table of the `{profile}` run (`figures/{profile}/`, also as CSV and LaTeX), "
                    "each with the caption its notebook wrote.", tables, lambda md: md.read_text().strip())


def _figure_key(p: Path) -> tuple:
    m = re.match(r"(fig|table)(\d+)", p.stem)
    return (int(m.group(2)) if m else 99, p.stem)


def build_site(profile: str = "toy", build_dir: Path | None = None, figures_dir: Path | None = None,
               out: Path | None = None, work: Path | None = None, quiet: bool = True,
               data_dir: Path | None = None, explorer: bool = True, device: str = "cpu",
               notebooks: list[str] | None = None) -> Path:
    """Build the site of ``profile`` into ``out`` (default ``site/``) from the executed notebooks in
    ``build_dir`` (default ``build/<profile>``), the figures in ``figures_dir`` (default
    ``figures/<profile>``) and, for the explorer (``utils.explorer``), the clips notebook 00
    prepared in ``data_dir`` (default ``data/<profile>``). The old site is replaced only once the
    new one is complete. ``notebooks`` (stems) limits the site to those notebooks (the browser
    test builds one from a short run)."""
    build_dir = Path(build_dir or paths.BUILD_DIR / profile)
    figures_dir = Path(figures_dir or paths.figures_dir(profile))
    out = Path(out or SITE_DIR)
    work = Path(work or paths.BUILD_DIR / "site-src")
    notebooks = executed_notebooks(build_dir, notebooks)
    findings = figures_dir / "findings.md"
    if not findings.is_file():
        raise SiteError(f"{findings} does not exist: run `make figures` (PROFILE={profile}) before `make site`")
    mathjax = _mathjax_dir()
    try:
        from sphinx.cmd.build import build_main
    except ImportError as err:
        raise SiteError("make site needs the site packages: pip install -e '.[site]'") from err

    shutil.rmtree(work, ignore_errors=True)
    (work / "notebooks" / "exercises").mkdir(parents=True)
    (work / "figures").mkdir()
    shutil.copytree(figures_dir, work / "figures" / profile,
                    ignore=shutil.ignore_patterns("*.pdf", "*.tex", "*.partial"))
    for nb in notebooks:
        shutil.copy2(nb, work / "notebooks" / nb.name)
    exercises = sorted((paths.NOTEBOOKS_DIR / "exercises").glob("[0-9][0-9]_*.ipynb"))
    for nb in exercises:
        shutil.copy2(nb, work / "notebooks" / "exercises" / nb.name)
    shutil.copy2(paths.NOTEBOOKS_DIR / "README.md", work / "notebooks" / "README.md")
    shutil.copy2(paths.REPO_ROOT / "README.md", work / "README.md")
    (work / "findings.md").write_text(_page("Findings", findings.read_text()))
    figures = sorted(figures_dir.glob("fig*.png"), key=_figure_key)
    (work / "gallery.md").write_text(_gallery(profile, figures))
    tables = sorted((p for p in figures_dir.glob("table*.md")), key=_figure_key)
    (work / "tables.md").write_text(_tables(profile, tables))
    (work / "index.md").write_text(_index(profile, notebooks, exercises))
    (work / "_static").mkdir()
    shutil.copytree(mathjax, work / "_static" / "mathjax")
    (work / "conf.py").write_text(CONF.format(profile=profile, mathjax_config=MATHJAX_CONFIG))

    html = work / "_build" / "html"  # MyST-NB keeps its own files beside it (work/_build), never in the repository
    args = ["-b", "html", "-E", "-j", "1", str(work), str(html)] + (["-q"] if quiet else [])
    if build_main(args) != 0 or not (html / "index.html").is_file():
        raise SiteError(f"sphinx-build failed on {work}; {out} is unchanged")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.move(html, staging)
    if explorer:
        from utils.explorer import build_explorer

        try:
            build_explorer(profile, staging / "explorer", figures_dir, data_dir, device)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    shutil.rmtree(staging / ".doctrees", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the static site of one profile into site/.")
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--out", type=Path, default=SITE_DIR)
    args = parser.parse_args(argv)
    try:
        out = build_site(args.profile, out=args.out)
    except SiteError as err:
        print(f"make site: {err}", file=sys.stderr)
        return 1
    print(f"site written to {out}; open {out / 'index.html'} (no server needed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
