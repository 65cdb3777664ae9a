"""Beyond Paper B: the scores a planner sees, calibrated and shrunk toward the population profile.

EINet (§V) plans on confidence scores as if they were probabilities of being right (Eq. (5)). Two maps make
that closer to true, and are what the robust planner (:mod:`.robust`) adds to it:

* :class:`Isotonic`: a per-exit calibration map of the top-1 confidence, fitted by isotonic regression
  (pool-adjacent-violators, :func:`fit_isotonic`) of correctness on confidence over *held-out* samples. It
  is monotone non-decreasing by construction and maps a confidence to the share of samples that were right
  at that confidence. The artifacts store confidences, not logits, so temperature scaling is not open to us.
* :class:`Shrinkage`: ``w * cal(s) + (1 - w) * population``, each sample's (calibrated) scores pulled toward
  the population accuracy profile (the mean correctness per exit that Table II's optimal static plan is
  planned on). ``w = 0`` plans on the population profile alone; ``w = 1`` without calibration leaves the
  scores as they are (EINet).

:func:`expected_calibration_error` measures what calibration fixes: the mean absolute gap between
confidence and accuracy over equal-width confidence bins, weighted by the bins' counts, per exit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import checks

__all__ = ["Isotonic", "fit_isotonic", "Shrinkage", "expected_calibration_error"]


def _pav(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of ``y`` on ``x`` (pool-adjacent-violators): the knots ``(x, fitted y)`` of the
    non-decreasing fit minimising the squared error, each pooled block's value at its lowest and highest ``x``
    (the fit holds each training point's value exactly and is linear between blocks, as scikit-learn's)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    means, weights, starts = [], [], []
    for i, yi in enumerate(ys):
        means.append(yi)
        weights.append(1.0)
        starts.append(i)
        while len(means) > 1 and means[-2] >= means[-1]:
            w = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            weights[-2] = w
            del means[-1], weights[-1], starts[-1]
    first = np.asarray(starts)
    last = np.append(first[1:], xs.size) - 1
    return np.column_stack([xs[first], xs[last]]).ravel(), np.repeat(means, 2)


@dataclass(frozen=True, eq=False)
class Isotonic:
    """Per-exit calibration maps, piecewise linear between the isotonic fit's knots (flat outside them)."""

    knots_x: tuple[np.ndarray, ...]
    knots_y: tuple[np.ndarray, ...]

    @property
    def n(self) -> int:
        return len(self.knots_x)

    def at(self, k: int, conf):
        """Exit ``k``'s calibrated score of confidence(s) ``conf``."""
        return np.interp(conf, self.knots_x[k], self.knots_y[k])

    def __call__(self, conf: np.ndarray) -> np.ndarray:
        """Calibrated scores of a ``(..., n)`` array of confidences, exit by exit along the last axis."""
        conf = np.asarray(conf, dtype=np.float64)
        if conf.shape[-1] != self.n:
            raise ValueError(f"the calibration maps {self.n} exits, the scores have {conf.shape[-1]}")
        return np.stack([self.at(k, conf[..., k]) for k in range(self.n)], axis=-1)


def fit_isotonic(conf: np.ndarray, correct: np.ndarray) -> Isotonic:
    """:class:`Isotonic` maps fitted on a held-out CS-profile: confidences and correctness, shape (samples, n)."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct)
    if conf.ndim != 2 or conf.shape != correct.shape or conf.shape[0] == 0:
        raise ValueError(
            f"fit the calibration on held-out confidences and correctness of one shape (samples, n), samples >= 1; "
            f"got {conf.shape} and {correct.shape}"
        )
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidences must lie in [0, 1] (no NaN): pass the CS-profile's test_conf")
    fits = [_pav(conf[:, k], correct[:, k].astype(np.float64)) for k in range(conf.shape[1])]
    return Isotonic(tuple(f[0] for f in fits), tuple(f[1] for f in fits))


@dataclass(frozen=True, eq=False)
class Shrinkage:
    """The scores a planner sees: ``weight * cal(s) + (1 - weight) * population`` per exit.

    ``population``: the accuracy profile of the population (mean correctness per exit, held-out samples);
    ``calibration``: an :class:`Isotonic` map applied first, or None for the raw confidences.
    """

    weight: float
    population: np.ndarray
    calibration: Isotonic | None = None

    def __post_init__(self):
        checks.number(
            "weight", self.weight, low=0.0, high=1.0, fix="0 plans on the population profile, 1 on the scores"
        )
        pop = np.asarray(self.population, dtype=np.float64)
        if pop.ndim != 1 or not np.all((pop >= 0) & (pop <= 1)):
            raise ValueError("population must be one accuracy in [0, 1] per exit (mean held-out correctness)")
        if self.calibration is not None and self.calibration.n != pop.size:
            raise ValueError(f"the calibration maps {self.calibration.n} exits, the population has {pop.size}")
        object.__setattr__(self, "population", pop)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Mapped scores of a ``(..., n)`` array."""
        s = np.asarray(scores, dtype=np.float64)
        if self.calibration is not None:
            s = self.calibration(s)
        return self.weight * s + (1.0 - self.weight) * self.population

    def at(self, k: int, score: float) -> float:
        """Exit ``k``'s mapped score."""
        s = score if self.calibration is None else float(self.calibration.at(k, score))
        return self.weight * s + (1.0 - self.weight) * float(self.population[k])


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> np.ndarray:
    """ECE per exit: ``sum_b |acc_b - conf_b| * n_b / N`` over ``bins`` equal-width confidence bins."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    checks.integer("bins", bins, low=1, fix="the number of equal-width confidence bins, e.g. 15")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    out = np.empty(conf.shape[1])
    for k in range(conf.shape[1]):
        count = np.bincount(which[:, k], minlength=bins)
        gap = np.bincount(which[:, k], conf[:, k] - correct[:, k], minlength=bins)
        out[k] = np.abs(gap).sum() / max(count.sum(), 1)
    return out
