"""Training with every split resident on the device: the ``paper`` profile's loop, made for GPUs.

The recipes are :mod:`.training`'s (Paper A §V-A, Paper B §VI-A) and so are the loss (Eq. (5)), the
schedule, the checkpoint and the artifact; what differs is where the data lives:

* each split is copied to the device once, as uint8 (CIFAR's training split is 150 MB);
* every epoch's shuffle and augmentation (random crop after zero-padding, horizontal flip) are drawn
  there, from one generator seeded by the run's seed and the epoch (:func:`augment`);
* bf16 autocast where the device computes bf16 natively, channels-last memory;
* losses are summed on the device and read once per epoch (:func:`.sgd.epoch`): no host
  synchronisation per step;
* optionally ``torch.compile`` (:data:`COMPILE_MODES`); under ``torchrun``, DistributedDataParallel (:func:`epoch`);
* a time budget stops it at an epoch boundary (:mod:`.budget`).

**What it guarantees.** Runs are seeded: on one device model and software stack, a run and its resumed
continuation see the same data order, augmentation and dropout masks. cuDNN chooses its kernels by
benchmark and some of them add in a varying order, so two GPU runs agree to rounding, not bit for bit;
the host loop (:mod:`.training`, the ``cpu`` and ``smoke`` profiles) keeps its bit-for-bit resume. On
the CPU (``device="cpu"``) the draws and the augmented images equal the host loop's for the same
generator state (tests/test_resident.py). Under DDP every process draws the whole global batch and takes
its share (rows ``rank::world``), so ``G`` processes see the images one process would, at the same global
batch. On GPUs the BatchNorm layers are synchronised across processes, so that they normalise over the
global batch as one process does; PyTorch synchronises them on GPUs only, so on CPUs (gloo) each process
normalises its own share, and the losses differ from one process's by that (tests/test_distributed.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core import data, files, hardware
from ..nets.et_profile import measure_et_profile
from ..nets.models import build_model
from ..nets.multiexit import MultiExitNet
from . import artifacts, budget, provenance, sgd, training


@dataclass(frozen=True)
class Split:
    """A dataset's training split on the training device: uint8 NCHW images, labels, the rows trained, and
    the dataset's per-channel mean and standard deviation there (shape ``(1, C, 1, 1)``)."""

    dataset: str
    x: Tensor
    y: Tensor
    rows: Tensor
    mean: Tensor
    std: Tensor

    def standardised(self, x: Tensor) -> Tensor:
        """:func:`earlyexit.core.data.normalize` of a batch, with the constants already on the device (made
        per batch, they would be a host-to-device copy, which synchronises, at every step)."""
        return (x.float() / 255.0 - self.mean) / self.std


def split_on(ds: data.Dataset, rows: Tensor, device: torch.device) -> Split:
    """``ds``'s training split on ``device``, of which ``rows`` are trained."""
    _, _, mean, std = data.SPECS[ds.name]
    constant = lambda v: torch.tensor(v, device=device).view(1, -1, 1, 1)  # noqa: E731
    return Split(ds.name, ds.x_train.to(device), ds.y_train.to(device), rows.to(device), constant(mean), constant(std))


def training_split(ds: data.Dataset, cfg: training.TrainConfig, device: torch.device) -> Split:
    """The rows of ``ds``'s training split that ``cfg`` trains (all, or a class-balanced slice), on ``device``."""
    return split_on(ds, data.stratified_indices(ds.y_train, cfg.train_per_class, cfg.seed), device)


def augment(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop after zero-padding by ``pad`` and random horizontal flip of a uint8 NCHW batch, drawn from
    ``generator`` on the batch's device and applied with one gather.

    The draws (two ``randint`` and one ``rand`` of the batch size, in this order) and the result are those of
    the host loop's :func:`earlyexit.core.data.augment` for the same generator state.
    """
    n, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    cols = dx[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h, device=dev)
    index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return F.pad(x, (pad, pad, pad, pad)).flatten(2).gather(2, index).view(n, c, h, w)


def epoch(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    split: Split,
    cfg: training.TrainConfig,
    number: int,
    loss_weights: tuple[float, ...],
    precision: str,
    bar: tqdm | None = None,
) -> float:
    """One seeded epoch of Eq. (5) on ``split``, on its device (:func:`.sgd.epoch`); returns the mean loss.

    The order, augmentation and dropout draw from ``cfg.seed`` and the epoch ``number`` on the device. In a
    process group of ``world`` processes, each draws the whole global batch of ``cfg.batch_size`` and trains
    on its rows ``rank::world``; DDP averages the gradients, which is the gradient of the global batch.
    """
    dev = split.x.device
    rank, world = rank_and_world()
    seed = training._epoch_seed(cfg, number)
    gen = torch.Generator(dev).manual_seed(seed)
    torch.manual_seed(seed)
    order = split.rows[torch.randperm(len(split.rows), generator=gen, device=dev)]

    def loss_of(batch: Tensor) -> Tensor:
        x = augment(split.x[batch], gen) if training.AUGMENTED[split.dataset] else split.x[batch]
        x = split.standardised(x[rank::world]).contiguous(memory_format=torch.channels_last)
        with training._autocast(dev, precision):
            return training.multi_exit_loss(net(x), split.y[batch][rank::world], loss_weights)

    lr = lambda t: training.learning_rate(cfg, number + t)  # noqa: E731
    return sgd.epoch(net, opt, order, cfg.batch_size, loss_of, lr=lr, bar=bar)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` under ``torchrun`` on GPUs, else :func:`hardware.device`."""
    dev = hardware.device()
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if dev.type == "cuda" else dev


def _mean_over_processes(value: float, dev: torch.device) -> float:
    _, world = rank_and_world()
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.item() / world


def _any_process(flag: bool, dev: torch.device) -> bool:
    _, world = rank_and_world()
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


#: ``torch.compile`` modes a run may ask for: Inductor's kernels; and those replayed as CUDA graphs, which
#: removes the launch overhead that bounds small networks on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def _prepared(model: MultiExitNet, dev: torch.device, compile_mode: str | None) -> nn.Module:
    """The module that trains ``model``: wrapped in DDP inside a process group, compiled in ``compile_mode``."""
    net: nn.Module = model
    if rank_and_world()[1] > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if compile_mode is None:
        return net
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)} or None, got {compile_mode!r}")
    return torch.compile(net, mode=compile_mode, dynamic=False)


def device_name(dev: torch.device) -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def train(
    model: MultiExitNet,
    ds: data.Dataset,
    cfg: training.TrainConfig,
    checkpoint: Path,
    code_sha256: str,
    *,
    device: torch.device | None = None,
    compile_mode: str | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> list[dict]:
    """Train ``model`` on ``ds`` with ``cfg`` on ``device`` (default: :func:`local_device`), resuming from
    ``checkpoint`` as :func:`.training.train` does; the first process writes it after every epoch.

    Inside a process group (``torchrun``) every process trains its share of each batch (:func:`epoch`); on
    GPUs the BatchNorm layers are synchronised. Stops with :class:`.budget.BudgetSpent` at an epoch boundary when the
    time budget would not cover another epoch. Returns the history: ``{"epoch", "loss", "seconds",
    "precision", "device", "processes", "compiled"}`` per epoch.
    """
    dev = device or local_device()
    rank, world = rank_and_world()
    precision = hardware.resolve_precision(cfg.precision, dev)
    if world > 1 and dev.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    made_with = {"config": asdict(cfg), "code_sha256": code_sha256, "data_sha256": ds.sha256}
    checkpoint = Path(checkpoint)
    if fresh and rank == 0:
        checkpoint.unlink(missing_ok=True)
    if world > 1:
        dist.barrier()
    history = training._resume(checkpoint, model, opt, dev, made_with) if checkpoint.exists() else []
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    split, net = training_split(ds, cfg, dev), _prepared(model, dev, compile_mode)
    steps = math.ceil(len(split.rows) / cfg.batch_size)
    desc = f"train {device_name(dev)} ({precision}{f', {world} processes' if world > 1 else ''})"
    with tqdm(
        total=cfg.epochs * steps, initial=len(history) * steps, disable=not progress or rank != 0, desc=desc
    ) as bar:
        for number in range(len(history), cfg.epochs):
            start = time.perf_counter()
            loss = epoch(net, opt, split, cfg, number, model.loss_weights, precision, bar)
            history.append(
                {
                    "epoch": number + 1,
                    "loss": _mean_over_processes(loss, dev),
                    "seconds": time.perf_counter() - start,
                    "precision": precision,
                    "device": device_name(dev),
                    "processes": world,
                    "compiled": compile_mode,
                }
            )
            if rank == 0:
                state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": history, **made_with}
                files.atomic_write(checkpoint, lambda f: torch.save(state, f))
            if number + 1 < cfg.epochs and _any_process(budget.exhausted(history[-1]["seconds"]), dev):
                raise budget.stop(checkpoint, number + 1, cfg.epochs)
    return history


def _profiles(model: MultiExitNet, ds: data.Dataset, cfg: training.TrainConfig, params: dict, progress: bool) -> dict:
    """The CS-profiles of the test and training splits (and the ET-profile of Paper B's models), as
    :func:`.training.train_and_profile` writes them."""
    arrays = {}
    for split, x, y, per_class in (
        ("test", ds.x_test, ds.y_test, cfg.test_per_class),
        ("train", ds.x_train, ds.y_train, cfg.train_per_class),
    ):
        idx = data.stratified_indices(y, per_class, cfg.seed)
        arrays |= artifacts.cs_profile(training.predict(model, x[idx], ds.name, progress=progress), y[idx], split)
        if split == "test" and "et_samples" in params:
            et = measure_et_profile(model.cpu(), x[idx], ds.name, samples=params["et_samples"])
            arrays |= {"et_tc": et["tc"], "et_tb": et["tb"]}
    return arrays


def train_and_profile(
    model_name: str,
    dataset: str,
    profile: str,
    artifact_root: str | Path,
    data_dir: str | None = None,
    download: bool | None = None,
    progress: bool = True,
    force: bool = False,
    *,
    compile_mode: str | None = None,
    **overrides,
) -> artifacts.Artifact | None:
    """The training stage on the device-resident loop: train (or resume) one model, then (first process
    only; the others return None) write its artifact as :func:`.training.train_and_profile` does.

    Skips the work while the artifact is current; ``force`` retrains from scratch; a checkpoint of other
    parameters, code or data is discarded, saying so. ``compile_mode`` (one of :data:`COMPILE_MODES`) trains
    the network ``torch.compile``-d (the same computation, fused differently; faster on a GPU).
    """
    cfg = training.profile_config(profile, model_name, **overrides)
    params = training.stage_params(model_name, dataset, profile, **overrides)
    ds = data.load(dataset, data_dir, download)
    directory = artifacts.run_dir(artifact_root, profile, model_name, dataset)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.read(directory, params, ds.sha256)
    model = build_model(model_name, dataset, seed=cfg.seed)
    checkpoint, code = directory / "checkpoint.pt", provenance.code_fingerprint(params)
    run = lambda fresh: train(  # noqa: E731
        model, ds, cfg, checkpoint, code, compile_mode=compile_mode, progress=progress, fresh=fresh
    )
    try:
        history = run(force)
    except training.StaleCheckpointError as err:
        print(f"{err}: discarding it, training from scratch", flush=True)
        model = build_model(model_name, dataset, seed=cfg.seed)
        history = run(True)
    if rank_and_world()[0] != 0:
        return None
    return training.write_artifact(directory, _profiles(model, ds, cfg, params, progress), params, ds, history)
