"""The training stage of the pipeline: which loop trains a profile, and the stage's definition.

The ``cpu`` and ``smoke`` profiles train on the host loop (:func:`.training.train_and_profile`: batches
moved to the device one at a time, bit-for-bit resume); the ``paper`` profile on the device-resident loop
(:func:`.resident.train_and_profile`, made for GPUs). An artifact's code fingerprint covers the loop that
made it (:func:`code_roots`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..core import data
from ..nets.models import BUILDERS, ZOO
from . import artifacts, resident, training
from .stage import Stage


def trainer(profile: str) -> Callable[..., artifacts.Artifact | None]:
    """The function that trains one job of ``profile`` and writes its artifact."""
    return resident.train_and_profile if profile in training.RESIDENT_PROFILES else training.train_and_profile


def train_and_profile(model_name: str, dataset: str, profile: str, artifact_root, *args, **kwargs):
    """Train one job of ``profile`` with its loop (:func:`trainer`) and write its artifact (see there)."""
    return trainer(profile)(model_name, dataset, profile, artifact_root, *args, **kwargs)


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """What computes a training job's artifact (:mod:`.provenance`): its profile's loop and the builder of its
    network; the zoo's other builders are opaque, so editing one network stales its own artifacts."""
    return (trainer(params.get("profile", "cpu")), BUILDERS[params["model"]]), ZOO + training.RECORDED


def _check_job(profile: str, job: dict) -> dict:
    """A training job of ``pipeline.toml``: a known model and dataset, and overrides its recipe accepts."""
    if job["model"] not in BUILDERS or job["dataset"] not in data.SPECS:
        raise ValueError(f"unknown model or dataset; models are {sorted(BUILDERS)}, datasets {sorted(data.SPECS)}")
    if not isinstance(job["overrides"], dict):
        raise ValueError("the third item overrides the recipe and is a table, e.g. {epochs = 2}")
    training.stage_params(job["model"], job["dataset"], profile, **job["overrides"])
    return job


#: The training stage (:class:`.stage.Stage`): one job per ``[model, dataset, {overrides}]``.
STAGE = Stage(
    kind="train",
    fields=("model", "dataset", "overrides"),
    on_training=False,
    check=_check_job,
    params=lambda profile, job, root: training.stage_params(job["model"], job["dataset"], profile, **job["overrides"]),
    directory=lambda root, profile, job: artifacts.run_dir(root, profile, job["model"], job["dataset"]),
    suffix=lambda job: f"-{job['model']}-{job['dataset']}",
    label=lambda job: job["model"],
    code_roots=code_roots,
)
