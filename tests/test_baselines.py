"""Paper B's compared plans (§VI-B): static fractions, the optimal static plan, thresholds, the comparison."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_elastic import cs_profile, score, taus

from earlyexit.engine.artifacts import Artifact
from earlyexit.paper_b import baselines, elastic, search


@pytest.mark.parametrize(
    "n, fraction, want",
    [
        (40, 0.25, elastic.skip_plan(40, 3)),
        (40, 0.5, elastic.skip_plan(40, 1)),
        (40, 1.0, np.ones(40, bool)),
        (3, 0.25, [False, False, True]),
        (3, 0.5, [True, False, True]),
        (14, 0.25, None),
    ],
)
def test_fraction_plans_spread_their_branches_and_keep_the_last(n, fraction, want):
    plan = baselines.fraction_plan(n, fraction)
    assert plan[-1] and plan.sum() == max(1, int(np.floor(fraction * n + 0.5)))
    if want is not None:
        np.testing.assert_array_equal(plan, want)
    gaps = np.diff(np.flatnonzero(plan))
    assert gaps.size == 0 or gaps.max() - gaps.min() <= 1


@pytest.mark.parametrize("fraction", [0.0, 1.5, float("nan")])
def test_fraction_plan_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        baselines.fraction_plan(10, fraction)


@pytest.mark.parametrize("preemption", [elastic.Preemption(), elastic.Preemption.gaussian(0.5)])
def test_optimal_static_plan_beats_every_plan_on_the_average_profile(preemption):
    tc, tb, conf, correct = cs_profile(100, 7, 3)
    mean = correct.mean(0).astype(np.float64)
    plan, how = baselines.optimal_static_plan(tc, tb, mean, preemption)
    assert how == "enumeration"
    want = max(
        elastic.plan_expectation(tc, tb, conf, correct, np.array(bits), preemption)["accuracy"]
        for bits in itertools.product([False, True], repeat=7)
    )
    assert elastic.plan_expectation(tc, tb, conf, correct, plan, preemption)["accuracy"] == pytest.approx(want)


def test_optimal_static_plan_uses_the_exact_planner_beyond_enumeration():
    n = search.ENUM_MAX_EXITS + 6
    tc, tb, conf, correct = cs_profile(50, n, 4)
    mean = correct.mean(0).astype(np.float64)
    plan, how = baselines.optimal_static_plan(tc, tb, mean)
    assert how == "exact planner"
    value = search.expectation(tc, tb, mean, plan)
    rng = np.random.default_rng(0)
    for other in [np.ones(n, bool), *(rng.random(n) < 0.5 for _ in range(200))]:
        assert value >= search.expectation(tc, tb, mean, other) - 1e-12


@pytest.mark.parametrize("preemption", [elastic.Preemption(), elastic.Preemption.gaussian(0.5)])
def test_threshold_plans_equal_brute_force(preemption):
    tc, tb, conf, correct = cs_profile(80, 6, 5)
    got = elastic.simulate(tc, tb, conf, correct, elastic.Threshold(0.7), preemption, runs=3, seed=2, progress=False)
    outputs = []
    for i in range(len(conf)):
        t, outs = 0.0, []
        for k in range(6):
            t += tc[k] + tb[k]
            outs.append((t, correct[i, k]))
            if conf[i, k] >= 0.7:
                break
        outputs.append(outs)
    want = [score(outputs, tau) for tau in taus(preemption, tc.sum() + tb.sum(), 80, 3, 2)]
    np.testing.assert_array_equal(got.run_accuracy, want)


def test_threshold_one_is_the_baseline_and_zero_stops_at_the_first_exit():
    tc, tb, conf, correct = cs_profile(60, 5, 6)
    conf = np.minimum(conf, 0.99)
    args = dict(preemption=elastic.Preemption(), runs=2, seed=1, progress=False)
    every = elastic.simulate(tc, tb, conf, correct, np.ones(5, bool), **args)
    assert elastic.simulate(tc, tb, conf, correct, elastic.Threshold(1.0), **args).accuracy == every.accuracy
    first = elastic.simulate(tc, tb, conf, correct, elastic.Threshold(0.0), **args)
    assert first.branches <= 1.0
    with pytest.raises(ValueError, match=r"theta is a confidence threshold in \[0, 1\]"):
        elastic.Threshold(1.5)


def test_compare_runs_every_plan_and_reads_its_result_back(tmp_path):
    tc, tb, conf, correct = cs_profile(120, 6, 7)
    arrays = {"test_conf": conf, "test_correct": correct, "et_tc": tc[None], "et_tb": tb[None]}
    manifest = {"params": {"model": "tiny", "dataset": "cifar10"}, "data_sha256": "d", "npz_sha256": "n"}
    run = Artifact(arrays, manifest)
    setup = baselines.Setup(thresholds=(0.5, 0.9), random_k=50, runs=2)
    table = baselines.compare(run, tmp_path, "smoke", setup)
    assert list(table.method) == [
        "static 25%",
        "static 50%",
        "static 100%",
        "optimal static (enumeration)",
        "threshold 0.5",
        "threshold 0.9",
        "EINet random",
        "EINet hybrid m=5",
        "EINet exact",
        "oracle + exact",
        baselines.ROBUST,
    ]
    assert table.accuracy.between(0, 100).all() and (table.branches > 0).all()
    every = table.set_index("method").loc["static 100%"]
    _, scored = baselines.halves(120)
    direct = elastic.simulate(tc, tb, conf[scored], correct[scored], np.ones(6, bool), runs=2, seed=0, progress=False)
    assert every.accuracy == pytest.approx(100 * direct.accuracy)
    assert (tmp_path / "cs-predictor.npz").exists()
    again = baselines.compare(run, tmp_path, "smoke", setup)
    pd_equal = again.equals(table)
    assert pd_equal


def test_predictor_study_trains_two_plateau_predictors_and_reports_how(tmp_path):
    tc, tb, conf, correct = cs_profile(200, 4, 8)
    arrays = {"test_conf": conf, "test_correct": correct, "et_tc": tc[None], "et_tb": tb[None],
              "train_conf": cs_profile(600, 4, 9)[2]}  # fmt: skip
    manifest = {"params": {"model": "tiny", "dataset": "cifar10"}, "data_sha256": "d", "npz_sha256": "n"}
    run = Artifact(arrays, manifest)
    table = baselines.predictor_study(run, tmp_path, "smoke", baselines.Setup(runs=2)).set_index("predictor")
    assert list(table.index) == [baselines.TODAY, "test half, to plateau", "training split, to plateau"]
    assert list(table.samples) == [100, 100, 600]
    assert table.loc[baselines.TODAY, "stopped"] == "fixed passes" and np.isnan(
        table.loc[baselines.TODAY, "validation error"]
    )
    assert set(table.stopped.iloc[1:]) <= {"plateau", "row cap"} and (table["rows"].iloc[1:] <= 10_000).all()
    assert (table.error > 0).all() and table.error.nunique() == 3
    assert {p.name for p in tmp_path.glob("cs-predictor*.npz")} == {
        "cs-predictor.npz", "cs-predictor-plateau.npz", "cs-predictor-plateau-train.npz"}  # fmt: skip
