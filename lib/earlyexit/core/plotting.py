"""One plotting style and one way to write figures and tables, named after the paper item.

Outputs are named ``<A|B>-<fig|table|sec|beyond><N>-<what>`` (``sec`` for numbers a section's text prints,
``beyond`` for our own study beyond the paper); every table is written as CSV (with the columns
``paper`` and ``ours`` beside its identifying columns) and as Markdown, every figure as PNG with the
profile that produced it written in its corner.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import files

NAME = re.compile(r"^[AB]-(fig|table|sec|beyond)\d+[a-z]?-[a-z0-9-]+$")


def setup() -> None:
    """The project's plotting style (seaborn whitegrid, paper context) with deterministic PNGs."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150})


def _target(name: str, figures_dir: str | os.PathLike, suffix: str) -> Path:
    if not NAME.match(name):
        raise ValueError(f"output name {name!r} must look like 'A-fig7-accuracy' or 'B-table1-search-time'")
    directory = Path(figures_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}{suffix}"


def save_figure(fig: plt.Figure, name: str, figures_dir: str | os.PathLike, profile: str) -> Path:
    """Write ``fig`` as ``<figures_dir>/<name>.png``, stamped with the profile it came from."""
    fig.text(0.995, 0.005, f"earlyexit, profile: {profile}", ha="right", va="bottom", fontsize=6, color="0.4")
    path = _target(name, figures_dir, ".png")
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight", format="png", metadata={"Software": None})
    return path


def save_table(df: pd.DataFrame, name: str, figures_dir: str | os.PathLike, profile: str) -> Path:
    """Write ``df`` as ``<name>.csv`` and ``<name>.md``; it must hold the columns ``paper`` and ``ours``."""
    missing = {"paper", "ours"} - set(df.columns)
    if missing:
        raise ValueError(f"table {name!r} lacks the column(s) {sorted(missing)}; every table sets paper beside ours")
    df = df.assign(profile=profile)
    path = _target(name, figures_dir, ".csv")
    shown = df.astype(object).where(df.notna(), None)  # missing numbers print as blanks, not "nan"
    for target, text in (
        (path, df.to_csv(index=False)),
        (path.with_suffix(".md"), shown.to_markdown(index=False, missingval="")),
    ):
        files.write_text(target, text + ("\n" if not text.endswith("\n") else ""))
    return path
