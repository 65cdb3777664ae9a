"""Derived results: recomputed when what they depend on changes, read back otherwise."""

import numpy as np
import pandas as pd
import pytest

from earlyexit.engine import artifacts, derived


def _profile(npz: str, code: str) -> artifacts.Artifact:
    manifest = {"params": {"model": "resnet44"}, "data_sha256": "d", "code_sha256": code, "npz_sha256": npz}
    return artifacts.Artifact({}, manifest)


def test_a_result_is_kept_across_a_recertification_and_recomputed_for_new_arrays(tmp_path):
    calls = []

    def get(profile: artifacts.Artifact) -> np.ndarray:
        def compute():
            calls.append(profile.manifest["npz_sha256"])
            return np.arange(3.0) + len(calls)

        return derived.load_or_compute(
            tmp_path / "r.npy",
            {"artifact": derived.artifact_key(profile)},
            compute,
            lambda value, tmp: np.save(open(tmp, "wb"), value),
            np.load,
        )

    first = get(_profile("a", "old code"))
    again = get(_profile("a", "recertified code"))  # same arrays, new training-code hash
    other = get(_profile("b", "recertified code"))  # retrained: other arrays
    assert calls == ["a", "b"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_table_reads_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.random(5000) * np.exp(rng.normal(0, 20, 5000))  # many magnitudes, full 17-digit mantissas
    table = pd.DataFrame({"method": [f"m{i}" for i in range(5000)], "accuracy": values})
    fresh = derived.frame(tmp_path / "t.csv", {"k": 1}, lambda: table)
    stored = derived.frame(tmp_path / "t.csv", {"k": 1}, lambda: pytest.fail("recomputed a stored table"))
    for result in (fresh, stored):
        np.testing.assert_array_equal(result.accuracy.to_numpy(), values)
        assert list(result.method) == list(table.method)


def test_an_edited_cut_or_unrecorded_result_is_computed_again(tmp_path):
    table = pd.DataFrame({"accuracy": [1.5, 2.5, 3.5]})
    path = tmp_path / "t.csv"
    derived.frame(path, {"k": 1}, lambda: table)
    for damage in ("accuracy\n1.5\n99.999\n3.5\n", "accuracy\n1.5\n", "accuracy\n1.5\n2.", ""):
        path.write_text(damage)
        with pytest.warns(UserWarning, match="does not match the checksum"):
            again = derived.frame(path, {"k": 1}, lambda: table)
        assert again.accuracy.tolist() == [1.5, 2.5, 3.5]
    for record in ('{"key": ', "", "[]"):
        derived.record_path(path).write_text(record)
        calls = []
        derived.frame(path, {"k": 1}, lambda: calls.append(1) or table)
        assert calls == [1]
