"""A figure's stamp covers the artifacts it read (earlyexit.core.reads): retraining another network leaves it
current, and what it read, looked for or could list is never missed."""

import json
import os
import subprocess
import sys

import nbformat
import numpy as np

from earlyexit import pipeline
from earlyexit.core import reads
from earlyexit.engine import artifacts


def test_the_hook_records_each_artifact_folder_a_process_opens_once(tmp_path):
    root, record = tmp_path / "artifacts", tmp_path / "reads.txt"
    (root / "cpu" / "a" / "derived").mkdir(parents=True)
    (root / "cpu" / "a" / "manifest.json").write_text("{}")
    script = (
        "import earlyexit, os\n"
        "open('artifacts/cpu/a/manifest.json').read(); open('artifacts/cpu/a/manifest.json').read()\n"
        "try:\n    open('artifacts/smoke/b/manifest.json')\nexcept FileNotFoundError:\n    pass\n"
        "open('artifacts/cpu/a/derived/x.json', 'w').write('1')\n"
        "open('reads.txt.other', 'w').write('outside the root')\n"
        "os.listdir('artifacts/cpu')\n"
    )
    env = {**os.environ, reads.RECORD_ENV: str(record), reads.ROOT_ENV: str(root)}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True)
    assert record.read_text().split() == ["cpu/a", "smoke/b"]  # once each, a missing one too
    assert reads.recorded(record) == ["cpu/a", "smoke/b"]
    assert reads.recorded(tmp_path / "none.txt") == []
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=os.environ | {reads.RECORD_ENV: ""}, check=True)


def _artifact(root, name: str, value: int) -> None:
    model, dataset = name.split("-")
    artifacts.write(
        artifacts.run_dir(root, "smoke", model, dataset),
        {"test_correct": np.full((2, 3), value, bool)},
        params={"model": model},
        data_sha256="abc",
        wall_time_s=1.0,
    )


def test_a_figure_is_stamped_with_what_it_read_and_stales_only_on_that(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    root = tmp_path / "artifacts"
    _artifact(root, "resnet44-cifar10", 1)
    _artifact(root, "alexnet-cifar10", 1)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from earlyexit.engine import artifacts\nartifacts.read_manifest('../artifacts/smoke/resnet44-cifar10')"
        )
    ]
    path = tmp_path / "notebooks" / "90_fig.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    job = pipeline.Job("fig", "figure", path, {})
    pipeline.execute(job, "smoke")
    stamp = json.loads((tmp_path / "runs" / "smoke" / "stamps.json").read_text())[job.name]
    assert stamp["reads"] == ["smoke/resnet44-cifar10"]
    assert pipeline.is_current(job, "smoke")
    _artifact(root, "alexnet-cifar10", 0)  # another network retrained: the figure did not read it
    assert pipeline.is_current(job, "smoke")
    _artifact(root, "resnet44-cifar10", 0)  # the network it read retrained
    assert pipeline.why_run(job, "smoke") == "notebook, parameters, code or the artifacts it read changed"
    pipeline.execute(job, "smoke")
    assert pipeline.is_current(job, "smoke")
    _artifact(root, "vgg16bn-cifar10", 1)  # a new artifact: one the notebook may list
    assert not pipeline.is_current(job, "smoke")


def test_a_folder_read_before_it_was_made_stales_the_figure_once_made(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    path = tmp_path / "notebooks" / "90_fig.ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    job = pipeline.Job("fig", "figure", path, {})
    pipeline._write_stamp(job, "smoke", ["paper/resnet44-cifar10"])  # looked for, absent
    assert pipeline.is_current(job, "smoke")
    _artifact(tmp_path / "artifacts", "resnet44-cifar10", 1)  # in smoke: not the folder it looked for
    assert not pipeline.is_current(job, "smoke")  # (a new smoke artifact: the listing changed)
    pipeline._write_stamp(job, "smoke", ["paper/resnet44-cifar10"])
    assert pipeline.is_current(job, "smoke")
    directory = artifacts.run_dir(tmp_path / "artifacts", "paper", "resnet44", "cifar10")
    directory.mkdir(parents=True)
    (directory / "checkpoint.pt").write_bytes(b"training")  # no artifact yet
    assert pipeline.is_current(job, "smoke")
    artifacts.write(directory, {"x": np.ones(2)}, params={"model": "resnet44"}, data_sha256="abc", wall_time_s=1.0)
    assert not pipeline.is_current(job, "smoke")


def test_a_stamp_of_the_old_format_is_rerun(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_stamps_path", lambda profile: tmp_path / "stamps.json")
    (tmp_path / "stamps.json").write_text(json.dumps({"90_fig": "0" * 64}))
    job = pipeline.Job("fig", "figure", tmp_path / "90_fig.ipynb", {})
    assert pipeline.why_run(job, "smoke") == "stamped by an older pipeline"
