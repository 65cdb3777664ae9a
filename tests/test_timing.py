"""Interleaved A/B timing: a real difference gets its sign, identical work is called noise."""

import time

import pytest

from earlyexit.core import timing


def test_a_clear_difference_has_a_sign_and_identical_work_is_noise():
    slow, fast = (lambda: time.sleep(0.004)), (lambda: time.sleep(0.002))
    assert timing.ab_compare(slow, fast, pairs=10)["verdict"] == "B faster"
    assert timing.ab_compare(fast, slow, pairs=10)["verdict"] == "B slower"
    out = timing.ab_compare(fast, slow, pairs=10)
    assert out["ci_low"] <= out["saved_pct"] <= out["ci_high"] < 0
    same = timing.ab_compare(lambda: time.sleep(0.002), lambda: time.sleep(0.002), pairs=12)
    assert same["ci_low"] < 5 and same["ci_high"] > -5  # a few percent at most either way


def test_too_few_pairs_are_refused():
    with pytest.raises(ValueError, match="pairs must be at least 2"):
        timing.ab_compare(lambda: None, lambda: None, pairs=1)
