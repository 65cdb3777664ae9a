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
