"""The site and the explorer in a real browser: Debian's chromium, headless, driven by Playwright
(`make test-browser`; `.ci/run` installs chromium when it is missing). Not part of `make test`:
it needs a browser that a fresh machine may not have, so it fails (never skips) when run without one."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from utils import paths
from utils.runner import run_all
from utils.site import build_site

pytestmark = pytest.mark.browser
SHOTS = paths.BUILD_DIR / "browser"


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        found = name and shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on this machine: apt-get install chromium (or set CHROMIUM=/path/to/it); "
                ".ci/run installs it")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site from a short toy run (notebooks 00 and 01, two pairs), with the explorer built from
    that run's clips and the committed toy tables (Table 3, Table 9, Table 27)."""
    root = tmp_path_factory.mktemp("browser")
    nbs = sorted(paths.NOTEBOOKS_DIR.glob("0[01]_*.ipynb"))
    figures = run_all(nbs, "toy", html=False, figures_root=root / "figures", data_root=root / "data",
                      build_root=root / "build", extra_parameters={"n_pairs": 2, "unmatched_pairs": 0})
    for name in ("table3_patching.csv", "table9_head_patching.csv", "table27_circuit_edges.csv"):
        shutil.copy2(paths.FIGURES_DIR / "toy" / name, figures / name)
    (figures / "findings.md").write_text((paths.FIGURES_DIR / "toy" / "findings.md").read_text())
    return build_site("toy", build_dir=root / "build" / "toy", figures_dir=figures, data_dir=root / "data" / "toy",
                      out=root / "site", work=root / "src", notebooks=[p.stem for p in nbs])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """The page at ``path`` with every request and console error recorded; requests to any host
    are aborted (and recorded), so a page that needs the network shows it."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.requests, page.errors = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))

    def route(r):
        page.requests.append(r.request.url)
        if r.request.url.startswith(("file:", "data:", "about:")):
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page


def remote_requests(page) -> list[str]:
    return [u for u in page.requests if not u.startswith(("file:", "data:", "about:"))]


def broken_images(page) -> list[str]:
    return page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")


def not_blank(png: Path) -> bool:
    import matplotlib.image

    img = matplotlib.image.imread(png)
    return float(np.asarray(img)[..., :3].std()) > 0.02


def test_the_site_loads_offline_with_every_image(browser, site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = [site / "index.html", site / "gallery.html", site / "notebooks" / "01_attention_visualization.html"]
    for path in pages:
        page = open_page(browser, path)
        page.wait_for_timeout(300)
        assert page.errors == [], (path.name, page.errors)
        assert remote_requests(page) == [], (path.name, remote_requests(page))
        assert broken_images(page) == [], (path.name, broken_images(page))
        page.close()
    page = open_page(browser, site / "index.html")
    assert page.locator("a[href='explorer/index.html']").count() == 1
    page.screenshot(path=SHOTS / "site_index.png")
    assert not_blank(SHOTS / "site_index.png")


def test_the_explorer_responds_to_the_head_and_the_time_step(browser, site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, site / "explorer" / "index.html")
    assert page.errors == [] and remote_requests(page) == [] and broken_images(page) == []
    overlay = lambda: page.evaluate("document.getElementById('att-strike').toDataURL()")  # noqa: E731
    frame = lambda: page.get_attribute("#img-strike", "src")  # noqa: E731
    label = lambda: page.text_content("#step-label")  # noqa: E731

    before = overlay()
    page.select_option("#head", "3")
    assert overlay() != before, "choosing another head leaves the attention overlay unchanged"
    first_frame, first_label = frame(), label()
    page.evaluate("s => { s.value = 5; s.dispatchEvent(new Event('input')); }", page.query_selector("#step"))
    assert label() != first_label and label().startswith("5 of")
    assert frame() != first_frame, "the slider did not change the time step's frame"
    # the heatmaps name the cell under the pointer; a circuit node lights up its own edges
    page.hover("#patching .cell[data-row='mlp'][data-col='4']")
    assert page.text_content("#patching-info").startswith("layer 4 mlp")
    page.hover("#heads .cell[data-row='10'][data-col='8']")
    assert page.text_content("#heads-info").startswith("layer 10 head 8")
    node = page.locator("#circuit .node").first
    node.hover()
    faded = page.locator("#circuit path.faded").count()
    assert 0 < faded < page.locator("#circuit path.edge").count()
    assert "circuit edges" in page.text_content("#circuit-info")
    assert page.errors == [] and remote_requests(page) == []
    page.mouse.move(0, 0)
    page.screenshot(path=SHOTS / "explorer.png", full_page=True)
    assert not_blank(SHOTS / "explorer.png")
