"""Elastic inference (Paper B §IV-B, §V, §VI-C): simulation against brute force, re-planning, real mode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from earlyexit.nets import et_profile
from earlyexit.nets.models import build_model
from earlyexit.paper_b import elastic as E
from earlyexit.paper_b import search
from earlyexit.paper_b.predictor import CSPredictor, known_scores


def cs_profile(samples: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small random ET-/CS-profile (a test fixture, not a dataset)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.1, 1.0, (samples, n)).astype(np.float32)
    return rng.uniform(0.5, 2.0, n), rng.uniform(0.1, 1.0, n), conf, rng.random((samples, n)) < conf


def taus(preemption: E.Preemption, total: float, samples: int, runs: int, seed: int) -> list[np.ndarray]:
    """The preemption times simulate draws: one per sample and run, from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    return [preemption.sample(rng, total, samples) for _ in range(runs)]


def score(outputs: list[list[tuple[float, bool]]], tau: np.ndarray) -> float:
    """Brute force: the latest output produced by each sample's preemption time (none: wrong)."""
    hits = []
    for outs, t in zip(outputs, tau):
        done = [ok for time, ok in outs if time <= t]
        hits.append(bool(done and done[-1]))
    return float(np.mean(hits))


@pytest.mark.parametrize("preemption", [E.Preemption(), E.Preemption.gaussian(0.5)])
def test_static_simulation_equals_brute_force(preemption):
    tc, tb, conf, correct = cs_profile(60, 6, 1)
    plan = np.array([True, False, True, True, False, True])
    got = E.simulate(tc, tb, conf, correct, plan, preemption, runs=3, seed=5, progress=False)
    outputs = []
    for i in range(len(conf)):
        t, outs = 0.0, []
        for k in range(6):
            t += tc[k]
            if plan[k]:
                t += tb[k]
                outs.append((t, correct[i, k]))
        outputs.append(outs)
    want = [score(outputs, tau) for tau in taus(preemption, tc.sum() + tb.sum(), 60, 3, 5)]
    np.testing.assert_array_equal(got.run_accuracy, want)
    assert got.accuracy == pytest.approx(np.mean(want)) and got.decisions == 0


@pytest.mark.parametrize("preemption", [E.Preemption(), E.Preemption.gaussian(0.5)])
def test_dynamic_simulation_equals_brute_force(preemption):
    """EINet with full enumeration, re-implemented plainly: torch predictor, known_scores, full plans."""
    n, samples = 5, 400
    tc, tb, conf, correct = cs_profile(samples, n, 2)
    model = CSPredictor(n, hidden=(16, 8)).eval()
    with torch.no_grad():  # O = 0.3 + A x, A in [0, 0.3]^(n x n): input-driven, inside [0, 1]
        for layer in model.net[0], model.net[3], model.net[6]:
            layer.weight.zero_()
            layer.bias.zero_()
        model.net[0].weight[:n, :n] = torch.eye(n)
        model.net[3].weight[:n, :n] = torch.eye(n)
        model.net[6].weight[:, :n] = torch.from_numpy(np.random.default_rng(0).uniform(0, 0.3, (n, n)))
        model.net[6].bias.fill_(0.3)
        model.prior.copy_(torch.from_numpy(conf.mean(0)))
    got = E.simulate(tc, tb, conf, correct, E.Dynamic(model, "hybrid", m=5), preemption, runs=4, seed=9, progress=False)
    grid = preemption.cdf_grid(tc.sum() + tb.sum())

    def best(conf_full: np.ndarray, fixed: np.ndarray, first: int) -> np.ndarray:
        plan, top = fixed.copy(), -np.inf
        for bits in itertools.product([False, True], repeat=n - first):
            cand = np.concatenate([fixed[:first], bits[::-1]])  # enumeration order of search: low bit first
            e = (
                search.expectation(tc, tb, conf_full, cand)
                if grid is None
                else search.expectation_cdf(tc, tb, conf_full, cand, grid)
            )
            if e > top:
                plan, top = cand, e
        return plan

    outputs, decisions = [], 0
    for i in range(samples):
        plan = best(model.prior.numpy().astype(np.float64), np.zeros(n, bool), 0)
        t, outs, executed = 0.0, [], np.zeros(n, bool)
        for k in range(n):
            t += tc[k]
            if plan[k]:
                t += tb[k]
                executed[k] = True
                outs.append((t, correct[i, k]))
                if k < n - 1:
                    known = np.zeros(n, dtype=np.float32)
                    known[: k + 1] = known_scores(conf[i, : k + 1], executed[: k + 1])
                    mask = (np.arange(n) > k).astype(np.float32)
                    with torch.no_grad():
                        o = model(torch.from_numpy(known)[None], torch.from_numpy(mask)[None])[0].numpy()
                    plan = best(np.clip(o, 0, 1).astype(np.float64), plan, k + 1)
                    decisions += 1
        outputs.append(outs)
    want = [score(outputs, tau) for tau in taus(preemption, tc.sum() + tb.sum(), samples, 4, 9)]
    np.testing.assert_array_equal(got.run_accuracy, want)
    assert got.decisions == decisions and got.search_s > 0 and got.predict_s > 0


@pytest.mark.parametrize("preemption", [E.Preemption(), E.Preemption.gaussian(0.5)])
def test_oracle_einet_is_never_below_every_branch_in_expectation(preemption):
    """With true scores the exact planner maximises each sample's expected score at every decision, and
    re-planning keeps the old continuation as a candidate: the plan it ends with is at least as good
    as running every branch (Gaussian: up to the time-grid DP's error bound)."""
    n = 7
    for seed in range(4):
        tc, tb, conf, correct = cs_profile(30, n, 20 + seed)
        conf64 = conf.astype(np.float64)
        out_t, _, _ = E._dynamic_outputs(tc, tb, conf64, E.Dynamic(E.Oracle(), "exact"), preemption, 0, False)
        grid = preemption.cdf_grid(tc.sum() + tb.sum())
        for row, times in zip(conf64, out_t):
            value = lambda plan: (
                search.expectation(tc, tb, row, plan)
                if grid is None
                else search.expectation_cdf(tc, tb, row, plan, grid)
            )
            slack = 0.0 if grid is None else search.grid_dp_error_bound(tc, tb, row, grid)
            assert value(np.isfinite(times)) >= value(np.ones(n, bool)) - slack - 1e-12
        oracle = E.simulate(tc, tb, conf, correct, E.Dynamic(E.Oracle(), "exact"), preemption, runs=2, progress=False)
        assert oracle.decisions > 0 and oracle.predict_s >= 0


def test_oracle_plans_each_sample_on_its_own_scores():
    """The oracle's first plan is the exact optimum for the sample's true scores, not one plan for all."""
    tc, tb, conf, _ = cs_profile(50, 6, 4)
    out_t, _, _ = E._dynamic_outputs(
        tc, tb, conf.astype(np.float64), E.Dynamic(E.Oracle(), "exact"), E.Preemption(), 0, False
    )
    first = [search.exact_search(tc, tb, row.astype(np.float64))[0] for row in conf]
    k0 = np.array([np.argmax(plan) for plan in first])  # the first exit each plan runs
    assert np.all(np.isfinite(out_t[np.arange(len(conf)), k0]))
    assert np.all(~np.isfinite(out_t[:, :1]) | np.array([plan[0] for plan in first])[:, None])
    assert len({plan.tobytes() for plan in first}) > 1


def test_the_oracle_is_refused_where_it_cannot_exist(resnet_and_images):
    model, x, _ = resnet_and_images
    with pytest.raises(ValueError, match="use it in simulate"):
        E.run_real(model, x[:1], "cifar10", np.full(3, 1e-3), np.full(3, 1e-3), E.Dynamic(E.Oracle()), 1.0)
    with pytest.raises(TypeError, match="predictor must be a CSPredictor"):
        E.Dynamic(np.ones(3))


def test_everything_finishes_when_preempted_at_T():
    tc, tb, conf, correct = cs_profile(200, 7, 3)
    got = E.simulate(tc, tb, conf, correct, np.ones(7, bool), E.Preemption.fixed(1.0), runs=2, progress=False)
    assert got.accuracy == correct[:, -1].mean() and got.branches == 7


def test_nothing_counts_before_the_first_exit():
    tc, tb, conf, correct = cs_profile(200, 7, 4)
    first = (tc[0] + tb[0]) / (tc.sum() + tb.sum())
    for at in (0.0, 0.99 * first):
        got = E.simulate(tc, tb, conf, correct, np.ones(7, bool), E.Preemption.fixed(at), runs=2, progress=False)
        assert got.accuracy == 0.0 and got.branches == 0.0


@pytest.mark.parametrize("gaussian", [False, True])
def test_suffix_problem_gives_the_conditional_expectation(gaussian):
    """E(prefix + S) = E_prefix + P(tau > t_now) * E_suffix(S) for every suffix S, against search.expectation."""
    n, k = 9, 3
    rng = np.random.default_rng(7)
    tc, tb, conf = rng.uniform(0.2, 2.0, n), rng.uniform(0.0, 1.5, n), rng.uniform(0, 1, n)
    total = tc.sum() + tb.sum()
    grid = search.cdf_grid_gaussian(total, 0.5 * total) if gaussian else None
    value = (
        (lambda p: search.expectation_cdf(tc, tb, conf, p, grid))
        if gaussian
        else (lambda p: search.expectation(tc, tb, conf, p))
    )
    prefix = np.array([True, False, False, True])  # exit k=3 produced, exits 1 and 2 skipped
    t_now = tc[: k + 1].sum() + tb[: k + 1][prefix].sum()
    survive = 1.0 - (np.interp(t_now, np.linspace(0, total, grid.size), grid) if gaussian else t_now / total)
    stc, stb, sconf, sgrid = E.suffix_problem(tc, tb, conf, k, t_now, grid)
    assert stc.sum() + stb.sum() == pytest.approx(total - t_now) and stc[-1] == pytest.approx(tb[1] + tb[2])
    suffix_value = (
        (lambda s: search.expectation_cdf(stc, stb, sconf, s, sgrid, c0=conf[k]))
        if gaussian
        else (lambda s: search.expectation(stc, stb, sconf, s, c0=conf[k]))
    )
    stop = np.concatenate([prefix, np.zeros(n - k - 1, bool)])
    head = value(stop) - survive * suffix_value(np.zeros(n - k, bool))
    for bits in itertools.islice(itertools.product([False, True], repeat=n - k - 1), 0, None, 3):
        full = np.concatenate([prefix, bits])
        got = head + survive * suffix_value(np.append(bits, False))
        assert got == pytest.approx(value(full), abs=1e-6 if gaussian else 1e-12)
        # the leftover block's branch (score 0) never helps: planners drop it
        assert suffix_value(np.append(bits, True)) <= suffix_value(np.append(bits, False)) + 1e-12


@pytest.mark.parametrize(
    "preemption",
    [
        E.Preemption.gaussian(0.5),
        E.Preemption.gaussian(1.0),
        E.Preemption.gaussian(0.05, mu=0.95),
        E.Preemption.gaussian(2.0, unit=3.0),
    ],
)
def test_gaussian_preemption_stays_in_range(preemption):
    t = preemption.sample(np.random.default_rng(0), 10.0, (50, 400))
    assert t.shape == (50, 400) and t.min() >= 0.0 and t.max() <= 10.0
    assert abs(np.median(t) - 10.0 * preemption.mu) < 0.5
    grid = preemption.cdf_grid(10.0)
    cond = E.conditional_grid(grid, 10.0, 4.0)
    for g in (grid, cond):
        assert g[0] == 0.0 and g[-1] == 1.0 and np.all(np.diff(g) >= 0)


def test_skip_plans_of_fig11_keep_the_last_exit():
    np.testing.assert_array_equal(E.skip_plan(7, 2), [True, False, False, True, False, False, True])
    assert E.skip_plan(7, 0).all() and E.skip_plan(7, 10).sum() == 1 and E.skip_plan(7, 10)[-1]


def test_plan_expectation_is_the_limit_of_the_simulation():
    tc, tb, conf, correct = cs_profile(2000, 8, 6)
    plan = E.skip_plan(8, 1)
    for pre in (E.Preemption(), E.Preemption.gaussian(0.5)):
        exp = E.plan_expectation(tc, tb, conf, correct, plan, pre)
        sim = E.simulate(tc, tb, conf, correct, plan, pre, runs=20, progress=False)
        assert sim.accuracy == pytest.approx(exp["accuracy"], abs=0.01)
        assert 0 < exp["confidence"] < 1


@pytest.fixture(scope="module")
def resnet_and_images(load_dataset):
    torch.set_num_threads(1)
    ds = load_dataset("cifar10")
    return build_model("resnet44", "cifar10", seed=0).eval(), ds.x_test[:4], ds.y_test[:4]


def test_measure_et_profile_on_real_images(resnet_and_images):
    model, x, _ = resnet_and_images
    prof = et_profile.measure_et_profile(model, x, "cifar10", samples=3, warmup=1)
    assert prof["tc"].shape == prof["tb"].shape == (3, 3) and prof["samples"] == 3
    assert np.all(prof["tc"] > 0) and np.all(prof["tb"] > 0)
    assert prof["tc_percentiles"].shape == (4, 3) and np.all(prof["tb_median"] > 0)
    assert prof["machine"]["threads"] == torch.get_num_threads()


def test_run_real_gives_valid_predictions(resnet_and_images):
    model, x, y = resnet_and_images
    tc, tb = np.array([3.0, 6.0, 5.0]) * 1e-3, np.array([2.0, 1.0, 0.1]) * 1e-3
    every = E.run_real(model, x, "cifar10", tc, tb, np.ones(3, bool), deadline_s=30.0)
    assert np.all(every["exit"] == 2) and np.all(every["branches"] == 3)
    assert np.all((every["pred"] >= 0) & (every["pred"] < 10))
    with torch.no_grad():
        np.testing.assert_array_equal(every["pred"], model(E.data.normalize(x, "cifar10"))[-1].argmax(-1).numpy())
    torch.manual_seed(0)
    predictor = CSPredictor(3).eval()
    predictor.prior.fill_(0.5)
    dyn = E.run_real(model, x[:2], "cifar10", tc, tb, E.Dynamic(predictor), deadline_s=[30.0, 0.0])
    assert 0 <= dyn["pred"][0] < 10 and dyn["exit"][0] >= 0 and dyn["elapsed_s"][0] > 0
    assert dyn["pred"][1] == -1 and dyn["exit"][1] == -1 and dyn["branches"][1] == 0


def test_trace_real_records_the_run_it_returns(resnet_and_images):
    model, x, _ = resnet_and_images
    tc, tb = np.array([3.0, 6.0, 5.0]) * 1e-3, np.array([2.0, 1.0, 0.1]) * 1e-3
    torch.manual_seed(0)
    predictor = CSPredictor(3).eval()
    predictor.prior.fill_(0.5)
    trace = E.trace_real(model, x[:1], "cifar10", tc, tb, E.Dynamic(predictor), deadline_s=30.0)
    kinds = [(e.kind, e.exit) for e in trace.events]
    assert kinds[0] == ("part", 0)
    assert [k for kind, k in kinds if kind == "part"] == [0, 1, 2]
    starts = [e.start for e in trace.events]
    assert starts == sorted(starts) and all(e.end >= e.start >= 0 for e in trace.events)
    branches = [e for e in trace.events if e.kind == "branch"]
    assert trace.exit == branches[-1].exit and trace.pred == branches[-1].pred and all(b.counted for b in branches)
    replans = [e for e in trace.events if e.kind == "plan"]
    assert len(trace.plans) == 1 + len(replans) and len(replans) == sum(b.exit < 2 for b in branches)
    every = E.run_real(model, x[:1], "cifar10", tc, tb, E.Dynamic(predictor), deadline_s=30.0)
    assert every["pred"][0] == trace.pred and every["exit"][0] == trace.exit
    classic = np.array([False, False, True])
    cut = E.trace_real(model, x[:1], "cifar10", tc, tb, classic, deadline_s=0.0)
    assert cut.exit == -1 and cut.pred == -1 and cut.events == []  # preempted before its only exit: no result
    with pytest.raises(ValueError, match="traces one image"):
        E.trace_real(model, x[:2], "cifar10", tc, tb, classic, deadline_s=1.0)


@pytest.mark.parametrize("sigma", [float("inf"), float("nan"), 0.0, -1.0])
def test_gaussian_preemption_needs_a_finite_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be positive and finite"):
        E.Preemption.gaussian(sigma)


def test_very_wide_gaussian_preemption_samples_at_once():
    t = E.Preemption.gaussian(1e6).sample(np.random.default_rng(0), 10.0, 100_000)
    assert 0.0 <= t.min() and t.max() <= 10.0
    assert abs(t.mean() - 5.0) < 0.05  # nearly uniform: the density is flat over [0, T]


def test_confidences_passed_as_correctness_are_refused():
    tc, tb, conf, _ = cs_profile(20, 4, 0)
    with pytest.raises(ValueError, match="test_correct must be boolean or exactly 0/1"):
        E.simulate(tc, tb, conf, conf, np.ones(4, bool), progress=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"runs": 0}, r"runs must lie in \[1"),
        ({"samples": 0}, "has no samples"),
        ({"nan_conf": True}, r"test_conf must hold confidences in \[0, 1\]"),
    ],
)
def test_simulation_refuses_empty_or_invalid_inputs(change, message):
    tc, tb, conf, correct = cs_profile(20, 4, 0)
    if change.get("samples") == 0:
        conf, correct = conf[:0], correct[:0]
    if change.get("nan_conf"):
        conf = conf.copy()
        conf[3, 1] = np.nan
    with pytest.raises(ValueError, match=message):
        E.simulate(tc, tb, conf, correct, np.ones(4, bool), runs=change.get("runs", 2), progress=False)


def test_dynamic_refuses_an_m_it_cannot_enumerate():
    with pytest.raises(ValueError, match=r"m must lie in \[0, 24\]"):
        E.Dynamic(CSPredictor(4), m=30)


def test_run_real_refuses_bad_inputs(resnet_and_images):
    model, x, _ = resnet_and_images
    tc, tb = np.full(3, 1e-3), np.full(3, 1e-3)
    plan = np.ones(3, bool)
    bad = [
        (dict(x=E.data.normalize(x, "cifar10")), "raw uint8 images"),
        (dict(name="mnist"), "are not mnist"),
        (dict(deadline=float("nan")), "deadline_s must be finite"),
        (dict(tc=np.full(4, 1e-3), tb=np.full(4, 1e-3)), "the ET-profile has 4 exits, the model 3"),
        (dict(plan=np.ones(2, bool)), "one bit .* per exit"),
        (dict(deadline=[1.0, 2.0]), "one per sample"),
    ]
    for change, message in bad:
        args = dict(x=x, name="cifar10", tc=tc, tb=tb, plan=plan, deadline=1.0) | change
        with pytest.raises(ValueError, match=message):
            E.run_real(model, args["x"], args["name"], args["tc"], args["tb"], args["plan"], args["deadline"])


def test_gap_sources_split_einets_gap_into_parts_that_sum_to_it():
    parts = E.gap_sources(baseline=13.46, einet=12.54, exact=12.536, oracle=13.604)
    assert parts["search"] + parts["predictor"] + parts["expectation"] == pytest.approx(parts["total"])
    assert parts["total"] == pytest.approx(12.54 - 13.46) and parts["predictor"] == pytest.approx(12.536 - 13.604)


def test_paired_differences_have_the_standard_error_of_the_differences():
    gain, se = E.paired(np.array([1, 0, 1, 1]), np.array([0, 0, 1, 0]))
    assert gain == pytest.approx(50.0) and se == pytest.approx(100 * np.std([1, 0, 0, 1], ddof=1) / 2)
    assert E.paired(np.ones(3), np.ones(3)) == (0.0, 0.0)
