"""Small time differences measured so that their sign can be trusted: interleaved A/B pairs and a CI.

Two implementations of the same work (with and without the Activation Cache, say) differ by a few
percent, less than a 2-core machine's load moves from one second to the next. :func:`ab_compare`
times them in alternating pairs (A B, B A, A B, ...), so that drift hits both alike, takes the
relative difference of every pair, and reports its mean with a seeded bootstrap 95 % confidence
interval: a difference is called a speed-up or a slow-down only when the interval excludes zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def ab_compare(
    run_a: Callable[[], object], run_b: Callable[[], object], pairs: int = 30, resamples: int = 2000, seed: int = 0
) -> dict:
    """Time ``run_a`` and ``run_b`` in ``pairs`` interleaved pairs; how much faster B is than A, in %.

    Returns ``a_s``, ``b_s`` (median seconds per call), ``saved_pct`` (mean over pairs of
    ``100 * (a - b) / a``), ``ci_low``/``ci_high`` (bootstrap 95 % interval of that mean) and
    ``verdict``: ``"B faster"``, ``"B slower"`` or ``"within noise"``.
    """
    if pairs < 2:
        raise ValueError(f"pairs must be at least 2 to estimate the noise, got {pairs}")
    run_a(), run_b()  # warm-up: caches, lazy initialisation
    a, b = np.empty(pairs), np.empty(pairs)
    for i in range(pairs):
        order = ((a, run_a), (b, run_b)) if i % 2 == 0 else ((b, run_b), (a, run_a))
        for out, fn in order:
            start = time.perf_counter()
            fn()
            out[i] = time.perf_counter() - start
    saved = 100.0 * (a - b) / a
    boot = np.random.default_rng(seed).choice(saved, size=(resamples, pairs)).mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    verdict = "B faster" if low > 0 else "B slower" if high < 0 else "within noise"
    return {
        "a_s": float(np.median(a)),
        "b_s": float(np.median(b)),
        "saved_pct": float(saved.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "verdict": verdict,
        "pairs": pairs,
    }
