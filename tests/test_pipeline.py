"""The papermill runner: jobs per profile, parameter checks, and failures named by notebook and cell."""

import nbformat
import pytest

from earlyexit import pipeline


def test_cpu_jobs_run_notebooks_with_their_defaults():
    jobs = pipeline.jobs("cpu")
    assert [j.kind for j in jobs][0] == "train"
    assert all(pipeline.injected(j.notebook, j.params) == {} for j in jobs)
    assert ("resnet44", "cifar100") in pipeline.matrix("cpu")


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
