"""Beyond Paper B: why EINet's per-sample plans lose to a static plan, and a planner that never does.

**The decomposition** (:func:`decompose`). On the scored half of a test CS-profile, EINet's gap to the optimal
static plan is split into four differences of simulated accuracy that add up to it exactly:

1. *search*: EINet's hybrid search against the exact planner, both on the CS-Predictor's scores;
2. *predictor*: the exact planner on the predicted scores against each sample's true confidences
   (:class:`.elastic.Oracle`);
3. *miscalibration*: true confidences against true confidences calibrated perfectly, by an isotonic map fitted
   on the scored samples themselves (a diagnosis, not a method: no deployed system has that map);
4. *choosing per sample on noisy scores*: what is left, perfectly calibrated true confidences planned per sample
   against the one static plan. Calibration per exit (``P(right | c_k) = c_k``) does not make the scores right
   given the whole vector a per-sample plan is chosen on: a plan that bets on exit ``k`` because ``c_k`` is
   high relative to the others collects the noise in ``c_k`` too (the "optimiser's curse"). The static plan
   bets on averages and collects none.

:func:`spread_sweep` shows the fourth part's mechanism: the clairvoyant planner on perfectly calibrated scores
made noisier on purpose, or shrunk toward the population profile; the loss grows with the scores' spread.

**The robust planner** (:func:`choose`): EINet's planner on scores calibrated (:class:`.calibration.Isotonic`)
and shrunk toward the population accuracy profile with weight ``w`` (:class:`.calibration.Shrinkage`), the
exact search, and ``w`` chosen on held-out samples among :data:`WEIGHTS` and 0 (the optimal static plan): a
``w > 0`` is kept only where it beats ``w = 0`` there by more than one standard error of the paired
difference. Everything it fits or chooses comes from the held-out samples passed to it; it never sees the
samples it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import elastic
from .calibration import Shrinkage, fit_isotonic
from .predictor import CSPredictor, eq3_loss

__all__ = [
    "WEIGHTS",
    "Choice",
    "population",
    "candidates",
    "choose",
    "decompose",
    "compare_predictors",
    "spread_sweep",
    "COMPONENTS",
]

WEIGHTS = (0.25, 0.5, 0.75, 1.0)
"""Shrinkage weights the robust planner tries besides 0 (the static plan)."""

COMPONENTS = ("search", "predictor", "miscalibration", "choice on noisy scores")
"""The parts of EINet's gap to the optimal static plan, in the order of :func:`decompose`."""


def population(correct: np.ndarray) -> np.ndarray:
    """The population accuracy profile: mean correctness per exit (Table II's optimal static plan's input)."""
    return np.asarray(correct, dtype=np.float64).mean(0)


def candidates(cs: CSPredictor, conf: np.ndarray, correct: np.ndarray, search: str = "exact") -> dict:
    """The robust planner's candidates fitted on held-out ``conf``/``correct``: ``w = 0`` (the population profile
    alone, uncalibrated) and every weight of :data:`WEIGHTS` on isotonic-calibrated scores, by ``w``."""
    pop, cal = population(correct), fit_isotonic(conf, correct)
    out = {0.0: elastic.Dynamic(cs, search, scores=Shrinkage(0.0, pop))}
    return out | {w: elastic.Dynamic(cs, search, scores=Shrinkage(w, pop, cal)) for w in WEIGHTS}


@dataclass(frozen=True)
class Choice:
    """The robust planner chosen on held-out samples: its policy and weight, and every candidate's accuracy
    there (%, with its gain over ``w = 0`` and that gain's standard error, pp)."""

    policy: elastic.Dynamic
    weight: float
    held_out: pd.DataFrame


def paired_gain(a: elastic.SimResult, b: elastic.SimResult) -> tuple[float, float]:
    """``a``'s accuracy gain over ``b`` on the same samples and preemption draws, and its standard error (pp)."""
    return elastic.paired(a.sample_accuracy, b.sample_accuracy)


def choose(
    tc,
    tb,
    conf: np.ndarray,
    correct: np.ndarray,
    cs: CSPredictor,
    preemption: elastic.Preemption = elastic.Preemption(),
    runs: int = 5,
    seed: int = 0,
) -> Choice:
    """The robust planner, fitted and chosen on the held-out CS-profile ``conf``/``correct`` alone (module
    docstring): the weight of highest held-out accuracy, if it beats ``w = 0`` by more than one standard
    error; else ``w = 0``."""
    policies = candidates(cs, conf, correct)
    results = {
        w: elastic.simulate(tc, tb, conf, correct, p, preemption, runs=runs, seed=seed, progress=False)
        for w, p in policies.items()
    }
    rows = []
    for w, result in results.items():
        gain, se = paired_gain(result, results[0.0])
        rows.append({"weight": w, "accuracy": 100 * result.accuracy, "gain": gain, "se": se})
    table = pd.DataFrame(rows)
    best = table.loc[table.accuracy.idxmax()]
    weight = float(best.weight) if best.gain > best.se else 0.0
    return Choice(policies[weight], weight, table)


def _row(name: str, result: elastic.SimResult, static: elastic.SimResult) -> dict:
    gain, se = paired_gain(result, static)
    spread = 100 * float((result.run_accuracy - static.run_accuracy).std())
    return {"plan": name, "accuracy": 100 * result.accuracy, "gain": gain, "se": se, "spread": spread}


def decompose(
    tc,
    tb,
    fit: tuple[np.ndarray, np.ndarray],
    scored: tuple[np.ndarray, np.ndarray],
    cs: CSPredictor,
    preemption: elastic.Preemption = elastic.Preemption(),
    m: int = 5,
    runs: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Every plan of the decomposition on the ``scored`` (conf, correct), fitted on ``fit`` alone except the
    diagnostic perfect calibration: accuracy (%), gain over the optimal static plan with its standard error over
    samples and its spread over runs (pp); the robust planner's row gives its chosen ``weight``. Rows: the plans,
    then the four :data:`COMPONENTS` (``plan`` = ``"component: <name>"``), whose gains add up to EINet's."""
    conf, correct = scored
    pop, cal = population(fit[1]), fit_isotonic(*fit)
    perfect = fit_isotonic(conf, correct)
    choice = choose(tc, tb, *fit, cs, preemption, runs, seed)
    plans = {
        "optimal static": elastic.Dynamic(cs, "exact", scores=Shrinkage(0.0, pop)),
        f"EINet hybrid m={m}": elastic.Dynamic(cs, "hybrid", m=m),
        "EINet exact": elastic.Dynamic(cs, "exact"),
        "EINet exact, calibrated": elastic.Dynamic(cs, "exact", scores=Shrinkage(1.0, pop, cal)),
        "oracle exact": elastic.Dynamic(elastic.Oracle(), "exact"),
        "oracle exact, calibrated": elastic.Dynamic(elastic.Oracle(), "exact", scores=Shrinkage(1.0, pop, cal)),
        "oracle exact, perfectly calibrated": elastic.Dynamic(elastic.Oracle(), "exact", scores=Shrinkage(1.0, pop, perfect)),
        "robust": choice.policy,
    }  # fmt: skip
    sims = {
        name: elastic.simulate(tc, tb, conf, correct, p, preemption, runs=runs, seed=seed, progress=False)
        for name, p in plans.items()
    }
    static = sims["optimal static"]
    rows = [_row(name, sim, static) for name, sim in sims.items()]
    rows[list(sims).index("robust")]["weight"] = choice.weight
    chain = [
        f"EINet hybrid m={m}",
        "EINet exact",
        "oracle exact",
        "oracle exact, perfectly calibrated",
        "optimal static",
    ]
    for name, (upper, lower) in zip(COMPONENTS, zip(chain, chain[1:])):
        rows.append(_row(f"component: {name}", sims[upper], sims[lower]) | {"accuracy": np.nan})
    return pd.DataFrame(rows)


def compare_predictors(
    tc,
    tb,
    fit: tuple[np.ndarray, np.ndarray],
    scored: tuple[np.ndarray, np.ndarray],
    predictors: dict[str, CSPredictor],
    preemption: elastic.Preemption = elastic.Preemption(),
    m: int = 5,
    runs: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """The decomposition's *predictor* part for several CS-Predictors of one network (issue: does a better-trained
    predictor close EINet's gap?). Per predictor, on the ``scored`` (conf, correct): its Eq. (3) error there, EINet's
    hybrid and exact plans' gains over the optimal static plan (fitted on ``fit``), and the predictor part (exact
    planner on its scores against the true confidences), each with its paired standard error (pp)."""
    conf, correct = scored
    pop = population(fit[1])

    def run(policy) -> elastic.SimResult:
        return elastic.simulate(tc, tb, conf, correct, policy, preemption, runs=runs, seed=seed, progress=False)

    static = run(elastic.Dynamic(next(iter(predictors.values())), "exact", scores=Shrinkage(0.0, pop)))
    oracle = run(elastic.Dynamic(elastic.Oracle(), "exact"))
    rows = []
    for name, cs in predictors.items():
        hybrid, exact = run(elastic.Dynamic(cs, "hybrid", m=m)), run(elastic.Dynamic(cs, "exact"))
        row = {"predictor": name, "error": eq3_loss(cs, conf)}
        for label, (a, b) in {"hybrid": (hybrid, static), "exact": (exact, static), "part": (exact, oracle)}.items():
            row[f"{label} gain"], row[f"{label} se"] = paired_gain(a, b)
        rows.append(row)
    return pd.DataFrame(rows)


def spread_sweep(
    tc,
    tb,
    scored: tuple[np.ndarray, np.ndarray],
    static: np.ndarray,
    sigmas: tuple[float, ...],
    preemption: elastic.Preemption = elastic.Preemption(),
    runs: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """The clairvoyant planner on perfectly calibrated scores of varying spread, against the static plan ``static``.

    Two sweeps, each planned per sample by the exact planner on scores calibrated perfectly (isotonic, fitted on
    the scored samples themselves): ``noise``, the true confidences plus Gaussian noise of std ``sigma`` (seeded,
    clipped to [0, 1]) and re-calibrated; ``shrink``, the calibrated true confidences shrunk toward the
    population profile with each weight of :data:`WEIGHTS` (0 is the population profile alone). Returns per
    point the accuracy gain over the static plan and its standard error (pp), and the spread of the scores planned
    on (std over samples of the mapped scores, mean over exits).
    """
    conf, correct = scored
    base = elastic.simulate(tc, tb, conf, correct, static, preemption, runs=runs, seed=seed, progress=False)
    noise = np.random.default_rng([seed, 2]).standard_normal(conf.shape)
    points = [("noise", s, np.clip(conf + s * noise, 0.0, 1.0), 1.0) for s in sigmas]
    points += [("shrink", w, conf, w) for w in (0.0, *WEIGHTS)]
    rows = []
    for sweep, value, scores_in, weight in points:
        scores = Shrinkage(weight, population(correct), fit_isotonic(scores_in, correct))
        policy = elastic.Dynamic(elastic.Oracle(), "exact", scores=scores)
        result = elastic.simulate(tc, tb, scores_in, correct, policy, preemption, runs=runs, seed=seed, progress=False)
        gain, se = paired_gain(result, base)
        spread = float(scores(scores_in).std(0).mean())
        rows.append({"sweep": sweep, "value": value, "gain": gain, "se": se, "score_spread": spread})
    return pd.DataFrame(rows)
