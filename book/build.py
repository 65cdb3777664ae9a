"""Build the companion's book: ``python book/build.py`` (``make book``), with the book's environment.

Stages the executed notebooks (pipeline order, grouped by paper), the figures and a local MathJax into
``build/book-src``, writes the landing page (a figure map and a gallery) and the table of contents from
``pipeline.toml``, and renders it with jupyter-book 1.x into ``build/book/_build/html``. Nothing is
executed: each page shows the outputs its notebook was committed with (the shipped ``cpu`` run).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Output names of figures and tables, as ``earlyexit.core.plotting`` enforces them.
OUTPUT = re.compile(r"""["']([AB]-(?:fig|table|sec|beyond)\d+[a-z]?-[a-z0-9-]+)["']""")
PARTS = {"A": "Paper A: early exit prediction", "B": "Paper B: elastic inference (EINet)"}
#: The reference pages of the book, Markdown in book/ (moved from the README's long sections).
REFERENCE = ("profiles", "gpu", "ledger", "throughput", "durations", "library")


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook (its page title)."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise SystemExit(f"{path} has no '# ' heading; every notebook opens with its title")


def notebook_outputs(path: Path) -> list[str]:
    """The figure and table names a notebook writes (string literals of its code cells)."""
    code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    return sorted(set(OUTPUT.findall(code)))


def chapters(pipeline: Path = ROOT / "pipeline.toml") -> dict[str, list[Path]]:
    """Notebooks by part of the book, in pipeline order: the stages that make artifacts, then each paper."""
    stages = tomllib.loads(pipeline.read_text())["stages"]
    out: dict[str, list[Path]] = {"stages": []}
    for stage in stages:
        key = "stages" if stage["kind"] != "figure" else stage["id"][0]
        notebook = ROOT / stage["notebook"]
        if notebook not in out.setdefault(key, []):
            out[key].append(notebook)
    return out


def waits_for(pipeline: Path = ROOT / "pipeline.toml") -> dict[str, list[str]]:
    """Figure notebooks the shipped ``cpu`` profile does not run yet, and the trained networks each waits for."""
    config = tomllib.loads(pipeline.read_text())
    stages = config["stages"]
    trained = {tuple(e[:2]) for s in stages if s["kind"] == "train" for e in s["matrix"]["cpu"]}
    out = {}
    for s in stages:
        missing = [f"{m} / {d}" for m, d in s.get("needs", []) if (m, d) not in trained]
        if "cpu" not in s.get("profiles", ["cpu"]):
            missing.append(s.get("waits", "jobs the `cpu` profile does not run yet"))
        if missing:
            out[Path(s["notebook"]).name] = missing
    return out


def landing(groups: dict[str, list[Path]], figures: Path) -> str:
    """The landing page: what the book is, the figure map (notebook -> outputs) and the gallery."""
    lines = [
        "# earlyexit: the book",
        "",
        "A reproducible companion to two papers on multi-exit networks for edge AI: **Paper A**, "
        "*Resource-Constrained Edge AI with Early Exit Prediction* (the Exit Predictor), and **Paper B**, "
        "*Elastic DNN Inference with Unpredictable Exit* (EINet). Every page is a notebook of the "
        "repository, shown with the outputs of the shipped `cpu` run (networks trained on a 2-core CPU: "
        "each page sets our numbers beside the paper's and says which claims our run supports).",
        "",
        "## Figure map",
        "",
        "| page | figures and tables |",
        "|---|---|",
    ]
    waiting = waits_for()
    for key in ("A", "B", "stages"):
        for nb in groups.get(key, []):
            made = ", ".join(f"`{n}`" for n in notebook_outputs(nb) if any(figures.glob(f"{n}.*")))
            if nb.name in waiting:
                made = "not run in `cpu` yet: waits for " + ", ".join(waiting[nb.name]) + " (the page shows its code)"
            lines.append(f"| [{notebook_title(nb)}](notebooks/{nb.name}) | {made or '-'} |")
    lines += ["", "## Gallery", ""]
    owner = {name: nb for group in groups.values() for nb in group for name in notebook_outputs(nb)}
    for paper, title in PARTS.items():
        lines += [f"### {title}", ""]
        for png in sorted(figures.glob(f"{paper}-*.png"), key=lambda p: _order(p.stem)):
            nb = owner.get(png.stem)
            caption = f"[{png.stem}](notebooks/{nb.name})" if nb else png.stem
            lines += [f"```{{figure}} figures/{png.name}", ":width: 560px", "", caption, "```", ""]
    return "\n".join(lines) + "\n"


def _order(stem: str) -> tuple:
    """Figures before tables, then by number, then what goes beyond the paper: A-fig2 < A-fig10 < A-table1 < B-beyond1."""
    kind, number = re.match(r"[AB]-(fig|table|sec|beyond)(\d+)", stem).groups()
    return ("fig", "sec", "table", "beyond").index(kind), int(number), stem


def toc(groups: dict[str, list[Path]]) -> str:
    captions = {
        **PARTS,
        "stages": "Pipeline stages: training, pruning, compression, single-exit networks, MSDNet designs",
    }
    lines = [
        "format: jb-book",
        "root: index",
        "parts:",
        '- caption: "The library"',
        "  chapters:",
        "  - file: architecture",
        "  - file: claims",
        '- caption: "Reference"',
        "  chapters:",
        *(f"  - file: {page}" for page in REFERENCE),
    ]
    for key in ("A", "B", "stages"):
        if groups.get(key):
            lines += [f'- caption: "{captions[key]}"', "  chapters:"]
            lines += [f"  - file: notebooks/{nb.stem}" for nb in groups[key]]
    return "\n".join(lines) + "\n"


def mathjax_static() -> Path:
    """MathJax 2's files as the ``jupyter-server-mathjax`` package ships them."""
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def stage(src: Path) -> Path:
    """Assemble the book's sources in ``src`` (rebuilt from scratch)."""
    shutil.rmtree(src, ignore_errors=True)
    (src / "notebooks").mkdir(parents=True)
    groups = chapters()
    for group in groups.values():
        for nb in group:
            shutil.copy2(nb, src / "notebooks" / nb.name)
    shutil.copytree(ROOT / "figures", src / "figures", ignore=shutil.ignore_patterns("*.csv"))
    shutil.copytree(mathjax_static(), src / "extra" / "mathjax")
    shutil.copy2(ROOT / "book" / "_config.yml", src / "_config.yml")
    for page in ("architecture", "claims", *REFERENCE):
        shutil.copy2(ROOT / "book" / f"{page}.md", src / f"{page}.md")
    (src / "_toc.yml").write_text(toc(groups))
    (src / "index.md").write_text(landing(groups, src / "figures"))
    return src


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book", help="output folder (default build/book)")
    args = parser.parse_args(argv)
    src = stage(args.out.with_name(args.out.name + "-src"))
    cmd = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(src),
        "--path-output",
        str(args.out),
        "--warningiserror",
        "--quiet",
    ]
    if subprocess.run(cmd).returncode:
        raise SystemExit(f"jupyter-book failed on {src}; the messages above name the page")
    print(f"book: {args.out / '_build' / 'html' / 'index.html'}")


if __name__ == "__main__":
    main()
