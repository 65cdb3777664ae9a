"""Filter pruning of the on-device network: Paper A's baseline in Figs. 7 and 8 (§V-B).

Paper A compares its Exit Predictor with "a filter pruning [40] method which removes the filters
according to their l2-norm values" applied to "the on-device network (except the last FC layer)",
10 % of the filters in Fig. 7 and several ratios in Fig. 8. We follow Li et al. [40]: in every
prunable convolution of the on-device part (stages and exits before the partition point, which sits
after the last early exit) the ``ratio`` of filters with the lowest l2-norm is removed, together with
what depends on them (their BatchNorm channels and the next layer's input channels, also the first
server-side layer's). Channels are removed physically with ``torch-pruning``, whose dependency graph
keeps residual additions consistent; a channel group that reaches a server-side layer's output (a
ResNet stage running through the partition point) is left whole, as is each exit's final FC layer.

The pruned network is then fine-tuned end to end with Eq. (5). Paper A gives no fine-tuning recipe;
Li et al. retrain pruned CIFAR networks for 40 epochs. :data:`FINETUNE` holds ours per profile: the
profile's training recipe with a learning rate cosine-annealed from 0.01 to 1e-4 over 40 epochs
(``paper``), 1 epoch (``cpu``) or the smoke slice. It needs the trained weights, so it runs as a
pipeline stage after the training job whose checkpoint it reads, and writes a artifact of its
own (test split, with the pruned network's FLOPs per part) beside the training artifact.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..core import data
from ..nets.flops import PartFlops, part_flops
from ..nets.models import BUILDERS, ZOO
from ..nets.multiexit import MultiExitNet
from . import artifacts, provenance, weights
from .stage import Stage, training_source
from .training import (
    RECORDED,
    TrainConfig,
    predict,
    profile_config,
    stage_params,
    train,
    write_artifact,
)

#: Fine-tuning after pruning, per profile (a replacement of the training recipe's fields).
FINETUNE: dict[str, dict] = {
    "paper": {"epochs": 40, "anneal_epochs": 40, "lr": 0.01, "lr_end": 1e-4},
    "cpu": {"epochs": 1, "anneal_epochs": 1, "lr": 0.01, "lr_end": 1e-4},
    "smoke": {"epochs": 1, "anneal_epochs": 1, "lr": 0.01, "lr_end": 1e-4},
}


def check_ratio(ratio: float) -> float:
    """``ratio`` if it is a fraction of filters that pruning can remove, else a ValueError saying so."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise ValueError(f"pruning ratio must be a number in (0, 1), the fraction of filters removed, got {ratio!r}")
    return float(ratio)


def kept_layers(model: MultiExitNet) -> list[nn.Module]:
    """What pruning leaves untouched: the server-side part (last stage and exit) and every exit's final FC."""
    final_fcs = [[m for m in exit_.modules() if isinstance(m, nn.Linear)][-1] for exit_ in model.exits]
    return [model.stages[-1], model.exits[-1], *final_fcs]


def prune_by_magnitude(
    model: nn.Module, ratio: float, input_shape: tuple[int, ...], ignored: list[nn.Module]
) -> nn.Module:
    """Remove ``ratio`` of the filters of every convolution of ``model`` outside ``ignored``, lowest l2-norm
    first (in place), physically (torch-pruning).

    The importance of a filter is its own l2-norm (Li et al.; ``group_reduction="first"``: the filter of
    the convolution that roots the channel group), and every layer loses the same fraction.
    """
    check_ratio(ratio)
    was_training = model.training
    model.eval()
    tp.pruner.MetaPruner(
        model,
        torch.zeros(1, *input_shape),
        importance=tp.importance.MagnitudeImportance(p=2, group_reduction="first", normalizer=None),
        pruning_ratio=ratio,
        ignored_layers=ignored,
        root_module_types=[nn.Conv2d],
    ).step()
    model.train(was_training)
    return model


def prune_filters(model: MultiExitNet, ratio: float, input_shape: tuple[int, ...] = (3, 32, 32)) -> MultiExitNet:
    """Paper A's filter-pruning baseline: :func:`prune_by_magnitude` of every prunable on-device convolution
    (the layers of :func:`kept_layers` stay whole)."""
    return prune_by_magnitude(model, ratio, input_shape, kept_layers(model))


def finetune_config(profile: str, model_name: str, **overrides) -> TrainConfig:
    """The training recipe of ``model_name`` in ``profile`` (with the training job's ``overrides``),
    changed to :data:`FINETUNE`'s fine-tuning schedule."""
    return replace(profile_config(profile, model_name, **overrides), **FINETUNE[profile])


def prune_params(
    model_name: str, dataset: str, profile: str, ratio: float, source_npz_sha256: str, **overrides
) -> dict:
    """The parameters a pruning artifact records and must match to be current: the pruned job, the ratio,
    the fine-tuning recipe and the training artifact whose weights were pruned."""
    return {
        "stage": "prune",
        "model": model_name,
        "dataset": dataset,
        "profile": profile,
        "pruning_ratio": check_ratio(ratio),
        "source_npz_sha256": source_npz_sha256,
        "finetune": asdict(finetune_config(profile, model_name, **overrides)),
    }


def run_dir(artifact_root: str | Path, profile: str, model_name: str, dataset: str, ratio: float) -> Path:
    """The folder of a pruning artifact: beside its training artifact, e.g. ``resnet44-cifar100-pruned10``."""
    return artifacts.run_dir(artifact_root, profile, model_name, dataset).with_name(
        f"{model_name}-{dataset}-pruned{round(100 * check_ratio(ratio)):02d}"
    )


def load_artifact(
    artifact_root: str | Path, profile: str, model_name: str, dataset: str, **overrides
) -> artifacts.Artifact:
    """The artifact of a training job whose recipe ``overrides`` changes, refused if missing, corrupt or stale."""
    return artifacts.read(
        artifacts.run_dir(artifact_root, profile, model_name, dataset),
        stage_params(model_name, dataset, profile, **overrides),
    )


def trained_model(artifact_root: str | Path, profile: str, model_name: str, dataset: str, **overrides) -> MultiExitNet:
    """The trained network of a current training job, from the checkpoint its training stage left beside the
    artifact (:func:`weights.from_checkpoint`: it must be the run that made the artifact)."""
    load_artifact(artifact_root, profile, model_name, dataset, **overrides)
    directory = artifacts.run_dir(artifact_root, profile, model_name, dataset)
    retrain = (
        f"retrain it with `python -m earlyexit.pipeline --profile {profile} --stages train --force` "
        f"(job {directory.name}), then run this stage in the same working tree"
    )
    return weights.from_checkpoint(directory, retrain=retrain)


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """What computes a pruning job's artifact (:mod:`.provenance`): :func:`prune_and_profile` and the builder
    of its network (the zoo's other builders are opaque)."""
    return (prune_and_profile, BUILDERS[params["model"]]), ZOO + RECORDED


def prune_and_profile(
    model_name: str,
    dataset: str,
    profile: str,
    ratio: float,
    artifact_root: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    force: bool = False,
    **overrides,
) -> artifacts.Artifact:
    """The pruning stage: prune a trained job's on-device network, fine-tune it and write its artifact.

    The artifact holds the test split's CS-profile (as the training stage's) and ``part_flops``: the
    pruned network's (stage, exit) FLOPs per exit, counted with ptflops. Skipped while current;
    ``force`` redoes it. ``overrides`` are the training job's (``pipeline.toml``).
    """
    source = load_artifact(artifact_root, profile, model_name, dataset, **overrides)
    params = prune_params(model_name, dataset, profile, ratio, source.manifest["npz_sha256"], **overrides)
    ds = data.load(dataset, data_dir)
    directory = run_dir(artifact_root, profile, model_name, dataset, ratio)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.read(directory, params, ds.sha256)
    model = prune_filters(
        trained_model(artifact_root, profile, model_name, dataset, **overrides), ratio, tuple(ds.x_test.shape[1:])
    )
    cfg = finetune_config(profile, model_name, **overrides)
    checkpoint = directory / "checkpoint.pt"
    history = train(model, ds, cfg, checkpoint, progress, code_sha256=provenance.code_fingerprint(params), fresh=force)
    idx = data.stratified_indices(ds.y_test, cfg.test_per_class, cfg.seed)
    arrays = artifacts.cs_profile(predict(model, ds.x_test[idx], ds.name, progress=progress), ds.y_test[idx], "test")
    arrays["part_flops"] = np.array([[p.stage, p.exit] for p in part_flops(model.cpu(), tuple(ds.x_test.shape[1:]))])
    run = write_artifact(directory, arrays, params, ds, history)
    if profile == "smoke":
        checkpoint.unlink(missing_ok=True)
    return run


def parts(run: artifacts.Artifact) -> list[PartFlops]:
    """The pruned network's FLOPs per part, from its artifact, in the form of :func:`flops.part_flops`
    (the feature shapes are not stored)."""
    return [PartFlops(int(stage), int(exit_), ()) for stage, exit_ in run["part_flops"]]


def load_pruned(
    artifact_root: str | Path, profile: str, model_name: str, dataset: str, ratio: float, **overrides
) -> artifacts.Artifact:
    """A current pruning artifact (of the current training artifact), refused if missing, corrupt or stale."""
    source = artifacts.read_manifest(artifacts.run_dir(artifact_root, profile, model_name, dataset))
    params = prune_params(model_name, dataset, profile, ratio, source["npz_sha256"], **overrides)
    return artifacts.read(run_dir(artifact_root, profile, model_name, dataset, ratio), params)


#: The pruning stage (:class:`.stage.Stage`): one job per ``[model, dataset, ratio]`` of a training job.
STAGE = Stage(
    kind="prune",
    fields=("model", "dataset", "ratio"),
    on_training=True,
    check=lambda profile, job: {**job, "ratio": check_ratio(job["ratio"])},
    params=lambda profile, job, root: prune_params(
        job["model"], job["dataset"], profile, job["ratio"], training_source(root, profile, job), **job["overrides"]
    ),
    directory=lambda root, profile, job: run_dir(root, profile, job["model"], job["dataset"], job["ratio"]),
    suffix=lambda job: f"-{job['model']}-{job['dataset']}-pruned{round(100 * job['ratio']):02d}",
    label=lambda job: f"{job['model']}, {100 * job['ratio']:.0f} % of on-device filters pruned, fine-tuned",
    code_roots=code_roots,
)
