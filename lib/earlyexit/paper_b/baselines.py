"""The exit plans EINet is compared with (Paper B §VI-B) and the comparison on one trained model.

* **Static plans** at fixed fractions of executed branches (Fig. 8: 25 %, 50 %, 100 %;
  :func:`fraction_plan`): ``round(fraction * n)`` branches (at least one), evenly spaced and counted
  back from the last exit, which always runs; 100 % is the baseline of every figure.
* **The optimal static plan** (Table II; :func:`optimal_static_plan`): the plan of highest expected
  accuracy on the *average* ET- and accuracy profiles, by enumeration as the paper when
  ``n <= search.ENUM_MAX_EXITS`` and otherwise by the exact planner (same optimum, polynomial).
* **Dynamic plans** (Fig. 9): confidence thresholds (:class:`elastic.Threshold`) and EINet with random
  search; EINet itself with hybrid search, and beside it the exact planner and the oracle scores of
  the diagnosis (:class:`elastic.Oracle`).
* **The robust planner** (beyond the paper, :func:`.robust.choose`): EINet's planner on calibrated scores
  shrunk toward the population profile, its weight chosen on the fitting half; family ``robust``.

Samples: the CS-Predictor (and the average accuracy profile of the optimal static plan) come from
the even-indexed half of the test CS-profile, every plan is scored on the odd half
(:func:`halves`), as Fig. 13's notebook; the paper builds its predictors from test-set profiles too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.fingerprint import fingerprint
from ..engine import derived
from ..engine.artifacts import Artifact
from . import elastic, predictor, robust, search

ROBUST = "robust (ours)"
"""The robust planner's row in :func:`compare`."""


@dataclass(frozen=True)
class Setup:
    """What :func:`compare` runs: plan fractions, thresholds, hybrid ``m``, random ``k``, runs, seed."""

    fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    thresholds: tuple[float, ...] = (0.5, 0.7, 0.9, 0.99)
    m: int = 5
    random_k: int = 10_000
    runs: int = 5
    seed: int = 0


def halves(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the test samples that fit the predictor (even indices) and that are scored (odd)."""
    index = np.arange(samples)
    return index % 2 == 0, index % 2 == 1


def fraction_plan(n: int, fraction: float) -> np.ndarray:
    """Static plan running ``round(fraction * n)`` of ``n`` branches (>= 1), evenly spaced, the last one included."""
    if not 0.0 < fraction <= 1.0:  # False for NaN
        raise ValueError(f"fraction of executed branches must lie in (0, 1], got {fraction}")
    count = max(1, math.floor(fraction * n + 0.5))
    plan = np.zeros(n, dtype=bool)
    plan[[n - 1 - math.floor(j * n / count + 0.5) for j in range(count)]] = True
    return plan


def optimal_static_plan(
    tc, tb, mean_accuracy, preemption: elastic.Preemption = elastic.Preemption()
) -> tuple[np.ndarray, str]:
    """Table II's optimal static plan on the average profiles, and how it was found."""
    grid = preemption.cdf_grid(search.total_time(tc, tb))
    accuracy = np.asarray(mean_accuracy, dtype=np.float64)
    if np.size(tc) <= search.ENUM_MAX_EXITS:
        return search.enumerate_search(tc, tb, accuracy, cdf_grid=grid)[0], "enumeration"
    return search.exact_search(tc, tb, accuracy, cdf_grid=grid)[0], "exact planner"


def cs_predictor(
    run: Artifact, derived_dir: str | Path, profile: str, seed: int = 0
) -> tuple[predictor.CSPredictor, list[float]]:
    """The model's CS-Predictor (§IV-C) on the fitting half of its test CS-profile, and its Eq. (3) losses,
    kept in ``derived_dir`` (one epoch in the smoke profile)."""
    fit, _ = halves(len(run["test_conf"]))
    return predictor.fit_or_load(
        run["test_conf"][fit],
        Path(derived_dir) / "cs-predictor.npz",
        epochs=1 if profile == "smoke" else None,
        seed=seed,
        progress=False,
    )


TODAY = "test half, one pass"
"""The CS-Predictor every figure uses (:func:`cs_predictor`), by its name in :func:`predictor_study`."""


def _plateau_sources(run: Artifact) -> dict[str, tuple[np.ndarray, str, float]]:
    """Name -> (CS-profile fitted on, file in the derived folder, validation share) of :func:`plateau_predictors`."""
    fit, _ = halves(len(run["test_conf"]))
    return {
        "test half, to plateau": (run["test_conf"][fit], "cs-predictor-plateau.npz", 0.2),
        "training split, to plateau": (run["train_conf"], "cs-predictor-plateau-train.npz", 0.05),
    }


def plateau_predictors(
    run: Artifact, derived_dir: str | Path, profile: str, seed: int = 0
) -> dict[str, tuple[predictor.CSPredictor, list]]:
    """The model's CS-Predictors trained to their validation plateau (:func:`predictor.train_to_plateau`), kept in
    ``derived_dir``: on the fitting half of the test CS-profile (as :func:`cs_predictor`) and on the training
    split's CS-profile (ten times the samples, a twentieth held out); short in the smoke profile."""
    limits = {"check_rows": 2_000, "max_rows": 10_000} if profile == "smoke" else {}
    return {
        name: predictor.fit_or_load(
            conf, Path(derived_dir) / file, predictor.train_to_plateau, validation=share, seed=seed, progress=False,
            **limits,
        )
        for name, (conf, file, share) in _plateau_sources(run).items()
    }  # fmt: skip


def _training(history: list, conf: np.ndarray) -> dict:
    """How one predictor of :func:`predictor_study` was trained: samples and rows seen, how it stopped, its best
    validation error (:func:`predictor.train_to_plateau`'s history; a list of epoch losses is fixed passes)."""
    samples, n = np.shape(conf)
    if np.ndim(history) == 1:
        return {"samples": samples, "rows": len(history) * samples * (n - 1), "stopped": "fixed passes"}
    rows, _, validation, _ = np.asarray(history).T
    return {
        "samples": samples,
        "rows": rows[-1],
        "stopped": predictor.stopped(history),
        "validation error": validation.min(),
    }


def policies(
    run: Artifact, cs: predictor.CSPredictor, setup: Setup, preemption: elastic.Preemption
) -> dict[str, tuple[str, object]]:
    """Every compared plan by name: (family, policy for :func:`elastic.simulate`)."""
    tc, tb = elastic.et_means(run)
    n = tc.size
    fit, _ = halves(len(run["test_conf"]))
    best, how = optimal_static_plan(tc, tb, run["test_correct"][fit].mean(0), preemption)
    out = {f"static {f:.0%}": ("static", fraction_plan(n, f)) for f in setup.fractions}
    out[f"optimal static ({how})"] = ("optimal static", best)
    out |= {f"threshold {t:g}": ("threshold", elastic.Threshold(t)) for t in setup.thresholds}
    out["EINet random"] = ("dynamic", elastic.Dynamic(cs, "random", k=setup.random_k))
    out[f"EINet hybrid m={setup.m}"] = ("EINet", elastic.Dynamic(cs, "hybrid", m=setup.m))
    out["EINet exact"] = ("diagnosis", elastic.Dynamic(cs, "exact"))
    out["oracle + exact"] = ("diagnosis", elastic.Dynamic(elastic.Oracle(), "exact"))
    held_out = run["test_conf"][fit], run["test_correct"][fit]
    out[ROBUST] = ("robust", robust.choose(tc, tb, *held_out, cs, preemption, setup.runs, setup.seed).policy)
    return out


def _key(run: Artifact, setup: Setup, preemption: elastic.Preemption, code: Callable, **more) -> dict:
    """What a derived result of this module depends on (:mod:`earlyexit.engine.derived`): the artifact, the setup,
    the preemption law, anything in ``more``, and the fingerprint of ``code``, the function that computes it."""
    return {
        "artifact": derived.artifact_key(run),
        "setup": asdict(setup),
        "preemption": asdict(preemption),
        **more,
        "code": fingerprint(code),
    }


def compare(
    run: Artifact,
    derived_dir: str | Path,
    profile: str,
    setup: Setup = Setup(),
    preemption: elastic.Preemption = elastic.Preemption(),
) -> pd.DataFrame:
    """Accuracy (%), branches produced and search ms per decision of every plan of :func:`policies`
    on the scored half, kept in ``derived_dir`` with the inputs it depends on (:mod:`earlyexit.engine.derived`)."""
    params = run.manifest["params"]
    tc, tb = elastic.et_means(run)
    _, scored = halves(len(run["test_conf"]))
    conf, correct = run["test_conf"][scored], run["test_correct"][scored]

    def compute() -> pd.DataFrame:
        cs, _ = cs_predictor(run, derived_dir, profile, setup.seed)
        rows = []
        for method, (family, policy) in policies(run, cs, setup, preemption).items():
            result = elastic.simulate(
                tc, tb, conf, correct, policy, preemption, runs=setup.runs, seed=setup.seed, progress=False
            )
            rows.append(
                {
                    "model": params["model"],
                    "dataset": params["dataset"],
                    "family": family,
                    "method": method,
                    "accuracy": 100 * result.accuracy,
                    "spread": 100 * result.run_accuracy.std(),
                    "branches": result.branches,
                    "search_ms": 1e3 * result.search_s,
                }
            )
        return pd.DataFrame(rows)

    key = _key(run, setup, preemption, compare)
    return derived.frame(Path(derived_dir) / f"comparison-{preemption.kind}.csv", key, compute)


def predictor_study(
    run: Artifact,
    derived_dir: str | Path,
    profile: str,
    setup: Setup = Setup(),
    preemption: elastic.Preemption = elastic.Preemption(),
) -> pd.DataFrame:
    """Beyond the paper: today's CS-Predictor against the two of :func:`plateau_predictors`, on the scored half
    (:func:`.robust.compare_predictors`), with how each was trained, kept in ``derived_dir``."""
    params = run.manifest["params"]
    tc, tb = elastic.et_means(run)
    fit, scored = halves(len(run["test_conf"]))
    key = _key(run, setup, preemption, predictor_study)

    def compute() -> pd.DataFrame:
        trained = {TODAY: cs_predictor(run, derived_dir, profile, setup.seed)}
        trained |= plateau_predictors(run, derived_dir, profile, setup.seed)
        fitted_on = {TODAY: run["test_conf"][fit]} | {k: v[0] for k, v in _plateau_sources(run).items()}
        held_out = run["test_conf"][fit], run["test_correct"][fit]
        test = run["test_conf"][scored], run["test_correct"][scored]
        models = {name: model for name, (model, _) in trained.items()}
        table = robust.compare_predictors(tc, tb, held_out, test, models, preemption, setup.m, setup.runs, setup.seed)
        how = pd.DataFrame([_training(history, fitted_on[name]) for name, (_, history) in trained.items()])
        return pd.concat([table, how], axis=1).assign(model=params["model"], dataset=params["dataset"])

    return derived.frame(Path(derived_dir) / f"beyond-predictors-{preemption.kind}.csv", key, compute)


SIGMAS = (0.05, 0.1, 0.2, 0.4)
"""Std of the noise added to the true confidences in :func:`beyond`'s spread sweep."""


def beyond(
    run: Artifact,
    derived_dir: str | Path,
    profile: str,
    setup: Setup = Setup(),
    preemption: elastic.Preemption = elastic.Preemption(),
    sigmas: tuple[float, ...] = SIGMAS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Beyond the paper (:mod:`.robust`) on one model: EINet's gap to the optimal static plan decomposed
    (:func:`.robust.decompose`) and the clairvoyant planner's spread sweep (:func:`.robust.spread_sweep`), fitted
    on the fitting half and scored on the other, kept in ``derived_dir``."""
    params = run.manifest["params"]
    tc, tb = elastic.et_means(run)
    fit, scored = halves(len(run["test_conf"]))
    held_out = run["test_conf"][fit], run["test_correct"][fit]
    test = run["test_conf"][scored], run["test_correct"][scored]
    names = {"model": params["model"], "dataset": params["dataset"]}
    key = _key(run, setup, preemption, beyond, sigmas=list(sigmas))

    def parts() -> pd.DataFrame:
        cs, _ = cs_predictor(run, derived_dir, profile, setup.seed)
        return robust.decompose(tc, tb, held_out, test, cs, preemption, setup.m, setup.runs, setup.seed).assign(**names)

    def sweep() -> pd.DataFrame:
        static, _ = optimal_static_plan(tc, tb, held_out[1].mean(0), preemption)
        return robust.spread_sweep(tc, tb, test, static, sigmas, preemption, setup.runs, setup.seed).assign(**names)

    folder = Path(derived_dir)
    return (
        derived.frame(folder / f"beyond-decomposition-{preemption.kind}.csv", key, parts),
        derived.frame(folder / f"beyond-sweep-{preemption.kind}.csv", key, sweep),
    )
