"""Table I of Paper B (Python vs C, here also Numba) for the EINet search engine; prints the table.

Usage: python benchmarks/bench_search.py [--n-exits 40] [--m 5] [--repeats 50] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from earlyexit.paper_b.search_bench import run_benchmark


def main() -> None:
    """Parse the options, run :func:`earlyexit.paper_b.search_bench.run_benchmark` and print its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-exits", type=int, default=40, help="number of exits (MSDNet-40: 40)")
    parser.add_argument("--m", type=int, default=5, help="exits enumerated by the hybrid search")
    parser.add_argument("--repeats", type=int, default=50, help="timing samples per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instance")
    parser.add_argument("--c-source", default=Path(__file__).with_name("search_ref.c"), help="path to search_ref.c")
    args = parser.parse_args()
    df = run_benchmark(args.n_exits, args.m, args.repeats, args.seed, args.c_source)
    with pd.option_context("display.float_format", "{:.6f}".format, "display.width", 200):
        print(df.to_string(index=False))
    a = df.attrs
    print(f"\n{a['n_exits']} exits, m={a['m']}, seed={a['seed']}, {a['machine']}")
    for task, ratio in a["numba_over_c"].items():
        print(f"{task:>12}: Numba/C = {ratio:.2f}x   Python/Numba = {a['python_over_numba'][task]:.0f}x")
    for task, ratio in a["public_over_kernel"].items():
        print(f"{task:>18}: public call / kernel = {ratio:.2f}x (target <= 1.5x)")
    verdict = "OK" if a["exact_value"] >= a["hybrid_value"] - 1e-12 else "VIOLATED"
    print(f"expectation found: hybrid {a['hybrid_value']:.6f}  exact {a['exact_value']:.6f}", end="  ")
    print(f"(exact >= hybrid: {verdict})")


if __name__ == "__main__":
    main()
