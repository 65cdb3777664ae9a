"""The claims registry's building blocks: a claim, what a profile's run measures for it, and the verdict rules.

A :class:`Claim` is one statement of a paper's evaluation, with the paper's numbers, the result table of the
notebook that tests it (``figures/<table>.csv`` for the shipped ``cpu`` profile, ``runs/<profile>/figures/``
for the others), a function that measures it on that table and a rule, stated in words, that gives the
verdict. The rules take their thresholds from the paper's own words and numbers; a difference within the
run-to-run spread of our simulations counts as level. Where a claim does not hold, the measure adds a
diagnosis the project computes (training against the paper's, over-confidence, degenerate exits, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SUPPORTED, PARTLY, NOT_SUPPORTED, UNTESTABLE = "SUPPORTED", "PARTLY", "NOT SUPPORTED", "UNTESTABLE"
VERDICTS = (SUPPORTED, PARTLY, NOT_SUPPORTED, UNTESTABLE)


@dataclass(frozen=True)
class Result:
    """What one profile's run says about a claim: our number(s) in the claim's terms, the verdict, and why
    not where it does not hold."""

    ours: str
    verdict: str
    diagnosis: str = ""


class Tables:
    """The result tables and derived results of one profile, read on first use."""

    def __init__(self, profile: str, figures_dir: Path, artifact: Callable, derived: Callable) -> None:
        self.profile = profile
        self.figures_dir = figures_dir
        self.artifact = artifact  # (model, dataset) -> earlyexit.engine.artifacts.Artifact
        self.derived = derived  # (model, dataset, name) -> path of a derived result
        self._cache: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            path = self.figures_dir / f"{name}.csv"
            if not path.exists():
                raise MissingTable(name, path)
            self._cache[name] = pd.read_csv(path)
        return self._cache[name]


class MissingTable(LookupError):
    """A claim's result table was not made in this profile (its notebook did not run)."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(f"{path} is missing: run its notebook in this profile")
        self.name = name


@dataclass(frozen=True)
class Claim:
    """One claim of a paper's evaluation and how we test it."""

    id: str  # stable identifier, e.g. "A-fig7-ep-saves"
    paper: str  # "A" or "B"
    where: str  # section and figure or table, e.g. "§V-B, Fig. 7"
    table: str  # the result table it is measured on (also names its notebook's figure)
    text: str  # the claim in a short paraphrase, with the paper's numbers
    paper_value: str  # the paper's number(s) as printed
    rule: str  # how the verdict is decided, in words
    measure: Callable[[Tables], Result]
    shown: str = ""  # the result table whose notebook reports it, when not ``table``

    @property
    def notebook_table(self) -> str:
        return self.shown or self.table

    def result(self, tables: Tables) -> Result:
        """The verdict of this claim on ``tables``; UNTESTABLE when its table was not made, or lacks the rows the
        claim needs (a profile that trains fewer networks or sweeps fewer values)."""
        try:
            return self.measure(tables)
        except MissingTable as missing:
            return Result("no result table", UNTESTABLE, f"{missing.name} was not made in profile {tables.profile}")
        except (KeyError, IndexError, ValueError, ZeroDivisionError) as err:
            return Result(
                "not measurable", UNTESTABLE, f"{self.table} lacks what this claim needs ({type(err).__name__}: {err})"
            )


def by_share(hits: int, total: int) -> str:
    """SUPPORTED when the claim holds in every case, PARTLY in some, NOT SUPPORTED in none (UNTESTABLE: no case)."""
    if total == 0:
        return UNTESTABLE
    return SUPPORTED if hits == total else PARTLY if hits else NOT_SUPPORTED


def at_least(value: float, supported: float, partly: float | None = None) -> str:
    """SUPPORTED from ``supported`` up, PARTLY from ``partly`` up (if given), else NOT SUPPORTED."""
    if value >= supported:
        return SUPPORTED
    return PARTLY if partly is not None and value >= partly else NOT_SUPPORTED


def diagnoses(*parts: str) -> str:
    """The non-empty diagnoses joined."""
    return "; ".join(p for p in parts if p)


def listing(items: Iterable[str]) -> str:
    return ", ".join(items)
