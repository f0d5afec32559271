"""The reader's site (``make site``): complete, and readable offline with no request to another host."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pytest

from utils import paths
from utils.site import SiteError, build_site

# tags whose attribute makes the browser fetch something (an <a href> is a link, not a request)
FETCHING = {("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src"), ("source", "src"),
            ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"), ("image", "href")}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fetched, self.links, self.inline_css = [], [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if (tag, name) in FETCHING:
                self.fetched.append(value)
            elif tag == "a" and name == "href":
                self.links.append(value)
            elif name == "style":
                self.inline_css.append(value)


def remote(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme not in ("", "file", "data")


def site_problems(site: Path) -> list[str]:
    """Every reference in the site's pages and stylesheets that would ask another host for
    something, and every local file a page fetches or links that does not exist."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        refs = _Refs()
        text = page.read_text(errors="replace")
        refs.feed(text)
        css = refs.inline_css + re.findall(r"<style[^>]*>(.*?)</style>", text, flags=re.S)
        fetched = refs.fetched + [u for block in css for u in CSS_URL.findall(block)]
        for url in fetched:
            if remote(url):
                problems.append(f"{page.relative_to(site)} fetches {url}")
        for url in fetched + refs.links:
            parts = urlsplit(url)
            if remote(url) or url.startswith(("data:", "#", "mailto:", "javascript:")) or not parts.path:
                continue
            if not (page.parent / unquote(parts.path)).resolve().exists():
                problems.append(f"{page.relative_to(site)} refers to a missing file {url}")
    for sheet in sorted(site.rglob("*.css")):
        for url in CSS_URL.findall(sheet.read_text(errors="replace")):
            if remote(url):
                problems.append(f"{sheet.relative_to(site)} fetches {url}")
    return problems


def test_the_offline_check_catches_remote_assets_and_missing_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "ok.html").write_text('<img src="a.png"><a href="https://example.org">a link</a>'
                                      '<a href="#top">top</a><img src="data:image/png;base64,AAAA">')
    assert site_problems(tmp_path) == []
    (tmp_path / "bad.html").write_text('<script src="https://cdn.example.org/x.js"></script>'
                                       '<link rel="stylesheet" href="//fonts.example.org/f.css">'
                                       '<div style="background: url(http://example.org/b.png)"></div>'
                                       '<img src="missing.png"><a href="gone.html">gone</a>')
    (tmp_path / "s.css").write_text('@import "https://fonts.example.org/x.css"; a { background: url(a.png) }')
    found = site_problems(tmp_path)
    assert len(found) == 6, found
    assert any("cdn.example.org" in p for p in found) and any("fonts.example.org/f.css" in p for p in found)
    assert any("missing.png" in p for p in found) and any("gone.html" in p for p in found)
    assert any(p.startswith("s.css") for p in found)


def test_make_site_before_make_figures_names_what_to_run(tmp_path):
    with pytest.raises(SiteError, match=r"00_data_prep.ipynb does not exist: run `make figures`"):
        build_site("toy", build_dir=tmp_path / "build" / "toy", figures_dir=tmp_path / "figures" / "toy",
                   out=tmp_path / "site", work=tmp_path / "src")
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
def test_the_site_shows_every_executed_notebook_and_figure_and_asks_no_other_host(toy_outputs, tmp_path):
    build = toy_outputs.parents[1] / "build" / "toy"
    site = build_site("toy", build_dir=build, figures_dir=toy_outputs, out=tmp_path / "site", work=tmp_path / "src",
                      data_dir=toy_outputs.parents[1] / "data" / "toy")
    assert (site / "index.html").is_file() and not (tmp_path / "site.partial").exists()
    for name in ("README.html", "findings.html", "gallery.html", "notebooks/README.html"):
        assert (site / name).is_file(), name
    for nb in sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        page = site / "notebooks" / f"{nb.stem}.html"
        assert page.is_file(), page
        executed = json.loads((build / nb.name).read_text())
        images = sum("image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", []))
        refs = _Refs()
        refs.feed(page.read_text())
        shown = [u for u in refs.fetched if u.endswith(".png") or u.startswith("data:image/png")]
        assert len(shown) >= images, f"{page.name}: {len(shown)} images shown, the notebook has {images}"
    gallery = _Refs()
    gallery.feed((site / "gallery.html").read_text())
    shown = {Path(u).name for u in gallery.fetched}
    assert {p.name for p in toy_outputs.glob("fig*.png")} <= shown
    findings = (site / "findings.html").read_text()
    assert "supported" in findings
    assert site_problems(site) == []


def explorer_payload(page: Path) -> dict:
    """The data inline in an explorer page."""
    text = page.read_text()
    start = text.index("const D = ") + len("const D = ")
    return json.loads(text[start:text.index(";\n", start)])


@pytest.mark.slow
def test_the_explorer_holds_the_runs_own_attention_frames_and_tables(toy_outputs, tmp_path):
    from utils.explorer import build_explorer

    page = build_explorer("toy", tmp_path / "explorer", toy_outputs, toy_outputs.parents[1] / "data" / "toy")
    d = explorer_payload(page)
    T, R, C = d["grid"]
    assert (d["n_layers"], d["n_heads"], T * R * C) == (12, 12, 288)
    for run in ("strike", "gutter"):
        assert len(d["frames"][run]) == T and all(f.startswith("data:image/png;base64,") for f in d["frames"][run])
        att = np.array(d["attention"][run])
        assert att.shape == (12, 12, T * R * C)
        total = att.sum(-1)  # the readout's attention on the patches (the rest is on the CLS itself)
        assert (total > 0).all() and (total <= 1 + 1e-3).all()
    assert not np.allclose(d["attention"]["strike"], d["attention"]["gutter"])
    t3 = pd.read_csv(toy_outputs / "table3_patching.csv")
    assert len(d["patching"]) == len(t3)
    assert d["patching"][0]["recovery_projection_pct"] == pytest.approx(t3.recovery_projection_pct[0], abs=1e-4)
    edges = pd.read_csv(toy_outputs / "table27_circuit_edges.csv")
    assert len(d["edges"]) == len(edges) > 0
    assert {e["receiver_component"] for e in d["edges"]} <= set(d["components"]) | {"readout"}
    assert site_problems(page.parent) == []
