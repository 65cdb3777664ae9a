"""Paper B §VI-D (Fig. 14): the design space of MSDNet and of its branches, under elastic inference.

* **(a) Model structures** (§VI-D1): MSDNet variants over *blocks*, *step*, *base* and *channels*
  (:data:`GRID`: one-at-a-time sweeps around Paper B's two choices, 21 blocks / step 2 and 40 blocks /
  step 1, both with base 4 and 16 channels). The paper's reading: 21-40 blocks are nearly optimal,
  step 1 for 40 or more blocks, small base and channels preferable.
* **(b) Branch structures** (§VI-D2) on MSDNet with 21 blocks, step 2, base 4, 16 channels: one or
  two convolutions and one or two FC layers, and FC only (:data:`BRANCHES`), built with Paper B's
  branch family (:func:`einet_models.branch`, read from the coarsest scale); (a) keeps MSDNet's own
  branch (:class:`msdnet.Branch`, 1 conv + 2 FC). The paper settles on 1 conv + 2 FC.

Every variant is trained with one short recipe (:data:`RECIPE`: Paper B's recipe changed as the
``cpu`` profile's MSDNet-40, on ``train_per_class`` images per class; the fixed budget is the point of
the comparison, not convergence; ``cpu`` also scores half the test set), then profiled as a training
job: the test CS-profile and the ET-profile on this machine. :func:`elastic_accuracy` runs every
branch and EINet on it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..core import data
from ..core.fingerprint import fingerprint
from ..engine import artifacts, derived, provenance
from ..engine.stage import Stage
from ..engine.training import ET_SAMPLES, RECORDED, predict, profile_config, train, write_artifact
from ..nets import einet_models, et_profile, msdnet
from ..nets.multiexit import MultiExitNet
from . import baselines, elastic, search


@dataclass(frozen=True)
class Variant:
    """One MSDNet design: its structure (§IV-A1) and its branch, ``(convs, fcs)`` of
    :func:`einet_models.branch` or None for MSDNet's own branch."""

    blocks: int = 21
    step: int = 2
    base: int = 4
    channels: int = 16
    branch: tuple[int, int] | None = None

    def __post_init__(self):
        if min(self.blocks, self.step, self.base, self.channels) < 1:
            raise ValueError(f"blocks, step, base and channels must be >= 1, got {self}")
        if self.branch is not None and not (len(self.branch) == 2 and self.branch[0] >= 0 and self.branch[1] >= 1):
            raise ValueError(f"branch is (convs >= 0, fcs >= 1) or None, got {self.branch!r}")

    @property
    def name(self) -> str:
        """e.g. ``b21-s2-base4-c16``, or ``b21-s2-base4-c16-1conv2fc`` with a Paper B branch."""
        suffix = "" if self.branch is None else f"-{self.branch[0]}conv{self.branch[1]}fc"
        return f"b{self.blocks}-s{self.step}-base{self.base}-c{self.channels}{suffix}"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant of :attr:`name`; a ValueError shows the form for anything else."""
        match = re.fullmatch(r"b(\d+)-s(\d+)-base(\d+)-c(\d+)(?:-(\d+)conv(\d+)fc)?", str(name))
        if not match:
            raise ValueError(
                f"an MSDNet design is named like 'b21-s2-base4-c16' or 'b21-s2-base4-c16-1conv2fc', got {name!r}"
            )
        blocks, step, base, channels, convs, fcs = match.groups()
        return cls(int(blocks), int(step), int(base), int(channels), None if convs is None else (int(convs), int(fcs)))


_MSDNET21, _MSDNET40 = Variant(21, 2, 4, 16), Variant(40, 1, 4, 16)
#: Fig. 14(a): blocks at step 1 (40 is Paper B's MSDNet-40), then step, base and channels around MSDNet-21.
GRID: tuple[Variant, ...] = (
    *(replace(_MSDNET40, blocks=b) for b in (10, 21, 30, 40, 50)),
    _MSDNET21,
    replace(_MSDNET21, step=3),
    replace(_MSDNET21, base=2),
    replace(_MSDNET21, channels=4),
    replace(_MSDNET21, channels=8),
)
#: Fig. 14(b): branch structures (convs, fcs) on MSDNet-21.
BRANCHES: tuple[Variant, ...] = tuple(replace(_MSDNET21, branch=b) for b in ((0, 1), (1, 1), (2, 1), (1, 2), (2, 2)))

#: The design recipe per profile: Paper B's recipe (as ``training.profile_config``) with these changes.
RECIPE: dict[str, dict] = {
    "paper": {},
    "cpu": {"epochs": 3, "anneal_epochs": 3, "lr": 0.1, "lr_end": 1e-4, "train_per_class": 500, "test_per_class": 500},
    "smoke": {"epochs": 1, "anneal_epochs": 1, "train_per_class": 2, "test_per_class": 2},
}


class Coarsest(nn.Module):
    """A branch reading the coarsest scale of MSDNet's multi-scale feature (the last tensor of the list)."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, h: list[Tensor]) -> Tensor:
        return self.branch(h[-1])


def build(variant: Variant, dataset: str, seed: int | None = None) -> MultiExitNet:
    """The MSDNet of ``variant`` for ``dataset`` (CIFAR or MNIST), seeded like ``models.build_model``."""
    classes, (_, _, in_channels), _, _ = data.SPECS[dataset]
    if seed is not None:
        torch.manual_seed(seed)
    model = msdnet.msdnet(
        classes, variant.blocks, variant.step, variant.base, variant.channels, in_channels=in_channels
    )
    if variant.branch is not None:
        convs, fcs = variant.branch
        model.exits = nn.ModuleList(
            Coarsest(einet_models.branch(own[0].in_channels, classes, convs, fcs)) for own in model.exits
        )
        for m in model.exits.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def config(profile: str):
    """The :class:`training.TrainConfig` every variant is trained with in ``profile``."""
    return profile_config(profile, "msdnet21", **RECIPE[profile])


def design_params(variant: Variant, dataset: str, profile: str) -> dict:
    """The parameters a design artifact records and must match to be current."""
    return {
        "stage": "design",
        "model": f"msdnet-{variant.name}",
        "dataset": dataset,
        "profile": profile,
        **asdict(config(profile)),
        "et_samples": ET_SAMPLES[profile],
    }


def run_dir(artifact_root: str | Path, profile: str, variant: Variant, dataset: str) -> Path:
    """The folder of a design artifact, e.g. ``msdnet-b21-s2-base4-c16-cifar10``."""
    return artifacts.run_dir(artifact_root, profile, f"msdnet-{variant.name}", dataset)


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """What computes a design artifact (:mod:`earlyexit.engine.provenance`): :func:`train_and_profile`,
    which builds every variant itself."""
    return (train_and_profile,), (*RECORDED, RECIPE)


def train_and_profile(
    variant: Variant,
    dataset: str,
    profile: str,
    artifact_root: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> artifacts.Artifact:
    """Train ``variant`` with :func:`config` (resuming from its checkpoint) and write its artifact: the test
    CS-profile and the ET-profile (``et_tc``, ``et_tb``), as the training stage writes for Paper B's
    models. Skipped while current; the checkpoint is deleted once the artifact is written (nothing
    downstream reads the weights)."""
    params = design_params(variant, dataset, profile)
    cfg = config(profile)
    ds = data.load(dataset, data_dir)
    directory = run_dir(artifact_root, profile, variant, dataset)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.read(directory, params, ds.sha256)
    model = build(variant, dataset, cfg.seed)
    checkpoint = directory / "checkpoint.pt"
    history = train(model, ds, cfg, checkpoint, progress, code_sha256=provenance.code_fingerprint(params), fresh=force)
    idx = data.stratified_indices(ds.y_test, cfg.test_per_class, cfg.seed)
    arrays = artifacts.cs_profile(predict(model, ds.x_test[idx], ds.name, progress=progress), ds.y_test[idx], "test")
    et = et_profile.measure_et_profile(model.cpu(), ds.x_test[idx], ds.name, samples=params["et_samples"])
    arrays |= {"et_tc": et["tc"], "et_tb": et["tb"]}
    run = write_artifact(directory, arrays, params, ds, history)
    checkpoint.unlink(missing_ok=True)
    return run


def load_design(artifact_root: str | Path, profile: str, variant: Variant, dataset: str) -> artifacts.Artifact:
    """A current design artifact, refused if missing, corrupt or stale."""
    return artifacts.read(run_dir(artifact_root, profile, variant, dataset), design_params(variant, dataset, profile))


def elastic_accuracy(
    run: artifacts.Artifact,
    derived_dir: str | Path,
    profile: str,
    m: int = 5,
    runs: int = 5,
    seed: int = 0,
    preemption: elastic.Preemption = elastic.Preemption(),
) -> pd.DataFrame:
    """Fig. 14's accuracy of one variant under elastic inference: every branch and EINet (hybrid search,
    CS-Predictor on the even half of the test CS-profile, scored on the odd half, as Figs. 8-10), with
    the ET-profile's total time, mean branch time and last exit; kept in ``derived_dir``."""
    tc, tb = elastic.et_means(run)
    _, scored = baselines.halves(len(run["test_conf"]))
    conf, correct = run["test_conf"][scored], run["test_correct"][scored]
    directory = Path(derived_dir)

    def compute() -> pd.DataFrame:
        cs, _ = baselines.cs_predictor(run, directory, profile, seed)
        row = {
            "variant": run.manifest["params"]["model"].removeprefix("msdnet-"),
            "exits": tc.size,
            "total_ms": 1e3 * search.total_time(tc, tb),
            "branch_ms": 1e3 * tb.mean(),
            "last_exit": 100 * run.accuracy[-1],
        }
        for method, policy in (
            ("every branch", np.ones(tc.size, dtype=bool)),
            (f"EINet hybrid m={m}", elastic.Dynamic(cs, "hybrid", m=m)),
        ):
            row[method] = (
                100
                * elastic.simulate(
                    tc, tb, conf, correct, policy, preemption, runs=runs, seed=seed, progress=False
                ).accuracy
            )
        return pd.DataFrame([row])

    key = {
        "artifact": derived.artifact_key(run),
        "m": m,
        "runs": runs,
        "seed": seed,
        "preemption": asdict(preemption),
        "code": fingerprint(elastic_accuracy),
    }
    return derived.frame(directory / f"elastic-{preemption.kind}.csv", key, compute)


def _check_job(profile: str, job: dict) -> dict:
    """A design job: a variant's name and a dataset."""
    if job["dataset"] not in data.SPECS:
        raise ValueError(f"an entry is [variant, dataset], dataset one of {sorted(data.SPECS)}")
    return {**job, "variant": Variant.parse(job["variant"]).name}


#: The design stage (:class:`earlyexit.engine.stage.Stage`): one job per ``[variant, dataset]``, trained here.
STAGE = Stage(
    kind="design",
    fields=("variant", "dataset"),
    on_training=False,
    check=_check_job,
    params=lambda profile, job, root: design_params(Variant.parse(job["variant"]), job["dataset"], profile),
    directory=lambda root, profile, job: run_dir(root, profile, Variant.parse(job["variant"]), job["dataset"]),
    suffix=lambda job: f"-{job['variant']}-{job['dataset']}",
    label=lambda job: f"MSDNet design {job['variant']} (Paper B Fig. 14)",
    code_roots=code_roots,
)
