"""Issue 35's plan as a list of where each job stands, and the training job it runs (earlyexit.tiers)."""

import io
import os
import shutil
import time

import pytest
import torch
from tqdm import tqdm

from earlyexit import pipeline, tiers

SHIPPED = pipeline.ROOT / "artifacts" / "cpu" / "b_alexnet-mnist"  # 8 epochs annealed over 8, lr 0.01


def _plan(tmp_path, *jobs: str):
    path = tmp_path / "tiers.toml"
    path.write_text("[[tiers]]\njobs = [\n" + "".join(f"  {{ {job} }},\n" for job in jobs) + "]\n")
    return path


@pytest.fixture
def root(tmp_path):
    shutil.copytree(SHIPPED, tmp_path / "artifacts" / "cpu" / SHIPPED.name, ignore=shutil.ignore_patterns("derived"))
    return tmp_path / "artifacts"


def test_a_shipped_artifact_of_the_planned_recipe_is_trained_and_another_recipe_is_to_train(tmp_path, root):
    same = (
        'model = "b_alexnet", dataset = "mnist", recipe = { epochs = 8, anneal_epochs = 8, lr = 0.01, lr_end = 1e-4 }'
    )
    longer = (
        'model = "b_alexnet", dataset = "mnist", recipe = { epochs = 12, anneal_epochs = 8, lr = 0.01, lr_end = 1e-4 }'
    )
    [trained] = tiers.plan(root, _plan(tmp_path, same))
    assert (trained.state, trained.detail) == ("trained", "no learning curve recorded")
    [to_train] = tiers.plan(root, _plan(tmp_path, longer))
    assert (to_train.state, to_train.detail) == ("to train", "shipped: epochs 8 (plan 12)")


def test_a_checkpoint_of_the_planned_recipe_and_code_is_part_way_and_one_a_run_would_discard_is_named(tmp_path, root):
    job = 'model = "alexnet", dataset = "cifar10", recipe = { epochs = 40, anneal_epochs = 36 }'
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert (standing.state, standing.detail) == ("to train", "nothing shipped")
    checkpoint = root / "cpu" / "alexnet-cifar10" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    state = {"config": tiers.planned(standing.job), "code_sha256": tiers._code(standing.job)}
    torch.save({**state, "history": [{"epoch": 1}, {"epoch": 2}]}, checkpoint)
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert (standing.state, standing.detail) == ("part-way", "2 of 40 epochs in its checkpoint")
    paces = [{"epoch": 1, "seconds": 300.0, "observe_seconds": 60.0}, {"epoch": 2, "seconds": 420.0}, {"epoch": 3}]
    torch.save({**state, "history": paces}, checkpoint)  # the median of 360 s and 420 s, over the 37 epochs left
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert standing.detail == "3 of 40 epochs in its checkpoint; about 4.0 h left at their pace"
    torch.save({**state, "config": {**state["config"], "lr": 0.5}, "history": []}, checkpoint)
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert standing.state == "to train" and standing.detail.endswith("(lr 0.5 (plan 0.1)): a run discards it")
    torch.save({**state, "code_sha256": "0" * 64, "history": []}, checkpoint)
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert standing.state == "to train" and "the training code changed since it was written" in standing.detail
    checkpoint.write_bytes(b"not a checkpoint")
    [standing] = tiers.plan(root, _plan(tmp_path, job))
    assert standing.state == "to train" and "checkpoint is unreadable" in standing.detail


def test_next_is_the_first_job_not_trained_to_plan_and_a_name_must_be_a_job_still_to_train(tmp_path, root):
    done = (
        'model = "b_alexnet", dataset = "mnist", recipe = { epochs = 8, anneal_epochs = 8, lr = 0.01, lr_end = 1e-4 }'
    )
    todo = 'model = "alexnet", dataset = "cifar10", recipe = { epochs = 40, anneal_epochs = 36 }'
    standings = tiers.plan(root, _plan(tmp_path, done, todo))
    assert tiers.choose(standings, "next").name == "alexnet/cifar10"
    assert tiers.choose(standings, "alexnet/cifar10") is standings[1]
    with pytest.raises(SystemExit, match="trained to plan"):
        tiers.choose(standings, "b_alexnet/mnist")
    with pytest.raises(SystemExit, match="not a job of tiers.toml; choose 'next' or one of b_alexnet/mnist"):
        tiers.choose(standings, "alexnet/mnist")
    with pytest.raises(SystemExit, match="every job of tiers.toml is trained"):
        tiers.choose(standings[:1], "next")


def test_a_tier_job_runs_the_pipelines_training_notebook_with_its_recipe():
    """The same notebook, parameters and executed copy as the pipeline's job of that network, with the plan's
    recipe as its overrides."""
    standing = next(s for s in tiers.plan() if s.name == "vgg16bn/cifar100")
    job = tiers.training_job(standing)
    shipped = next(j for j in pipeline.jobs("cpu", ["train"]) if j.name == job.name)
    assert (job.stage, job.kind, job.notebook) == (shipped.stage, shipped.kind, shipped.notebook)
    params = pipeline.injected(job.notebook, job.params)
    assert params["overrides"] == standing.job["overrides"] and params["model"] == "vgg16bn"


ALEXNET = 'model = "alexnet", dataset = "cifar10", recipe = { epochs = 40, anneal_epochs = 36 }'


def _part_way(tmp_path, root, epochs: int):
    """The plan of one job with a checkpoint of its recipe and code holding ``epochs`` epochs in ``root``."""
    path = _plan(tmp_path, ALEXNET)
    [standing] = tiers.plan(root, path)
    checkpoint = root / "cpu" / "alexnet-cifar10" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": tiers.planned(standing.job), "code_sha256": tiers._code(standing.job)}
    torch.save({**state, "history": [{"epoch": e + 1} for e in range(epochs)]}, checkpoint)
    return path, standing.job, checkpoint


def test_a_kept_checkpoint_outside_the_work_tree_counts_and_is_put_back_only_where_none_is(tmp_path, root, monkeypatch):
    monkeypatch.setenv(tiers.KEEP_ENV, str(tmp_path / "keep"))
    path, job, checkpoint = _part_way(tmp_path, root, 3)
    assert tiers.restore(job, root) is None and tiers.keep(job, root) == tiers.kept(job)
    assert tiers.kept(job) == tmp_path / "keep" / "cpu" / "alexnet-cifar10.pt"
    assert tiers.kept(job).read_bytes() == checkpoint.read_bytes()
    inode = tiers.kept(job).stat().st_ino
    assert tiers.keep(job, root) == tiers.kept(job) and tiers.kept(job).stat().st_ino == inode  # current: not copied
    saved = checkpoint.read_bytes()
    checkpoint.unlink()  # the next session's work tree, laid anew
    [standing] = tiers.plan(root, path)
    assert (standing.state, standing.detail) == (
        "part-way",
        f"3 of 40 epochs in its checkpoint (kept in {tmp_path / 'keep' / 'cpu'})",
    )
    assert tiers.restore(job, root) == checkpoint and checkpoint.read_bytes() == saved
    torch.save({"config": {}, "history": []}, checkpoint)  # the work tree's own checkpoint wins
    assert tiers.restore(job, root) is None and checkpoint.read_bytes() != saved
    shutil.rmtree(root / "cpu" / "alexnet-cifar10")
    assert tiers.keep(job, root) is None  # nothing to keep


def test_a_run_the_budget_stops_keeps_its_checkpoint_and_a_finished_one_drops_the_kept_copy(
    tmp_path, root, monkeypatch
):
    monkeypatch.setenv(tiers.KEEP_ENV, str(tmp_path / "keep"))
    path, job, checkpoint = _part_way(tmp_path, root, 2)
    monkeypatch.setattr(tiers, "ARTIFACTS", root)
    monkeypatch.setattr(pipeline, "TIERS", path)

    def stopped(job, profile):
        raise pipeline.BudgetStopped("time budget spent after epoch 2 of 40")

    monkeypatch.setattr(pipeline, "execute", stopped)
    with pytest.raises(SystemExit) as exit_:
        tiers.main(["--run", "next"])
    assert exit_.value.code == pipeline.EXIT_BUDGET and tiers.kept(job).read_bytes() == checkpoint.read_bytes()
    checkpoint.unlink()
    ran, discarded = [], []
    monkeypatch.setattr(pipeline, "execute", lambda job, profile: ran.append(checkpoint.is_file()))
    monkeypatch.setattr(pipeline, "discard_checkpoints_on", lambda *on: discarded.append(on))
    tiers.main(["--run", "next"])
    assert ran == [True] and not tiers.kept(job).exists()  # resumed from the kept copy, which is then dropped
    assert discarded == [("alexnet", "cifar10", "cpu")]


def _epochs(checkpoint, epochs: int) -> None:
    """Rewrite ``checkpoint`` to hold ``epochs`` epochs, each with every exit's test accuracy, atomically as a run
    does."""
    state = torch.load(checkpoint, weights_only=True)
    history = [{"epoch": e + 1, "test_accuracy": [40.0, 50.0 + e]} for e in range(epochs)]
    torch.save({**state, "history": history}, checkpoint.with_suffix(".tmp"))
    checkpoint.with_suffix(".tmp").replace(checkpoint)


def test_a_run_is_followed_as_a_bar_over_its_epochs_and_each_new_epoch_is_kept(tmp_path, root, monkeypatch):
    monkeypatch.setenv(tiers.KEEP_ENV, str(tmp_path / "keep"))
    _, job, checkpoint = _part_way(tmp_path, root, 2)
    _epochs(checkpoint, 2)
    out = io.StringIO()
    bar = tqdm(total=40, file=out)
    seen = tiers.advance(bar, job, root, None)
    assert bar.n == 2 and "last exit 51.0 %" in out.getvalue()
    assert tiers.kept(job).read_bytes() == checkpoint.read_bytes()
    tiers.kept(job).unlink()
    assert tiers.advance(bar, job, root, seen) == seen and not tiers.kept(job).exists()  # nothing new: not read
    _epochs(checkpoint, 3)
    os.utime(checkpoint, ns=(seen + 10**9, seen + 10**9))
    assert tiers.advance(bar, job, root, seen) == seen + 10**9 and bar.n == 3 and "last exit 52.0 %" in out.getvalue()
    assert tiers.kept(job).read_bytes() == checkpoint.read_bytes()


def test_the_bar_polls_while_the_run_trains_and_shows_where_it_ended(tmp_path, root, monkeypatch, capsys):
    monkeypatch.setenv(tiers.KEEP_ENV, str(tmp_path / "keep"))
    _, job, checkpoint = _part_way(tmp_path, root, 2)
    monkeypatch.setattr(tiers, "POLL_SECONDS", 0.01)
    with tiers.following(job, root):
        _epochs(checkpoint, 3)
        for _ in range(1000):  # the watcher keeps the new epoch within a few polls
            if tiers.kept(job).is_file() and len(torch.load(tiers.kept(job), weights_only=True)["history"]) == 3:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the watcher never kept the third epoch")
        _epochs(checkpoint, 4)  # however late the run writes its last epoch, the bar ends on it
    assert "4/40" in capsys.readouterr().err and len(torch.load(tiers.kept(job), weights_only=True)["history"]) == 4
