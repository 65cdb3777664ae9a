"""EINet search engine (Paper B §V): accuracy expectation of exit plans and the searches over them.

Model. A multi-exit network has ``n`` exits; block ``k`` costs ``tc[k]`` (conv part) and, when its
branch is executed, ``tb[k]`` (the ET-profile of §IV-B). ``conf[k]`` is the confidence exit ``k``
produces (the CS-Predictor's O', Eq. (1)). A *plan* is a boolean vector, bit ``k`` = execute branch
``k``. Before the first produced exit the confidence is ``c0`` (Algorithm 1 line 3; default 0.0: no
result counts as wrong). ``T = sum(tc) + sum(tb)`` (Algorithm 1 line 3: every branch counted, whatever
the plan) and the preemption time is a random variable on ``[0, T]``; once the plan has run out of
produced exits the last confidence holds until ``T`` (Algorithm 1 line 12).

Preemption distributions other than uniform (the §V-A "area ratio", Fig. 7 right) are given as a
*CDF grid*: ``F`` tabulated at ``G + 1`` equally spaced times ``g * T / G`` (``F[0] = 0``,
``F[G] = 1``, non-decreasing) and linearly interpolated in between; ``t_i / T`` of Eq. (5) becomes
``F(t_end) - F(t_start)``. Build one with :func:`cdf_grid_uniform`, :func:`cdf_grid_gaussian` or
:func:`cdf_grid_from_callable`.

Every search takes ``cdf_grid=None`` (uniform, Algorithm 1 literally) or a CDF grid, and returns
``(best_plan, best_expectation)``. Computation runs in ``@njit(cache=True)`` kernels, one call per
decision; the public wrappers validate their inputs first, float64 arrays in one compiled pass, so
that a public call costs little more than its kernel (EINet re-plans after every produced exit). :func:`expectation_py` and
:func:`hybrid_search_py` are plain-Python references (the "Python" column of Table I).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numba import njit

__all__ = [
    "ENUM_MAX_EXITS",
    "GRID_DP_MAX_STATES",
    "total_time",
    "cdf_grid_uniform",
    "cdf_grid_from_callable",
    "cdf_grid_gaussian",
    "expectation",
    "expectation_cdf",
    "enumerate_search",
    "greedy_search",
    "hybrid_search",
    "random_search",
    "random_plan_words",
    "exact_search",
    "grid_dp_error_bound",
    "expectation_py",
    "hybrid_search_py",
]

ENUM_MAX_EXITS = 24
"""Most exits :func:`enumerate_search` accepts (2**24 plans, about a second); also the largest ``m``."""

GRID_DP_MAX_STATES = 50_000_000
"""Most (exit, delay-bin) states the grid DP of :func:`exact_search` may allocate."""

Arr = np.ndarray
Grid = np.ndarray | None  # a CDF grid, or None for uniform preemption

# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------


@njit(cache=True)
def _total(tc: Arr, tb: Arr) -> float:
    """``T = sum(Tc) + sum(Tb)`` (Algorithm 1 line 3), summed left to right as the C and Python refs do."""
    sc = 0.0
    for k in range(tc.size):
        sc += tc[k]
    sb = 0.0
    for k in range(tb.size):
        sb += tb[k]
    return sc + sb


@njit(cache=True, inline="always")
def _cdf_at(grid: np.ndarray, t: float, total: float) -> float:
    """Linearly interpolated CDF at time ``t`` from its values on the uniform grid over ``[0, T]``."""
    g = grid.size - 1
    x = t / total * g
    if x <= 0.0:
        return grid[0]
    if x >= g:
        return grid[g]
    i = int(x)
    return grid[i] + (x - i) * (grid[i + 1] - grid[i])


@njit(cache=True, inline="always")
def _mass(grid: np.ndarray | None, t0: float, t1: float, total: float) -> float:
    """Probability that preemption falls in ``[t0, t1]``: ``(t1 - t0) / T`` (Eq. (5)) if ``grid`` is None,
    else the §V-A area ratio. Numba compiles the None case separately, without the branch."""
    if grid is None:
        return (t1 - t0) / total
    return _cdf_at(grid, t1, total) - _cdf_at(grid, t0, total)


@njit(cache=True, inline="always")
def _plan_value(tc: Arr, tb: Arr, conf: Arr, plan: Arr, c0: float, total: float, grid: Grid) -> float:
    """Algorithm 1 (CAL_EXP) with Eq. (5) or its §V-A area-ratio form; ``total`` is T."""
    e = 0.0
    c = c0
    t0 = 0.0
    t1 = 0.0
    for k in range(plan.size):
        t1 += tc[k]
        if plan[k]:
            t1 += tb[k]
            e += c * _mass(grid, t0, t1, total)
            c = conf[k]
            t0 = t1
    return e + c * _mass(grid, t0, total, total)


@njit(cache=True)
def _expectation_kernel(tc: Arr, tb: Arr, conf: Arr, plan: Arr, c0: float, grid: Grid) -> float:
    """Expectation of one plan, T included: what one Algorithm 1 call computes."""
    return _plan_value(tc, tb, conf, plan, c0, _total(tc, tb), grid)


@njit(cache=True)
def _enumerate_prefix(tc: Arr, tb: Arr, conf: Arr, c0: float, total: float, grid: Grid, bits: int, plan: Arr) -> float:
    """Best of the ``2**bits`` plans over the first ``bits`` exits (later bits as in ``plan``).

    Masks run 0 .. 2**bits - 1, bit ``k`` = exit ``k``; the first strict maximum wins. The winner is
    left in ``plan``; its expectation is returned.
    """
    best = -np.inf
    best_mask = 0
    for mask in range(1 << bits):
        for k in range(bits):
            plan[k] = (mask >> k) & 1 == 1
        e = _plan_value(tc, tb, conf, plan, c0, total, grid)
        if e > best:
            best = e
            best_mask = mask
    for k in range(bits):
        plan[k] = (best_mask >> k) & 1 == 1
    return best


@njit(cache=True)
def _hybrid_kernel(tc: Arr, tb: Arr, conf: Arr, c0: float, m: int, grid: Grid) -> tuple[Arr, float]:
    """Algorithm 2: enumeration over exits ``0..m-1``, then ``n - m`` greedy additions of any unselected exit."""
    n = tc.size
    total = _total(tc, tb)
    plan = np.zeros(n, dtype=np.bool_)
    best = _enumerate_prefix(tc, tb, conf, c0, total, grid, m, plan)
    best_plan = plan.copy()
    for _ in range(n - m):
        pick = -1
        pick_e = -np.inf
        for k in range(n):
            if not plan[k]:
                plan[k] = True
                e = _plan_value(tc, tb, conf, plan, c0, total, grid)
                plan[k] = False
                if e > pick_e:
                    pick_e = e
                    pick = k
        plan[pick] = True
        if pick_e > best:
            best = pick_e
            best_plan[:] = plan
    return best_plan, best


@njit(cache=True)
def _enumerate_kernel(tc: Arr, tb: Arr, conf: Arr, c0: float, grid: Grid) -> tuple[Arr, float]:
    """Enumeration of all ``2**n`` plans."""
    plan = np.zeros(tc.size, dtype=np.bool_)
    best = _enumerate_prefix(tc, tb, conf, c0, _total(tc, tb), grid, tc.size, plan)
    return plan, best


@njit(cache=True)
def _best_of_bits_kernel(tc: Arr, tb: Arr, conf: Arr, c0: float, words: Arr, k: int, grid: Grid) -> tuple[Arr, float]:
    """Best of ``k`` random plans (first strict maximum); plan ``r``'s bit ``j`` is bit ``r * n + j`` of
    the 32-bit ``words``, least significant first (see :func:`random_plan_words`)."""
    n = tc.size
    total = _total(tc, tb)
    plan = np.empty(n, dtype=np.bool_)
    best_plan = np.zeros(n, dtype=np.bool_)
    best = -np.inf
    for r in range(k):
        for j in range(n):
            bit = r * n + j
            plan[j] = (words[bit >> 5] >> (bit & 31)) & 1 == 1
        e = _plan_value(tc, tb, conf, plan, c0, total, grid)
        if e > best:
            best = e
            best_plan[:] = plan
    return best_plan, best


@njit(cache=True)
def _exact_uniform_kernel(tc: Arr, tb: Arr, conf: Arr, c0: float) -> tuple[Arr, float]:
    """Exact optimum under the uniform distribution, O(n^3 / 6) dynamic programme.

    With ``S[j] = tc[0] + ... + tc[j]`` and produced exits ``j1 < ... < jr = L``, exit ``js`` outputs
    at ``t_s = S[js] + tb[j1] + ... + tb[js]`` and ``E * T = sum_s C[j(s-1)] * (t_s - t_(s-1)) +
    C[L] * (T - t_r)`` (``C[j0] = c0``, ``t_0 = 0``). The last term couples ``C[L]`` with the branch
    time of *every* produced exit, so for a fixed last exit ``L`` we move ``-C[L] * tb[js]`` into
    step ``s``: step ``i -> j`` weighs ``C[i] * (S[j] - S[i]) + tb[j] * (C[i] - C[L])``, which depends
    on ``(i, j, L)`` only. ``V_L[j] = max(w(start, j), max_{i<j} V_L[i] + w(i, j))``, and plan ending at
    ``L`` is worth ``V_L[L] + C[L] * (T - S[L])``. Maximise over ``L`` and the empty plan (``c0 * T``).
    The winner is re-evaluated by Algorithm 1.
    """
    n = tc.size
    total = _total(tc, tb)
    s = np.cumsum(tc)
    value = np.empty(n)
    pred = np.empty(n, dtype=np.int64)
    best = c0 * total
    best_pred = np.full(n, -1, dtype=np.int64)
    best_last = -1
    for last in range(n):
        cl = conf[last]
        for j in range(last + 1):
            v = c0 * s[j] + tb[j] * (c0 - cl)
            p = -1
            for i in range(j):
                w = value[i] + conf[i] * (s[j] - s[i]) + tb[j] * (conf[i] - cl)
                if w > v:
                    v = w
                    p = i
            value[j] = v
            pred[j] = p
        v = value[last] + cl * (total - s[last])
        if v > best:
            best = v
            best_last = last
            best_pred[: last + 1] = pred[: last + 1]
    plan = np.zeros(n, dtype=np.bool_)
    j = best_last
    while j >= 0:
        plan[j] = True
        j = best_pred[j]
    return plan, _plan_value(tc, tb, conf, plan, c0, total, None)


@njit(cache=True)
def _exact_grid_kernel(tc: Arr, tb: Arr, conf: Arr, c0: float, grid: Arr, steps: Arr, step: float) -> tuple[Arr, float]:
    """Grid DP for any CDF: state = (last produced exit, branch delay so far in units of ``step``).

    ``steps[j]`` is ``tb[j] / step`` rounded; exit ``j`` produced after delay ``d`` outputs at
    ``S[j] + d * step``. State 0 is "nothing produced yet" (time 0, confidence c0). The DP is exact for
    the rounded branch times; the winning plan is re-evaluated with the true ones.
    """
    n = tc.size
    total = _total(tc, tb)
    s = np.cumsum(tc)
    width = steps.sum() + 1
    value = np.full((n + 1, width), -np.inf)
    pred_exit = np.zeros((n + 1, width), dtype=np.int64)
    pred_bin = np.zeros((n + 1, width), dtype=np.int64)
    value[0, 0] = 0.0
    for j in range(n):
        for i in range(j + 1):
            ci = c0 if i == 0 else conf[i - 1]
            for d in range(width - steps[j]):
                if value[i, d] == -np.inf:
                    continue
                ti = 0.0 if i == 0 else s[i - 1] + d * step
                dn = d + steps[j]
                tj = s[j] + dn * step
                v = value[i, d] + ci * (_cdf_at(grid, tj, total) - _cdf_at(grid, ti, total))
                if v > value[j + 1, dn]:
                    value[j + 1, dn] = v
                    pred_exit[j + 1, dn] = i
                    pred_bin[j + 1, dn] = d
    best = c0
    best_exit = 0
    best_bin = 0
    for j in range(n):
        for d in range(width):
            if value[j + 1, d] > -np.inf:
                v = value[j + 1, d] + conf[j] * (1.0 - _cdf_at(grid, s[j] + d * step, total))
                if v > best:
                    best = v
                    best_exit = j + 1
                    best_bin = d
    plan = np.zeros(n, dtype=np.bool_)
    while best_exit > 0:
        plan[best_exit - 1] = True
        best_exit, best_bin = pred_exit[best_exit, best_bin], pred_bin[best_exit, best_bin]
    return plan, _plan_value(tc, tb, conf, plan, c0, total, grid)


@njit(cache=True)
def _max_variation(conf: Arr, c0: float) -> float:
    """Largest ``sum_s |C[j(s-1)] - C[js]|`` over all plans (``C[j0] = c0``): a longest path, O(n^2)."""
    n = conf.size
    best = np.empty(n)
    top = 0.0
    for j in range(n):
        v = abs(c0 - conf[j])
        for i in range(j):
            v = max(v, best[i] + abs(conf[i] - conf[j]))
        best[j] = v
        top = max(top, v)
    return top


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _vector(name: str, values, fix: str) -> np.ndarray:
    """``values`` as a finite, 1-D, C-contiguous float64 array, or a ValueError naming ``name``."""
    try:
        arr = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D sequence of numbers ({err}); {fix}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}; {fix}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf at index {int(np.argmin(np.isfinite(arr)))}; {fix}")
    return arr


@njit(cache=True)
def _profile_ok(tc: Arr, tb: Arr, conf: Arr, c0: float) -> bool:
    """One compiled pass of every check :func:`_profile_checked` makes: equal non-zero lengths, finite
    values, times >= 0 with a positive finite total, scores and ``c0`` in [0, 1]."""
    n = tc.size
    if n == 0 or tb.size != n or conf.size != n or not (0.0 <= c0 <= 1.0):
        return False
    total = 0.0
    for k in range(n):
        if not (tc[k] >= 0.0 and tb[k] >= 0.0 and 0.0 <= conf[k] <= 1.0):  # False for NaN too
            return False
        total += tc[k] + tb[k]
    return 0.0 < total < np.inf


def _is_f64_vector(a) -> bool:
    return type(a) is np.ndarray and a.dtype == np.float64 and a.ndim == 1 and a.flags.c_contiguous


def _profile(tc, tb, conf, c0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Validated ``(tc, tb, conf, c0)``: equal lengths, finite, times >= 0 with 0 < T < inf, scores in [0, 1].

    Fast path: float64 vectors that pass :func:`_profile_ok` (one compiled pass, ~1 us) are used as
    they are; anything else goes through :func:`_profile_checked`, which converts and names the problem.
    """
    if (
        _is_f64_vector(tc)
        and _is_f64_vector(tb)
        and _is_f64_vector(conf)
        and isinstance(c0, float)
        and _profile_ok(tc, tb, conf, c0)
    ):
        return tc, tb, conf, c0
    return _profile_checked(tc, tb, conf, c0)


def _profile_checked(tc, tb, conf, c0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The slow path of :func:`_profile`: converts the inputs and raises a ValueError naming what is wrong."""
    tc = _vector("tc", tc, "pass the profiled conv-part times (ET-profile)")
    tb = _vector("tb", tb, "pass the profiled branch times (ET-profile)")
    conf = _vector("conf", conf, "pass one confidence score per exit")
    if not tc.size == tb.size == conf.size:
        raise ValueError(f"tc, tb and conf must have one entry per exit; got lengths {tc.size}, {tb.size}, {conf.size}")
    for name, arr in (("tc", tc), ("tb", tb)):
        if np.any(arr < 0):
            raise ValueError(f"{name} has a negative time at index {int(np.argmax(arr < 0))}; times must be >= 0")
    with np.errstate(over="ignore"):
        total = tc.sum() + tb.sum()
    if not total > 0:
        raise ValueError("tc and tb sum to 0; the total profiled time T must be positive")
    if not np.isfinite(total):
        raise ValueError("tc and tb sum to infinity (overflow); express the times in a larger unit, e.g. seconds")
    if np.any((conf < 0) | (conf > 1)):
        raise ValueError("conf must lie in [0, 1] (softmax confidence scores); clip or rescale it")
    try:
        c0 = float(c0)
    except (TypeError, ValueError):
        raise ValueError(f"c0 must be a confidence in [0, 1], got {c0!r}") from None
    if not (math.isfinite(c0) and 0.0 <= c0 <= 1.0):
        raise ValueError(f"c0 must be a finite confidence in [0, 1], got {c0!r}")
    return tc, tb, conf, c0


def _plan(plan, n: int) -> np.ndarray:
    """``plan`` as a bool array of length ``n`` (entries must be booleans or 0/1)."""
    if type(plan) is np.ndarray and plan.dtype == np.bool_ and plan.shape == (n,) and plan.flags.c_contiguous:
        return plan
    arr = np.asarray(plan)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"plan must be a 1-D vector with one bit per exit (n={n}), got shape {arr.shape}")
    if arr.dtype != np.bool_ and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("plan must hold booleans or 0/1 (1 = execute that exit's branch)")
    return np.ascontiguousarray(arr, dtype=np.bool_)


def _grid(cdf_grid) -> np.ndarray | None:
    """Validated CDF grid, or None for uniform (Numba then compiles Algorithm 1 without the grid)."""
    if cdf_grid is None:
        return None
    grid = _vector("cdf_grid", cdf_grid, "build it with cdf_grid_uniform/_gaussian/_from_callable")
    if grid.size < 2:
        raise ValueError("cdf_grid needs at least 2 points (the CDF at 0 and at T)")
    if abs(grid[0]) > 1e-12 or abs(grid[-1] - 1.0) > 1e-12:
        raise ValueError(
            f"cdf_grid must start at 0 and end at 1 (a CDF over [0, T]), got {grid[0]!r} .. {grid[-1]!r};"
            " renormalise it, e.g. with cdf_grid_from_callable"
        )
    if np.any(np.diff(grid) < 0):
        raise ValueError("cdf_grid must be non-decreasing (it is a CDF)")
    return grid


def _int_in(name: str, value, low: int, high: int, why: str) -> int:
    """``value`` as an int in ``[low, high]``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}] ({why}), got {value}")
    return int(value)


# ----------------------------------------------------------------------------------------------
# CDF grids (§V-A area ratio)
# ----------------------------------------------------------------------------------------------


def total_time(tc: Sequence[float], tb: Sequence[float]) -> float:
    """``T = sum(Tc) + sum(Tb)``, the horizon of every CDF grid (Algorithm 1 line 3)."""
    tc, tb, _, _ = _profile(tc, tb, np.zeros(np.size(tc)), 0.0)
    return float(_total(tc, tb))


def cdf_grid_uniform(points: int = 1025) -> np.ndarray:
    """Uniform preemption: ``F(g * T / G) = g / G`` on ``points = G + 1`` grid points."""
    points = _int_in("points", points, 2, 10**8, "grid points over [0, T]")
    return np.linspace(0.0, 1.0, points)


def cdf_grid_from_callable(cdf: Callable[[float], float], total: float, points: int = 1025) -> np.ndarray:
    """Tabulate any CDF callable ``cdf(t)`` (scalar in, scalar out) on ``[0, total]``.

    The distribution is truncated to ``[0, T]`` and renormalised: ``(cdf(t) - cdf(0)) / (cdf(T) - cdf(0))``.
    """
    points = _int_in("points", points, 2, 10**8, "grid points over [0, T]")
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"total must be the positive total time T, got {total!r}")
    raw = np.array([float(cdf(t)) for t in np.linspace(0.0, total, points)])
    if not np.all(np.isfinite(raw)) or np.any(np.diff(raw) < 0):
        raise ValueError("cdf must return finite, non-decreasing values on [0, total]")
    if not raw[-1] > raw[0]:
        raise ValueError("cdf puts no probability on [0, total]; choose a distribution that overlaps it")
    grid = (raw - raw[0]) / (raw[-1] - raw[0])
    grid[-1] = 1.0
    return grid


def cdf_grid_gaussian(total: float, sigma: float, mu: float | None = None, points: int = 1025) -> np.ndarray:
    """Gaussian preemption time N(mu, sigma^2) (§VI-C3), **truncated to [0, T] and renormalised**.

    ``mu`` and ``sigma`` are in the same time unit as ``tc``/``tb``; ``mu`` defaults to ``T / 2`` as
    in the paper's Fig. 13.
    """
    mu = total / 2 if mu is None else mu
    if not (math.isfinite(sigma) and sigma > 0 and math.isfinite(mu)):
        raise ValueError(f"sigma must be positive and mu finite, got sigma={sigma!r}, mu={mu!r}")
    scale = sigma * math.sqrt(2.0)
    return cdf_grid_from_callable(lambda t: 0.5 * math.erfc((mu - t) / scale), total, points)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@njit(cache=True)
def _checked_expectation_kernel(tc: Arr, tb: Arr, conf: Arr, plan: Arr, c0: float) -> float:
    """Algorithm 1 under uniform preemption after :func:`_profile_ok` in the same compiled call; NaN if invalid."""
    if plan.size != tc.size or not _profile_ok(tc, tb, conf, c0):
        return np.nan
    return _plan_value(tc, tb, conf, plan, c0, _total(tc, tb), None)


def expectation(tc, tb, conf, plan, c0: float = 0.0) -> float:
    """Accuracy expectation of ``plan`` under uniform preemption on [0, T]: Algorithm 1, Eq. (5).

    Float64 vectors and a bool plan are checked and evaluated in one compiled call (this is called
    once per candidate plan by searches written in Python); anything else, or an invalid input, goes
    through the converting checks, which name the problem.
    """
    if (
        _is_f64_vector(tc)
        and _is_f64_vector(tb)
        and _is_f64_vector(conf)
        and isinstance(c0, float)
        and type(plan) is np.ndarray
        and plan.dtype == np.bool_
        and plan.ndim == 1
        and plan.flags.c_contiguous
    ):
        value = _checked_expectation_kernel(tc, tb, conf, plan, c0)
        if value == value:
            return float(value)
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    return float(_expectation_kernel(tc, tb, conf, _plan(plan, tc.size), c0, None))


def expectation_cdf(tc, tb, conf, plan, cdf_grid, c0: float = 0.0) -> float:
    """Expectation under any preemption CDF: Eq. (5) with the §V-A area ratio ``F(t_end) - F(t_start)``.

    ``cdf_grid`` holds F at ``G + 1`` equally spaced times over ``[0, T]``, ``T = sum(tc) + sum(tb)``,
    linearly interpolated; with :func:`cdf_grid_uniform` this equals :func:`expectation`.
    """
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    plan = _plan(plan, tc.size)
    return float(_expectation_kernel(tc, tb, conf, plan, c0, _grid(cdf_grid)))


def enumerate_search(tc, tb, conf, *, c0: float = 0.0, cdf_grid=None) -> tuple[np.ndarray, float]:
    """Optimal plan by enumerating all ``2**n`` plans (§V-B); refuses ``n > ENUM_MAX_EXITS``."""
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    if tc.size > ENUM_MAX_EXITS:
        raise ValueError(
            f"enumeration of n={tc.size} exits means 2**{tc.size} plans; n must be <= {ENUM_MAX_EXITS}."
            " Use exact_search (polynomial) or hybrid_search instead"
        )
    plan, best = _enumerate_kernel(tc, tb, conf, c0, _grid(cdf_grid))
    return plan, float(best)


def greedy_search(tc, tb, conf, *, c0: float = 0.0, cdf_grid=None) -> tuple[np.ndarray, float]:
    """Greedy search of §V-B: from the empty plan, add the branch that maximises the expectation.

    Until every branch is selected; returns the best plan seen, the empty one included. This is
    :func:`hybrid_search` with ``m = 0``.
    """
    return hybrid_search(tc, tb, conf, 0, c0=c0, cdf_grid=cdf_grid)


def hybrid_search(tc, tb, conf, m: int, *, c0: float = 0.0, cdf_grid=None) -> tuple[np.ndarray, float]:
    """Hybrid search, Algorithm 2.

    ``Enum(P, m)`` (line 1) is read as: enumerate the ``2**m`` plans over the first ``m`` exits,
    with the bits of exits ``m+1..n`` all 0, and keep the best (``P_E``, ``E_E``; lines 1-4).
    Lines 5-11 then run ``n - m`` greedy steps from ``P_E``: each adds the not-yet-selected exit
    (any of them, as §V-B's greedy "iterates through all non-output branches") whose addition
    maximises the expectation (added even if the expectation drops; ties -> lowest index), and the
    best plan seen is kept (strict ``>``, line 7). ``P'`` starts as ``P_E`` (the paper leaves it unset
    when no greedy step improves). ``m = 0`` is plain greedy search; ``m = n`` is full enumeration.
    Restricting the greedy steps to exits ``m+1..n`` instead freezes the first ``m`` bits at a choice
    made with every later bit 0, and then a larger ``m`` mostly ends below greedy.
    """
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    m = _int_in("m", m, 0, min(tc.size, ENUM_MAX_EXITS), f"number of enumerated exits, n={tc.size}")
    plan, best = _hybrid_kernel(tc, tb, conf, c0, m, _grid(cdf_grid))
    return plan, float(best)


def random_search(
    tc, tb, conf, k: int = 10_000, seed: int = 0, *, c0: float = 0.0, cdf_grid=None
) -> tuple[np.ndarray, float]:
    """Random search of §VI-C3: the best of ``k`` plans drawn uniformly (each bit a fair coin).

    Plans are ``numpy.random.default_rng(seed).integers(0, 2, size=(k, n), dtype=bool)``, drawn as
    packed bits (:func:`random_plan_words`); the paper uses ``k = 10_000``.
    """
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    k = _int_in("k", k, 1, 10**8 // tc.size, "number of random plans; k * n <= 1e8")
    seed = _int_in("seed", seed, 0, 2**63 - 1, "seed of numpy.random.default_rng")
    plan, best = _best_of_bits_kernel(tc, tb, conf, c0, random_plan_words(seed, k, tc.size), k, _grid(cdf_grid))
    return plan, float(best)


def random_plan_words(seed: int, k: int, n: int) -> np.ndarray:
    """The ``k`` random plans of ``n`` bits of :func:`random_search`, packed 32 to a ``uint32`` word.

    They are the plans ``default_rng(seed).integers(0, 2, size=(k, n), dtype=bool)`` draws -- numpy
    takes each bool from one bit of a 32-bit draw, least significant bit first -- without building
    the (k, n) array: bit ``r * n + j`` is plan ``r``'s bit ``j``. A test checks the equality.
    """
    return np.random.default_rng(seed).integers(0, 2**32, size=-(-k * n // 32), dtype=np.uint32)


def _delay_steps(tb: np.ndarray, total: float, grid: np.ndarray, time_bins: int | None) -> tuple[np.ndarray, float]:
    """Branch times rounded to the grid DP's delay step ``T / time_bins`` (default: the CDF grid's step)."""
    bins = grid.size - 1 if time_bins is None else _int_in("time_bins", time_bins, 1, 10**9, "delay bins over T")
    step = total / bins
    return np.rint(tb / step).astype(np.int64), step


def exact_search(
    tc, tb, conf, *, c0: float = 0.0, cdf_grid=None, time_bins: int | None = None
) -> tuple[np.ndarray, float]:
    """Exact planner: the optimal plan without enumeration.

    Uniform (``cdf_grid=None``): an exact O(n^3 / 6) dynamic programme over the last produced exit
    (see ``_exact_uniform_kernel``; an O(n^2) DP over the last exit alone is *not* exact, because the
    final segment ``C[last] * (T - t_last)`` depends on the branch time of every produced exit).

    Any CDF: a DP over (last produced exit, accumulated branch delay) with the delay quantised to
    ``h = T / time_bins`` (default: the CDF grid's own step, ``len(cdf_grid) - 1`` bins). It is exact
    when every ``tb`` is a multiple of ``h``; otherwise each ``tb`` is rounded to a multiple of ``h``
    and the returned plan's true expectation is within :func:`grid_dp_error_bound` of the optimum
    (the returned value is the plan's true expectation). Cost: time O(n^2 * D), memory O(n * D) with
    ``D = sum(tb) / h + 1``; halving ``h`` halves the bound and doubles the cost.
    """
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    grid = _grid(cdf_grid)
    if grid is None:
        plan, best = _exact_uniform_kernel(tc, tb, conf, c0)
        return plan, float(best)
    steps, step = _delay_steps(tb, float(_total(tc, tb)), grid, time_bins)
    if (tc.size + 1) * (int(steps.sum()) + 1) > GRID_DP_MAX_STATES:
        raise ValueError(
            f"the delay grid (time_bins={time_bins}, default len(cdf_grid) - 1) gives"
            f" {(tc.size + 1) * (int(steps.sum()) + 1)} DP states, more than GRID_DP_MAX_STATES="
            f"{GRID_DP_MAX_STATES}; pass a smaller time_bins"
        )
    plan, best = _exact_grid_kernel(tc, tb, conf, c0, grid, steps, step)
    return plan, float(best)


def grid_dp_error_bound(tc, tb, conf, cdf_grid, *, c0: float = 0.0, time_bins: int | None = None) -> float:
    """Proven worst-case gap between the optimum and the plan :func:`exact_search` returns for ``cdf_grid``.

    Writing ``E = C[last] + sum_s F(t_s) * (C[j(s-1)] - C[js])``, moving every output time by at most
    ``Delta = sum_j |tb_rounded[j] - tb[j]|`` changes a plan's ``E`` by at most ``Lip(F) * Delta * TV``
    (``Lip(F)``: steepest grid slope; ``TV``: the largest total variation ``sum_s |C[j(s-1)] - C[js]|``
    of any plan, itself found by an O(n^2) DP). The DP is optimal for the rounded times, so the gap is at
    most twice that. Zero when every ``tb`` is on the delay grid. It is pessimistic (rounding errors
    rarely add up); the gaps actually observed are orders of magnitude smaller.
    """
    tc, tb, conf, c0 = _profile(tc, tb, conf, c0)
    grid = _grid(cdf_grid)
    if grid is None:
        raise ValueError("cdf_grid is required (the uniform exact_search has no discretisation error)")
    total = float(_total(tc, tb))
    steps, step = _delay_steps(tb, total, grid, time_bins)
    delta = float(np.abs(steps * step - tb).sum())
    lipschitz = float(np.diff(grid).max()) * (grid.size - 1) / total
    return 2.0 * lipschitz * delta * float(_max_variation(conf, c0))


# ----------------------------------------------------------------------------------------------
# Pure-Python references (Table I "Python" column)
# ----------------------------------------------------------------------------------------------


def expectation_py(
    tc: Sequence[float], tb: Sequence[float], conf: Sequence[float], plan: Sequence[bool], c0: float = 0.0
) -> float:
    """Algorithm 1 in plain Python (no validation, no numpy): the Table I "Python" reference."""
    sc = sb = 0.0
    for x in tc:
        sc += x
    for x in tb:
        sb += x
    total = sc + sb  # T summed in the kernels' order (sum() is compensated from Python 3.12 on)
    e, c, t0, t1 = 0.0, c0, 0.0, 0.0
    for k in range(len(plan)):
        t1 += tc[k]
        if plan[k]:
            t1 += tb[k]
            e += c * ((t1 - t0) / total)
            c = conf[k]
            t0 = t1
    return e + c * ((total - t0) / total)


def hybrid_search_py(
    tc: Sequence[float], tb: Sequence[float], conf: Sequence[float], m: int, c0: float = 0.0
) -> tuple[list[bool], float]:
    """Algorithm 2 in plain Python, same semantics and tie-breaking as :func:`hybrid_search`."""
    n = len(tc)
    best, best_mask = -math.inf, 0
    for mask in range(1 << m):
        e = expectation_py(tc, tb, conf, [(mask >> k) & 1 == 1 for k in range(m)] + [False] * (n - m), c0)
        if e > best:
            best, best_mask = e, mask
    plan = [(best_mask >> k) & 1 == 1 for k in range(m)] + [False] * (n - m)
    best_plan = list(plan)
    for _ in range(n - m):
        pick, pick_e = -1, -math.inf
        for k in range(n):
            if not plan[k]:
                plan[k] = True
                e = expectation_py(tc, tb, conf, plan, c0)
                plan[k] = False
                if e > pick_e:
                    pick, pick_e = k, e
        plan[pick] = True
        if pick_e > best:
            best, best_plan = pick_e, list(plan)
    return best_plan, best
