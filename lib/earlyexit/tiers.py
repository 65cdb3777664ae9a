"""Issue 35's plan of longer ``cpu`` training (``tiers.toml``): where each job stands, and training the next.

``python -m earlyexit.tiers`` lists the plan's jobs in order, each trained to its planned recipe (with the stopping
rule's verdict, :func:`.engine.train_bench.learning_verdict`), part-way (its checkpoint holds some of the planned
epochs; the hours the rest would take at their pace) or still to train (what is shipped instead). ``python -m
earlyexit.tiers --run next --budget 150`` trains the first job not trained to plan (``--run MODEL/DATASET`` names
one) with the pipeline's training notebook, resumes its checkpoint, and stops at an epoch boundary before the
budget is spent; the same command continues it. The artifact it writes replaces the shipped one: give
``pipeline.toml``'s ``matrix.cpu`` line the recipe, then ``python -m earlyexit.pipeline --profile cpu`` rebuilds
everything built on it.

A job longer than one session keeps its checkpoint outside the work tree when the budget stops it (:func:`keep`,
in ``$EARLYEXIT_KEEP`` or ``~/.cache/earlyexit/checkpoints``), since a machine kept for the next session gets its
work tree laid anew; the next run puts it back (:func:`restore`) and the listing counts it. While it trains,
:func:`following` shows its epochs as a progress bar and keeps each new one the same way, so a session that
ends mid-run loses at most the epoch under way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import pipeline
from .core import files
from .engine import artifacts, budget, provenance, train_bench, training

PROFILE = "cpu"  # the plan is of the cpu profile (tiers.toml)
KEEP_ENV = "EARLYEXIT_KEEP"  # where part-way checkpoints are kept between sessions (default: the user's cache)
ARTIFACTS = pipeline.ROOT / "artifacts"  # where the jobs' artifacts and checkpoints are
POLL_SECONDS = 20.0  # how often a run's checkpoint is looked at for a new epoch (:func:`following`)


@dataclass(frozen=True)
class Standing:
    """Where one job of the plan stands: ``state`` is "trained", "part-way" or "to train"; ``detail`` in words."""

    tier: int
    job: dict  # of engine.train_bench.read_tiers: model, dataset, overrides (its recipe), target
    state: str
    detail: str

    @property
    def name(self) -> str:
        return f"{self.job['model']}/{self.job['dataset']}"


def planned(job: dict) -> dict:
    """The training parameters a tier job plans (:func:`.engine.training.profile_config` with its recipe)."""
    return asdict(training.profile_config(PROFILE, job["model"], **job["overrides"]))


def differences(recorded: dict, plan: dict) -> list[str]:
    """The training parameters of ``plan`` that ``recorded`` (a manifest's ``params`` or a checkpoint's config)
    gives another value, as ``name recorded (plan planned)``."""
    return [f"{k} {recorded.get(k)!r} (plan {v!r})" for k, v in plan.items() if recorded.get(k) != v]


def standing(tier: int, job: dict, root: Path = ARTIFACTS) -> Standing:
    """Where ``job`` (of :func:`.engine.train_bench.read_tiers`, in tier ``tier``) stands in ``root``."""
    directory = artifacts.run_dir(root, PROFILE, job["model"], job["dataset"])
    local = _local(job, root)
    recipe = planned(job)
    try:
        manifest = artifacts.read_manifest(directory)
    except artifacts.ArtifactError:
        manifest = None
    if manifest is not None and not differences(manifest["params"], recipe):
        return Standing(tier, job, "trained", train_bench.learning_verdict(manifest["history"], job["target"]))
    history, problem = _checkpoint(local if local.is_file() else kept(job), job)
    if history is not None:
        where = "" if local.is_file() else f" (kept in {kept(job).parent})"
        detail = (
            f"{len(history)} of {recipe['epochs']} epochs in its checkpoint{where}{_left(history, recipe['epochs'])}"
        )
        return Standing(tier, job, "part-way", detail)
    shipped = (
        "nothing shipped" if manifest is None else "shipped: " + ", ".join(differences(manifest["params"], recipe))
    )
    return Standing(tier, job, "to train", shipped + (f"; its checkpoint {problem}" if problem else ""))


def _left(history: list[dict], epochs: int) -> str:
    """The hours the rest of ``epochs`` would take at the median pace of the epochs in ``history`` (training and
    learning curve), in words; "" where the history records no time."""
    paces = [h["seconds"] + h.get("observe_seconds", 0.0) for h in history if "seconds" in h]
    if not paces:
        return ""
    return f"; about {(epochs - len(history)) * float(np.median(paces)) / 3600:.1f} h left at their pace"


def _checkpoint(path: Path, job: dict) -> tuple[list[dict] | None, str]:
    """The epochs (history) the checkpoint ``path`` of ``job`` holds, or None and why a run would not resume it
    ("" when there is none)."""
    state, problem = pipeline.read_checkpoint(path)
    if state is None:
        return None, problem
    other = differences(state["config"], planned(job))
    if not other and state.get("code_sha256") != _code(job):
        other = ["the training code changed since it was written"]
    if other:  # the run discards it, saying what differs (engine.training.train_and_profile)
        return None, f"differs ({', '.join(other)}): a run discards it"
    return state["history"], ""


def _code(job: dict) -> str:
    """The fingerprint of the code that trains ``job`` now, which its checkpoint must have been made with."""
    return provenance.code_fingerprint(training.stage_params(job["model"], job["dataset"], PROFILE, **job["overrides"]))


def kept(job: dict) -> Path:
    """Where ``job``'s part-way checkpoint is kept between sessions (:data:`KEEP_ENV`, else the user's cache)."""
    folder = os.environ.get(KEEP_ENV) or Path.home() / ".cache" / "earlyexit" / "checkpoints"
    return Path(folder) / PROFILE / f"{job['model']}-{job['dataset']}.pt"


def _local(job: dict, root: Path) -> Path:
    """``job``'s checkpoint in the work tree's ``root``."""
    return artifacts.run_dir(root, PROFILE, job["model"], job["dataset"]) / "checkpoint.pt"


def _copy(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` with its mtime, whole or not at all; returns ``target``."""
    with files.atomic_path(target) as tmp:
        shutil.copy2(source, tmp)
    return target


def _same(source: Path, target: Path) -> bool:
    """Whether ``target`` is already a copy of ``source`` (:func:`_copy`): same size and mtime."""
    if not target.is_file():
        return False
    a, b = source.stat(), target.stat()
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def keep(job: dict, root: Path = ARTIFACTS) -> Path | None:
    """Copy ``job``'s checkpoint in ``root`` to :func:`kept`, unless the copy there is current; returns the copy,
    or None when there is no checkpoint."""
    local, target = _local(job, root), kept(job)
    if not local.is_file():
        return None
    return target if _same(local, target) else _copy(local, target)


def restore(job: dict, root: Path = ARTIFACTS) -> Path | None:
    """Put ``job``'s kept checkpoint back in ``root`` when ``root`` has none; returns the restored file, or None
    when nothing was restored. Whether training resumes it is :func:`.engine.training.train_and_profile`'s call."""
    target = _local(job, root)
    return None if target.is_file() or not kept(job).is_file() else _copy(kept(job), target)


def advance(bar: tqdm, job: dict, root: Path, seen: int | None) -> int | None:
    """Bring ``bar`` to the epochs of ``job``'s checkpoint in ``root``, with its last exit's test accuracy, and
    keep it (:func:`keep`), when the checkpoint was rewritten since ``seen`` (its mtime in ns); returns the mtime
    it saw."""
    local = _local(job, root)
    stamp = local.stat().st_mtime_ns if local.is_file() else None
    state = None if stamp in (None, seen) else pipeline.read_checkpoint(local)[0]
    if state is None:
        return seen
    history = state["history"]
    bar.n = len(history)
    if history and "test_accuracy" in history[-1]:
        bar.set_postfix_str(f"last exit {history[-1]['test_accuracy'][-1]:.1f} %", refresh=False)
    bar.refresh()
    keep(job, root)
    return stamp


def _poll(bar: tqdm, job: dict, root: Path, stop: threading.Event) -> None:
    """:func:`advance` ``bar`` every :data:`POLL_SECONDS` until ``stop`` is set."""
    seen = None
    while not stop.wait(POLL_SECONDS):
        seen = advance(bar, job, root, seen)


@contextmanager
def following(job: dict, root: Path = ARTIFACTS) -> Iterator[None]:
    """While the body trains ``job``, show a progress bar over its planned epochs, polled from its checkpoint
    (:func:`advance`): the training runs in a papermill kernel, whose own bar the terminal never shows."""
    stop, (done, _) = threading.Event(), _checkpoint(_local(job, root), job)  # rate: this run's epochs only
    with tqdm(
        total=planned(job)["epochs"], initial=len(done or []), unit="epoch", desc=f"{job['model']}/{job['dataset']}"
    ) as bar:
        watcher = threading.Thread(target=_poll, args=(bar, job, root, stop), daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            advance(bar, job, root, None)


def plan(root: Path = ARTIFACTS, path: Path = pipeline.TIERS) -> list[Standing]:
    """Every job of the plan in ``path``, in order, with where it stands (:func:`standing`)."""
    tiers = train_bench.read_tiers(path)
    return [standing(number, job, root) for number, tier in enumerate(tiers, 1) for job in tier["jobs"]]


def choose(standings: list[Standing], name: str) -> Standing:
    """The job ``name`` ("MODEL/DATASET") of the plan, or with "next" the first not trained to plan; exits
    naming the choices when there is none."""
    if name == "next":
        todo = [s for s in standings if s.state != "trained"]
        if not todo:
            raise SystemExit("every job of tiers.toml is trained to plan; add jobs to it to train more")
        return todo[0]
    found = [s for s in standings if s.name == name]
    if not found:
        names = ", ".join(s.name for s in standings)
        raise SystemExit(f"--run {name}: not a job of tiers.toml; choose 'next' or one of {names}")
    if found[0].state == "trained":
        raise SystemExit(f"--run {name}: trained to plan ({found[0].detail}); raise its epochs in tiers.toml first")
    return found[0]


def training_job(chosen: Standing) -> pipeline.Job:
    """The pipeline's training job (notebook and parameters) for a job of the plan."""
    stage = next(s for s in pipeline.load_stages() if s["kind"] == "train")
    params = {key: chosen.job[key] for key in ("model", "dataset", "overrides")}
    return pipeline.Job(stage["id"], "train", pipeline.ROOT / stage["notebook"], params)


def table(standings: list[Standing]) -> str:
    """The plan as plain text: one line per job."""
    return "\n".join(f"{s.tier}  {s.name:32s} {s.state:9s} {s.detail}" for s in standings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.tiers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", metavar="MODEL/DATASET", help="train this job of the plan, or 'next'")
    parser.add_argument(
        "--budget", type=float, help="minutes; training stops at an epoch boundary before they are spent (exit 75)"
    )
    args = parser.parse_args(argv)
    standings = plan(ARTIFACTS, pipeline.TIERS)
    if args.run is None:
        print(table(standings))
        return
    if args.budget is not None:
        budget.set_minutes(args.budget)
    chosen = choose(standings, args.run)
    if restore(chosen.job, ARTIFACTS):
        print(f"{chosen.name}: resumes the checkpoint kept in {kept(chosen.job).parent}")
    print(f"tier {chosen.tier}: {chosen.name} ({chosen.state}: {chosen.detail}) ...", flush=True)
    try:
        with following(chosen.job, ARTIFACTS):
            pipeline.execute(training_job(chosen), PROFILE)
    except pipeline.BudgetStopped as err:
        copy = keep(chosen.job, ARTIFACTS)
        print(err if copy is None else f"{err}\ncheckpoint kept in {copy.parent}: a later session resumes it")
        raise SystemExit(pipeline.EXIT_BUDGET) from None
    pipeline.discard_checkpoints_on(chosen.job["model"], chosen.job["dataset"], PROFILE)
    kept(chosen.job).unlink(missing_ok=True)
    recipe = ", ".join(f"{k} = {v!r}" for k, v in chosen.job["overrides"].items())
    print(f"{standing(chosen.tier, chosen.job, ARTIFACTS).detail}; give pipeline.toml's matrix.cpu line {{{recipe}}}")


if __name__ == "__main__":
    main(sys.argv[1:])
