"""The one abstraction of a pipeline stage that makes artifacts: train, prune, compress, single_exit, design.

A :class:`Stage` says what a job of its kind is (the fields of its matrix entries in ``pipeline.toml``,
checked), what its artifact must match to be current (:attr:`Stage.params`), where it writes
(:attr:`Stage.directory`), how its jobs are named and listed, and which code computes its artifacts
(:attr:`Stage.code_roots`, for :mod:`.provenance`). How a job runs is its notebook, which calls the
stage's ``*_and_profile`` function; the pipeline (:mod:`earlyexit.pipeline`) treats every kind alike.
Each kind is defined beside its computation (``STAGE`` in :mod:`.training`, :mod:`.pruning`,
:mod:`earlyexit.paper_a.compression`, :mod:`earlyexit.paper_b.single_exit`,
:mod:`earlyexit.paper_b.msdnet_design`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import artifacts


@dataclass(frozen=True)
class Stage:
    """One kind of artifact-making stage."""

    kind: str  # the stage's ``kind`` in pipeline.toml, and ``params["stage"]`` of its artifacts (train: none)
    fields: tuple[str, ...]  # the items of one matrix entry, e.g. ("model", "dataset", "ratio")
    on_training: bool  # its entries start with a training job of the same profile, whose weights it reads
    check: Callable[[str, dict], dict]  # (profile, job fields) -> the job, validated (ValueError says what is wrong)
    params: Callable[[str, dict, Path], dict]  # (profile, job, artifact root) -> what its artifact records
    directory: Callable[[Path, str, dict], Path]  # (artifact root, profile, job) -> its artifact's folder
    suffix: Callable[[dict], str]  # the job's name after its notebook's, e.g. "-resnet44-cifar100-pruned10"
    label: Callable[[dict], str]  # the job in the compute ledger
    code_roots: Callable[[dict], tuple[tuple, tuple]]  # (roots, opaque) of the code computing an artifact


def job_fields(stage: Stage, profile: str, entry: list) -> dict:
    """The job of one matrix entry of ``stage`` in ``profile`` (a list of its :attr:`Stage.fields`; a last
    field ``overrides`` may be left out), checked."""
    fields = stage.fields
    optional = fields[-1] == "overrides"
    if optional and isinstance(entry, list) and len(entry) == len(fields) - 1:
        entry = [*entry, {}]
    if not isinstance(entry, list) or len(entry) != len(fields):
        shown = ", ".join(fields[:-1] if optional else fields)
        raise ValueError(f"an entry is [{shown}]" + (f" or [{shown}, {{overrides}}]" if optional else ""))
    return stage.check(profile, dict(zip(fields, entry)))


def training_source(root: Path, profile: str, job: dict) -> str:
    """The npz checksum of the training artifact a stage after training reads (its ``source_npz_sha256``);
    :class:`artifacts.ArtifactError` when that job has no artifact yet."""
    return artifacts.read_manifest(artifacts.run_dir(root, profile, job["model"], job["dataset"]))["npz_sha256"]
