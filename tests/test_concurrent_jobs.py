"""The pipeline's --jobs and --budget: training jobs at once give what a sequential run gives, and a budget
stops a run cleanly for the same command to continue."""

import dataclasses
import os
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from earlyexit import pipeline
from earlyexit.engine import artifacts, budget, parallel

PAIR = ("-alexnet-cifar10", "-resnet44-cifar10")


def _arrays(job: pipeline.Job) -> dict[str, np.ndarray]:
    directory = artifacts.run_dir(job.params["artifact_root"], "smoke", job.params["model"], job.params["dataset"])
    with np.load(directory / artifacts.NPZ) as f:
        return {k: f[k] for k in f.files}


def test_two_training_jobs_at_once_equal_a_sequential_run(tmp_path, monkeypatch):
    scratch = {"artifact_root": str(tmp_path / "artifacts")}  # not the work tree's artifacts/smoke
    pair = [
        dataclasses.replace(j, params={**j.params, **scratch})
        for j in pipeline.jobs("smoke", ["train"])
        if j.name.endswith(PAIR)
    ]
    monkeypatch.setattr(pipeline, "jobs", lambda profile, only=None: pair)
    # CPU kernels add in an order that depends on their thread count, so the sequential run gets the threads
    # each of two concurrent jobs gets (the artifacts record them)
    share = parallel.slot_env(0, 2)
    with monkeypatch.context() as m:
        m.setattr(parallel, "slot_env", lambda slot, jobs, gpus=(), cores=None: share)
        assert pipeline.run("smoke", ["train"], force=True, concurrent=1)
    sequential = [_arrays(j) for j in pair]
    spans, real = [], pipeline.execute

    def timed(job, profile, env=None, alone=True):
        start = time.monotonic()
        real(job, profile, env, alone)
        spans.append((start, time.monotonic(), env["OMP_NUM_THREADS"]))

    monkeypatch.setattr(pipeline, "execute", timed)
    assert pipeline.run("smoke", ["train"], force=True, concurrent=2)
    (a0, a1, _), (b0, b1, _) = spans
    assert a0 < b1 and b0 < a1, "the two trainings did not run at the same time"
    assert {threads for *_, threads in spans} == {share["OMP_NUM_THREADS"]}
    for before, job in zip(sequential, pair):
        after = _arrays(job)
        assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before), job.name


def test_slots_spread_over_the_gpus_and_share_the_cores():
    assert parallel.slot_env(0, 4, ["0", "1"], cores=16) == {
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    assert parallel.slot_env(3, 4, ["0", "1"], cores=16)["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in parallel.slot_env(1, 2, [], cores=2)
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        parallel.run_pool([1], 0, lambda task, env: task)


def test_a_task_starts_once_the_tasks_it_waits_for_are_done():
    log, lock = [], threading.Lock()

    def work(task, env):
        with lock:
            log.append(("start", task))
        time.sleep(0.2 if task == "slow" else 0.01)
        with lock:
            log.append(("end", task))
        return True

    assert parallel.run_pool(["slow", "quick", "reader"], 2, work, after=[(), (), (0,)]) == [True] * 3
    assert log.index(("end", "slow")) < log.index(("start", "reader"))
    assert log.index(("start", "quick")) < log.index(("end", "slow"))  # two slots: the free one went on


def test_a_stopped_task_skips_what_waits_for_it_and_an_error_starts_nothing_more():
    stops = {"stopped": False, "went": True}
    assert parallel.run_pool(
        ["stopped", "a", "b", "went"], 1, lambda t, env: stops.get(t, True), [(), (0,), (1,), ()]
    ) == [
        False,
        None,
        None,
        True,
    ]
    ran = []

    def failing(task, env):
        ran.append(task)
        raise RuntimeError(task)

    with pytest.raises(RuntimeError, match="first"):
        parallel.run_pool(["first", "second"], 1, failing)
    assert ran == ["first"]
    with pytest.raises(ValueError, match="earlier tasks only"):
        parallel.run_pool(["a", "b"], 2, lambda t, env: t, after=[(1,), ()])


def test_figures_run_at_once_after_the_artifacts_and_the_stages_they_are_after(monkeypatch):
    spans, lock = {}, threading.Lock()

    def execute(job, profile, env=None, alone=True):
        start = time.monotonic()
        time.sleep(0.02)
        with lock:
            spans[job.name] = (start, time.monotonic())

    monkeypatch.setattr(pipeline, "execute", execute)
    assert pipeline.run("cpu", force=True, concurrent=2)
    todo = pipeline.jobs("cpu")
    assert set(spans) == {j.name for j in todo}
    after = pipeline._figures_after()
    for i, job in enumerate(todo):
        waits = pipeline._waits_for(job, todo[:i], after)
        assert all(spans[todo[w].name][1] <= spans[job.name][0] for w in waits), job.name
    by_name = {j.name: j for j in todo}
    prune = next(j for j in todo if j.kind == "prune" and j.params["model"] == "resnet44")
    (trained,) = pipeline._waits_for(prune, todo[: todo.index(prune)], after)
    assert todo[trained].kind == "train" and todo[trained].params["dataset"] == prune.params["dataset"]
    fig10 = by_name["31_B_fig10_common_networks"]
    waited = {todo[w].stage for w in pipeline._waits_for(fig10, todo[: todo.index(fig10)], after)}
    assert "B-table2-optimal-static" in waited and "B-fig8-static-plans" not in waited
    overlapping = [
        (a, b) for a in spans for b in spans if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
    ]
    assert any(by_name[a].kind == by_name[b].kind == "figure" for a, b in overlapping)  # figures ran at once


def test_figure_stamps_written_at_once_are_all_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_stamps_path", lambda profile: tmp_path / "stamps.json")
    monkeypatch.setattr(pipeline, "_figure_stamp", lambda job, profile, read: f"stamp of {job.name}")
    read = pipeline._stamps

    def slow_read(profile):
        stamps = read(profile)
        time.sleep(0.02)  # a read-modify-write that other threads would interleave without the lock
        return stamps

    monkeypatch.setattr(pipeline, "_stamps", slow_read)
    figures = [pipeline.Job(f"fig{i}", "figure", Path(f"{i}.ipynb")) for i in range(6)]
    parallel.run_pool(figures, 3, lambda job, env: pipeline._write_stamp(job, "smoke", []))
    assert read("smoke") == {j.name: {"stamp": f"stamp of {j.name}", "reads": []} for j in figures}


def test_a_notebook_stopped_by_the_budget_is_kept_as_interrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    stop = "from earlyexit.engine import budget\nraise budget.stop('checkpoint.pt', 1, 2)"
    nb.cells = [nbformat.v4.new_code_cell(stop)]
    path = tmp_path / "notebooks" / "98_train.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    with pytest.raises(pipeline.BudgetStopped, match="after epoch 1 of 2"):
        pipeline.execute(pipeline.Job("train", "figure", path), "smoke")
    assert (tmp_path / "runs" / "smoke" / "98_train.interrupted.ipynb").exists()


def test_a_budget_stop_leaves_the_later_stages_for_the_next_run(monkeypatch, capsys):
    train = [j for j in pipeline.jobs("smoke", ["train"]) if j.name.endswith(PAIR)]
    figure = pipeline.Job("fig", "figure", train[0].notebook)
    monkeypatch.setattr(pipeline, "jobs", lambda profile, only=None: [*train, figure])
    ran = []

    def execute(job, profile, env=None, alone=True):
        ran.append(job.name)
        if job.name.endswith(PAIR[0]):
            raise pipeline.BudgetStopped("time budget spent after epoch 1 of 2")

    monkeypatch.setattr(pipeline, "execute", execute)
    assert pipeline.run("smoke", force=True, concurrent=2) is False
    assert sorted(ran) == sorted(j.name for j in train)  # the figure waits for the next run
    assert "run the same command again" in capsys.readouterr().out
    monkeypatch.delenv(budget.DEADLINE_ENV, raising=False)  # restored at teardown: later tests see no deadline
    with pytest.raises(SystemExit) as stopped:
        monkeypatch.setattr(pipeline, "run", lambda *args: False)
        pipeline.main(["--profile", "smoke", "--budget", "5"])
    assert stopped.value.code == pipeline.EXIT_BUDGET
    assert budget.DEADLINE_ENV in os.environ


def test_a_notebook_runs_in_its_folder_without_moving_the_process(tmp_path, monkeypatch):
    """papermill's ``cwd`` would chdir this whole process while a notebook runs: under --jobs a second kernel then
    started wherever the first thread had left the process, and wrote its ``../artifacts`` outside the repository."""
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os\nopen('cwd.txt', 'w').write(os.getcwd())")]
    path = tmp_path / "notebooks" / "97_where.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def stay(target):  # papermill's file reads "change" to the directory the process is in: harmless
        if Path(target).resolve() != elsewhere.resolve():
            raise AssertionError(f"the pipeline process moved to {target}")

    monkeypatch.setattr(os, "chdir", stay)
    monkeypatch.setattr(pipeline, "_write_stamp", lambda job, profile, read: None)
    pipeline.execute(pipeline.Job("where", "figure", path), "smoke")
    assert Path((path.parent / "cwd.txt").read_text()).resolve() == path.parent.resolve()
    assert Path.cwd() == elsewhere
