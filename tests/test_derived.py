"""Derived results: recomputed when what they depend on changes, read back otherwise."""

from pathlib import Path

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


_CONCURRENT = """
import sys, time
import pandas as pd
from earlyexit.engine import derived

def compute():
    time.sleep(1.0)  # both processes are inside load_or_compute at once
    return pd.DataFrame({"x": range(1000), "y": [i / 7 for i in range(1000)], "who": sys.argv[2]})

table = derived.frame(sys.argv[1], {"n": 1000}, compute)
print(table.who.iloc[0], len(table))
"""


def test_two_processes_computing_the_same_result_both_get_one_valid_file(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "shared.csv"
    procs = [
        subprocess.Popen([sys.executable, "-c", _CONCURRENT, str(target), who], stdout=subprocess.PIPE, text=True)
        for who in ("first", "second")
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # one computed it, the other read what the first stored: both see the same writer and every row
    assert outputs[0] == outputs[1] and outputs[0][1] == "1000"
    table = pd.read_csv(target)
    assert len(table) == 1000 and table.who.nunique() == 1
    assert derived.stored_for(target, {"n": 1000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.csv", "shared.csv.json"]  # no temp or lock left


def test_every_shipped_derived_result_was_computed_by_the_current_code():
    """The code fingerprint in each shipped record equals the fingerprint of the function computing it now: an
    edit that changes what a result means is caught here, before a figure silently recomputes (or reads) it."""
    import glob
    import importlib
    import json

    from earlyexit.core.fingerprint import fingerprint
    from earlyexit.engine.recertify_derived import KEY_ROOTS

    def resolve(reference: str):
        module, _, name = reference.partition(":")
        return getattr(importlib.import_module(module), name)

    current = {kind: fingerprint(*map(resolve, roots)) for kind, roots in KEY_ROOTS.items()}
    records = glob.glob(str(artifacts.REPO / "artifacts" / "cpu" / "*" / "derived" / "*.json"))
    assert len(records) > 100
    stale = []
    for record in records:
        key = json.loads(Path(record).read_text())["key"]
        name = Path(record).name  # its kind: the longest of KEY_ROOTS that its file name starts with, then - or .
        kind = max((k for k in current if name.startswith((f"{k}-", f"{k}."))), key=len)
        if key.get("code", key.get("code_sha256")) != current[kind]:
            stale.append(record)
    assert not stale, (
        f"{len(stale)} derived results were made by other code, e.g. {stale[:3]}: recompute them, or show that the "
        "new code computes the same with python -m earlyexit.engine.recertify_derived --from COMMIT artifacts/cpu"
    )
