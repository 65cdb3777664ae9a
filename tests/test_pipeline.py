"""The papermill runner: jobs per profile, parameter checks, and failures named by notebook and cell."""

import os
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from earlyexit import pipeline
from earlyexit.core import hardware
from earlyexit.engine import artifacts, training
from earlyexit.nets.models import PAPER_B


def test_cpu_figure_jobs_run_notebooks_with_their_defaults():
    jobs = pipeline.jobs("cpu")
    assert [j.kind for j in jobs][0] == "train"
    assert all(pipeline.injected(j.notebook, j.params) == {} for j in jobs if j.kind == "figure")
    train = {
        (j.params["model"], j.params["dataset"]): pipeline.injected(j.notebook, j.params)
        for j in jobs
        if j.kind == "train"
    }
    assert train[("resnet44", "cifar100")] == {}  # the training notebook's own defaults, executed in place
    assert ("resnet44", "cifar100") in pipeline.matrix("cpu")


def test_recipe_overrides_come_from_the_matrix_entry(tmp_path):
    toml = tmp_path / "pipeline.toml"
    toml.write_text(
        '[[stages]]\nid = "train"\nkind = "train"\nnotebook = "n.ipynb"\n'
        'matrix.cpu = [["resnet44", "cifar10"], ["msdnet40", "cifar100", {epochs = 1, lr = 0.1}]]\n'
    )
    assert pipeline.matrix("cpu", toml) == [("resnet44", "cifar10"), ("msdnet40", "cifar100")]
    assert pipeline.overrides("cpu", "msdnet40", "cifar100", toml) == {"epochs": 1, "lr": 0.1}
    assert pipeline.overrides("cpu", "resnet44", "cifar10", toml) == {}


def test_artifacts_are_checked_against_the_recipe_with_its_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "overrides", lambda profile, model, dataset: {"epochs": 7})
    params = training.stage_params("resnet44", "cifar10", "cpu", epochs=7)
    arrays = {"test_correct": np.ones((2, 3), bool)}
    artifacts.write(
        artifacts.run_dir(tmp_path, "cpu", "resnet44", "cifar10"),
        arrays,
        params=params,
        data_sha256="abc",
        wall_time_s=1.0,
    )
    assert pipeline.load_artifact("cpu", "resnet44", "cifar10", tmp_path).manifest["params"]["epochs"] == 7
    with pytest.raises(artifacts.StaleArtifactError, match="parameter 'epochs' is 7, wanted 25"):
        training.load_artifact(tmp_path, "cpu", "resnet44", "cifar10")
    monkeypatch.setattr(pipeline, "overrides", lambda profile, model, dataset: {"epoch": 7})
    with pytest.raises(ValueError, match=r"unknown training parameter\(s\) \['epoch'\]"):
        pipeline.load_artifact("cpu", "resnet44", "cifar10", tmp_path)


def test_smoke_jobs_cover_every_model_and_write_outside_figures():
    jobs = pipeline.jobs("smoke")
    trained = {j.params["model"] for j in jobs if j.kind == "train"}
    assert trained == {
        "alexnet",
        "vgg16bn",
        "vgg16bn_light",
        "resnet44",
        "resnet44_3exit",
        "msdnet40",
        "b_alexnet",
        "flexvgg16",
        "vgg16_finegrained",
    }
    figures = [j for j in jobs if j.kind == "figure"]
    assert figures and all("runs/smoke/figures" in j.params["figures_dir"] for j in figures)
    real_mode = "B-fig1-fig2-real-mode"  # reads shipped weights, which smoke does not keep
    assert real_mode not in {j.stage for j in figures} and real_mode in {j.stage for j in pipeline.jobs("cpu")}


def test_a_figure_stage_sets_parameters_in_one_profile_only():
    smoke = {j.stage: j.params for j in pipeline.jobs("smoke") if j.kind == "figure"}
    cpu = {j.stage: j.params for j in pipeline.jobs("cpu") if j.kind == "figure"}
    assert smoke["B-fig13-distributions"]["runs"] == 1 and "runs" not in cpu["B-fig13-distributions"]
    notebook = next(j.notebook for j in pipeline.jobs("smoke") if j.stage == "B-fig13-distributions")
    assert pipeline.injected(notebook, smoke["B-fig13-distributions"])["random_k"] == 1_000


def test_parameters_of_an_unknown_profile_are_refused(tmp_path, monkeypatch):
    (tmp_path / "f.ipynb").write_text("{}")
    stage = {"id": "f", "kind": "figure", "notebook": "f.ipynb", "params": {"gpu": {"runs": 1}}}
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    monkeypatch.setattr(pipeline, "load_stages", lambda *path: [stage])
    with pytest.raises(SystemExit, match=r"stage 'f' sets params for unknown profile\(s\) \['gpu'\]"):
        pipeline.jobs("smoke")


def test_a_job_line_is_printed_in_one_write(monkeypatch):
    """Training jobs run in threads (``--jobs``): a line written in two parts could be split by another's."""
    writes = []

    class Recorder:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Recorder())
    pipeline._say("[smoke] train: job: done in 3 s")
    assert writes == ["[smoke] train: job: done in 3 s\n"]


def test_a_stage_limited_to_unknown_profiles_is_refused(tmp_path):
    toml = tmp_path / "pipeline.toml"
    toml.write_text('[[stages]]\nid = "f"\nkind = "figure"\nnotebook = "f.ipynb"\nprofiles = ["gpu"]\n')
    with pytest.raises(SystemExit, match=r"unknown profile\(s\) \['gpu'\] in 'profiles'"):
        pipeline.load_stages(toml)


def test_a_figure_stage_after_a_later_or_unknown_stage_is_refused(tmp_path):
    toml = tmp_path / "pipeline.toml"
    stage = '[[stages]]\nid = "{}"\nkind = "figure"\nnotebook = "f.ipynb"\n'
    toml.write_text(stage.format("first") + 'after = ["second"]\n' + stage.format("second"))
    with pytest.raises(SystemExit, match=r"stage 'first' is after \['second'\], which are not figure stages before it"):
        pipeline._figures_after(toml)
    toml.write_text(stage.format("first") + stage.format("second") + 'after = ["first"]\n')
    assert pipeline._figures_after(toml) == {"first": [], "second": ["first"]}


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
    with pytest.raises(
        SystemExit, match=r"stage 'broken' failed: notebook notebooks/99_broken.ipynb .*cell \d+: ValueError: boom"
    ):
        pipeline.execute(job, "smoke")
    assert (tmp_path / "runs" / "smoke" / "99_broken.failed.ipynb").exists()
    assert not (tmp_path / "runs" / "smoke" / "99_broken.ipynb").exists()  # never a failed run as the good copy


@pytest.mark.parametrize(
    "argv",
    [
        ["--profile", "gpu", "--list"],
        ["--profile", "gpu", "--notebooks"],
        ["--profile", "gpu", "--figures-only"],
        ["--profile", "gpu", "--durations"],
    ],
)
def test_every_subcommand_refuses_an_unknown_profile(argv):
    with pytest.raises(SystemExit, match="unknown profile 'gpu'; choose one of paper, cpu, smoke"):
        pipeline.main(argv)


@pytest.mark.parametrize(
    "entry, message",
    [
        ('["resnet44", "cifar10", {epochs = "3"}]', r"matrix.cpu entry .*'epochs' must be an integer"),
        ('["resnet44", "cifar10", {epoch = 3}]', r"matrix.cpu entry .*unknown training parameter"),
        ('["resnet44"]', r"matrix.cpu entry \['resnet44'\]: an entry is \[model, dataset\]"),
        ('["resnet45", "cifar10"]', r"matrix.cpu entry .*unknown model or dataset"),
    ],
)
def test_a_bad_matrix_entry_names_pipeline_toml_and_the_entry(tmp_path, entry, message):
    toml = tmp_path / "pipeline.toml"
    toml.write_text(f'[[stages]]\nid = "train"\nkind = "train"\nnotebook = "n.ipynb"\nmatrix.cpu = [{entry}]\n')
    with pytest.raises(SystemExit, match=rf"pipeline.toml: stage 'train', {message}"):
        pipeline.matrix("cpu", toml)


def test_toml_syntax_errors_name_the_file(tmp_path):
    toml = tmp_path / "pipeline.toml"
    toml.write_text("[[stages]\nid = 1\n")
    with pytest.raises(SystemExit, match=r"pipeline.toml: cannot read the pipeline's stages \(TOMLDecodeError"):
        pipeline.load_stages(toml)


def _figure_job(tmp_path, monkeypatch):
    """A figure job in a scratch ROOT with one smoke artifact."""
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "notebooks" / "90_fig.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    (tmp_path / "lib").mkdir()
    directory = artifacts.run_dir(tmp_path / "artifacts", "smoke", "resnet44", "cifar10")
    artifacts.write(
        directory,
        {"test_correct": np.ones((2, 3), bool)},
        params={"model": "resnet44"},
        data_sha256="abc",
        wall_time_s=1.0,
    )
    job = pipeline.Job("fig", "figure", path, {})
    pipeline._write_stamp(job, "smoke", ["smoke/resnet44-cifar10"])
    return job, path, directory


def test_figure_stamps_follow_what_determines_the_figure(tmp_path, monkeypatch):
    job, path, directory = _figure_job(tmp_path, monkeypatch)
    assert pipeline.is_current(job, "smoke")
    nb = nbformat.read(path, as_version=4)  # outputs and metadata of an executed copy: no change
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1")]
    nb.metadata["papermill"] = {"duration": 3.0}
    nbformat.write(nb, path)
    assert pipeline.is_current(job, "smoke")
    manifest = artifacts.read_manifest(directory) | {"created": "2030-01-01T00:00:00+00:00", "wall_time_s": 9.0}
    artifacts.write_manifest(directory, manifest)  # a re-profile with the same content: no change
    assert pipeline.is_current(job, "smoke")
    (directory / "profile.npz").write_bytes(b"corrupt")
    assert not pipeline.is_current(job, "smoke")


def test_a_changed_cell_makes_a_figure_stale(tmp_path, monkeypatch):
    job, path, _ = _figure_job(tmp_path, monkeypatch)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "x = 2"
    nbformat.write(nb, path)
    assert not pipeline.is_current(job, "smoke")


def test_markdown_comments_and_library_imports_leave_a_figure_current(tmp_path, monkeypatch):
    job, path, _ = _figure_job(tmp_path, monkeypatch)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "from earlyexit.core import paper\n\nx = (1)  # a comment"
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# A reworded heading"))
    nbformat.write(nb, path)
    assert pipeline._notebook_code(path) == "x = 1"
    assert pipeline.is_current(job, "smoke")


def test_a_figure_depends_on_the_library_code_it_calls(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell(
                    "from earlyexit.core import paper as P\nfrom earlyexit.paper_b.search import total_time\nP.B_MODEL_NAMES"
                )
            ]
        ),
        path,
    )
    from earlyexit.core import paper
    from earlyexit.paper_b import search

    assert pipeline._notebook_roots(path) == [search.total_time, paper.B_MODEL_NAMES]


def test_force_retrains_through_the_notebooks_force_parameter(monkeypatch):
    executed = []
    monkeypatch.setattr(pipeline, "execute", lambda job, profile, env=None, alone=True: executed.append(job))
    pipeline.run("smoke", ["train"], force=True)
    assert executed and all(j.params["force"] is True for j in executed)
    assert pipeline.injected(executed[0].notebook, executed[0].params)["force"] is True


def test_training_a_network_discards_the_checkpoints_of_the_stages_on_it(tmp_path, monkeypatch):
    """A pruning or codec checkpoint made from the network that a retraining replaced still matches its
    parameters, code and data, so a run would resume it as current; a budget-stopped training keeps them."""
    job = next(j for j in pipeline.jobs("cpu", ["train"]) if j.name.endswith("-vgg16bn-cifar100"))
    folder = tmp_path / "artifacts" / "cpu"
    stale = [
        folder / "vgg16bn-cifar100-pruned10" / "checkpoint.pt",
        folder / "vgg16bn-cifar100-compressed" / "step2.pt",
    ]
    kept = [folder / "vgg16bn-cifar100" / "checkpoint.pt", folder / "vgg16bn-cifar10-pruned10" / "checkpoint.pt"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)

    def stopped(job, profile, env=None, alone=True):
        raise pipeline.BudgetStopped("time budget spent after epoch 1 of 40")

    monkeypatch.setattr(pipeline, "execute", stopped)
    assert not pipeline._run(job, "test", "cpu")
    assert all(path.exists() for path in stale + kept)
    monkeypatch.setattr(pipeline, "execute", lambda job, profile, env=None, alone=True: None)
    assert pipeline._run(job, "test", "cpu")
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


def test_a_stage_refusing_its_stale_checkpoints_runs_again_without_them(tmp_path, monkeypatch):
    """The codec's step checkpoints made by its older code are discarded, as a training job discards its own;
    where there is nothing to discard the refusal is the pipeline's error."""
    import papermill as pm

    real = next(j for j in pipeline.jobs("cpu", ["compress"]) if j.name.endswith("-vgg16bn-cifar100-compressed"))
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    monkeypatch.setattr(pipeline, "injected", lambda notebook, params: {"force": False})
    notebook = tmp_path / "notebooks" / real.notebook.name
    notebook.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    job = pipeline.Job(real.stage, real.kind, notebook, real.params)
    folder = tmp_path / "artifacts" / "cpu"
    stale = [folder / "vgg16bn-cifar100-compressed" / f"{step}.pt" for step in ("step2", "step3")]
    kept = folder / "vgg16bn-cifar100" / "checkpoint.pt"
    for path in [*stale, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    runs = []

    def execute(source, copy, **kwargs):
        runs.append(source)
        nbformat.write(nbformat.read(source, as_version=4), copy)
        if any(path.exists() for path in stale) or len(runs) > 2:
            message = "checkpoint step2.pt was made with other code; delete it (or pass fresh=True)"
            raise pm.PapermillExecutionError(3, 1, "train(...)", "StaleCheckpointError", message, [])

    monkeypatch.setattr(pm, "execute_notebook", execute)
    assert pipeline._run(job, "test", "cpu")
    assert len(runs) == 2 and not any(path.exists() for path in stale) and kept.exists()
    with pytest.raises(pipeline.StaleCheckpoint, match="stage 'compress' failed: .* StaleCheckpointError: checkpoint"):
        pipeline._run(job, "test", "cpu")  # refused again with no checkpoint of its own left to discard
    assert kept.exists()


def test_an_interrupted_run_keeps_the_last_good_copy_until_a_run_finishes(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    path = tmp_path / "notebooks" / "91_long.ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    runs = tmp_path / "runs" / "smoke"
    runs.mkdir(parents=True)
    (runs / "91_long.ipynb").write_text("the last good run")
    outcome = {"interrupt": True}

    def execute(source, copy, **kwargs):
        nbformat.write(nbformat.read(source, as_version=4), copy)
        if outcome["interrupt"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(pm, "execute_notebook", execute)
    monkeypatch.setattr(pipeline, "injected", lambda notebook, params: {})
    job = pipeline.Job("long", "figure", path, {"figures_dir": "elsewhere"})  # not written back in place
    with pytest.raises(SystemExit, match="interrupted: stage 'long'"):
        pipeline.execute(job, "smoke")
    partial = runs / "91_long.interrupted.ipynb"
    assert partial.exists() and (runs / "91_long.ipynb").read_text() == "the last good run"
    nb = nbformat.read(partial, as_version=4)
    assert nb.metadata["papermill"]["interrupted"] and "Interrupted" in nb.cells[0].source
    assert nbformat.read(path, as_version=4).cells[0].source == "x = 1"  # the source notebook is untouched
    outcome["interrupt"] = False
    monkeypatch.setattr(pipeline, "_write_stamp", lambda job, profile, read: None)
    pipeline.execute(job, "smoke")
    assert sorted(p.name for p in runs.glob("*.ipynb")) == ["91_long.ipynb"]  # the interrupted copy is gone
    assert nbformat.read(runs / "91_long.ipynb", as_version=4).cells[0].source == "x = 1"


def test_a_stage_naming_a_missing_notebook_is_refused_by_name(monkeypatch):
    ghost = {"id": "ghost", "kind": "figure", "notebook": "notebooks/99_ghost.ipynb"}
    stages = pipeline.load_stages()
    monkeypatch.setattr(pipeline, "load_stages", lambda path=None: [*stages, ghost])
    with pytest.raises(SystemExit, match="'ghost' names the notebook notebooks/99_ghost.ipynb, which does not exist"):
        pipeline.jobs("cpu", ["ghost"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stages", ""], "name one or more stage ids"),
        (["--stages", "train,"], "name one or more stage ids"),
        (["--data-dir", "/nonexistent/earlyexit", "--list"], "--data-dir /nonexistent/earlyexit: no such folder"),
    ],
)
def test_bad_command_lines_exit_with_one_clear_line(argv, message):
    with pytest.raises(SystemExit, match=message):
        pipeline.main(argv)


def test_load_artifact_names_an_unknown_model_or_dataset():
    with pytest.raises(ValueError, match="unknown model 'resnet999'; choose one of alexnet"):
        pipeline.load_artifact("cpu", "resnet999", "mnist")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        pipeline.load_artifact("cpu", "resnet44", "imagenet")


def test_ledger_lists_every_job_of_the_profile_with_its_record():
    ledger = pipeline.ledger_table("cpu").splitlines()
    compressed = pipeline.entries("compress", "cpu")
    assert len(ledger) == (
        2
        + len(pipeline.matrix("cpu"))
        + len(pipeline.pruned("cpu"))
        + len(compressed)
        + len(pipeline.single_exits("cpu"))
        + len(pipeline.designs("cpu"))
    )
    assert sum("single exit pruned" in line for line in ledger) == len(pipeline.single_exits("cpu"))
    assert sum("MSDNet design" in line for line in ledger) == len(pipeline.designs("cpu"))
    assert sum("pruned, fine-tuned" in line for line in ledger) == len(pipeline.pruned("cpu"))
    assert sum("feature codec trained" in line for line in ledger) == len(compressed)
    row = next(line for line in ledger if line.startswith("| resnet44 | cifar100 | 25 |"))
    accuracy = pipeline.load_artifact("cpu", "resnet44", "cifar100").manifest["test_accuracy"]
    assert (
        "| bf16 |" in row
        and " / ".join(f"{100 * a:.2f}" for a in accuracy) in row
        and "| 72.21 (backbone, A Table I) |" in row
    )
    msdnet = next(line for line in ledger if line.startswith("| msdnet40 | cifar100 |"))
    assert "| 67.93 (EINet, B Table II) |" in msdnet
    pruned = next(line for line in ledger if line.startswith("| resnet44, 10 % of on-device filters pruned"))
    assert "A Table I" not in pruned  # a backbone's accuracy is not the pruned network's


def test_a_run_s_epoch_is_read_from_its_manifest_on_the_kind_it_trained_on(monkeypatch):
    times = pipeline.epoch_times("cpu").set_index(["model", "dataset"])
    assert len(times) == len(pipeline.matrix("cpu"))  # every shipped run trained on one CPU kind the record tells
    manifest = pipeline.load_artifact("cpu", "vgg16bn", "cifar100").manifest
    row = times.loc[("vgg16bn", "cifar100")]
    assert row.train_s == np.median([h["seconds"] for h in manifest["history"]]) and row.epochs == manifest["epochs"]
    assert row.curve_s == np.median([h["observe_seconds"] for h in manifest["history"]])
    assert row.kind == hardware.recorded_kind(manifest["machine"], auto=True) and row.kind.startswith("amd-epyc")
    read = pipeline.artifacts.read_manifest

    def on_two_kinds(directory):
        manifest = read(directory)
        return {**manifest, "machine": {**manifest["machine"], "precision": "bf16+fp32"}}

    monkeypatch.setattr(pipeline.artifacts, "read_manifest", on_two_kinds)
    assert pipeline.epoch_times("cpu").empty  # an epoch of one kind is not an epoch of the other


def test_a_run_resumed_on_another_cpu_kind_is_split_by_the_kind_each_epoch_recorded(monkeypatch):
    """Epochs that record their kind are counted on it, and an epoch of a shared machine is left out."""
    read, run = pipeline.artifacts.read_manifest, pipeline.load_artifact("cpu", "vgg16bn", "cifar100").manifest
    history = [dict(h) for h in run["history"]]
    for i, h in enumerate(history):
        h["kind"] = "intel-xeon-amx-2core" if i < 3 else "amd-epyc-avx512bf16-2core"
    history[-1]["others_share"] = pipeline.SHARED + 0.1

    def with_kinds(directory):
        manifest = read(directory)
        return {**manifest, "history": history} if manifest["params"] == run["params"] else manifest

    monkeypatch.setattr(pipeline.artifacts, "read_manifest", with_kinds)
    times = pipeline.epoch_times("cpu").query("model == 'vgg16bn' and dataset == 'cifar100'").set_index("kind")
    amd, intel = times.loc["amd-epyc-avx512bf16-2core"], times.loc["intel-xeon-amx-2core"]
    assert (intel.epochs, amd.epochs) == (3, len(history) - 4)
    assert intel.train_s == np.median([h["seconds"] for h in history[:3]])
    assert amd.train_s == np.median([h["seconds"] for h in history[3:-1]])


def test_ledger_applies_the_stopping_rule_to_a_training_run_against_its_tier_target(monkeypatch):
    read = pipeline.artifacts.read_manifest

    def with_curve(directory):
        manifest = read(directory)
        if directory.name == "vgg16bn-cifar100":
            curve = [40.0, 55.0, 61.0] + [61.0] * (len(manifest["history"]) - 3)
            manifest["history"] = [{**h, "test_accuracy": [30.0, acc]} for h, acc in zip(manifest["history"], curve)]
        return manifest

    monkeypatch.setattr(pipeline.artifacts, "read_manifest", with_curve)
    ledger = pipeline.ledger_table("cpu").splitlines()
    vgg = next(line for line in ledger if line.startswith("| vgg16bn | cifar100 |"))
    epochs = len(read(pipeline.artifacts.run_dir(pipeline.ROOT / "artifacts", "cpu", "vgg16bn", "cifar100"))["history"])
    reached = (
        f"target 60 % and the most accurate exit reached (last exit 61.00 % after {epochs} epochs; first at epoch 3)"
    )
    assert vgg.endswith(f"| {reached} |")
    assert next(line for line in ledger if line.startswith("| resnet44 | cifar100 |")).endswith(
        "| no learning curve recorded |"
    )
    assert all(line.endswith("|  |") for line in ledger if "pruned, fine-tuned" in line)


@pytest.mark.parametrize(
    "machine, precision, label",
    [
        ({"cpu": "X", "native_bf16": True, "precision": "bf16"}, "auto", "X (native bf16)"),
        ({"cpu": "X", "native_bf16": True, "precision": "fp32"}, "auto", "X (native bf16, not faster than fp32 here)"),
        ({"cpu": "X", "native_bf16": True, "precision": "fp32"}, "fp32", "X (native bf16)"),
        ({"cpu": "X", "native_bf16": False, "precision": "fp32"}, "auto", "X"),
        ({"cpu": "X", "precision": "bf16"}, "auto", "X (native bf16)"),
        ({}, "auto", "not recorded"),
    ],
)
def test_ledger_marks_native_bf16_and_says_when_auto_found_it_not_faster(machine, precision, label):
    assert pipeline._cpu_label({"machine": machine, "params": {"precision": precision}}) == label
    assert pipeline._cpu_label({"machine": machine, "params": {"finetune": {"precision": precision}}}) == label


def test_the_shipped_paper_figures_are_current():
    """The paper profile's figures made from its GPU runs so far (figures/paper/) are current on a fresh clone."""
    shipped = {p.stem for p in pipeline.figures_dir("paper").glob("*.csv")}
    jobs = [j for j in pipeline.jobs("paper") if j.kind == "figure" and j.stage in shipped]
    assert jobs and {j.name: pipeline.why_run(j, "paper") for j in jobs} == {j.name: None for j in jobs}


def test_paper_ledger_names_the_gpu_and_how_far_an_unfinished_job_got():
    ledger = pipeline.ledger_table("paper", ("train",)).splitlines()
    assert len(ledger) == 2 + len(pipeline.matrix("paper"))
    row = next(line for line in ledger if line.startswith("| alexnet | cifar100 | 220 |"))
    assert pipeline.load_artifact("paper", "alexnet", "cifar100").manifest["machine"]["gpu"] + " (GPU)" in row
    resnet = next(line for line in ledger if line.startswith("| resnet44 | cifar100 |"))
    assert "of 220 (checkpoint, resumable)" in resnet
    assert pipeline.trained("paper") == [("alexnet", "cifar100")]


def test_ledger_says_how_far_a_checkpoint_got_and_why_one_cannot_be_read(tmp_path):
    import torch

    assert pipeline._unfinished(tmp_path) == "not trained"
    torch.save({"config": {"epochs": 40}, "history": [{"epoch": 1}] * 3}, tmp_path / "checkpoint.pt")
    assert pipeline._unfinished(tmp_path) == "3 of 40 (checkpoint, resumable)"
    torch.save({"weights": torch.zeros(1)}, tmp_path / "checkpoint.pt")
    assert (
        pipeline._unfinished(tmp_path)
        == "not trained (its checkpoint is not a training checkpoint of earlyexit: delete it)"
    )
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    assert pipeline._unfinished(tmp_path).startswith("not trained (its checkpoint is unreadable (")


def test_prune_jobs_follow_their_training_job_and_bad_entries_are_refused(tmp_path):
    toml = tmp_path / "pipeline.toml"
    base = (
        '[[stages]]\nid = "train"\nkind = "train"\nnotebook = "a.ipynb"\nmatrix.smoke = [["alexnet", "cifar10"]]\n'
        '[[stages]]\nid = "prune"\nkind = "prune"\nnotebook = "b.ipynb"\nmatrix.smoke = [{}]\n'
    )
    toml.write_text(base.format('["alexnet", "cifar10", 0.25]'))
    assert pipeline.entries("prune", "smoke", toml) == [
        {"model": "alexnet", "dataset": "cifar10", "ratio": 0.25, "overrides": {}}
    ]
    for bad, message in (
        ('["resnet44", "cifar10", 0.1]', "training job of the same profile"),
        ('["alexnet", "cifar10", 1.5]', "pruning ratio must be"),
        ('["alexnet", "cifar10"]', "ratio"),
    ):
        toml.write_text(base.format(bad))
        with pytest.raises(SystemExit, match=message):
            pipeline.entries("prune", "smoke", toml)
    kinds = [j.kind for j in pipeline.jobs("cpu")]
    assert kinds.index("prune") > max(i for i, k in enumerate(kinds) if k == "train")
    job = next(j for j in pipeline.jobs("cpu") if j.kind == "prune")
    assert job.name.endswith(f"-{job.params['dataset']}-pruned{round(100 * job.params['ratio']):02d}")


def test_compress_jobs_name_a_training_job(tmp_path):
    toml = tmp_path / "pipeline.toml"
    base = (
        '[[stages]]\nid = "train"\nkind = "train"\nnotebook = "a.ipynb"\nmatrix.smoke = [["vgg16bn", "cifar100"]]\n'
        '[[stages]]\nid = "compress"\nkind = "compress"\nnotebook = "c.ipynb"\nmatrix.smoke = [{}]\n'
    )
    toml.write_text(base.format('["vgg16bn", "cifar100"]'))
    assert pipeline.entries("compress", "smoke", toml) == [{"model": "vgg16bn", "dataset": "cifar100", "overrides": {}}]
    for bad, message in (
        ('["vgg16bn", "cifar10"]', r"\[model, dataset\] must be a training job"),
        ('["vgg16bn", "cifar100", 0.5]', r"an entry is \[model, dataset\]"),
    ):
        toml.write_text(base.format(bad))
        with pytest.raises(SystemExit, match=message):
            pipeline.entries("compress", "smoke", toml)
    assert (
        pipeline.Job(
            "compress", "compress", Path("03_compress_features.ipynb"), {"model": "vgg16bn", "dataset": "cifar100"}
        ).name
        == "03_compress_features-vgg16bn-cifar100-compressed"
    )


def test_paper_b_comparison_covers_the_trained_models_of_paper_bs_recipe():
    for profile in ("paper", "cpu", "smoke"):
        models = pipeline.paper_b_models(profile)
        assert models and set(models) <= set(pipeline.matrix(profile))
        assert {m for m, _ in models} <= set(PAPER_B)
    assert ("msdnet40", "cifar100") in pipeline.paper_b_models("cpu")


def test_every_shipped_job_and_figure_is_current():
    """What a fresh clone's `pipeline --profile cpu --list` reports: nothing to train, no figure to rerun."""
    stale = {job.name: why for job in pipeline.jobs("cpu") if (why := pipeline.why_run(job, "cpu")) is not None}
    assert stale == {}, "run `python -m earlyexit.pipeline --profile cpu` and commit what it changes"


def test_an_executed_notebook_records_the_machine_its_duration_was_measured_on(tmp_path):
    from earlyexit.core import hardware

    path = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["papermill"] = {"duration": 1.5}
    nbformat.write(nb, path)
    job = next(j for j in pipeline.jobs("cpu") if j.kind == "figure")
    pipeline._record_machine(path, job, hardware.cpu_use())
    meta = nbformat.read(path, as_version=4).metadata
    assert meta["earlyexit"]["machine"] == hardware.cpu_kind() and meta["papermill"]["duration"] == 1.5
    assert 0 <= meta["earlyexit"]["others_cpu_pct"] <= 100


def _recorded_beside_busy_cpus(path, job, warn):
    """The share of the CPUs (%) that ``_record_machine`` records for a 1.2-s 'run' while one child process per CPU
    spins; a child the pipeline has not waited for stands for any other process."""
    import subprocess

    from earlyexit.core import hardware

    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    before = hardware.cpu_use()
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    time.sleep(1.2)
    pipeline._record_machine(path, job, before, warn=warn)
    for child in busy:
        child.wait()
    return nbformat.read(path, as_version=4).metadata["earlyexit"]["others_cpu_pct"]


def test_a_notebook_run_beside_another_process_warns_that_its_times_shared_the_machine(tmp_path, capsys):
    path = tmp_path / "run.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    job = next(j for j in pipeline.jobs("cpu") if j.kind == "figure")
    assert _recorded_beside_busy_cpus(path, job, warn=True) >= 100 * pipeline.SHARED
    assert f"warning: {job.name}" in capsys.readouterr().out
    # --jobs N: the pipeline's own jobs share the machine, as its help says; recorded, not warned about
    assert _recorded_beside_busy_cpus(path, job, warn=False) >= 100 * pipeline.SHARED
    assert "warning" not in capsys.readouterr().out
