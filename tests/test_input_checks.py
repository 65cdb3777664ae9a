"""Public functions refuse bad input where it enters, naming what is wrong (issue 33), and keep their invariants
on every valid input (property-based)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from earlyexit.core import checks
from earlyexit.nets.flops import PartFlops
from earlyexit.paper_a import ep_inference, latency
from earlyexit.paper_b import elastic

PARTS = [
    PartFlops(20_000_000, 1_000_000, ()),
    PartFlops(30_000_000, 1_000_000, ()),
    PartFlops(200_000_000, 500_000, ()),
]
CONF = np.array([[0.9, 0.5, 0.7], [0.2, 0.95, 0.6], [0.1, 0.2, 0.8]])
CORRECT = np.array([[True, False, True], [False, True, True], [False, False, True]])


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (np.where(CONF > 0.8, np.nan, CONF), r"conf must hold finite numbers in \[0, 1\]; entry \(0, 0\) is nan"),
        (CONF[:, 0], "conf must be a non-empty 2-D array, got shape"),
        (np.zeros((0, 3)), r"conf must be a non-empty 2-D array, got shape \(0, 3\)"),
        (CONF * 2, r"entry \(0, 0\) is 1.8"),
        (CONF[:, :1], "Algorithm 1 needs early exits and a last exit"),
        ([["a", "b"]], "conf must be an array of numbers"),
    ],
)
def test_evaluate_refuses_confidences_that_are_not_probabilities(conf, message):
    with pytest.raises(ValueError, match=message):
        ep_inference.evaluate(conf, PARTS, 0.8)


def test_evaluate_refuses_nan_scores_and_a_negative_ep_cost():
    scores = np.full((3, 2), 0.5)
    scores[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"scores must hold finite numbers .* entry \(1, 1\) is nan"):
        ep_inference.evaluate(CONF, PARTS, 0.8, 0.5, scores)
    with pytest.raises(ValueError, match="ep_flops must be a finite number"):
        ep_inference.evaluate(CONF, PARTS, 0.8, ep_flops=-1.0)


def test_summary_refuses_correctness_of_another_shape_or_kind():
    outcome = ep_inference.evaluate(CONF, PARTS, 0.8)
    with pytest.raises(ValueError, match=r"correct must have shape \(3, 3\), got \(3, 2\)"):
        outcome.summary(CORRECT[:, :2])
    with pytest.raises(ValueError, match="correct must be boolean or exactly 0/1"):
        outcome.summary(CONF)
    assert outcome.summary(CORRECT.astype(int))["accuracy"] == outcome.summary(CORRECT)["accuracy"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_last": math.nan}, "extra_last must be a finite number"),
        ({"extra_last": 0.0}, r"extra_last must be a finite number in \(0, 1\]"),
        ({"candidates": [0.5, 1.0]}, "must include 0"),
        ({"candidates": [0.0, 2.0]}, "candidates must hold finite numbers in"),
    ],
)
def test_select_gamma_refuses_what_would_leave_it_without_an_answer(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ep_inference.select_gamma(CONF, np.full((3, 2), 0.5), PARTS, 0.8, **kwargs)


def test_select_gamma_always_answers_on_valid_input():
    gamma, outcome = ep_inference.select_gamma(CONF, np.full((3, 2), 0.5), PARTS, 0.8, candidates=[0.0, 0.7])
    assert gamma.shape == (2,) and isinstance(outcome, ep_inference.Outcome)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel_reduction": -4}, "channel_reduction must be an integer >= 1, got -4"),
        ({"channel_reduction": 0}, "channel_reduction must be an integer >= 1, got 0"),
        ({"spatial_stride": 0}, "spatial_stride must be an integer >= 1"),
        ({"bits": 2.5}, "bits must be an integer, got 2.5"),
        ({"shape": (64, -8, 8)}, r"shape must hold finite numbers in \[1, inf\]"),
    ],
)
def test_feature_bits_refuses_impossible_encoders(kwargs, message):
    with pytest.raises(ValueError, match=message):
        latency.feature_bits(**{"shape": (64, 8, 8), **kwargs})


CANDS = latency.candidates(CONF, CORRECT, PARTS, [0.5, 0.9])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r_comm": -1e6}, "r_comm must hold finite numbers in"),
        ({"r_comm": [1e6, math.nan]}, r"r_comm must hold finite numbers .* entry 1 is nan"),
        ({"r_comm": 0.0}, "r_comm must hold positive bandwidths"),
        ({"tau": math.nan}, "tau must be a finite number"),
        ({"tau": -0.03}, r"tau must be a finite number in \(0, inf\]"),
        ({"r_comp": 0}, r"r_comp must be a finite number in \(0, inf\]"),
        ({"bits": -2048}, "bits must be a finite number in"),
    ],
)
def test_solve_refuses_bandwidths_and_requirements_that_are_not_physical(kwargs, message):
    with pytest.raises(ValueError, match=message):
        latency.solve(CANDS, **{"r_comm": 1e6, "bits": 2048, **kwargs})


def test_candidates_refuse_nan_confidences():
    with pytest.raises(ValueError, match="conf must hold finite numbers"):
        latency.candidates(np.where(CONF > 0.8, np.nan, CONF), CORRECT, PARTS, [0.5])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: elastic.Preemption(mu="0.5"), r"mu must be a number, got '0.5' \(str\)"),
        (lambda: elastic.Preemption.gaussian(0.2, mu=math.nan), "mu must be a finite number"),
        (lambda: elastic.Preemption.fixed(0.5).cdf_grid(math.nan), "total must be a finite number"),
        (lambda: elastic.Preemption.fixed(0.5).cdf_grid(-1.0), r"total must be a finite number in \(0, inf\]"),
        (lambda: elastic.Preemption.gaussian(0.2).cdf_grid(1.0, points=1), "points must be an integer >= 2"),
        (lambda: elastic.skip_plan(5, -1), "k must be an integer >= 0, got -1"),
        (lambda: elastic.skip_plan(0, 1), "n must be an integer >= 1, got 0"),
    ],
)
def test_preemption_and_static_plans_refuse_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_statement_only_calling_a_check_changes_no_fingerprint():
    """Every check is an input check, so the validated functions keep the fingerprints their shipped derived
    results record (``tests/test_derived.py`` checks every record)."""
    public = [checks.number, checks.integer, checks.array, checks.probabilities, checks.boolean]
    assert all(f.__fingerprint_check__ is True for f in public)


# ---------------------------------------------------------------- invariants on random valid inputs

probabilities = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def networks(draw):
    """Confidences, correctness and part FLOPs of a random network of 2-5 exits on 1-40 samples."""
    samples, n = draw(st.integers(1, 40)), draw(st.integers(2, 5))
    conf = draw(hnp.arrays(np.float64, (samples, n), elements=probabilities))
    correct = draw(hnp.arrays(np.bool_, (samples, n)))
    flops = st.integers(1, 10**9)
    parts = [PartFlops(draw(flops), draw(flops), ()) for _ in range(n)]
    return conf, correct, parts


@settings(max_examples=150, deadline=None)
@given(net=networks(), data=st.data())
def test_evaluate_gives_an_accuracy_and_on_device_flops_within_bounds(net, data):
    conf, correct, parts = net
    n = conf.shape[1]
    lam = data.draw(hnp.arrays(np.float64, n - 1, elements=probabilities))
    use_ep = data.draw(st.booleans())
    scores = data.draw(hnp.arrays(np.float64, (len(conf), n - 1), elements=probabilities)) if use_ep else None
    gamma = data.draw(hnp.arrays(np.float64, n - 1, elements=probabilities)) if use_ep else None
    ep_flops = data.draw(st.floats(0, 1e6)) if use_ep else 0.0
    outcome = ep_inference.evaluate(conf, parts, lam, gamma, scores, ep_flops)
    summary = outcome.summary(correct)
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert np.isclose(summary["exit_share"].sum(), 1.0)
    first = ep_flops + parts[0].stage
    whole = ep_flops + sum(p.stage + p.exit for p in parts[:-1])  # every on-device stage and early exit
    assert np.all(outcome.device_flops >= first - 1e-6) and np.all(outcome.device_flops <= whole + 1e-6)
    assert np.all(outcome.total_flops >= outcome.device_flops)


@settings(max_examples=150, deadline=None)
@given(net=networks(), data=st.data())
def test_latency_never_grows_with_bandwidth_and_the_choice_never_loses_accuracy(net, data):
    conf, correct, parts = net
    cands = latency.candidates(conf, correct, parts, data.draw(st.lists(probabilities, min_size=1, max_size=3)))
    r_comm = np.sort(data.draw(hnp.arrays(np.float64, 6, elements=st.floats(1e3, 1e9))))
    bits = data.draw(st.integers(1, 10**6))
    tau = data.draw(st.floats(1e-4, 1.0))
    each = latency.mean_latency(cands.device_flops, cands.offload_share, bits, latency.RPI3_FLOPS, r_comm)
    assert np.all(np.diff(each, axis=1) <= 1e-12)  # Eq. (11): every candidate is no slower at more bandwidth
    choice = latency.solve(cands, r_comm, bits, tau=tau)
    feasible = choice.feasible
    assert np.all(np.diff(feasible.astype(int)) >= 0)  # once feasible, feasible at every higher bandwidth
    accuracy = cands.accuracy[choice.index]
    assert np.all(np.diff(accuracy[feasible]) >= 0)  # more bandwidth never forces a less accurate choice
    assert np.all(choice.latency[feasible] <= tau)
    assert np.all(np.diff(choice.latency[~feasible]) <= 1e-12)  # the fallback: the fastest, never slower
