"""Shared fixtures: the real datasets (small slices of them are what the tests use)."""

import pytest

from earlyexit.core import data


@pytest.fixture(scope="session")
def load_dataset():
    """Load a real dataset, failing with the loader's own instructions if it is not available."""

    def _load(name: str) -> data.Dataset:
        try:
            return data.load(name)
        except data.DataError as err:
            pytest.fail(f"tests need the real datasets: {err}")

    return _load


@pytest.fixture(autouse=True)
def no_time_budget(monkeypatch):
    """No test trains under a time budget it did not set (one set by a test or the shell would stop others)."""
    from earlyexit.engine import budget

    monkeypatch.delenv(budget.DEADLINE_ENV, raising=False)
