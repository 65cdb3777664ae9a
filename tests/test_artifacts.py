"""Artifacts: content, provenance, atomicity, and refusal of corrupt or stale ones."""

import json

import numpy as np
import pytest
import torch

from earlyexit.core import fingerprint
from earlyexit.engine import artifacts, provenance

PARAMS = {"model": "resnet44", "dataset": "cifar100", "profile": "smoke", "epochs": 1}


def _write(directory):
    probs = torch.tensor([[[0.7, 0.3], [0.2, 0.8]], [[0.4, 0.6], [0.9, 0.1]]])
    arrays = artifacts.cs_profile(probs, torch.tensor([0, 1]), "test")
    return artifacts.write(directory, arrays, params=PARAMS, data_sha256="abc", wall_time_s=1.25, epochs=1)


def test_exit_profile_holds_confidence_prediction_and_correctness():
    probs = torch.tensor([[[0.7, 0.3], [0.2, 0.8]], [[0.4, 0.6], [0.9, 0.1]]])
    arrays = artifacts.cs_profile(probs, torch.tensor([0, 1]), "test")
    np.testing.assert_allclose(arrays["test_conf"], [[0.7, 0.8], [0.6, 0.9]])
    assert arrays["test_pred"].tolist() == [[0, 1], [1, 0]]
    assert arrays["test_correct"].tolist() == [[True, False], [True, False]]


def test_round_trip_records_provenance(tmp_path):
    manifest = _write(tmp_path)
    loaded = artifacts.read(tmp_path, PARAMS, "abc")
    assert loaded.accuracy.tolist() == [1.0, 0.0]
    assert manifest["code_sha256"] == provenance.code_fingerprint(PARAMS)
    assert manifest["code"] == provenance.code_digests(PARAMS)
    assert {"params", "data_sha256", "git_commit", "wall_time_s", "created", "machine", "npz_sha256"} <= set(manifest)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_a_refused_fingerprint_leaves_the_previous_artifact_whole(tmp_path, monkeypatch):
    _write(tmp_path)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}

    def edited_under_the_process(params):
        raise fingerprint.FingerprintError("training.py changed on disk after this process started")

    monkeypatch.setattr(provenance, "code_fingerprint", edited_under_the_process)
    arrays = artifacts.cs_profile(torch.tensor([[[0.1, 0.9]]]), torch.tensor([1]), "test")
    with pytest.raises(fingerprint.FingerprintError):
        artifacts.write(tmp_path, arrays, params=PARAMS, data_sha256="abc", wall_time_s=1.0)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before


def test_a_network_counts_in_the_code_of_its_own_artifacts_only():
    alexnet, msdnet = provenance.code_digests({"model": "alexnet"}), provenance.code_digests({"model": "msdnet40"})
    assert "alexnet" in alexnet and "msdnet40" not in alexnet and "MSDLayer" not in alexnet
    assert "msdnet40" in msdnet and "alexnet" not in msdnet
    assert "multi_exit_loss" in alexnet and "measure_et_profile" in alexnet  # what training and profiling compute
    assert provenance.code_fingerprint({"model": "alexnet"}) != provenance.code_fingerprint({"model": "msdnet40"})


def test_missing_artifact_names_the_command_to_make_it(tmp_path):
    with pytest.raises(artifacts.ArtifactError, match="earlyexit.pipeline"):
        artifacts.read(tmp_path / "nothing")


def test_corrupt_npz_is_refused(tmp_path):
    _write(tmp_path)
    (tmp_path / artifacts.NPZ).write_bytes(b"half-written")
    with pytest.raises(artifacts.ArtifactError, match="does not match the checksum"):
        artifacts.read(tmp_path, PARAMS)


def test_unreadable_manifest_is_refused(tmp_path):
    _write(tmp_path)
    (tmp_path / artifacts.MANIFEST).write_text("{not json")
    with pytest.raises(artifacts.ArtifactError, match="unreadable"):
        artifacts.read(tmp_path, PARAMS)


@pytest.mark.parametrize("change", ["params", "data", "code"])
def test_stale_artifact_is_refused_and_says_why(tmp_path, monkeypatch, change):
    _write(tmp_path)
    params, data_sha = dict(PARAMS), "abc"
    if change == "params":
        params["epochs"] = 2
        why = "parameter 'epochs' is 1, wanted 2"
    elif change == "data":
        data_sha = "def"
        why = "other data"
    else:
        monkeypatch.setattr(provenance, "code_fingerprint", lambda params: "0" * 64)
        why = "other code"
    with pytest.raises(artifacts.StaleArtifactError, match=why):
        artifacts.read(tmp_path, params, data_sha)
    with pytest.warns(UserWarning, match=why):
        artifacts.read(tmp_path, params, data_sha, allow_stale=True)


def test_manifest_is_written_last(tmp_path, monkeypatch):
    def fail(*_args, **_kw):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError):
        _write(tmp_path)
    assert not (tmp_path / artifacts.MANIFEST).exists()
    assert not (tmp_path / artifacts.NPZ).exists()


def test_shipped_artifacts_are_intact():
    """Every committed artifact verifies against its own checksum and is current for this code."""
    root = artifacts.REPO / "artifacts"
    manifests = sorted(p.parent for p in root.glob("cpu/*/manifest.json"))
    for directory in manifests:
        manifest = artifacts.read_manifest(directory)
        assert artifacts.staleness(manifest, {}) == [], directory
        assert json.loads((directory / artifacts.MANIFEST).read_text())["params"]["profile"] == "cpu"


def _with_precision(directory, params_precision: str, trained: str):
    params = {**PARAMS, "precision": params_precision}
    artifacts.write(
        directory,
        {"test_correct": np.ones((2, 2), bool)},
        params=params,
        data_sha256="abc",
        wall_time_s=1.0,
        machine={"cpu": "test", "precision": trained},
    )


def test_auto_precision_accepts_an_artifact_of_any_precision_a_forced_one_only_its_own(tmp_path):
    _with_precision(tmp_path, "auto", "bf16")
    assert artifacts.read(tmp_path, {**PARAMS, "precision": "auto"}, "abc")
    assert artifacts.read(tmp_path, {**PARAMS, "precision": "bf16"}, "abc")
    with pytest.raises(artifacts.StaleArtifactError, match="trained in bf16, but precision 'fp32' was asked for"):
        artifacts.read(tmp_path, {**PARAMS, "precision": "fp32"}, "abc")
    _with_precision(tmp_path, "fp32", "fp32")  # forced fp32 on a bf16 machine is still current for "auto"
    assert artifacts.read(tmp_path, {**PARAMS, "precision": "auto"}, "abc")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[1, 2]", "holds a JSON list, not an object"),
        ('{"code_sha256": "a", "data_sha256": "b", "npz_sha256": "c"}', "'params' is missing"),
        (
            '{"params": null, "code_sha256": "a", "data_sha256": "b", "npz_sha256": "c"}',
            "'params' is missing or not an object",
        ),
        ('{"params": {}, "data_sha256": "b", "npz_sha256": "c"}', "code_sha256 missing"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_a_malformed_manifest_is_an_artifact_error_naming_the_file(tmp_path, content, problem):
    _write(tmp_path)
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(artifacts.ArtifactError, match=rf"manifest\.json .*{problem}"):
        artifacts.read(tmp_path, PARAMS)


def test_stale_hint_names_real_commands_and_the_shipped_copy(tmp_path):
    shipped = artifacts.REPO / "artifacts" / "cpu" / "resnet44-cifar100"
    with pytest.raises(artifacts.StaleArtifactError) as err:
        artifacts.read(shipped, {"epochs": 999})
    message = str(err.value)
    assert "python -m earlyexit.pipeline --profile cpu --stages train --force" in message
    assert "git checkout" not in message  # the shipped copy itself is what is asked about
    copy = tmp_path / "cpu" / "resnet44-cifar100"
    _write(copy)
    manifest = artifacts.read_manifest(copy) | {"code_sha256": "old"}
    artifacts.write_manifest(copy, manifest)
    with pytest.raises(artifacts.StaleArtifactError, match="earlyexit.engine.recertify"):
        artifacts.read(copy, PARAMS)


def test_a_changed_shipped_artifact_is_restored_from_git(tmp_path):
    import subprocess

    git = lambda *a: subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True, capture_output=True
    )
    git("init", "-q")
    directory = tmp_path / "artifacts" / "cpu" / "resnet44-cifar100"
    _write(directory)
    git("add", ".")
    git("commit", "-qm", "ship")
    artifacts.write_manifest(directory, artifacts.read_manifest(directory) | {"params": {**PARAMS, "epochs": 3}})
    with pytest.raises(artifacts.StaleArtifactError, match=rf"git checkout -- {directory}"):
        artifacts.read(directory, PARAMS)
