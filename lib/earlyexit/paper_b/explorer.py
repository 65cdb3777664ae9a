"""The EINet explorer (teaching, beyond the paper): one sample's plans by every planner, and Eq. (5)'s staircase.

:func:`plans` searches the first plan of one sample (nothing produced yet) with greedy, hybrid (``m``) and exact
search on its scores, and with the robust planner on those scores mapped by its :class:`.calibration.Shrinkage`;
each plan's accuracy expectation (Eq. (5), Algorithm 1 under the preemption law) is on the sample's raw scores, so
the plans compare on one scale. :func:`draw` plots a plan's staircase (:func:`.diagrams.expectation_steps`):
the confidence of the latest output at every preemption time, weighted by the law's density. Both run in
milliseconds, so a widget re-plans on every move.
"""

from __future__ import annotations

import numpy as np

from . import diagrams, elastic, search
from .calibration import Shrinkage

__all__ = ["plans", "value", "draw"]


def value(tc, tb, conf, plan, preemption: elastic.Preemption) -> float:
    """Eq. (5): the accuracy expectation of ``plan`` on the scores ``conf`` under ``preemption``."""
    grid = preemption.cdf_grid(search.total_time(tc, tb))
    if grid is None:
        return search.expectation(tc, tb, conf, plan)
    return search.expectation_cdf(tc, tb, conf, plan, grid)


def plans(
    tc, tb, conf, preemption: elastic.Preemption, m: int, robust: Shrinkage
) -> dict[str, tuple[np.ndarray, float]]:
    """Every planner's first plan for the scores ``conf`` and its expectation on them: ``{name: (plan, value)}``."""
    grid = preemption.cdf_grid(search.total_time(tc, tb))
    conf = np.clip(np.asarray(conf, dtype=np.float64), 0.0, 1.0)
    found = {
        "greedy": search.greedy_search(tc, tb, conf, cdf_grid=grid)[0],
        f"hybrid m={m}": search.hybrid_search(tc, tb, conf, min(m, conf.size), cdf_grid=grid)[0],
        "exact": search.exact_search(tc, tb, conf, cdf_grid=grid)[0],
        f"robust (w={robust.weight:g})": search.exact_search(tc, tb, np.clip(robust(conf), 0, 1), cdf_grid=grid)[0],
    }
    return {name: (plan, value(tc, tb, conf, plan, preemption)) for name, plan in found.items()}


def draw(ax, tc, tb, conf, plan, preemption: elastic.Preemption, label: str, color: str) -> None:
    """Eq. (5)'s staircase of ``plan``: the latest output's confidence over the preemption time, shaded by the
    probability of a preemption in each interval."""
    total = search.total_time(tc, tb)
    grid = preemption.cdf_grid(total)
    cdf = None if grid is None else (lambda t: float(np.interp(t, np.linspace(0.0, total, grid.size), grid)))
    for step in diagrams.expectation_steps(tc, tb, conf, plan, cdf):
        ax.fill_between([1e3 * step.start, 1e3 * step.end], 0, step.conf, color=color, alpha=0.15 + 0.6 * step.share)
        ax.hlines(step.conf, 1e3 * step.start, 1e3 * step.end, color=color, lw=1.5, label=label)
        label = None
    ax.set_xlabel("preemption time (ms)")
    ax.set_ylabel("confidence of the latest output")
