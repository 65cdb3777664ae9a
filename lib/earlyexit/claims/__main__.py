"""``python -m earlyexit.claims --profile cpu``: the scoreboard of the papers' claims on a profile's results.

``--write`` regenerates every result a reader sees outside the notebooks from the shipped ``cpu`` results:
the README's scoreboard, the book's page of claims (``book/claims.md``) and the tables of the book's
compute ledgers (from the manifests: the ``cpu`` profile's, and on the GPU page the ``paper`` profile's),
figure durations (from papermill's record of the last run) and training throughput (from the saved
benchmark outputs);
``--check`` exits 1 when any of them differs from a regeneration.
"""

from __future__ import annotations

import argparse
import sys

from .. import pipeline
from ..engine import train_bench
from . import CLAIMS, README_MARKERS, evaluate, page, readme_block, scoreboard, tables, with_block

README = pipeline.ROOT / "README.md"
BOOK = pipeline.ROOT / "book"
BOOK_PAGE = BOOK / "claims.md"
RESULTS = pipeline.ROOT / "benchmarks" / "results"


def throughput(profile: str) -> str:
    """Every saved training benchmark (``benchmarks/results/training-*.txt``, one per machine kind) as tables,
    the hours each tier of ``tiers.toml`` costs on each kind, the benchmark's epoch beside what ``profile``'s
    shipped runs measured on the kinds it timed, then the recipe studies' summaries
    (``benchmarks/results/recipe-*.txt``)."""
    saved = sorted(RESULTS.glob("training-*.txt"))
    rates_by_kind = train_bench.rates_by_kind(saved)
    tiers = train_bench.tier_markdown(train_bench.read_tiers(pipeline.TIERS), rates_by_kind)
    check = train_bench.epoch_check_markdown(train_bench.epoch_check(pipeline.epoch_times(profile), rates_by_kind))
    rates = "\n\n".join(train_bench.rates_markdown(path) for path in saved)
    studies = "".join(
        f"\n\n**{path.name}** (`benchmarks/bench_recipe.py`):\n\n```text\n{path.read_text().strip()}\n```"
        for path in sorted(RESULTS.glob("recipe-*.txt"))
    )
    return (
        f"{rates}\n\n**Hours per tier of `tiers.toml`** (wall time on the 2-core machine):\n\n{tiers}"
        f"\n\n**The benchmark against the shipped runs** (an epoch, measured and predicted):\n\n{check}{studies}"
    )


#: Book pages with a generated table: page -> the function writing it and the profile it is written for.
TABLES = {
    BOOK / "throughput.md": (throughput, pipeline.DEFAULT_PROFILE),
    BOOK / "ledger.md": (pipeline.ledger_table, pipeline.DEFAULT_PROFILE),
    BOOK / "durations.md": (pipeline.durations_table, pipeline.DEFAULT_PROFILE),
    BOOK / "gpu.md": (lambda profile: pipeline.ledger_table(profile, ("train",)), "paper"),
}
TABLE_MARKERS = ("<!-- generated (python -m earlyexit.claims --write) -->", "<!-- generated:end -->")


def generated() -> dict:
    """The README and the book pages as regenerated from the shipped ``cpu`` results."""
    df = evaluate(tables(pipeline.DEFAULT_PROFILE), CLAIMS)
    return {
        README: readme_block(README.read_text(), scoreboard(df, pipeline.DEFAULT_PROFILE)),
        BOOK_PAGE: page(df, pipeline.DEFAULT_PROFILE),
        **{
            path: with_block(path.read_text(), *TABLE_MARKERS, table(profile))
            for path, (table, profile) in TABLES.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=pipeline.DEFAULT_PROFILE, help="the results to measure (default cpu)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--write",
        action="store_true",
        help=f"regenerate the README block {README_MARKERS[0]}, book/claims.md and the book's generated tables",
    )
    group.add_argument(
        "--check", action="store_true", help="exit 1 if the README block, book/claims.md or a generated table is stale"
    )
    args = parser.parse_args(argv)
    pipeline.check_profile(args.profile)
    if args.write or args.check:
        stale = [path for path, text in generated().items() if not path.exists() or path.read_text() != text]
        if args.check:
            print("\n".join(f"stale: {p.relative_to(pipeline.ROOT)}" for p in stale) or "current")
            return 1 if stale else 0
        for path, text in generated().items():
            path.write_text(text)
        return 0
    print(scoreboard(evaluate(tables(args.profile), CLAIMS), args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
