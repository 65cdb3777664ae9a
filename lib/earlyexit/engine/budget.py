"""A time budget for training: stop cleanly at an epoch boundary, so that a later run continues.

``--budget MINUTES`` (of ``python -m earlyexit.pipeline``, ``python -m earlyexit.train`` and the GPU bundle)
sets a deadline in the environment (:data:`DEADLINE_ENV`, seconds since the epoch), which the processes a
run starts -- notebook kernels, ``torchrun`` workers -- inherit. After each epoch's checkpoint is written,
training stops with :class:`BudgetSpent` when the next epoch, taking as long as the last one, would end
past the deadline. The checkpoint then holds every finished epoch, and running the same command again
resumes from it: a budget decides when a run stops, never what it computes.
"""

from __future__ import annotations

import os
import time

from ..core.fingerprint import bookkeeping

DEADLINE_ENV = "EARLYEXIT_DEADLINE"


class BudgetSpent(RuntimeError):
    """Training stopped at an epoch boundary because the time budget would not cover another epoch."""


@bookkeeping
def set_minutes(minutes: float) -> float:
    """Set the deadline ``minutes`` from now for this process and those it starts; returns it."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ValueError(f"a budget is a positive number of minutes, got {minutes!r}")
    deadline = time.time() + 60.0 * minutes
    os.environ[DEADLINE_ENV] = repr(deadline)
    return deadline


@bookkeeping
def exhausted(epoch_seconds: float) -> bool:
    """Whether another epoch of ``epoch_seconds`` would end past the deadline (False without one)."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return False
    try:
        deadline = float(raw)
    except ValueError:
        raise ValueError(f"${DEADLINE_ENV} must be seconds since the epoch, got {raw!r}; unset it") from None
    return time.time() + epoch_seconds > deadline


@bookkeeping
def stop(checkpoint: object, done: int, epochs: int) -> BudgetSpent:
    """The :class:`BudgetSpent` of a run that stops after ``done`` of ``epochs`` epochs, saying how to go on."""
    return BudgetSpent(
        f"time budget spent after epoch {done} of {epochs}; {checkpoint} holds it: run the same command again "
        "to continue"
    )
