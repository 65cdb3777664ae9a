"""One training loop for multi-exit networks (Paper A Eq. (5)), with the papers' recipes, profiles and resume.

Each paper has its recipe (:data:`RECIPES`), chosen by the model (:func:`recipe`):

* Paper A §V-A (AlexNet, VGG16-BN, ResNet44): SGD (momentum 0.9), batch 128, weight decay 5e-4,
  learning rate cosine-annealed from 0.1 to 1e-4 at epoch 200, 220 epochs.
* Paper B §VI-A (MSDNet): SGD with momentum 0.9 and a constant learning rate of 0.001, 300 epochs.
  Batch size and weight decay are not given; we take MSDNet's own (64 and 1e-4).

Profiles scale a recipe's epochs, never the architecture:

* ``paper``: the recipe exactly, full datasets.
* ``cpu``: the same recipe on the full datasets, epochs scaled to a 2-core CPU (Paper A's annealing
  ends at 90 % of the epochs, as 200/220 does).
* ``smoke``: a class-balanced slice (10 training / 5 test images per class) and one epoch, for CI.

Precision is a parameter like the others: ``"auto"`` (the default) trains in bf16 autocast where the
hardware has native bf16 and in fp32 elsewhere (:mod:`.hardware`); ``"bf16"``/``"fp32"`` force one. The
precision each epoch ran in is recorded in the history and in the artifact's machine record.

Runs are seeded per epoch (shuffle, augmentation and dropout draw from ``seed`` and the epoch
number), so a run resumed from its end-of-epoch checkpoint reproduces an uninterrupted run. A
checkpoint records the parameters, code version and data checksum it was made with and is resumed
only when all three match.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core import data, files, hardware
from ..core.fingerprint import bookkeeping, fingerprint, input_check
from ..nets.et_profile import measure_et_profile
from ..nets.models import PAPER_B, build_model
from ..nets.multiexit import MultiExitNet
from . import artifacts, budget, provenance, sgd


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the ``params`` recorded with every artifact)."""

    epochs: int
    anneal_epochs: int
    batch_size: int = 128
    lr: float = 0.1
    lr_end: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_per_class: int | None = None
    test_per_class: int | None = None
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        for name in ("epochs", "anneal_epochs", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("train_per_class", "test_per_class"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, "or None for the whole split")
        _check_int("seed", self.seed, 0)
        for name, low, high in (
            ("lr", 0.0, math.inf),
            ("lr_end", 0.0, math.inf),
            ("momentum", 0.0, 1.0),
            ("weight_decay", 0.0, math.inf),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
                raise ValueError(f"training parameter {name!r} must be a number in [{low}, {high}), got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"training parameter 'lr' must be positive, got {self.lr!r}")
        hardware.check_precision(self.precision)


def _check_int(name: str, value, low: int, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(
            f"training parameter {name!r} must be an integer >= {low}{' ' + alternative if alternative else ''}, "
            f"got {value!r} ({type(value).__name__})"
        )


#: ``smoke`` trains in fp32 on every machine, so that CI computes the same networks on every CPU kind.
_SMOKE = {
    "epochs": 1,
    "anneal_epochs": 1,
    "train_per_class": 10,
    "test_per_class": 5,
    "batch_size": 64,
    "precision": "fp32",
}
_PAPER_B = TrainConfig(epochs=300, anneal_epochs=300, batch_size=64, lr=1e-3, lr_end=1e-3, weight_decay=1e-4)

#: Hyper-parameters by recipe (the paper whose models are trained) and profile.
RECIPES: dict[str, dict[str, TrainConfig]] = {
    "A": {
        "paper": TrainConfig(epochs=220, anneal_epochs=200),
        "cpu": TrainConfig(epochs=25, anneal_epochs=23),
        "smoke": TrainConfig(**_SMOKE),
    },
    "B": {
        "paper": _PAPER_B,
        "cpu": replace(_PAPER_B, epochs=4, anneal_epochs=4),
        "smoke": replace(_PAPER_B, **_SMOKE),
    },
}
PROFILES = tuple(RECIPES["A"])


def recipe(model_name: str) -> str:
    """Which paper's recipe trains ``model_name``: "B" for Paper B's model zoo, else "A"."""
    return "B" if model_name in PAPER_B else "A"


def profile_config(profile: str, model_name: str, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of ``profile`` for ``model_name``, with ``overrides`` (e.g. ``epochs=30``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    base = RECIPES[recipe(model_name)][profile]
    fields = set(asdict(base))
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown training parameter(s) {sorted(unknown)}; valid ones: {sorted(fields)}")
    return replace(base, **overrides)


def learning_rate(cfg: TrainConfig, epoch: float) -> float:
    """Cosine annealing from ``lr`` to ``lr_end`` at ``anneal_epochs``, then constant (§V-A)."""
    progress = min(epoch / cfg.anneal_epochs, 1.0)
    return cfg.lr_end + 0.5 * (cfg.lr - cfg.lr_end) * (1.0 + math.cos(math.pi * progress))


def multi_exit_loss(logits: list[Tensor], target: Tensor, weights: tuple[float, ...]) -> Tensor:
    """Weighted sum of the exits' cross-entropies, Paper A Eq. (5)."""
    return sum(w * F.cross_entropy(z.float(), target) for w, z in zip(weights, logits))


def _autocast(dev: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for a resolved ``precision`` of ``"bf16"``; nothing for ``"fp32"``."""
    return torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    return cfg.seed * 1_000_003 + epoch


#: Whether training augments a dataset: CIFAR with the usual random crop and flip (:func:`data.augment`);
#: MNIST not, as BranchyNet trains it (a mirrored digit is another shape).
AUGMENTED = {"cifar10": True, "cifar100": True, "mnist": False}


def augmented(x: Tensor, dataset: str, generator: torch.Generator) -> Tensor:
    """A training batch of ``dataset`` as the model sees it: augmented by :func:`data.augment` or as is."""
    return data.augment(x, generator) if AUGMENTED[dataset] else x


def image_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    images: Tensor,
    dataset: str,
    rows: Tensor,
    cfg: TrainConfig,
    epoch: int,
    loss: Callable[[Tensor, Tensor], Tensor],
    bar: tqdm | None = None,
) -> float:
    """One seeded epoch of SGD (:func:`.sgd.epoch`) on the raw uint8 ``images[rows]`` of ``dataset``, with
    ``cfg``'s learning-rate schedule; returns the mean loss. Used for the multi-exit networks and Paper
    A's Exit Predictor.

    ``loss(x, batch)`` is the loss of the normalised, augmented images ``x`` of the rows ``batch``. The
    epoch's shuffle, augmentation and dropout draw from ``cfg.seed`` and ``epoch`` alone, so a run resumed
    at an epoch boundary reproduces an uninterrupted one.
    """
    gen = torch.Generator().manual_seed(_epoch_seed(cfg, epoch))
    torch.manual_seed(_epoch_seed(cfg, epoch))
    order = rows[torch.randperm(len(rows), generator=gen)]

    def loss_of(batch: Tensor) -> Tensor:
        return loss(data.normalize(augmented(images[batch], dataset, gen), dataset), batch)

    return sgd.epoch(model, opt, order, cfg.batch_size, loss_of, lr=lambda t: learning_rate(cfg, epoch + t), bar=bar)


def _train_epoch(
    model: MultiExitNet,
    opt: torch.optim.Optimizer,
    ds: data.Dataset,
    idx: Tensor,
    cfg: TrainConfig,
    epoch: int,
    dev: torch.device,
    precision: str,
    bar: tqdm,
) -> float:
    """One epoch of Eq. (5) on the training samples ``idx`` (:func:`image_epoch`); returns the mean loss."""

    def loss(x: Tensor, batch: Tensor) -> Tensor:
        with _autocast(dev, precision):
            logits = model(x.to(dev, memory_format=torch.channels_last))
            return multi_exit_loss(logits, ds.y_train[batch].to(dev), model.loss_weights)

    return image_epoch(model, opt, ds.x_train, ds.name, idx, cfg, epoch, loss, bar)


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed; the message names the file and what to do."""


class StaleCheckpointError(CheckpointError):
    """A checkpoint was made with other parameters, code or data than the run asking for it."""


#: What watches the epochs of runs on this loop (:func:`observing`): callables given each epoch's checkpoint state.
_OBSERVERS: list[Callable[[dict], None]] = []


@bookkeeping
@contextlib.contextmanager
def observing(observer: Callable[[dict], None]) -> Iterator[None]:
    """Within the block, call ``observer(state)`` after every training epoch of :func:`train`, before the
    checkpoint ``state`` (model and optimizer state, ``history``, config) is written; it may add fields to the
    epoch's entry, ``state["history"][-1]``, which the checkpoint and then the artifact's manifest keep
    (:func:`test_accuracy_observer` adds the test accuracy). An observer reads and reports, never changes what
    training computes: observed or not, a run gives the same weights, and its artifact the same fingerprint."""
    _OBSERVERS.append(observer)
    try:
        yield
    finally:
        _OBSERVERS.remove(observer)


@bookkeeping
def test_accuracy_observer(model_name: str, ds: data.Dataset, cfg: TrainConfig) -> Callable[[dict], None]:
    """An observer (:func:`observing`) that adds ``test_accuracy``, every exit's accuracy (%) on the job's test
    rows, to each epoch's history: the learning curve that issue 35's stopping rule reads. It predicts with a
    copy of the network built aside (torch's random state kept), in fp32."""
    rows = data.stratified_indices(ds.y_test, cfg.test_per_class, cfg.seed)
    x, y = ds.x_test[rows], ds.y_test[rows]

    def observe(state: dict) -> None:
        with torch.random.fork_rng(devices=[]):
            model = build_model(model_name, ds.name)
        model.load_state_dict(state["model"])
        right = predict(model, x, ds.name, progress=False).argmax(-1) == y[:, None]
        state["history"][-1]["test_accuracy"] = (100 * right.double().mean(0)).tolist()

    return observe


#: The CPU use sampled as this process last wrote each checkpoint (by path): where the next epoch's window starts.
_WRITTEN: dict[Path, hardware.CpuUse | None] = {}


@bookkeeping
def _record_host(path: Path, epoch: dict) -> None:
    """Add to an ``epoch``'s history entry the CPU kind it trained on (``kind``, :func:`hardware.cpu_kind`; on a
    CPU only) and, when this process wrote the epoch before it to ``path``, the share of the machine that other
    processes kept busy meanwhile (``others_share``, :func:`hardware.others_share`): what its ``seconds`` mean
    beside the training benchmark (issue 35: every run records the CPU kind it trained in)."""
    if hardware.device().type == "cpu":
        epoch["kind"] = hardware.cpu_kind()
    before, now = _WRITTEN.get(path), hardware.cpu_use()
    if before is not None and now is not None:
        epoch["others_share"] = round(hardware.others_share(before, now), 3)


@bookkeeping
def _save_checkpoint(path: Path, state: dict) -> None:
    """Write the checkpoint, after :func:`_record_host` and the observers of :func:`observing` have seen it; then
    stop with :class:`.budget.BudgetSpent` if epochs remain that the time budget would not cover (a budget decides
    when a run stops, never what it computes). The observers' time is recorded as the epoch's ``observe_seconds``
    and counted with its training time against the budget."""
    last = state["history"][-1]
    _record_host(path, last)
    start = time.perf_counter()
    for observer in _OBSERVERS:
        observer(state)
    if _OBSERVERS:
        last["observe_seconds"] = time.perf_counter() - start
    files.atomic_write(path, lambda f: torch.save(state, f))
    _WRITTEN[path] = hardware.cpu_use()
    done, epochs = len(state["history"]), state["config"]["epochs"]
    if done < epochs and budget.exhausted(last["seconds"] + last.get("observe_seconds", 0.0)):
        raise budget.stop(path, done, epochs)


def _resume(
    path: Path, model: MultiExitNet, opt: torch.optim.Optimizer, dev: torch.device, made_with: dict
) -> list[dict]:
    """Load the checkpoint ``path`` into ``model`` and ``opt``; returns its history.

    Refused (:class:`StaleCheckpointError`) unless its config, code and data hashes equal ``made_with``.
    """
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); delete it to train from scratch"
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "history", "config"} <= set(state):
        raise CheckpointError(f"{path} is not a training checkpoint of earlyexit; delete it to train from scratch")
    differ = [key for key, value in made_with.items() if state.get(key) != value]
    if differ:
        what = {
            "config": f"other parameters {state['config']}",
            "code_sha256": "other code",
            "data_sha256": "other data",
        }
        raise StaleCheckpointError(
            f"checkpoint {path} was made with {' and '.join(what[k] for k in differ)}; "
            "delete it (or pass fresh=True) to train from scratch"
        )
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {path} holds another network's weights "
            f"({str(err).splitlines()[0]}); delete it to train from scratch"
        ) from None
    return state["history"]


def train(
    model: MultiExitNet,
    ds: data.Dataset,
    cfg: TrainConfig,
    checkpoint: Path,
    progress: bool = True,
    *,
    code_sha256: str | None = None,
    fresh: bool = False,
) -> list[dict]:
    """Train ``model`` on ``ds`` with ``cfg``, resuming from ``checkpoint`` if it exists (unless ``fresh``).

    The checkpoint (model, optimizer, per-epoch history, config, ``code_sha256`` -- by default the
    fingerprint of this loop, :func:`earlyexit.core.fingerprint.fingerprint` -- and the data checksum) is rewritten atomically after every epoch;
    re-running after an interruption continues from the last finished epoch, if parameters, code and
    data are the same (else :class:`StaleCheckpointError`). Returns the history: one ``{"epoch",
    "loss", "seconds", "precision"}`` per epoch, with ``kind`` and ``others_share`` (:func:`_record_host`).
    """
    dev = hardware.device()
    precision = hardware.resolve_precision(cfg.precision, dev)
    model.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    made_with = {"config": asdict(cfg), "code_sha256": code_sha256 or fingerprint(train), "data_sha256": ds.sha256}
    checkpoint = Path(checkpoint)
    if fresh:
        checkpoint.unlink(missing_ok=True)
    history = _resume(checkpoint, model, opt, dev, made_with) if checkpoint.exists() else []
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    idx = data.stratified_indices(ds.y_train, cfg.train_per_class, cfg.seed)
    steps = math.ceil(len(idx) / cfg.batch_size)
    with tqdm(
        total=cfg.epochs * steps, initial=len(history) * steps, disable=not progress, desc=f"train ({precision})"
    ) as bar:
        for epoch in range(len(history), cfg.epochs):
            start = time.perf_counter()
            loss = _train_epoch(model, opt, ds, idx, cfg, epoch, dev, precision, bar)
            history.append(
                {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - start, "precision": precision}
            )
            _save_checkpoint(
                checkpoint,
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": history, **made_with},
            )
    return history


def precision_used(history: list[dict]) -> str:
    """The precision of a run from its history: ``bf16``, ``fp32``, or ``bf16+fp32`` if resumed on another kind."""
    return "+".join(sorted({h.get("precision", "bf16") for h in history})) or "none"


#: Images per batch of :func:`predict`. Measured on the AVX2-only EPYC (2 cores, 500 CIFAR-100 images, images
#: per second at 64 against 500): ResNet44 601 / 414, VGG16-BN 191 / 202, ResNet-50 (CIFAR stem) 38 / 27,
#: MSDNet-40 94 / 71; the fastest batch sizes were 64, 128, 16 and 64, and 64 is within 14 % of each
#: (``benchmarks/bench_predict.py`` measures it again on any machine).
PREDICT_BATCH = 64


@torch.no_grad()
def predict(
    model: MultiExitNet, x: Tensor, name: str, batch_size: int = PREDICT_BATCH, progress: bool = True
) -> Tensor:
    """Softmax probabilities of every exit, shape (samples, exits, classes), computed in float32.

    The batch size changes the speed, not the probabilities (``benchmarks/bench_predict.py`` measures
    both: the same bits at every batch size on the CPUs this project runs on)."""
    dev = hardware.device()
    model.to(dev, memory_format=torch.channels_last).eval()
    out = []
    for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc="predict"):
        batch = data.normalize(x[start : start + batch_size], name).to(dev, memory_format=torch.channels_last)
        out.append(torch.stack([z.float().softmax(-1) for z in model(batch)], 1).cpu())
    return torch.cat(out)


@bookkeeping
def write_artifact(
    directory: Path, arrays: dict[str, np.ndarray], params: dict, ds: data.Dataset, history: list[dict]
) -> artifacts.Artifact:
    """Write a stage's artifact (:func:`artifacts.write`): ``arrays`` with the record of the run whose per-epoch
    ``history`` made them (wall time, epochs, test accuracy of every exit, machine and precision); returns it
    read back."""
    artifacts.write(
        directory,
        arrays,
        params=params,
        data_sha256=ds.sha256,
        wall_time_s=sum(h["seconds"] for h in history),
        epochs=len(history),
        history=history,
        test_accuracy=arrays["test_correct"].mean(0).tolist(),
        machine=hardware.machine_record(precision_used(history)),
    )
    return artifacts.read(directory, params, ds.sha256)


#: Test samples timed one at a time for the ET-profile of Paper B's models (§IV-B1; Fig. 4 uses 10,000).
ET_SAMPLES = {"paper": 10_000, "cpu": 1_000, "smoke": 20}


def stage_params(model_name: str, dataset: str, profile: str, **overrides) -> dict:
    """The parameters a training stage's artifact records and must match to be current."""
    params = {
        "model": model_name,
        "dataset": dataset,
        "profile": profile,
        **asdict(profile_config(profile, model_name, **overrides)),
    }
    if recipe(model_name) == "B":
        params["et_samples"] = ET_SAMPLES[profile]
    return params


#: Recipe tables whose values an artifact records in its parameters (and is checked against there): opaque
#: to its code fingerprint, so that changing one profile's recipe stales no artifact of another profile.
RECORDED = (RECIPES, ET_SAMPLES)


def load_artifact(artifact_root: str | Path, profile: str, model_name: str, dataset: str) -> artifacts.Artifact:
    """The artifact of one training-stage job, refused if missing, corrupt or stale."""
    return artifacts.read(
        artifacts.run_dir(artifact_root, profile, model_name, dataset), stage_params(model_name, dataset, profile)
    )


#: The profiles trained by the device-resident loop (:mod:`.resident`, :mod:`.train_stage`), not by this one.
RESIDENT_PROFILES = ("paper",)


@input_check
def _host_profile(profile: str) -> None:
    """Refuse a profile that the device-resident loop trains: its artifacts carry that loop's fingerprint."""
    if profile in RESIDENT_PROFILES:
        raise ValueError(
            f"the {profile} profile trains on the device-resident loop: call "
            "earlyexit.engine.train_stage.train_and_profile, which picks the loop of each profile"
        )


def train_and_profile(
    model_name: str,
    dataset: str,
    profile: str,
    artifact_root: str | Path,
    data_dir: str | None = None,
    download: bool | None = None,
    progress: bool = True,
    force: bool = False,
    **overrides,
) -> artifacts.Artifact:
    """The training stage: train (or resume) one model and write its artifact.

    The artifact holds the CS-profile (every exit's confidence, prediction and correctness) of the
    test and training splits; for Paper B's models also the ET-profile (``et_tc``, ``et_tb``: time of
    every conv part and branch, per test sample, batch 1 on this machine's CPU, §IV-B1).
    Skips the work when the artifact is already current for these parameters, code and data;
    ``force`` retrains from scratch. A checkpoint of other parameters, code or data is discarded,
    saying so. The ``smoke`` profile deletes its checkpoint once the artifact is written.
    """
    _host_profile(profile)
    cfg = profile_config(profile, model_name, **overrides)
    params = stage_params(model_name, dataset, profile, **overrides)
    ds = data.load(dataset, data_dir, download)
    directory = artifacts.run_dir(artifact_root, profile, model_name, dataset)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.read(directory, params, ds.sha256)
    model = build_model(model_name, dataset, seed=cfg.seed)
    checkpoint, code = directory / "checkpoint.pt", provenance.code_fingerprint(params)
    try:
        history = train(model, ds, cfg, checkpoint, progress, code_sha256=code, fresh=force)
    except StaleCheckpointError as err:
        print(f"{err}: discarding it, training from scratch", flush=True)
        history = train(model, ds, cfg, checkpoint, progress, code_sha256=code, fresh=True)
    arrays = {}
    for split, x, y, per_class in (
        ("test", ds.x_test, ds.y_test, cfg.test_per_class),
        ("train", ds.x_train, ds.y_train, cfg.train_per_class),
    ):
        idx = data.stratified_indices(y, per_class, cfg.seed)
        arrays |= artifacts.cs_profile(predict(model, x[idx], ds.name, progress=progress), y[idx], split)
        if split == "test" and "et_samples" in params:
            et = measure_et_profile(model.cpu(), x[idx], ds.name, samples=params["et_samples"])
            arrays |= {"et_tc": et["tc"], "et_tb": et["tb"]}
    run = write_artifact(directory, arrays, params, ds, history)
    if profile == "smoke":
        checkpoint.unlink(missing_ok=True)
    return run
