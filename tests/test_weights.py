"""Shipped weights: tied to their artifact, exported only from the checkpoint that made it, refused when
not; and the real-mode notebook (Paper B Figs. 1, 2) run on them in the smoke profile."""

import dataclasses
import json
import shutil
from pathlib import Path

import papermill as pm
import pytest
import torch

from earlyexit import pipeline
from earlyexit.engine import artifacts, training, weights

NOTEBOOK = pipeline.ROOT / "notebooks" / "29_B_fig1_fig2_real_mode.ipynb"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, load_dataset):
    """A smoke ResNet44-with-three-exits / CIFAR-100 artifact, the network that made it, and its folder."""
    load_dataset("cifar100")
    root = tmp_path_factory.mktemp("artifacts")
    kept = {}
    real_train = training.train

    def keep(model, *args, **kwargs):  # the stage deletes smoke checkpoints: keep the network itself
        kept["model"] = model
        return real_train(model, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train", keep)
        run = training.train_and_profile("resnet44_3exit", "cifar100", "smoke", root, progress=False)
    return run, kept["model"].cpu(), artifacts.run_dir(root, "smoke", "resnet44_3exit", "cifar100")


def _copy(directory: Path, target: Path, with_weights: bool = True) -> Path:
    target.mkdir()
    names = (artifacts.NPZ, artifacts.MANIFEST) + ((weights.WEIGHTS, weights.RECORD) if with_weights else ())
    for name in names:
        shutil.copy(directory / name, target / name)
    return target


def test_loaded_weights_predict_what_the_artifact_says(trained, load_dataset):
    run, model, directory = trained
    record = weights.save(model, directory)
    assert record == weights.current(directory) and record["parameters"] == sum(p.numel() for p in model.parameters())
    loaded = weights.load_model(directory)
    assert not loaded.training
    ds = load_dataset("cifar100")
    probs = training.predict(loaded, ds.x_test[pipeline.artifact_rows(run, ds)], ds.name, progress=False)
    conf, pred = probs.max(-1)
    assert (pred.numpy() == run["test_pred"]).all()
    assert torch.allclose(conf, torch.from_numpy(run["test_conf"]), atol=1e-5)


def test_weights_of_another_run_or_corrupt_ones_are_refused(trained, tmp_path):
    run, model, directory = trained
    weights.save(model, directory)
    copy = _copy(directory, tmp_path / "copy")
    record = json.loads((copy / weights.RECORD).read_text())
    (copy / weights.RECORD).write_text(json.dumps({**record, "artifact_npz_sha256": "0" * 64}))
    with pytest.raises(weights.WeightsError, match="another training run"):
        weights.load_model(copy)
    assert weights.current(copy) is None
    (copy / weights.RECORD).write_text(json.dumps(record))
    (copy / weights.WEIGHTS).write_bytes((copy / weights.WEIGHTS).read_bytes()[:-10])
    with pytest.raises(weights.WeightsError, match="corrupt or half-written"):
        weights.load_model(copy)
    (copy / weights.RECORD).unlink()
    with pytest.raises(weights.WeightsError, match="has no weights.*earlyexit.engine.weights export"):
        weights.load_model(copy)


def test_export_takes_only_the_checkpoint_that_made_the_artifact_or_a_recertified_one(trained, tmp_path):
    run, model, directory = trained
    copy = _copy(directory, tmp_path / "copy", with_weights=False)
    with pytest.raises(weights.WeightsError, match="no checkpoint"):
        weights.export(copy)
    cfg = training.profile_config("smoke", "resnet44_3exit")
    state = {
        "model": model.state_dict(),
        "config": dataclasses.asdict(cfg),
        "history": run.manifest["history"],
        "data_sha256": run.manifest["data_sha256"],
        "code_sha256": "older code",
    }
    torch.save(state, copy / "checkpoint.pt")
    with pytest.raises(weights.WeightsError, match="other code"):
        weights.export(copy)
    manifest = json.loads((copy / artifacts.MANIFEST).read_text())
    recertified = {
        **manifest,
        "recertified": [{"from_code_sha256": "older code", "to_code_sha256": manifest["code_sha256"]}],
    }
    (copy / artifacts.MANIFEST).write_text(json.dumps(recertified))  # the older code computes the same artifact
    record = weights.export(copy)
    (copy / weights.WEIGHTS).unlink()
    (copy / weights.RECORD).unlink()
    (copy / artifacts.MANIFEST).write_text(json.dumps(manifest))
    torch.save({**state, "code_sha256": run.manifest["code_sha256"]}, copy / "checkpoint.pt")
    assert weights.export(copy) == record
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    written = (copy / weights.WEIGHTS).stat().st_mtime_ns
    assert weights.export(copy) == record and (copy / weights.WEIGHTS).stat().st_mtime_ns == written  # kept as is


def test_a_network_over_the_limit_ships_nothing(trained, tmp_path):
    _, model, directory = trained
    weights.save(model, directory)
    copy = _copy(directory, tmp_path / "copy")
    assert weights.save(model, copy, max_bytes=weights.state_bytes(model) - 1) is None
    assert not (copy / weights.WEIGHTS).exists() and not (copy / weights.RECORD).exists()


def test_a_pruned_or_compressed_artifact_has_no_weights_of_its_own(trained, tmp_path):
    _, _, directory = trained
    copy = _copy(directory, tmp_path / "copy", with_weights=False)
    manifest = json.loads((copy / artifacts.MANIFEST).read_text())
    manifest["params"]["stage"] = "prune"
    artifacts.write_manifest(copy, manifest)
    with pytest.raises(weights.WeightsError, match="training-stage artifacts only"):
        weights.load_model(copy)


def test_the_real_mode_notebook_runs_in_smoke_on_shipped_weights(trained, tmp_path):
    """Paper B Figs. 1 and 2 (notebook 29): the stage is left out of the smoke pipeline, which ships no
    weights, so it runs here on the smoke network; papermill records its duration (budget: 60 s)."""
    _, model, directory = trained
    weights.save(model, directory)
    figures = tmp_path / "figures"
    out = tmp_path / "29.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        parameters={
            "profile": "smoke",
            "artifact_root": str(directory.parents[1]),
            "figures_dir": str(figures),
            "real_samples": 60,
            "et_samples": 20,
        },
    )
    assert {p.name for p in figures.iterdir()} >= {
        "B-fig1-preemption-trace.png",
        "B-fig2-einet-overview.png",
        "B-fig1-real-mode.csv",
    }
    table = (figures / "B-fig1-real-mode.md").read_text()
    assert "classic (final exit only)" in table and "EINet" in table
    print(f"notebook 29 in smoke: {json.loads(out.read_text())['metadata']['papermill']['duration']:.1f} s")
