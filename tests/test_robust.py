"""Beyond Paper B: the calibration maps, the shrinkage planner, the robust choice and the gap's decomposition."""

from __future__ import annotations

import numpy as np
import pytest
from test_elastic import cs_profile

from earlyexit.engine.artifacts import Artifact
from earlyexit.paper_b import baselines, elastic, explorer, predictor, robust
from earlyexit.paper_b.calibration import Shrinkage, expected_calibration_error, fit_isotonic


def test_isotonic_fit_pools_violators_into_their_mean():
    conf = np.array([[0.1], [0.2], [0.3], [0.4]])
    cal = fit_isotonic(conf, np.array([[1], [0], [1], [1]]))
    np.testing.assert_allclose(cal(conf)[:, 0], [0.5, 0.5, 1.0, 1.0])


def test_calibration_maps_are_monotone_and_lower_the_calibration_error_where_fitted():
    _, _, conf, correct = cs_profile(4000, 3, 1)
    over = conf**0.3  # over-confident scores of the same correctness
    cal = fit_isotonic(over, correct)
    grid = np.linspace(0, 1, 501)
    mapped = cal(np.repeat(grid[:, None], 3, axis=1))
    assert np.all(np.diff(mapped, axis=0) >= 0) and np.all((mapped >= 0) & (mapped <= 1))
    before, after = expected_calibration_error(over, correct), expected_calibration_error(cal(over), correct)
    assert np.all(after < before / 2)


def test_calibration_depends_on_the_held_out_samples_alone():
    _, _, conf, correct = cs_profile(600, 4, 2)
    held_out, other = slice(0, 300), slice(300, None)
    cal = fit_isotonic(conf[held_out], correct[held_out])
    again = fit_isotonic(conf[held_out], correct[held_out])
    np.testing.assert_array_equal(cal(conf[other]), again(conf[other]))
    with pytest.raises(ValueError, match="one shape"):
        fit_isotonic(conf, correct[:, :2])


def test_shrinkage_weight_zero_is_the_population_and_one_uncalibrated_is_the_scores():
    _, _, conf, correct = cs_profile(50, 4, 3)
    pop = correct.mean(0)
    np.testing.assert_allclose(Shrinkage(0.0, pop)(conf), np.broadcast_to(pop, conf.shape))
    np.testing.assert_allclose(Shrinkage(1.0, pop)(conf), conf)
    assert Shrinkage(0.5, pop).at(2, 0.9) == pytest.approx(0.5 * 0.9 + 0.5 * pop[2])
    with pytest.raises(ValueError, match="weight"):
        Shrinkage(1.5, pop)


@pytest.fixture(scope="module")
def fitted():
    tc, tb, conf, correct = cs_profile(400, 6, 4)
    fit, scored = baselines.halves(400)
    cs, _ = predictor.train_predictor(conf[fit], epochs=2, progress=False)
    return tc, tb, conf, correct, fit, scored, cs


@pytest.mark.parametrize("preemption", [elastic.Preemption(), elastic.Preemption.gaussian(0.5)])
def test_strength_zero_plans_the_optimal_static_plan(fitted, preemption):
    tc, tb, conf, correct, fit, scored, cs = fitted
    static, _ = baselines.optimal_static_plan(tc, tb, correct[fit].mean(0), preemption)
    shrunk = elastic.Dynamic(cs, "exact", scores=Shrinkage(0.0, correct[fit].mean(0)))
    args = dict(preemption=preemption, runs=3, seed=1, progress=False)
    got = elastic.simulate(tc, tb, conf[scored], correct[scored], shrunk, **args)
    want = elastic.simulate(tc, tb, conf[scored], correct[scored], static, **args)
    np.testing.assert_array_equal(got.sample_accuracy, want.sample_accuracy)


@pytest.mark.parametrize("search", ["hybrid", "exact"])
def test_strength_one_without_calibration_is_einet(fitted, search):
    tc, tb, conf, correct, fit, scored, cs = fitted
    einet = elastic.Dynamic(cs, search)
    same = elastic.Dynamic(cs, search, scores=Shrinkage(1.0, correct[fit].mean(0)))
    args = dict(runs=3, seed=2, progress=False)
    got = elastic.simulate(tc, tb, conf[scored], correct[scored], same, **args)
    want = elastic.simulate(tc, tb, conf[scored], correct[scored], einet, **args)
    np.testing.assert_array_equal(got.sample_accuracy, want.sample_accuracy)
    assert got.decisions == want.decisions


def _run(conf, correct, tc, tb) -> Artifact:
    arrays = {"test_conf": conf, "test_correct": correct, "et_tc": tc[None], "et_tb": tb[None]}
    return Artifact(arrays, {"params": {"model": "tiny", "dataset": "cifar10"}, "data_sha256": "d", "npz_sha256": "n"})


def _robust_choice(run: Artifact, cs) -> tuple:
    policy = baselines.policies(run, cs, baselines.Setup(random_k=10, runs=2), elastic.Preemption())[baselines.ROBUST][
        1
    ]
    scores = policy.scores
    knots = () if scores.calibration is None else scores.calibration.knots_y
    return scores.weight, scores.population.tolist(), [k.tolist() for k in knots]


def test_the_robust_planner_cannot_see_the_samples_it_is_scored_on(fitted):
    tc, tb, conf, correct, fit, scored, cs = fitted
    chosen = _robust_choice(_run(conf, correct, tc, tb), cs)
    flipped = correct.copy()
    flipped[scored] = ~flipped[scored]  # every scored sample's correctness changes
    shuffled = conf.copy()
    shuffled[scored] = conf[scored][::-1]
    assert _robust_choice(_run(shuffled, flipped, tc, tb), cs) == chosen
    flipped_fit = correct.copy()
    flipped_fit[fit] = ~flipped_fit[fit]  # the held-out half does decide
    assert _robust_choice(_run(conf, flipped_fit, tc, tb), cs) != chosen


def test_the_robust_choice_keeps_per_sample_planning_only_beyond_one_standard_error(fitted):
    tc, tb, conf, correct, fit, scored, cs = fitted
    choice = robust.choose(tc, tb, conf[fit], correct[fit], cs, runs=2)
    table = choice.held_out.set_index("weight")
    assert list(table.index) == [0.0, *robust.WEIGHTS] and table.loc[0.0, "gain"] == 0.0
    best = table.accuracy.idxmax()
    assert choice.weight == (best if table.loc[best, "gain"] > table.loc[best, "se"] else 0.0)
    assert choice.policy.scores.weight == choice.weight


def test_the_decomposition_adds_up_to_einets_gap(fitted):
    tc, tb, conf, correct, fit, scored, cs = fitted
    table = robust.decompose(tc, tb, (conf[fit], correct[fit]), (conf[scored], correct[scored]), cs, runs=2)
    rows = table.set_index("plan")
    parts = rows.loc[[f"component: {c}" for c in robust.COMPONENTS], "gain"]
    assert parts.sum() == pytest.approx(rows.loc["EINet hybrid m=5", "gain"], abs=1e-9)
    assert rows.loc["optimal static", "gain"] == 0.0
    assert np.isfinite(rows.loc["robust", "accuracy"])


def test_the_spread_sweep_starts_from_the_static_plan_at_weight_zero(fitted):
    tc, tb, conf, correct, fit, scored, cs = fitted
    static, _ = baselines.optimal_static_plan(tc, tb, correct[scored].mean(0))
    sweep = robust.spread_sweep(tc, tb, (conf[scored], correct[scored]), static, (0.0, 0.3), runs=2)
    shrink = sweep[sweep.sweep == "shrink"].set_index("value")
    assert shrink.loc[0.0, "gain"] == 0.0 and shrink.loc[0.0, "score_spread"] == pytest.approx(0.0, abs=1e-12)
    assert shrink.score_spread.is_monotonic_increasing
    assert set(sweep.sweep) == {"noise", "shrink"}


@pytest.mark.parametrize("preemption", [elastic.Preemption(), elastic.Preemption.gaussian(0.5)])
def test_the_explorer_plans_every_planner_and_the_exact_plan_is_best_on_the_samples_scores(preemption):
    tc, tb, conf, correct = cs_profile(20, 8, 5)
    pop = correct.mean(0)
    found = explorer.plans(tc, tb, conf[3], preemption, 3, Shrinkage(0.0, pop))
    assert list(found) == ["greedy", "hybrid m=3", "exact", "robust (w=0)"]
    best = found["exact"][1]
    assert all(value <= best + 1e-12 for _, value in found.values())
    static, _ = baselines.optimal_static_plan(tc, tb, pop, preemption)
    np.testing.assert_array_equal(found["robust (w=0)"][0], static)  # w = 0: the population's plan, whatever the sample


def test_the_explorer_draws_one_step_per_output():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tc, tb, conf, _ = cs_profile(2, 5, 6)
    plan = np.array([True, False, True, False, True])
    fig, ax = plt.subplots()
    explorer.draw(ax, tc, tb, conf[0], plan, elastic.Preemption(), "plan", "C0")
    assert len(ax.collections) == 2 * (plan.sum() + 1)  # a shaded area and a level per interval
    plt.close(fig)


def test_compare_predictors_agrees_with_the_decomposition_for_the_same_predictor(fitted):
    tc, tb, conf, correct, fit, scored, cs = fitted
    held_out, test = (conf[fit], correct[fit]), (conf[scored], correct[scored])
    other, _ = predictor.train_predictor(conf[fit], epochs=1, seed=1, progress=False)
    table = robust.compare_predictors(tc, tb, held_out, test, {"a": cs, "b": other}, runs=2).set_index("predictor")
    parts = robust.decompose(tc, tb, held_out, test, cs, runs=2).set_index("plan")
    assert table.loc["a", "hybrid gain"] == pytest.approx(parts.loc["EINet hybrid m=5", "gain"], abs=1e-9)
    assert table.loc["a", "exact gain"] == pytest.approx(parts.loc["EINet exact", "gain"], abs=1e-9)
    assert table.loc["a", "part gain"] == pytest.approx(parts.loc["component: predictor", "gain"], abs=1e-9)
    assert table.loc["a", "error"] == pytest.approx(predictor.eq3_loss(cs, conf[scored]))
    assert table.loc["a", "error"] != table.loc["b", "error"]
