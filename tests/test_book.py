"""The book's sources (book/build.py): every pipeline notebook is a page, every figure is in the gallery."""

import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def test_the_table_of_contents_has_every_pipeline_notebook_once_grouped_by_paper():
    groups = build.chapters()
    toc = build.toc(groups)
    stages = tomllib.loads((ROOT / "pipeline.toml").read_text())["stages"]
    for stage in stages:
        assert toc.count(f"file: notebooks/{Path(stage['notebook']).stem}\n") == 1, stage["notebook"]
    assert all(nb.name[3] == "A" for nb in groups["A"]) and all(nb.name[3] == "B" for nb in groups["B"])


def test_the_landing_page_maps_and_shows_every_committed_figure(tmp_path):
    groups = build.chapters()
    page = build.landing(groups, ROOT / "figures")
    for png in (ROOT / "figures").glob("*.png"):
        assert f"figures/{png.name}" in page, png.name
    linked = set(re.findall(r"\]\(notebooks/([^)]+\.ipynb)\)", page))
    assert {nb.name for g in groups.values() for nb in g} <= linked
    for notebook, needs in build.waits_for().items():  # pages the cpu run has not executed say why
        row = next(line for line in page.splitlines() if f"(notebooks/{notebook})" in line)
        assert "waits for" in row and all(n in row for n in needs)


def test_staging_copies_notebooks_figures_and_a_local_mathjax(tmp_path, monkeypatch):
    fake = tmp_path / "mathjax-static"
    (fake / "config").mkdir(parents=True)
    (fake / "MathJax.js").write_text("// MathJax")
    monkeypatch.setattr(build, "mathjax_static", lambda: fake)
    src = build.stage(tmp_path / "src")
    assert (src / "extra" / "mathjax" / "MathJax.js").exists() and (src / "_toc.yml").exists()
    assert len(list((src / "notebooks").glob("*.ipynb"))) == sum(len(g) for g in build.chapters().values())
    assert "mathjax_path: ../mathjax/MathJax.js" in (src / "_config.yml").read_text()
