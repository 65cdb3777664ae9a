"""Checks of the values a user passes to the library's public functions.

Each check raises a ``ValueError`` that names the argument, says what is wrong with it and how to fix
it, so that a bad input stops where it enters instead of giving plausible numbers further on (a NaN
confidence, a negative bandwidth); on a good input it returns the value converted (a float, an int, a
float64 array). Every check is an :func:`~earlyexit.core.fingerprint.input_check`: a statement that only
calls one changes no fingerprint, so validating a public function's input stales no artifact or result.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .fingerprint import input_check


@input_check
def number(
    name: str, value, *, low: float = -math.inf, high: float = math.inf, open_low: bool = False, fix: str = ""
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}){_fix(fix)}")
    value = float(value)
    below = value <= low if open_low else value < low
    if not math.isfinite(value) or below or value > high:
        bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value!r}{_fix(fix)}")
    return value


@input_check
def integer(name: str, value, *, low: int, high: int | None = None, fix: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (no upper bound when ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}){_fix(fix)}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {bounds}, got {value}{_fix(fix)}")
    return int(value)


@input_check
def array(name: str, values, *, ndim: int, low: float = -math.inf, high: float = math.inf, fix: str = "") -> np.ndarray:
    """``values`` as a non-empty float64 array of ``ndim`` dimensions whose entries are finite and in ``[low, high]``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers ({err}){_fix(fix)}") from None
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {arr.shape}{_fix(fix)}")
    bad = ~(np.isfinite(arr) & (arr >= low) & (arr <= high))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must hold finite numbers in [{low:g}, {high:g}]; "
            f"entry {where if ndim > 1 else where[0]} is {float(arr[where])!r}{_fix(fix)}"
        )
    return arr


@input_check
def probabilities(name: str, values, *, ndim: int, fix: str = "") -> np.ndarray:
    """``values`` as a non-empty float64 array of ``ndim`` dimensions of probabilities (finite, in [0, 1])."""
    return array(name, values, ndim=ndim, low=0.0, high=1.0, fix=fix)


@input_check
def boolean(name: str, values, shape: tuple[int, ...], *, fix: str = "") -> np.ndarray:
    """``values`` as a boolean array of ``shape``; accepts booleans or exactly 0/1."""
    arr = np.asarray(values)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}{_fix(fix)}")
    if arr.dtype != np.bool_ and not (np.issubdtype(arr.dtype, np.number) and np.all((arr == 0) | (arr == 1))):
        raise ValueError(f"{name} must be boolean or exactly 0/1 (was a confidence passed?){_fix(fix)}")
    return arr.astype(bool)


def _fix(fix: str) -> str:
    return f"; {fix}" if fix else ""
