"""Table I of Paper B re-measured: the search engine in pure Python, Numba and C (through ctypes).

:func:`run_benchmark` times Algorithm 1 (one plan's expectation) and Algorithm 2 (hybrid search)
in the three implementations, plus the exact planner, greedy and random search in Numba, on a
seeded MSDNet-40-like instance. The C reference ``benchmarks/search_ref.c`` is compiled on first use
with the system compiler (``cc -O2 -shared -fPIC``) into ``benchmarks/_build/``, as the paper called
its C code through ctypes. Every call is timed with ``time.perf_counter_ns`` after a warm-up (JIT
compilation excluded); sub-millisecond calls are timed in batches and divided.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns

import numpy as np
import pandas as pd

from ..core import files
from . import search

__all__ = ["DEFAULT_C_SOURCE", "CCompilerNotFound", "CReference", "build_c_reference", "make_instance", "run_benchmark"]

DEFAULT_C_SOURCE = Path(__file__).resolve().parents[3] / "benchmarks" / "search_ref.c"
"""``benchmarks/search_ref.c`` of the repository this package is installed (editable) from."""

_SAMPLE_NS = 200_000  # each timing sample lasts at least this long (batches of fast calls)


class CCompilerNotFound(RuntimeError):
    """No C compiler on this machine (looked at ``$CC``, ``cc``, ``gcc``, ``clang``)."""


class CReference:
    """ctypes handle on the compiled C reference (``cal_exp`` = Algorithm 1, ``hybrid_search`` = Algorithm 2)."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self.lib = ctypes.CDLL(str(library))
        ptr = ctypes.c_void_p
        self.lib.cal_exp.argtypes = [ptr, ptr, ptr, ptr, ctypes.c_int, ctypes.c_double]
        self.lib.cal_exp.restype = ctypes.c_double
        self.lib.hybrid_search.argtypes = [ptr, ptr, ptr, ctypes.c_int, ctypes.c_int, ctypes.c_double, ptr]
        self.lib.hybrid_search.restype = ctypes.c_double

    def expectation(self, tc, tb, conf, plan, c0: float = 0.0) -> float:
        """Algorithm 1 in C, inputs validated as :func:`earlyexit.paper_b.search.expectation` does."""
        tc, tb, conf, c0 = search._profile(tc, tb, conf, c0)
        plan = search._plan(plan, tc.size).view(np.uint8)
        return self.lib.cal_exp(*_addresses(tc, tb, conf, plan), tc.size, c0)

    def hybrid_search(self, tc, tb, conf, m: int, c0: float = 0.0) -> tuple[np.ndarray, float]:
        """Algorithm 2 in C, inputs validated as :func:`earlyexit.paper_b.search.hybrid_search` does."""
        tc, tb, conf, c0 = search._profile(tc, tb, conf, c0)
        m = search._int_in("m", m, 0, min(tc.size, search.ENUM_MAX_EXITS), f"enumerated exits, n={tc.size}")
        out = np.zeros(tc.size, dtype=np.uint8)
        best = self.lib.hybrid_search(*_addresses(tc, tb, conf), tc.size, m, c0, out.ctypes.data)
        return out.view(np.bool_), best


def _addresses(*arrays: np.ndarray) -> list[int]:
    """Data pointers of C-contiguous arrays, for the ``c_void_p`` arguments."""
    return [a.ctypes.data for a in arrays]


def _compiler() -> str:
    """The C compiler to use: ``$CC`` or the first of cc, gcc, clang on PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise CCompilerNotFound("no C compiler found ($CC, cc, gcc, clang); install one, e.g. `apt-get install gcc`")


def build_c_reference(c_source: str | Path | None = None, build_dir: str | Path | None = None) -> CReference:
    """Compile ``c_source`` (default :data:`DEFAULT_C_SOURCE`) once per content hash and load it.

    The shared library goes to ``build_dir`` (default ``<c_source dir>/_build``, git-ignored).
    """
    source = Path(c_source) if c_source is not None else DEFAULT_C_SOURCE
    if not source.is_file():
        raise FileNotFoundError(
            f"C reference source not found at {source}; pass c_source= the path to benchmarks/search_ref.c"
            " of the earlyexit repository"
        )
    out_dir = Path(build_dir) if build_dir is not None else source.parent / "_build"
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    library = out_dir / f"libsearch_ref_{digest}.so"
    if not library.exists():
        with files.atomic_path(library) as partial:
            cmd = [_compiler(), "-O2", "-shared", "-fPIC", str(source), "-o", str(partial)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"compiling {source} failed ({' '.join(cmd)}):\n{done.stderr}")
    return CReference(library)


def make_instance(n_exits: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded MSDNet-like ET-/CS-profile: ``tc`` in [0.5, 2] ms, ``tb`` in [0.1, 0.6] ms, and
    confidences rising from about 0.35 to 0.9 with N(0, 0.03) noise (clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    tc = rng.uniform(0.5, 2.0, n_exits)
    tb = rng.uniform(0.1, 0.6, n_exits)
    conf = np.clip(np.linspace(0.35, 0.9, n_exits) + rng.normal(0.0, 0.03, n_exits), 0.0, 1.0)
    return tc, tb, conf


def _batch_ns(fn: Callable, args: tuple, batch: int) -> int:
    """Nanoseconds taken by ``batch`` back-to-back calls of ``fn(*args)``."""
    start = perf_counter_ns()
    for _ in range(batch):
        fn(*args)
    return perf_counter_ns() - start


def _time_ms(fn: Callable, args: tuple, repeats: int) -> tuple[np.ndarray, int]:
    """Per-call times (ms) of ``fn(*args)``: ``repeats`` samples, each a batch lasting ``_SAMPLE_NS`` or more.

    The first call (JIT compilation or cache load) is not timed; the batch doubles until it is long enough.
    """
    fn(*args)
    batch = 1
    while _batch_ns(fn, args, batch) < _SAMPLE_NS:
        batch *= 2
    samples = np.array([_batch_ns(fn, args, batch) / batch / 1e6 for _ in range(repeats)])
    return samples, batch


def _value(result) -> float:
    """The expectation in a call's result (searches return ``(plan, expectation)``)."""
    return float(result[1] if isinstance(result, tuple) else result)


def run_benchmark(
    n_exits: int = 40, m: int = 5, repeats: int = 50, seed: int = 0, c_source: str | Path | None = None
) -> pd.DataFrame:
    """Time the search engine on :func:`make_instance` ``(n_exits, seed)``; one row per (task, implementation).

    Columns: ``task``, ``implementation`` ("Python" = pure-Python reference, "Numba" = compiled
    kernel on pre-validated arrays, "Numba+validation" = public wrapper, "C (ctypes)" = the C
    reference on pre-validated arrays), ``median_ms``, ``mean_ms``, ``min_ms``, ``max_ms``, ``calls_per_sample``
    and ``value`` (the expectation returned). ``df.attrs`` holds the median ratios ``numba_over_c``
    and ``python_over_numba`` per task, ``public_over_kernel`` (the public call, validation included,
    over its compiled kernel; target <= 1.5 at 40 exits), the hybrid and exact expectations, and the machine.
    """
    tc, tb, conf = make_instance(n_exits, seed)
    m = search._int_in("m", m, 0, min(n_exits, search.ENUM_MAX_EXITS), f"enumerated exits, n={n_exits}")
    repeats = search._int_in("repeats", repeats, 1, 100_000, "timing samples per row")
    c_ref = build_c_reference(c_source)
    plan = np.random.default_rng(seed + 1).integers(0, 2, n_exits, dtype=np.bool_)
    lists = (tc.tolist(), tb.tolist(), conf.tolist())
    best_out = np.zeros(n_exits, dtype=np.uint8)  # the C hybrid's output plan
    best_out_ptr = best_out.ctypes.data
    hybrid = f"hybrid m={m}"
    cases = [
        ("expectation", "Python", search.expectation_py, (*lists, plan.tolist(), 0.0)),
        ("expectation", "Numba", search._expectation_kernel, (tc, tb, conf, plan, 0.0, None)),
        ("expectation", "Numba+validation", search.expectation, (tc, tb, conf, plan)),
        ("expectation", "C (ctypes)", c_ref.lib.cal_exp, (*_addresses(tc, tb, conf, plan), n_exits, 0.0)),
        (hybrid, "Python", search.hybrid_search_py, (*lists, m)),
        (hybrid, "Numba", search._hybrid_kernel, (tc, tb, conf, 0.0, m, None)),
        (hybrid, "Numba+validation", search.hybrid_search, (tc, tb, conf, m)),
        (hybrid, "C (ctypes)", c_ref.lib.hybrid_search, (*_addresses(tc, tb, conf), n_exits, m, 0.0, best_out_ptr)),
        ("exact (uniform DP)", "Numba", search._exact_uniform_kernel, (tc, tb, conf, 0.0)),
        ("exact (uniform DP)", "Numba+validation", search.exact_search, (tc, tb, conf)),
        ("greedy", "Numba", search._hybrid_kernel, (tc, tb, conf, 0.0, 0, None)),
        ("random K=10000", "Numba+validation", search.random_search, (tc, tb, conf, 10_000, seed)),
    ]
    rows = []
    for task, impl, fn, args in cases:
        samples, batch = _time_ms(fn, args, repeats)
        row = {
            "task": task,
            "implementation": impl,
            "median_ms": np.median(samples),
            "mean_ms": samples.mean(),
            "min_ms": samples.min(),
        }
        rows.append(row | {"max_ms": samples.max(), "calls_per_sample": batch, "value": _value(fn(*args))})
    df = pd.DataFrame(rows)
    median = df.set_index(["task", "implementation"])["median_ms"]
    value = df.set_index(["task", "implementation"])["value"]
    df.attrs = {
        "numba_over_c": {t: median[t, "Numba"] / median[t, "C (ctypes)"] for t in ("expectation", hybrid)},
        "python_over_numba": {t: median[t, "Python"] / median[t, "Numba"] for t in ("expectation", hybrid)},
        "public_over_kernel": {
            t: median[t, "Numba+validation"] / median[t, "Numba"] for t in ("expectation", hybrid, "exact (uniform DP)")
        },
        "hybrid_value": value[hybrid, "Numba"],
        "exact_value": value["exact (uniform DP)", "Numba"],
        "n_exits": n_exits,
        "m": m,
        "seed": seed,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, {os.cpu_count()} CPUs",
    }
    return df
