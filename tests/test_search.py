"""Tests of the EINet search engine (Paper B §V): Algorithm 1, Algorithm 2, the exact planners, the C reference."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from earlyexit.paper_b import search
from earlyexit.paper_b.search_bench import CCompilerNotFound, build_c_reference, run_benchmark

FAST = settings(max_examples=40, deadline=None)

# ---------------------------------------------------------------------------- strategies / fixtures


@st.composite
def instances(draw, min_n: int = 1, max_n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A random profile ``(tc, tb, conf, c0)``: times in [0, 100] (zeros allowed, T > 0), scores in [0, 1]."""
    n = draw(st.integers(min_n, max_n))
    time = st.floats(0.0, 100.0, allow_subnormal=False)
    tc = np.array(draw(st.lists(time, min_size=n, max_size=n)))
    tb = np.array(draw(st.lists(time, min_size=n, max_size=n)))
    assume(tc.sum() + tb.sum() > 1e-6)
    conf = np.array(draw(st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=n, max_size=n)))
    c0 = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
    return tc, tb, conf, c0


def seeded(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded MSDNet-like instance with non-monotone scores."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 2.0, n), rng.uniform(0.0, 3.0, n), rng.uniform(0.0, 1.0, n)


@pytest.fixture(scope="module")
def c_ref():
    """The compiled C reference, or a skip when this machine has no C compiler."""
    try:
        return build_c_reference()
    except CCompilerNotFound as err:
        pytest.skip(str(err))


# ---------------------------------------------------------------------------- Algorithm 1

TC, TB, CONF = [1.0, 2.0, 3.0], [1.0, 1.0, 2.0], [0.5, 0.7, 0.9]  # T = 6 + 4 = 10


def test_algorithm1_hand_worked():
    """Plan 101: exit 1 outputs at t=1+1=2, exit 3 at 2+2+3+2=9 (branch 2 skipped), T=10.

    E = c0*(2-0)/10 + 0.5*(9-2)/10 + 0.9*(10-9)/10 = 0.2*c0 + 0.35 + 0.09.
    """
    for c0 in (0.0, 0.2):
        want = 0.2 * c0 + 0.35 + 0.09
        assert search.expectation(TC, TB, CONF, [1, 0, 1], c0) == pytest.approx(want, abs=1e-15)
        assert search.expectation_py(TC, TB, CONF, [True, False, True], c0) == pytest.approx(want, abs=1e-15)
    # all exits: outputs at 2, 5, 10 -> 0.5*3/10 + 0.7*5/10 + 0.9*0/10
    assert search.expectation(TC, TB, CONF, [1, 1, 1]) == pytest.approx(0.15 + 0.35, abs=1e-15)
    # no exit: c0 holds over the whole of [0, T]
    assert search.expectation(TC, TB, CONF, [0, 0, 0], c0=0.3) == pytest.approx(0.3, abs=1e-15)


@FAST
@given(instances(max_n=8))
def test_every_plan_lies_between_the_scores(inst):
    tc, tb, conf, c0 = inst
    low, high = min(c0, conf.min()), max(c0, conf.max())
    for plan in itertools.product([False, True], repeat=tc.size):
        e = search.expectation(tc, tb, conf, plan, c0)
        assert low - 1e-12 <= e <= high + 1e-12
        if c0 == 0.0:
            assert -1e-12 <= e <= conf.max() + 1e-12


@FAST
@given(instances(max_n=30), st.randoms(use_true_random=False))
def test_numba_python_and_c_expectations_agree(c_ref, inst, rnd):
    tc, tb, conf, c0 = inst
    plan = [rnd.random() < 0.5 for _ in range(tc.size)]
    numba_e = search.expectation(tc, tb, conf, plan, c0)
    assert search.expectation_py(tc.tolist(), tb.tolist(), conf.tolist(), plan, c0) == pytest.approx(numba_e, abs=1e-12)
    assert c_ref.expectation(tc, tb, conf, plan, c0) == pytest.approx(numba_e, abs=1e-12)


@FAST
@given(instances(max_n=30), st.randoms(use_true_random=False), st.integers(2, 400))
def test_uniform_cdf_equals_algorithm1(inst, rnd, points):
    tc, tb, conf, c0 = inst
    plan = [rnd.random() < 0.5 for _ in range(tc.size)]
    e = search.expectation_cdf(tc, tb, conf, plan, search.cdf_grid_uniform(points), c0)
    assert e == pytest.approx(search.expectation(tc, tb, conf, plan, c0), abs=1e-12)


def test_area_ratio_gaussian_by_hand():
    """A point-like Gaussian at t=5.5 (between the outputs at 5 and 10 of plan 111) scores 0.7."""
    grid = search.cdf_grid_gaussian(10.0, sigma=0.05, mu=5.5, points=2001)
    assert search.expectation_cdf(TC, TB, CONF, [1, 1, 1], grid) == pytest.approx(0.7, abs=1e-9)
    wide = search.cdf_grid_gaussian(10.0, sigma=1.0)  # mu = T/2: symmetric, truncated and renormalised
    assert wide[0] == 0.0 and wide[-1] == 1.0 and wide[wide.size // 2] == pytest.approx(0.5, abs=1e-12)


# ---------------------------------------------------------------------------- searches


@FAST
@given(instances(max_n=12))
def test_exact_equals_enumeration(inst):
    tc, tb, conf, c0 = inst
    _, enum_e = search.enumerate_search(tc, tb, conf, c0=c0)
    plan, exact_e = search.exact_search(tc, tb, conf, c0=c0)
    assert exact_e == pytest.approx(enum_e, abs=1e-12)
    assert search.expectation(tc, tb, conf, plan, c0) == exact_e


def test_exact_equals_enumeration_n16():
    tc, tb, conf = seeded(16, 34)
    enum_plan, enum_e = search.enumerate_search(tc, tb, conf)
    exact_plan, exact_e = search.exact_search(tc, tb, conf)
    assert exact_e == pytest.approx(enum_e, abs=1e-12)
    assert np.array_equal(exact_plan, enum_plan)
    assert exact_e > search.greedy_search(tc, tb, conf)[1] + 1e-3  # this instance traps greedy


@FAST
@given(instances(max_n=20), st.data())
def test_hybrid_at_most_exact_and_matches_python(c_ref, inst, data):
    tc, tb, conf, c0 = inst
    m = data.draw(st.integers(0, min(tc.size, 6)))
    plan, hybrid_e = search.hybrid_search(tc, tb, conf, m, c0=c0)
    assert hybrid_e <= search.exact_search(tc, tb, conf, c0=c0)[1] + 1e-12
    assert hybrid_e == search.expectation(tc, tb, conf, plan, c0)
    py_plan, py_e = search.hybrid_search_py(tc.tolist(), tb.tolist(), conf.tolist(), m, c0)
    c_plan, c_e = c_ref.hybrid_search(tc, tb, conf, m, c0)
    assert py_e == pytest.approx(hybrid_e, abs=1e-12) and c_e == pytest.approx(hybrid_e, abs=1e-12)
    assert plan.tolist() == py_plan == c_plan.tolist()


@FAST
@given(instances(max_n=16))
def test_hybrid_m0_is_greedy(inst):
    tc, tb, conf, c0 = inst
    greedy_plan, greedy_e = search.greedy_search(tc, tb, conf, c0=c0)
    hybrid_plan, hybrid_e = search.hybrid_search(tc, tb, conf, 0, c0=c0)
    py_plan, py_e = search.hybrid_search_py(tc.tolist(), tb.tolist(), conf.tolist(), 0, c0)
    assert greedy_e == hybrid_e == pytest.approx(py_e, abs=1e-12)
    assert greedy_plan.tolist() == hybrid_plan.tolist() == py_plan


def test_hybrid_m_equal_n_is_enumeration():
    tc, tb, conf = seeded(10, 3)
    assert search.hybrid_search(tc, tb, conf, 10)[1] == search.enumerate_search(tc, tb, conf)[1]


def test_random_search_is_seeded_and_bounded():
    tc, tb, conf = seeded(20, 5)
    plan, e = search.random_search(tc, tb, conf, k=500, seed=11)
    again_plan, again_e = search.random_search(tc, tb, conf, k=500, seed=11)
    assert e == again_e and np.array_equal(plan, again_plan)
    assert e == search.expectation(tc, tb, conf, plan)
    assert e <= search.exact_search(tc, tb, conf)[1] + 1e-12
    assert search.random_search(tc, tb, conf, k=5000, seed=11)[1] >= e  # the first 500 rows are the same draws


# ---------------------------------------------------------------------------- general CDF: grid DP


@FAST
@given(st.integers(1, 8), st.integers(0, 10**6), st.floats(0.5, 20.0))
def test_grid_dp_exact_when_branch_times_on_grid(n, seed, sigma):
    rng = np.random.default_rng(seed)
    tc, tb, conf = rng.integers(1, 6, n).astype(float), rng.integers(0, 4, n).astype(float), rng.uniform(0, 1, n)
    total = int(tc.sum() + tb.sum())
    grid = search.cdf_grid_gaussian(float(total), sigma=sigma, points=4 * total + 1)
    plan, dp_e = search.exact_search(tc, tb, conf, cdf_grid=grid, time_bins=total)  # step 1 = on-grid tb
    assert search.grid_dp_error_bound(tc, tb, conf, grid, time_bins=total) == 0.0
    assert dp_e == pytest.approx(search.enumerate_search(tc, tb, conf, cdf_grid=grid)[1], abs=1e-12)
    assert dp_e == search.expectation_cdf(tc, tb, conf, plan, grid)


@FAST
@given(instances(max_n=9), st.floats(0.05, 2.0), st.sampled_from([65, 257, 1025]))
def test_grid_dp_within_stated_bound(inst, rel_sigma, points):
    tc, tb, conf, c0 = inst
    total = search.total_time(tc, tb)
    grid = search.cdf_grid_gaussian(total, sigma=rel_sigma * total, mu=0.3 * total, points=points)
    _, enum_e = search.enumerate_search(tc, tb, conf, c0=c0, cdf_grid=grid)
    plan, dp_e = search.exact_search(tc, tb, conf, c0=c0, cdf_grid=grid)
    assert dp_e == pytest.approx(search.expectation_cdf(tc, tb, conf, plan, grid, c0), abs=1e-12)
    assert dp_e <= enum_e + 1e-12
    assert enum_e - dp_e <= search.grid_dp_error_bound(tc, tb, conf, grid, c0=c0) + 1e-12


def test_grid_dp_fine_grid_close_to_uniform_dp():
    tc, tb, conf = seeded(40, 1)
    _, exact_e = search.exact_search(tc, tb, conf)
    _, dp_e = search.exact_search(tc, tb, conf, cdf_grid=search.cdf_grid_uniform(4097))
    assert exact_e - 1e-4 <= dp_e <= exact_e + 1e-12


# ---------------------------------------------------------------------------- validation


def _bad_calls():
    ok = ([1.0, 1.0], [0.5, 0.5], [0.4, 0.8])
    grid = search.cdf_grid_uniform(5)
    big = ([1.0] * 25, [1.0] * 25, [0.5] * 25)
    return [
        ("tc", lambda: search.expectation([1.0, np.nan], ok[1], ok[2], [1, 1])),
        ("conf", lambda: search.expectation(*ok[:2], [0.4, np.inf], [1, 1])),
        ("tb", lambda: search.exact_search(ok[0], [0.5, -0.1], ok[2])),
        ("lengths", lambda: search.hybrid_search(ok[0], ok[1], [0.4], 1)),
        ("conf", lambda: search.greedy_search(*ok[:2], [0.4, 1.2])),
        ("c0", lambda: search.expectation(*ok, [1, 1], c0=-0.5)),
        ("plan", lambda: search.expectation(*ok, [1, 1, 0])),
        ("plan", lambda: search.expectation(*ok, [1, 2])),
        ("tc", lambda: search.expectation([[1.0, 1.0]], ok[1], ok[2], [1, 1])),
        ("T must be positive", lambda: search.exact_search([0.0, 0.0], [0.0, 0.0], ok[2])),
        ("n must be <= 24", lambda: search.enumerate_search(*big)),
        ("m", lambda: search.hybrid_search(*ok, 3)),
        ("m", lambda: search.hybrid_search(*ok, -1)),
        ("m", lambda: search.hybrid_search(*ok, 1.5)),
        ("m", lambda: search.hybrid_search(*big, 25)),
        ("k", lambda: search.random_search(*ok, k=0)),
        ("cdf_grid", lambda: search.expectation_cdf(*ok, [1, 1], grid * 0.5)),
        ("cdf_grid", lambda: search.exact_search(*ok, cdf_grid=grid[::-1])),
        ("time_bins", lambda: search.exact_search(*ok, cdf_grid=grid, time_bins=0)),
        ("overflow", lambda: search.exact_search([1e308, 1e308], ok[1], ok[2])),
        ("overflow", lambda: search.hybrid_search([1e308, 1e308], ok[1], ok[2], 1)),
        ("c0", lambda: search.exact_search(*ok, c0=float("nan"))),
        ("c0", lambda: search.exact_search(*ok, c0="high")),
    ]


BAD_PROFILES = [  # (tc, tb, conf, c0): each breaks one rule
    ([1.0, np.nan], [0.5, 0.5], [0.4, 0.8], 0.0),
    ([1.0, 1.0], [0.5, -0.1], [0.4, 0.8], 0.0),
    ([1.0, 1.0], [0.5, 0.5], [0.4, 1.2], 0.0),
    ([1.0, 1.0], [0.5, 0.5], [0.4], 0.0),
    ([0.0, 0.0], [0.0, 0.0], [0.4, 0.8], 0.0),
    ([1e308, 1e308], [0.5, 0.5], [0.4, 0.8], 0.0),
    ([1.0, 1.0], [0.5, 0.5], [0.4, 0.8], float("nan")),
    ([1.0, 1.0], [0.5, 0.5], [0.4, 0.8], 1.5),
]


@pytest.mark.parametrize("bad", BAD_PROFILES)
def test_float64_arrays_take_the_fast_path_and_fail_with_the_same_message(bad):
    *vectors, c0 = bad
    with pytest.raises(ValueError) as from_lists:
        search._profile(*vectors, c0)
    with pytest.raises(ValueError) as from_arrays:
        search._profile(*(np.array(v, dtype=np.float64) for v in vectors), c0)
    assert str(from_arrays.value) == str(from_lists.value)


@FAST
@given(instances(max_n=12))
def test_fast_path_accepts_exactly_the_valid_profiles(inst):
    tc, tb, conf, c0 = inst
    assert search._profile_ok(tc, tb, conf, c0)
    for bad in (np.nan, -1.0, np.inf):
        broken = conf.copy()
        broken[0] = bad
        assert not search._profile_ok(tc, tb, broken, c0)
        with pytest.raises(ValueError):
            search._profile(tc, tb, broken, c0)


@pytest.mark.parametrize(("name", "call"), _bad_calls())
def test_validation_errors_name_the_argument(name, call):
    with pytest.raises(ValueError, match=rf"\b{re.escape(name)}\b"):
        call()


# ---------------------------------------------------------------------------- benchmark plumbing


def test_run_benchmark_small(c_ref):
    df = run_benchmark(n_exits=10, m=3, repeats=2, seed=1)
    assert {"task", "implementation", "median_ms", "min_ms", "max_ms", "value"} <= set(df.columns)
    assert df.attrs["exact_value"] >= df.attrs["hybrid_value"] - 1e-12
    values = df[df.task.isin(["expectation", "hybrid m=3"])].groupby("task")["value"]
    assert (values.max() - values.min() <= 1e-12).all()  # Python, Numba and C agree
    assert (df.min_ms > 0).all()


def test_missing_c_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="search_ref.c"):
        build_c_reference(tmp_path / "nowhere.c")


@pytest.mark.parametrize("seed, k, n", [(0, 10_000, 40), (3, 7, 5), (9, 33, 1), (2**40, 5, 64)])
def test_packed_random_plans_are_the_plans_numpy_draws(seed, k, n):
    words = search.random_plan_words(seed, k, n)
    plans = np.unpackbits(words.view(np.uint8), bitorder="little")[: k * n].reshape(k, n).astype(bool)
    np.testing.assert_array_equal(plans, np.random.default_rng(seed).integers(0, 2, size=(k, n), dtype=np.bool_))


def test_random_search_is_the_best_of_numpys_plans():
    tc, tb, conf = seeded(12, 4)
    plans = np.random.default_rng(5).integers(0, 2, size=(300, 12), dtype=np.bool_)
    values = [search.expectation(tc, tb, conf, p) for p in plans]
    plan, best = search.random_search(tc, tb, conf, k=300, seed=5)
    assert best == max(values) and np.array_equal(plan, plans[int(np.argmax(values))])
