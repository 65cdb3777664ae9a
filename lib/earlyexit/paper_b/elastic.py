"""EINet profiles and elastic inference (Paper B §IV-B, §V, §VI-C): ET-profiles, simulation, a real mode.

Time model (Algorithm 1). Block ``k`` costs ``tc[k]`` (conv part) plus ``tb[k]`` when its branch runs;
``T = sum(tc) + sum(tb)``; a preemption time ``tau`` on ``[0, T]`` stops the inference and the result
is the latest exit produced by ``tau`` (an exit finishing exactly at ``tau`` counts; none: wrong).

Conventions (the paper leaves them open):

* Preemption (§VI-A, Fig. 13): uniform on ``[0, T]``; Gaussian with ``mu = T / 2`` and
  ``sigma * unit``, ``unit = T`` by default (Fig. 13's "sigma 0.5 and 1" read as fractions of ``T``),
  truncated to ``[0, T]``; or a fixed time (tests, deadlines). One draw per sample and run.
* Fig. 11's "skipping k exits uniformly" (:func:`skip_plan`): execute every ``(k+1)``-th branch
  counted back from the last one, which always runs; ``k = 0`` is the baseline (every branch).
* EINet's dynamic planning (:class:`Dynamic`): the first plan is searched on the predictor's
  ``prior`` (the mean training CS-profile; Fig. 5 has no row without scores). After every produced
  exit the known scores (skipped exits filled, §IV-C2) go to the CS-Predictor and the remaining
  exits are re-planned on ``O'`` (clipped to [0, 1]) under the preemption law conditioned on
  ``tau > t_now`` (:func:`suffix_problem`), with the latest produced score as ``c0``. A skipped
  branch brings no new score, so no re-plan.
* Diagnosis (:class:`Oracle`): in place of the CS-Predictor, each sample's true confidences, its first
  plan included. With the exact planner EINet then maximises every sample's expected score, so it is
  never below running every branch *in expectation* (the test suite checks this); what separates the
  oracle row from the predictor's is the predictor's error, what separates it from the baseline's
  accuracy is the expectation model (confidence in place of correctness).
* The simulation charges neither search nor prediction to the time budget (they are timed and
  reported per decision); :func:`run_real` runs on the wall clock, so there they count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import checks, data
from ..engine.artifacts import Artifact
from ..nets.multiexit import MultiExitNet
from . import search
from .calibration import Shrinkage
from .predictor import CachedPredictor, CSPredictor

__all__ = [
    "Preemption",
    "Dynamic",
    "Oracle",
    "Threshold",
    "SimResult",
    "paired",
    "skip_plan",
    "plan_expectation",
    "conditional_grid",
    "suffix_problem",
    "simulate",
    "run_real",
    "Event",
    "Trace",
    "trace_real",
    "gap_sources",
]

CHUNK = 1024
"""Samples per batched CS-Predictor call in :func:`simulate` (bounds its memory)."""


# ---------------------------------------------------------------------------------- preemption


@dataclass(frozen=True)
class Preemption:
    """Law of the preemption time on ``[0, T]``.

    ``kind``: ``"uniform"``; ``"gaussian"``, N(``mu * T``, (``sigma * unit``)^2) truncated to
    ``[0, T]`` (``unit=None``: ``T``, so ``sigma`` is a fraction of ``T``); ``"fixed"``, always at
    ``mu * T``.
    """

    kind: str = "uniform"
    sigma: float = 1.0
    mu: float = 0.5
    unit: float | None = None

    def __post_init__(self):
        checks.number("mu", self.mu, low=0.0, high=1.0, fix="mu is a fraction of T, e.g. 0.5")
        if self.kind not in ("uniform", "gaussian", "fixed"):
            raise ValueError(f"kind must be 'uniform', 'gaussian' or 'fixed', got {self.kind!r}")
        if not 0.0 <= self.mu <= 1.0:  # False for NaN
            raise ValueError(f"mu is a fraction of T in [0, 1], got {self.mu}")
        if self.kind == "gaussian" and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be positive and finite, got {self.sigma}")
        if self.unit is not None and not (math.isfinite(self.unit) and self.unit > 0):
            raise ValueError(f"unit must be a positive, finite time (or None for T), got {self.unit}")

    @classmethod
    def gaussian(cls, sigma: float, mu: float = 0.5, unit: float | None = None) -> Preemption:
        return cls("gaussian", sigma, mu, unit)

    @classmethod
    def fixed(cls, at: float) -> Preemption:
        """Preemption always at ``at * T``."""
        return cls("fixed", mu=at)

    def std(self, total: float) -> float:
        """The Gaussian's sigma in time units."""
        return self.sigma * (total if self.unit is None else self.unit)

    def sample(self, rng: np.random.Generator, total: float, shape) -> np.ndarray:
        """Preemption times of the given shape, all in ``[0, total]``.

        Gaussian: the truncated law drawn exactly by inversion, ``mu + s * Phi^-1(U)`` with ``U``
        uniform on ``[Phi(-mu / s), Phi((T - mu) / s)]``: one draw per sample whatever ``sigma``.
        """
        if self.kind == "uniform":
            return rng.uniform(0.0, total, shape)
        if self.kind == "fixed":
            return np.full(shape, self.mu * total)
        mu, s = self.mu * total, self.std(total)
        lo, hi = torch.special.ndtr(torch.tensor([-mu / s, (total - mu) / s], dtype=torch.float64)).tolist()
        u = torch.from_numpy(rng.uniform(lo, hi, shape))
        return np.clip(mu + s * torch.special.ndtri(u).numpy(), 0.0, total)

    def cdf_grid(self, total: float, points: int = 1025) -> np.ndarray | None:
        """The search engine's CDF grid over ``[0, total]`` (None for uniform: Algorithm 1 as is)."""
        checks.number("total", total, low=0.0, open_low=True, fix="the profiled total time T (search.total_time)")
        checks.integer("points", points, low=2, fix="the grid's size, e.g. 1025")
        if self.kind == "uniform":
            return None
        if self.kind == "gaussian":
            return search.cdf_grid_gaussian(total, self.std(total), self.mu * total, points)
        grid = (np.linspace(0.0, total, points) >= self.mu * total).astype(np.float64)
        grid[0] = 0.0
        return grid


# ---------------------------------------------------------------------------------- static plans


def skip_plan(n: int, k: int) -> np.ndarray:
    """Fig. 11's plan skipping ``k`` exits uniformly: branches ``n-1, n-2-k, n-3-2k, ...`` run."""
    checks.integer("n", n, low=1, fix="the number of exits")
    checks.integer("k", k, low=0, fix="the exits skipped between two that run (0: every branch runs)")
    return (np.arange(n)[::-1] % (k + 1)) == 0


def plan_expectation(
    tc, tb, test_conf: np.ndarray, test_correct: np.ndarray, plan, preemption: Preemption = Preemption()
) -> dict[str, float]:
    """Fig. 11's "expectation" of a static plan, Algorithm 1 averaged over the samples.

    ``accuracy``: each sample's correctness as its scores (the exact expected accuracy of the plan
    under ``preemption``, what :func:`simulate` estimates); ``confidence``: each sample's confidence.
    Algorithm 1 is linear in the scores (``c0 = 0``), so the mean over samples is Algorithm 1 on the
    per-exit mean.
    """
    grid = preemption.cdf_grid(search.total_time(tc, tb))
    out = {}
    for name, scores in (("accuracy", test_correct), ("confidence", test_conf)):
        mean = np.asarray(scores, dtype=np.float64).mean(0)
        out[name] = (
            search.expectation(tc, tb, mean, plan) if grid is None else search.expectation_cdf(tc, tb, mean, plan, grid)
        )
    return out


# ---------------------------------------------------------------------------------- re-planning


def conditional_grid(grid: np.ndarray | None, total: float, t_now: float) -> np.ndarray | None:
    """CDF grid of ``tau - t_now`` given ``tau > t_now`` on ``[0, total - t_now]``, same point count.

    Uniform stays uniform (None). With no probability left after ``t_now`` any plan scores the same;
    None is returned then too.
    """
    if grid is None:
        return None
    points = grid.size
    f = np.interp(np.linspace(t_now, total, points), np.linspace(0.0, total, points), grid)
    left = 1.0 - f[0]
    if left <= 1e-12:
        return None
    out = (f - f[0]) / left
    out[0], out[-1] = 0.0, 1.0
    return out


def suffix_problem(tc, tb, conf, k: int, t_now: float, grid: np.ndarray | None = None):
    """The re-planning problem after exit ``k`` produced its score at elapsed time ``t_now``.

    Blocks ``k+1 .. n-1`` start at time 0, plus one final block of ``tc = T - t_now - (their time)``
    (the branch time of the exits skipped so far), ``tb = 0``, ``conf = 0``, so that the suffix's
    horizon is ``T - t_now``. With that final branch off, a suffix plan's expectation equals the full
    plan's expectation conditioned on ``tau > t_now`` (prefix fixed). The final branch is dropped
    from a searched plan: it outputs before the horizon whenever a suffix branch is skipped, and its
    score 0 can then only lower the value, so it never improves a plan. Returns
    ``(tc', tb', conf', grid')``; pass the latest produced score as ``c0``.
    """
    tc, tb = np.asarray(tc, dtype=np.float64), np.asarray(tb, dtype=np.float64)
    total = tc.sum() + tb.sum()
    rest_c, rest_b = tc[k + 1 :], tb[k + 1 :]
    leftover = max(total - t_now - rest_c.sum() - rest_b.sum(), 0.0)
    return (
        np.append(rest_c, leftover),
        np.append(rest_b, 0.0),
        np.append(np.asarray(conf, dtype=np.float64)[k + 1 :], 0.0),
        conditional_grid(grid, total, t_now),
    )


@dataclass(frozen=True)
class Oracle:
    """A diagnostic stand-in for the CS-Predictor: every sample's true confidences, known before it runs.

    Only :func:`simulate` can use it (it reads them from the CS-profile); no real system has it.
    """


@dataclass(frozen=True)
class Dynamic:
    """EINet's policy: CS-Predictor + search engine, re-planning after every produced exit (§V).

    ``predictor``: a trained :class:`CSPredictor`, or :class:`Oracle` for the diagnosis (module
    docstring). ``search``: ``"hybrid"`` (Algorithm 2 with ``m``), ``"greedy"``, ``"random"`` (best
    of ``k`` random plans, §VI-C3) or ``"exact"``. ``m`` is at most :data:`search.ENUM_MAX_EXITS`; a
    re-planning problem with fewer exits left than ``m`` enumerates all of them (each decision costs
    ``2**min(m, exits left)`` plan evaluations). ``scores`` (beyond the paper, :mod:`.robust`): a
    :class:`.calibration.Shrinkage` applied to every score the search sees (the prior or first scores, the
    predicted ``O'`` and the latest produced score); None plans on the scores as they are, as EINet does.
    """

    predictor: CSPredictor | Oracle
    search: str = "hybrid"
    m: int = 5
    k: int = 10_000
    scores: Shrinkage | None = None

    @property
    def oracle(self) -> bool:
        """Whether the policy plans on the true scores (:class:`Oracle`)."""
        return isinstance(self.predictor, Oracle)

    def __post_init__(self):
        if not isinstance(self.predictor, (CSPredictor, Oracle)):
            raise TypeError(
                f"predictor must be a CSPredictor (predictor.fit_or_load) or elastic.Oracle(), "
                f"got {type(self.predictor).__name__}"
            )
        if self.search not in ("hybrid", "greedy", "random", "exact"):
            raise ValueError(f"search must be hybrid, greedy, random or exact, got {self.search!r}")
        search._int_in("m", self.m, 0, search.ENUM_MAX_EXITS, "exits enumerated per decision; 2**m plans each")
        search._int_in("k", self.k, 1, 10**7, "random plans per decision")
        if self.scores is not None and not isinstance(self.scores, Shrinkage):
            raise TypeError(f"scores must be a calibration.Shrinkage or None, got {type(self.scores).__name__}")


@dataclass(frozen=True)
class Threshold:
    """Confidence-based exit (BranchyNet [5]; Paper B's dynamic baseline, §VI-B2): every branch runs until
    one's confidence reaches ``theta``, and the sample stops there (it has its answer), so no exit after
    that one is produced. Without a preemption it is the classic early exit."""

    theta: float

    def __post_init__(self):
        if not 0.0 <= self.theta <= 1.0:  # False for NaN
            raise ValueError(f"theta is a confidence threshold in [0, 1], got {self.theta}")


class _Planner:
    """The search engine of one policy under one preemption law, with its decision timer."""

    def __init__(self, tc: np.ndarray, tb: np.ndarray, policy: Dynamic, preemption: Preemption, seed: int):
        if not policy.oracle and policy.predictor.n != tc.size:
            raise ValueError(f"the CS-Predictor is for {policy.predictor.n} exits, the profiles have {tc.size}")
        self.tc, self.tb, self.policy = tc, tb, policy
        self.total = search.total_time(tc, tb)
        self.grid = preemption.cdf_grid(self.total)
        self.rng = np.random.default_rng([seed, 1])
        self.decisions = 0
        self.seconds = 0.0

    def _search(self, tc, tb, conf, c0: float, grid) -> np.ndarray:
        p = self.policy
        if p.search == "hybrid":
            return search.hybrid_search(tc, tb, conf, min(p.m, tc.size), c0=c0, cdf_grid=grid)[0]
        if p.search == "greedy":
            return search.greedy_search(tc, tb, conf, c0=c0, cdf_grid=grid)[0]
        if p.search == "random":
            seed = int(self.rng.integers(2**63))
            return search.random_search(tc, tb, conf, p.k, seed, c0=c0, cdf_grid=grid)[0]
        return search.exact_search(tc, tb, conf, c0=c0, cdf_grid=grid)[0]

    def initial(self, conf: np.ndarray | None = None) -> np.ndarray:
        """First plan, nothing produced yet: on the predictor's prior (mean training CS-profile), or on
        the sample's true scores ``conf`` (:class:`Oracle`)."""
        if conf is None:
            conf = self.policy.predictor.prior.numpy().astype(np.float64)
        if self.policy.scores is not None:
            conf = self.policy.scores(conf)
        return self._search(self.tc, self.tb, np.clip(conf, 0.0, 1.0), 0.0, self.grid)

    def replan(self, k: int, t_now: float, c_now: float, pred: np.ndarray) -> np.ndarray:
        """Plan of exits ``k+1 ..`` after exit ``k`` produced ``c_now`` at ``t_now``; ``pred`` = O'."""
        start = time.perf_counter()
        if self.policy.scores is not None:
            pred, c_now = self.policy.scores(pred), self.policy.scores.at(k, c_now)
        tc, tb, conf, grid = suffix_problem(self.tc, self.tb, np.clip(pred, 0.0, 1.0), k, t_now, self.grid)
        if tc.sum() + tb.sum() > 0:
            plan = self._search(tc, tb, conf, float(c_now), grid)[:-1]
        else:  # only zero-time blocks left: nothing to gain
            plan = np.zeros(tc.size - 1, dtype=bool)
        self.seconds += time.perf_counter() - start
        self.decisions += 1
        return plan


# ---------------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`: accuracy per run, per sample (its share of runs right) and overall,
    executed branches (exits produced by the preemption time, mean per sample), the re-planning decisions of
    the runs to ``T`` and the mean seconds per decision of the search and of the (batched) CS-Predictor."""

    run_accuracy: np.ndarray
    sample_accuracy: np.ndarray
    accuracy: float
    branches: float
    decisions: int
    search_s: float
    predict_s: float


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The mean of ``a - b`` over the samples and its standard error, in pp (``a``, ``b``: per-sample shares, such
    as :attr:`SimResult.sample_accuracy` of two policies on the same samples and preemption draws)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return 100 * float(d.mean()), 100 * float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0


def _check_profiles(tc, tb, test_conf, test_correct) -> tuple[np.ndarray, ...]:
    """Validated ET-profile means and CS-profile: confidences in [0, 1], correctness boolean or 0/1."""
    tc, tb, _, _ = search._profile_checked(tc, tb, np.zeros(np.size(tc)), 0.0)
    conf, correct = np.asarray(test_conf, dtype=np.float64), np.asarray(test_correct)
    if conf.ndim != 2 or conf.shape != correct.shape or conf.shape[1] != tc.size:
        raise ValueError(
            f"need test_conf and test_correct of shape (samples, n) and tc, tb of length n; got "
            f"{conf.shape}, {correct.shape}, {tc.shape}, {tb.shape}"
        )
    if conf.shape[0] == 0:
        raise ValueError(
            "the CS-profile has no samples; pass test_conf/test_correct of shape (samples, n), samples >= 1"
        )
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("test_conf must hold confidences in [0, 1] (no NaN); pass the CS-profile's confidences")
    if correct.dtype != np.bool_ and not np.all((correct == 0) | (correct == 1)):
        raise ValueError("test_correct must be boolean or exactly 0/1 (was a confidence passed as correctness?)")
    return tc, tb, conf, correct.astype(bool)


def _dynamic_outputs(
    tc, tb, conf, policy: Dynamic, preemption: Preemption, seed: int, progress: bool
) -> tuple[np.ndarray, _Planner, float]:
    """Output time of every exit of every sample under EINet, run to ``T`` (inf where skipped).

    Block by block across all samples: the Activation Cache (Eq. (4)) holds every sample's known
    scores, the CS-Predictor runs batched over the samples that just produced an exit, and the
    search runs per such sample. With :class:`Oracle` each sample's own scores replace the
    predictor's, its first plan included. Returns the output times, the planner and the predictor seconds.
    """
    samples, n = conf.shape
    planner = _Planner(tc, tb, policy, preemption, seed)
    if policy.oracle:
        plans, cache = np.array([planner.initial(row) for row in conf]), None
    else:
        plans, cache = np.tile(planner.initial(), (samples, 1)), CachedPredictor(policy.predictor, batch=samples)
    t = np.zeros(samples)
    last = np.zeros(samples, dtype=np.float32)
    out_t = np.full((samples, n), np.inf)
    predict_s = 0.0
    with tqdm(desc=f"EINet {policy.search}", unit="decision", disable=not progress) as bar:
        for k in range(n):
            t += tc[k]
            ex = plans[:, k]
            t[ex] += tb[k]
            out_t[ex, k] = t[ex]
            last[ex] = conf[ex, k]
            if cache is not None:
                cache.set(k, last)  # executed: its score; skipped: the nearest previous one (§IV-C2)
            rows = np.flatnonzero(ex)
            if k == n - 1 or rows.size == 0:
                continue
            for lo in range(0, rows.size, CHUNK):
                chunk = rows[lo : lo + CHUNK]
                start = time.perf_counter()
                pred = conf[chunk] if cache is None else cache.predict(k + 1, chunk)
                predict_s += time.perf_counter() - start
                for r, o in zip(chunk, pred):
                    plans[r, k + 1 :] = planner.replan(k, t[r], last[r], o)
                bar.update(chunk.size)
    return out_t, planner, predict_s


def simulate(
    tc,
    tb,
    test_conf: np.ndarray,
    test_correct: np.ndarray,
    policy,
    preemption: Preemption = Preemption(),
    runs: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> SimResult:
    """Elastic inference on profiles (§V, §VI-C): ET-profile means ``tc``, ``tb``, CS-profile (samples, n).

    ``policy`` is a static plan (bool vector; all True = the baseline), :class:`Threshold` or
    :class:`Dynamic`. Every
    sample's output times are computed once, to ``T``: they do not depend on when the preemption
    comes (the planner knows only its law), so stopping at ``tau`` equals cutting the run there.
    ``runs`` rounds then draw one preemption time per sample from ``preemption`` (seeded by ``seed``)
    and score the latest exit produced by then (none: wrong).
    """
    tc, tb, conf, correct = _check_profiles(tc, tb, test_conf, test_correct)
    runs = search._int_in("runs", runs, 1, 10**6, "preemption draws per sample")
    samples, n = conf.shape
    total = search.total_time(tc, tb)
    if isinstance(policy, Dynamic):
        out_t, planner, predict_s = _dynamic_outputs(tc, tb, conf, policy, preemption, seed, progress)
        decisions, search_s = planner.decisions, planner.seconds
    elif isinstance(policy, Threshold):
        every = np.cumsum(np.column_stack([tc, tb]).ravel())[1::2]
        reached = conf >= policy.theta
        stop = np.where(reached.any(1), np.argmax(reached, axis=1), n - 1)
        out_t = np.where(np.arange(n) <= stop[:, None], every, np.inf)
        decisions, search_s, predict_s = 0, 0.0, 0.0
    else:
        plan = np.asarray(policy, dtype=bool)
        if plan.shape != (n,):
            raise ValueError(f"a static plan has one bit per exit ({n}), got shape {plan.shape}")
        steps = np.column_stack([tc, np.where(plan, tb, 0.0)]).ravel()
        out_t = np.where(plan, np.cumsum(steps)[1::2], np.inf)[None, :]
        decisions, search_s, predict_s = 0, 0.0, 0.0
    out_t = np.minimum(out_t, total)  # the last output is at T up to rounding of the cumulative sum
    rng = np.random.default_rng(seed)
    accuracy, branches, hits = np.empty(runs), np.empty(runs), np.zeros(samples)
    for r in tqdm(range(runs), desc="runs", disable=not progress):
        tau = preemption.sample(rng, total, samples)
        produced = out_t <= tau[:, None]
        latest = n - 1 - np.argmax(produced[:, ::-1], axis=1)
        hit = produced.any(1) & correct[np.arange(samples), latest]
        accuracy[r], branches[r] = hit.mean(), produced.sum(1).mean()
        hits += hit
    per = max(decisions, 1)
    return SimResult(
        accuracy,
        hits / runs,
        float(accuracy.mean()),
        float(branches.mean()),
        decisions,
        search_s / per,
        predict_s / per,
    )


# ---------------------------------------------------------------------------------- real mode


@dataclass(frozen=True)
class Event:
    """One step of a real-mode run (Figs. 1, 2): a conv part, a branch, or a re-plan (CS-Predictor +
    search), with its start and end in seconds from the sample's start. A branch ``counted`` if it
    finished by the deadline; ``conf``/``pred`` are its output."""

    kind: str
    exit: int
    start: float
    end: float
    counted: bool = True
    conf: float = float("nan")
    pred: int = -1


@dataclass(frozen=True)
class Trace:
    """A real-mode run of one sample: its events, the plan in force after each decision (``plans``:
    (seconds, plan), the first one at 0) and the exit returned at the deadline (-1: none)."""

    events: list[Event]
    plans: list[tuple[float, np.ndarray]]
    deadline: float
    exit: int
    pred: int


@dataclass(frozen=True)
class _Recording:
    """What a traced real-mode run records as it goes: its events and the plan after each decision."""

    events: list[Event]
    plans: list[tuple[float, np.ndarray]]


def _elastic_sample(
    model: MultiExitNet,
    h: torch.Tensor,
    tc: np.ndarray,
    tb: np.ndarray,
    plan: np.ndarray,
    planner: _Planner | None,
    cache: CachedPredictor | None,
    deadline: float,
    record: _Recording | None = None,
) -> tuple[int, int, int, float]:
    """Algorithm 1 in real time on one normalised sample ``h`` (batch 1); ``plan`` is updated in place.

    Returns the prediction and exit of the latest output by the deadline (-1: none), the branches run
    and the seconds elapsed; appends the run's steps and re-plans to ``record`` when given.
    """
    clock = time.perf_counter
    pred = exit_ = -1
    branches, last, t_prof = 0, 0.0, 0.0
    if cache is not None:
        cache.reset()
    start = clock()
    end = start + deadline
    for k in range(model.num_exits):
        t0 = clock()
        if t0 >= end:
            break
        h = model.stage(k, h)
        t1 = clock()
        t_prof += tc[k]
        if record is not None:
            record.events.append(Event("part", k, t0 - start, t1 - start))
        if plan[k]:
            if t1 >= end:
                break
            conf, cls = model.exit(k, h).softmax(-1).max(-1)
            t2 = clock()
            if record is not None:
                record.events.append(Event("branch", k, t1 - start, t2 - start, t2 <= end, float(conf), int(cls)))
            if t2 > end:
                break
            last, t_prof = float(conf), t_prof + tb[k]
            pred, exit_ = int(cls), k
            branches += 1
        if planner is not None:
            cache.set(k, [last])
            if plan[k] and k < model.num_exits - 1:
                t3 = clock()
                plan[k + 1 :] = planner.replan(k, t_prof, last, cache.predict(k + 1)[0])
                if record is not None:
                    t4 = clock()
                    record.events.append(Event("plan", k, t3 - start, t4 - start))
                    record.plans.append((t4 - start, plan.copy()))
    return pred, exit_, branches, clock() - start


def _policy_state(model: MultiExitNet, tc: np.ndarray, tb: np.ndarray, policy, preemption: Preemption):
    """The first plan, the planner and the predictor's cache of a real-mode policy (None, None: static)."""
    if not isinstance(policy, Dynamic):
        return np.asarray(policy, dtype=bool), None, None
    if policy.oracle:
        raise ValueError(
            "elastic.Oracle knows a sample's scores before it runs, which a real run cannot; "
            "use it in simulate(), and a trained CSPredictor here"
        )
    planner = _Planner(tc, tb, policy, preemption, 0)
    return planner.initial(), planner, CachedPredictor(policy.predictor)


@torch.no_grad()
def run_real(
    model: MultiExitNet,
    x_uint8: torch.Tensor,
    dataset_name: str,
    tc,
    tb,
    policy,
    deadline_s,
    preemption: Preemption = Preemption(),
) -> dict[str, np.ndarray]:
    """Elastic inference on this CPU, one sample at a time, against a wall-clock deadline.

    ``tc``, ``tb``: the ET-profile (seconds) the planner uses; ``policy``: a static plan or
    :class:`Dynamic` (planning under ``preemption``, elapsed time taken from the profile);
    ``deadline_s``: seconds after each sample's start (scalar or one per sample; draw them with
    ``preemption.sample(rng, T, samples)``). The clock is checked between parts: a conv part or
    branch starts only before the deadline, and a branch's result counts only if it finished by then
    (a part is never interrupted). Search and prediction run on the same clock; the first plan, the
    same for every sample (the prior), is searched once beforehand. Returns per sample
    the prediction of the latest exit (-1: none), that exit (-1: none), the branches run, the seconds.
    """
    tc, tb, deadline = _check_real_inputs(model, x_uint8, dataset_name, tc, tb, policy, deadline_s)
    model.eval()
    x = data.normalize(x_uint8, dataset_name)
    first, planner, cache = _policy_state(model, tc, tb, policy, preemption)
    rows = [
        _elastic_sample(model, x[i : i + 1], tc, tb, first.copy(), planner, cache, deadline[i]) for i in range(len(x))
    ]
    columns = (("pred", np.int64), ("exit", np.int64), ("branches", np.int64), ("elapsed_s", np.float64))
    return {name: np.array([row[j] for row in rows], dtype=dtype) for j, (name, dtype) in enumerate(columns)}


@torch.no_grad()
def trace_real(
    model: MultiExitNet,
    x_uint8: torch.Tensor,
    dataset_name: str,
    tc,
    tb,
    policy,
    deadline_s: float,
    preemption: Preemption = Preemption(),
    warmup: int = 3,
) -> Trace:
    """:func:`run_real` on one image (``x_uint8`` of shape (1, C, H, W)), recording every step (Figs. 1, 2).

    ``warmup`` untimed runs of the same image without a deadline come first, so that the traced run
    does not pay for first-call allocations.
    """
    tc, tb, deadline = _check_real_inputs(model, x_uint8, dataset_name, tc, tb, policy, deadline_s)
    if len(x_uint8) != 1:
        raise ValueError(f"trace_real traces one image; pass x_uint8[i : i + 1], not {len(x_uint8)} images")
    model.eval()
    x = data.normalize(x_uint8, dataset_name)
    first, planner, cache = _policy_state(model, tc, tb, policy, preemption)
    for _ in range(warmup):
        _elastic_sample(model, x, tc, tb, first.copy(), planner, cache, math.inf)
    record = _Recording([], [(0.0, first.copy())])
    pred, exit_, _, _ = _elastic_sample(model, x, tc, tb, first.copy(), planner, cache, float(deadline[0]), record)
    return Trace(record.events, record.plans, float(deadline[0]), exit_, pred)


def _check_real_inputs(
    model: MultiExitNet, x_uint8, dataset_name: str, tc, tb, policy, deadline_s
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated inputs of :func:`run_real`: raw images of the model's dataset, one time per exit, deadlines."""
    if not isinstance(x_uint8, torch.Tensor) or x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4:
        raise ValueError(
            f"x_uint8 must be raw uint8 images NCHW (run_real normalises them itself), got "
            f"{getattr(x_uint8, 'dtype', type(x_uint8).__name__)} of shape {tuple(getattr(x_uint8, 'shape', ()))}"
        )
    if dataset_name not in data.SPECS:
        raise ValueError(f"unknown dataset {dataset_name!r}; choose one of {', '.join(data.SPECS)}")
    h, w, c = data.SPECS[dataset_name][1]
    if tuple(x_uint8.shape[1:]) != (c, h, w):
        raise ValueError(
            f"images of shape {tuple(x_uint8.shape[1:])} are not {dataset_name} ({c}x{h}x{w}); "
            "pass the dataset the images (and the model) come from"
        )
    n = model.num_exits
    tc, tb, _, _ = search._profile_checked(tc, tb, np.zeros(np.size(tc)), 0.0)
    if tc.size != n:
        raise ValueError(f"the ET-profile has {tc.size} exits, the model {n}; pass the model's own profile")
    if not isinstance(policy, Dynamic):
        plan = np.asarray(policy)
        if plan.shape != (n,) or (plan.dtype != np.bool_ and not np.all((plan == 0) | (plan == 1))):
            raise ValueError(
                f"a static plan has one bit (bool or 0/1) per exit ({n}), got {plan.dtype} of shape {plan.shape}"
            )
    try:
        deadline = np.broadcast_to(np.asarray(deadline_s, dtype=np.float64), (len(x_uint8),))
    except ValueError:
        raise ValueError(
            f"deadline_s must be one number or one per sample ({len(x_uint8)}), got shape {np.shape(deadline_s)}"
        ) from None
    if not np.all(deadline >= 0) or not np.all(np.isfinite(deadline)):
        raise ValueError("deadline_s must be finite and >= 0 (seconds after each sample's start; no NaN)")
    return tc, tb, deadline


def et_means(run: Artifact) -> tuple[np.ndarray, np.ndarray]:
    """The ET-profile EINet plans with (§IV-B1): mean time of every conv part and branch (seconds)."""
    if "et_tc" not in run.arrays:
        raise ValueError(
            "this artifact has no ET-profile: the training stage times Paper B's models only "
            f"(model {run.manifest['params']['model']!r})"
        )
    return run["et_tc"].mean(0), run["et_tb"].mean(0)


def gap_sources(baseline: float, einet: float, exact: float, oracle: float) -> dict[str, float]:
    """Where EINet's accuracy gap to the baseline comes from, as three differences that sum to it.

    ``search``: EINet's search vs the exact planner, both on the CS-Predictor's scores;
    ``predictor``: the exact planner on the predicted vs the true scores (:class:`Oracle`);
    ``expectation``: the oracle's exact plans vs running every branch, what planning on confidences
    instead of correctness gains or loses when the scores are known. All in the inputs' unit.
    """
    return {
        "search": einet - exact,
        "predictor": exact - oracle,
        "expectation": oracle - baseline,
        "total": einet - baseline,
    }
