"""Claims as code: every claim of the two papers' evaluations, measured on a profile's results, with a verdict.

``python -m earlyexit.claims --profile cpu`` prints the scoreboard; each figure notebook ends with the claims
measured on its own table (:func:`report` of the notebook's own list, such as :data:`.paper_b.FIG8_STATIC_PLANS`:
its figure stamp then covers those claims only); ``--write`` regenerates the README's scoreboard and the book's
page of claims from the shipped ``cpu`` results. The registry is :data:`CLAIMS` (Paper A's in
:mod:`.paper_a`, Paper B's in :mod:`.paper_b`, our own beyond them in :mod:`.beyond`); the verdict rules are in
:mod:`.registry`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .. import pipeline
from ..engine import artifacts, training
from . import beyond, paper_a, paper_b
from .registry import VERDICTS, Claim, Result, Tables

CLAIMS: list[Claim] = [*paper_a.CLAIMS, *paper_b.CLAIMS, *beyond.CLAIMS]
COLUMNS = ["id", "paper", "where", "claim", "paper_says", "ours", "verdict", "diagnosis", "rule", "table"]
PAPERS = {"A": "Paper A", "B": "Paper B", "ours": "Beyond the papers"}
"""The heading of each claim's ``paper`` (our own claims, :mod:`.beyond`, are ``"ours"``)."""
README_MARKERS = ("<!-- claims:begin (python -m earlyexit.claims --write) -->", "<!-- claims:end -->")


def tables(
    profile: str, figures_dir: str | Path | None = None, artifact_root: str | Path = pipeline.ROOT / "artifacts"
) -> Tables:
    """The result tables of ``profile`` (in ``figures_dir``, default the profile's) and its artifacts."""
    return Tables(
        profile,
        Path(figures_dir) if figures_dir is not None else pipeline.figures_dir(profile),
        lambda model, dataset: pipeline.load_artifact(profile, model, dataset, artifact_root),
        lambda model, dataset, name: pipeline.derived_dir(profile, model, dataset, artifact_root) / name,
    )


def evaluate(source: Tables, of: Iterable[Claim]) -> pd.DataFrame:
    """One row per claim of ``of`` (:data:`CLAIMS` for all): the claim, the paper's and our numbers, the
    verdict and why."""
    rows = []
    for claim in of:
        result: Result = claim.result(source)
        rows.append(
            [claim.id, claim.paper, claim.where, claim.text, claim.paper_value, result.ours, result.verdict]
            + [result.diagnosis, claim.rule, claim.table]
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def report(
    shown: list[Claim], profile: str, figures_dir: str | Path | None = None, artifact_root: str | Path = "../artifacts"
) -> str:
    """A figure notebook's closing table: the claims ``shown`` (the notebook's own list, e.g.
    :data:`.paper_b.FIG8_STATIC_PLANS`, which its figure stamp covers), as plain text."""
    df = evaluate(tables(profile, figures_dir, artifact_root), shown)
    lines = [f"{len(df)} claims, measured on the {profile} profile's results:"]
    for row in df.itertuples():
        lines += [
            f"\n[{row.verdict}] {row.id} ({row.where}): {row.claim}",
            f"  paper: {row.paper_says}",
            f"  ours:  {row.ours}",
        ]
        lines += [f"  why:   {row.diagnosis}"] if row.diagnosis else []
        lines += [f"  rule:  {row.rule}"]
    return "\n".join(lines)


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Claims per verdict and paper."""
    table = pd.crosstab(df.paper.map(PAPERS), df.verdict)
    table = table.reindex(columns=[v for v in VERDICTS if v in table.columns], fill_value=0)
    table = table.reindex([p for p in PAPERS.values() if p in table.index])  # the papers first, ours last
    table["claims"] = table.sum(axis=1)
    return table


def notebooks() -> dict[str, str]:
    """Result table -> the notebook that writes it."""
    owners = {}
    for path in sorted((pipeline.ROOT / "notebooks").glob("[0-9]*.ipynb")):
        for name in re.findall(r'\\"([AB]-[a-z0-9-]+)\\"', path.read_text()):
            owners.setdefault(name, path.name)
    return owners


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def epoch_shares(profile: str) -> str:
    """In words, the share of its paper's epochs (Paper A: 220, Paper B: 300) each network of ``profile``'s
    training artifacts was trained for: the range, and where the compute ledger gives each."""
    shares = [
        artifacts.read_manifest(artifacts.run_dir(pipeline.ROOT / "artifacts", profile, model, dataset))["epochs"]
        / training.profile_config("paper", model).epochs
        for model, dataset in pipeline.trained(profile)
    ]
    if not shares:
        return ""
    span = " to ".join(dict.fromkeys(f"{x:.{1 if x < 0.1 else 0}%}" for x in (min(shares), max(shares))))
    trained = "network was" if len(shares) == 1 else f"{len(shares)} networks were"
    their = "its" if len(shares) == 1 else "their"
    return f" Its {trained} trained for {span} of {their} paper's epochs (the compute ledger gives each)."


def scoreboard(df: pd.DataFrame, profile: str) -> str:
    """Markdown: counts per verdict and paper, then one row per claim."""
    lines = [
        f"Profile `{profile}`: {len(df)} claims, verdicts computed by `python -m earlyexit.claims --profile {profile}`."
        f"{epoch_shares(profile)}",
        "",
    ]
    lines += [counts(df).reset_index().rename(columns={"paper": ""}).to_markdown(index=False), ""]
    lines += ["| claim | where | paper | ours | verdict |", "|---|---|---|---|---|"]
    lines += [
        f"| {_cell(r.claim)} | {r.where} | {_cell(r.paper_says)} | {_cell(r.ours)} | **{r.verdict}** |"
        for r in df.itertuples()
    ]
    return "\n".join(lines)


def page(df: pd.DataFrame, profile: str) -> str:
    """The book's page of claims: every claim with its numbers, verdict, rule, diagnosis and notebook."""
    owners = notebooks()
    lines = [
        "# The papers' claims, measured",
        "",
        "Every claim of Paper A's §III and §V (with Fig. 3 and the appendix tables) and of Paper B's §VI, measured on",
        f"the shipped `{profile}` results. Each verdict is computed by the rule given beside it, from the paper's own words",
        "and numbers (`earlyexit.claims`); where a claim does not hold, the diagnosis is measured too. Regenerated by",
        "`python -m earlyexit.claims --write`; a test fails when this page differs from a regeneration.",
        "",
        counts(df).reset_index().rename(columns={"paper": ""}).to_markdown(index=False),
    ]
    for paper_id, part in df.groupby("paper"):
        lines += ["", f"## {PAPERS[paper_id]}", ""]
        for r in part.itertuples():
            nb = owners.get(r.table)
            link = f"[{nb.removesuffix('.ipynb')}](notebooks/{nb})" if nb else r.table
            lines += [f"### {r.where}: {r.claim}", "", f"**{r.verdict}** (`{r.id}`, {link})", ""]
            lines += [f"- paper: {r.paper_says}", f"- ours: {r.ours}", f"- rule: {r.rule}"]
            lines += [f"- why: {r.diagnosis}"] if r.diagnosis else []
            lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def readme_block(text: str, block: str) -> str:
    """``text`` (the README) with the part between :data:`README_MARKERS` replaced by ``block``."""
    return with_block(text, *README_MARKERS, block)


def with_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the part between the lines ``begin`` and ``end`` replaced by ``block``."""
    if begin not in text or end not in text:
        raise ValueError(f"the page needs the markers {begin!r} and {end!r} around its generated part")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"
