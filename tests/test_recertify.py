"""Recertification: a code change that computes the same artifact keeps it current; any other does not."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from earlyexit.engine import artifacts, recertify

PARAMS = {
    "model": "alexnet",
    "dataset": "cifar10",
    "profile": "smoke",
    "epochs": 1,
    "anneal_epochs": 1,
    "batch_size": 64,
    "lr": 0.1,
    "lr_end": 1e-4,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "train_per_class": 2,
    "test_per_class": 1,
    "seed": 0,
    "precision": "fp32",
}


@pytest.fixture(autouse=True)
def short_replays(monkeypatch):
    """Replays of a few images: what is compared stays the same, CI spends seconds instead of minutes."""
    monkeypatch.setattr(recertify, "REPLAY_TRAIN_PER_CLASS", {"cifar10": 4, "cifar100": 1, "mnist": 4})
    monkeypatch.setattr(recertify, "REPLAY_TEST_IMAGES", 20)


@pytest.fixture
def committed(tmp_path):
    """An artifact whose manifest says it was made by the code of HEAD, and a copy of that code."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=artifacts.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    lib = recertify.checkout(head, tmp_path / "code")
    directory = tmp_path / "artifact"
    manifest = artifacts.write(
        directory, {"test_correct": np.ones((2, 3), bool)}, params=PARAMS, data_sha256="abc", wall_time_s=1.0
    )
    manifest |= {"git_commit": head, "code_sha256": recertify._code_of(lib, PARAMS)["fingerprint"]}
    artifacts.write_manifest(directory, manifest)
    return directory, lib


def _edited(lib, tmp_path, old: str, new: str, module: str = "engine/training.py"):
    copy = tmp_path / "edited" / "lib"
    shutil.copytree(lib, copy)
    source = copy / "earlyexit" / module
    text = source.read_text()
    assert old in text
    source.write_text(text.replace(old, new, 1))
    return copy


def test_an_edit_that_computes_the_same_is_recertified(committed, tmp_path):
    directory, lib = committed
    before = artifacts.read_manifest(directory)
    new_lib = _edited(
        lib,
        tmp_path,
        "steps = math.ceil(len(order) / batch_size)",
        "steps = -(-len(order) // batch_size)",
        "engine/sgd.py",
    )
    manifest = recertify.recertify(directory, new_lib)
    assert manifest["code_sha256"] != before["code_sha256"]
    record = manifest["recertified"][-1]
    assert record["from_code_sha256"] == before["code_sha256"] and record["to_code_sha256"] == manifest["code_sha256"]
    assert "identical" in record["compared"]
    assert json.loads((directory / "manifest.json").read_text()) == manifest


def test_a_new_normal_form_is_recertified_without_a_replay(committed, tmp_path, monkeypatch):
    directory, lib = committed
    new_lib = _edited(
        lib,
        tmp_path,
        'FORMAT = "earlyexit-fingerprint/',
        'FORMAT = "earlyexit-fingerprint/next-',
        "core/fingerprint.py",
    )
    monkeypatch.setattr(recertify, "_replayed", None)  # a replay would fail
    manifest = recertify.recertify(directory, new_lib)
    assert "only the normal form changed" in manifest["recertified"][-1]["compared"]
    assert manifest["code_sha256"] == recertify._code_of(new_lib, PARAMS)["fingerprint"]


def test_an_edit_that_changes_the_computation_is_refused(committed, tmp_path):
    directory, lib = committed
    before = (directory / "manifest.json").read_bytes()
    new_lib = _edited(lib, tmp_path, "    return sum(w * F.cross_entropy", "    return 1.001 * sum(w * F.cross_entropy")
    with pytest.raises(recertify.RecertifyError, match="computes something else"):
        recertify.recertify(directory, new_lib)
    assert (directory / "manifest.json").read_bytes() == before


def test_code_that_is_not_in_git_is_refused(committed):
    directory, _ = committed
    manifest = artifacts.read_manifest(directory) | {"code_sha256": "0" * 64}
    artifacts.write_manifest(directory, manifest)
    with pytest.raises(recertify.RecertifyError, match="not in git"):
        recertify.recertify(directory)


FINETUNE = {k: v for k, v in PARAMS.items() if k not in ("model", "dataset", "profile")} | {"lr": 0.01}
STAGES = {
    "prune": {
        "stage": "prune",
        "model": "alexnet",
        "dataset": "cifar10",
        "profile": "smoke",
        "pruning_ratio": 0.25,
        "source_npz_sha256": "abc",
        "finetune": FINETUNE,
    },
    "compress": {
        "stage": "compress",
        "model": "alexnet",
        "dataset": "cifar10",
        "profile": "smoke",
        "reduction": 4,
        "bits": 8,
        "source_npz_sha256": "abc",
        "encoder_prune_ratios": [0.0, 0.5],
        "step2": FINETUNE,
        "step3": FINETUNE | {"lr": 0.001},
    },
    "single_exit": {
        "stage": "single_exit",
        "model": "flexvgg16",
        "dataset": "cifar10",
        "profile": "smoke",
        "flops_fraction": 0.5,
        "flops_tolerance": 0.02,
        "source_npz_sha256": "abc",
        "et_samples": 20,
        "finetune": FINETUNE,
    },
    "design": {"stage": "design", "model": "msdnet-b4-s1-base2-c8", "dataset": "cifar10", "profile": "smoke"}
    | {k: v for k, v in PARAMS.items() if k not in ("model", "dataset", "profile")}
    | {"et_samples": 20},
}


def _stage_artifact(tmp_path, stage: str):
    """A stage artifact whose manifest says it was made by the code of HEAD, and a copy of that code."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=artifacts.REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    lib = recertify.checkout(head, tmp_path / "code")
    directory = tmp_path / f"artifact-{stage}"
    manifest = artifacts.write(
        directory,
        {"test_correct": np.ones((2, 3), bool)},
        params=STAGES[stage],
        data_sha256="abc",
        wall_time_s=1.0,
        machine={"precision": "fp32"},
    )
    code = recertify._code_of(lib, STAGES[stage])["fingerprint"]
    artifacts.write_manifest(directory, manifest | {"git_commit": head, "code_sha256": code})
    return directory, lib


#: per stage: the module, an edit of it that changes its code but not what it computes, what is compared
NEUTRAL = {
    "prune": (
        "engine/pruning.py",
        "    check_ratio(ratio)\n    was_training = model.training\n",
        "    was_training = model.training\n    check_ratio(ratio)\n",
        "part_flops",
    ),
    "compress": (
        "paper_a/compression.py",
        "    _, h, w = feature_shape\n",
        "    h, w = feature_shape[1:]\n",
        "encoder_prune_correct",
    ),
    "single_exit": (
        "paper_b/single_exit.py",
        "[nn.Sequential(*model.stages)]",
        "[nn.Sequential(*list(model.stages))]",
        "compressed",
    ),
    "design": (
        "paper_b/msdnet_design.py",
        "    classes, (_, _, in_channels), _, _ = data.SPECS[dataset]\n",
        "    classes, (_, _, in_channels) = data.SPECS[dataset][:2]\n",
        "probabilities",
    ),
}


@pytest.mark.parametrize("stage", sorted(NEUTRAL))
def test_stage_artifacts_replay_their_stage_after_training(tmp_path, stage):
    module, old, new, compared = NEUTRAL[stage]
    directory, lib = _stage_artifact(tmp_path, stage)
    before = artifacts.read_manifest(directory)
    new_lib = _edited(lib, tmp_path, old, new, module)
    manifest = recertify.recertify(directory, new_lib)
    record = manifest["recertified"][-1]
    assert manifest["code_sha256"] != before["code_sha256"] and record["replay"]["stage"] == stage
    assert compared in record["compared"] and "identical" in record["compared"]
    assert len(record["replay"]["stage_configs"]) == len(recertify.STAGE_CONFIGS[stage])


def test_a_pruning_edit_that_prunes_otherwise_is_refused(tmp_path):
    directory, lib = _stage_artifact(tmp_path, "prune")
    before = (directory / "manifest.json").read_bytes()
    new_lib = _edited(lib, tmp_path, "pruning_ratio=ratio,", "pruning_ratio=ratio * 1.5,", "engine/pruning.py")
    with pytest.raises(recertify.RecertifyError, match="computes something else"):
        recertify.recertify(directory, new_lib)
    assert (directory / "manifest.json").read_bytes() == before
