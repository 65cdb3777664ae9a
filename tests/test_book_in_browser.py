"""The rendered book in a real browser: two pages opened in headless Chromium show their figures and
their equations typeset by MathJax. Run by ``make book-check`` (which builds the book and sets
``EARLYEXIT_BOOK``); skipped in a plain ``pytest`` run."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BOOK = os.environ.get("EARLYEXIT_BOOK")
pytestmark = pytest.mark.skipif(not BOOK, reason="needs the built book: run `make book-check`")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=30000",
]


def rendered_dom(page: Path, profile_dir: Path) -> str:
    """The page's DOM after its scripts ran (MathJax typesets asynchronously within the time budget)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium (make book-check does it)")
    out = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile_dir}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def images(dom: str, page: Path) -> list[Path]:
    return [(page.parent / src).resolve() for src in re.findall(r'<img[^>]*\bsrc="([^"]+\.png)"', dom)]


@pytest.mark.parametrize(
    "name, min_images, min_math",
    [
        ("index.html", 10, 0),  # the landing page: figure map and gallery
        ("notebooks/12_A_fig7_exit_predictor.html", 1, 3),  # a result page: its figure and the paper's symbols
    ],
)
def test_a_rendered_page_shows_its_figures_and_typeset_equations(name, min_images, min_math, tmp_path):
    page = Path(BOOK) / name
    assert page.exists(), f"{page} was not built"
    dom = rendered_dom(page, tmp_path / "chromium")
    shown = images(dom, page)
    assert len(shown) >= min_images, f"{name}: {len(shown)} images"
    for png in shown:
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: broken image {png}"
    source_math = len(re.findall(r'class="math notranslate nohighlight"', page.read_text()))
    typeset = len(re.findall(r'class="MathJax"', dom)) + len(re.findall(r'class="MathJax_Display"', dom))
    assert source_math >= min_math and typeset >= source_math, f"{name}: {typeset} of {source_math} equations typeset"
    assert 'class="MathJax_Error"' not in dom, f"{name}: MathJax could not typeset an equation"
