"""The papermill runner: jobs per profile, parameter checks, and failures named by notebook and cell."""

import nbformat
import numpy as np
import pytest

from earlyexit import artifacts, pipeline, training


def test_cpu_figure_jobs_run_notebooks_with_their_defaults():
    jobs = pipeline.jobs("cpu")
    assert [j.kind for j in jobs][0] == "train"
    assert all(pipeline.injected(j.notebook, j.params) == {} for j in jobs if j.kind == "figure")
    train = {(j.params["model"], j.params["dataset"]): pipeline.injected(j.notebook, j.params) for j in jobs if j.kind == "train"}
    assert train[("resnet44", "cifar100")] == {}  # the training notebook's own defaults, executed in place
    assert ("resnet44", "cifar100") in pipeline.matrix("cpu")


def test_recipe_overrides_come_from_the_matrix_entry(tmp_path):
    toml = tmp_path / "pipeline.toml"
    toml.write_text('[[stages]]\nid = "train"\nkind = "train"\nnotebook = "n.ipynb"\n'
                    'matrix.cpu = [["resnet44", "cifar10"], ["msdnet40", "cifar100", {epochs = 1, lr = 0.1}]]\n')
    assert pipeline.matrix("cpu", toml) == [("resnet44", "cifar10"), ("msdnet40", "cifar100")]
    assert pipeline.overrides("cpu", "msdnet40", "cifar100", toml) == {"epochs": 1, "lr": 0.1}
    assert pipeline.overrides("cpu", "resnet44", "cifar10", toml) == {}


def test_artifacts_are_checked_against_the_recipe_with_its_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "overrides", lambda profile, model, dataset: {"epochs": 7})
    params = training.stage_params("resnet44", "cifar10", "cpu", epochs=7)
    arrays = {"test_correct": np.ones((2, 3), bool)}
    artifacts.write_profile(artifacts.run_dir(tmp_path, "cpu", "resnet44", "cifar10"), arrays, params=params,
                            data_sha256="abc", wall_time_s=1.0)
    assert pipeline.load_artifact("cpu", "resnet44", "cifar10", tmp_path).manifest["params"]["epochs"] == 7
    with pytest.raises(artifacts.StaleArtifactError, match="parameter 'epochs' is 7, wanted 25"):
        training.load_artifact(tmp_path, "cpu", "resnet44", "cifar10")
    monkeypatch.setattr(pipeline, "overrides", lambda profile, model, dataset: {"epoch": 7})
    with pytest.raises(ValueError, match=r"unknown training parameter\(s\) \['epoch'\]"):
        pipeline.load_artifact("cpu", "resnet44", "cifar10", tmp_path)


def test_smoke_jobs_cover_every_model_and_write_outside_figures():
    jobs = pipeline.jobs("smoke")
    trained = {j.params["model"] for j in jobs if j.kind == "train"}
    assert trained == {"alexnet", "vgg16bn", "vgg16bn_light", "resnet44", "resnet44_3exit", "msdnet40"}
    figures = [j for j in jobs if j.kind == "figure"]
    assert figures and all("runs/smoke/figures" in j.params["figures_dir"] for j in figures)


def test_bad_names_are_reported():
    with pytest.raises(SystemExit, match="unknown stage"):
        pipeline.jobs("cpu", ["figure-99"])
    with pytest.raises(SystemExit, match="unknown profile 'fast'"):
        pipeline.run("fast")
    notebook = pipeline.jobs("cpu")[0].notebook
    with pytest.raises(SystemExit, match=r"has no parameter\(s\) \['epochs_typo'\]"):
        pipeline.injected(notebook, {"epochs_typo": 3})


def test_failure_names_the_notebook_and_the_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("y = 2"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    path = tmp_path / "notebooks" / "99_broken.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    job = pipeline.Job("broken", "figure", path, {"x": 5})
    with pytest.raises(SystemExit, match=r"stage 'broken' failed: notebook notebooks/99_broken.ipynb .*cell \d+: ValueError: boom"):
        pipeline.execute(job, "smoke")
    assert (tmp_path / "runs" / "smoke" / "99_broken.ipynb").exists()
