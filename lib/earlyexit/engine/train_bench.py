"""Training throughput of every network of both papers on this machine, to plan training budgets.

:func:`throughput` times training steps (forward, Eq. (5) loss, backward, SGD step, channels-last,
the recipe's batch size) and prediction (fp32, batch 500) on real CIFAR images, in each precision;
:func:`job_plan` turns the rates into the predicted wall time of every ``cpu``-profile training job
of ``pipeline.toml`` in the precision ``"auto"`` picks here. bf16 on a CPU without native bf16 is
emulated and far slower; it is timed on a smaller batch (the per-image cost scales linearly there)
so that the benchmark stays short, and marked ``emulated``.
"""

from __future__ import annotations

import io
import itertools
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import data, hardware
from ..nets import einet_models
from ..nets.models import BUILDERS, build_model
from ..nets.multiexit import MultiExitNet
from . import training
from .stage import job_fields
from .train_stage import STAGE

EPOCH_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "mnist": 60_000}
PROFILE_IMAGES = {"cifar10": 60_000, "cifar100": 60_000, "mnist": 70_000}  # test + training split predicted
#: The test split, which the host loop predicts once more after every epoch (training.test_accuracy_observer)
TEST_IMAGES = {name: PROFILE_IMAGES[name] - EPOCH_IMAGES[name] for name in EPOCH_IMAGES}
#: Batch for timing emulated bf16 (per-image cost scales linearly there; keeps the benchmark short).
EMULATED_BATCH = 16


def _resnet50_imagenet_stem(dataset: str) -> MultiExitNet:
    """Fine-grained ResNet-50 with torchvision's ImageNet stem (7x7 stride-2 conv + max-pool)."""
    classes, (size, _, channels), _, _ = data.SPECS[dataset]
    return einet_models.resnet50_finegrained(classes, channels, size, stem="imagenet")


#: Variants timed beside the zoo but trained by no job: name -> (recipe's model, builder(dataset)).
VARIANTS: dict[str, tuple[str, Callable[[str], MultiExitNet]]] = {
    "resnet50_finegrained_imagenet_stem": ("resnet50_finegrained", _resnet50_imagenet_stem),
}


def _build(name: str, dataset: str) -> tuple[str, MultiExitNet]:
    """The recipe's model name and the network ``name`` (a model of either paper or a :data:`VARIANTS` key)."""
    if name in VARIANTS:
        recipe, builder = VARIANTS[name]
        torch.manual_seed(0)
        return recipe, builder(dataset)
    return name, build_model(name, dataset, seed=0)


def _step_seconds(model, x: torch.Tensor, y: torch.Tensor, precision: str, steps: int) -> float:
    """Median seconds of one training step on the batch ``(x, y)``, after one untimed step."""
    dev = torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with training._autocast(dev, precision):
            loss = training.multi_exit_loss(model(x), y, model.loss_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


@torch.no_grad()
def _predict_seconds(model, x: torch.Tensor) -> float:
    model.eval()
    model(x)
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def throughput(
    models: list[str] | None = None,
    dataset: str = "cifar100",
    steps: int = 3,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    progress: bool = True,
) -> pd.DataFrame:
    """Training and prediction rates (images/s) of ``models`` (default: all) on this CPU, per precision.

    ``models`` may name :data:`VARIANTS` too (timed with their recipe model's batch size).

    Columns: model, precision, emulated (bf16 without native support), batch, train_img_s,
    epoch_min (one epoch of the dataset's training split), predict_img_s (fp32, batch 500) and
    single_ms (one image at batch 1, fp32: what an ET-profile sample costs).
    """
    ds = data.load(dataset)
    cpu = hardware.cpu_info()
    rows = []
    for name in models or list(BUILDERS):
        recipe, model = _build(name, dataset)
        cfg = training.profile_config("cpu", recipe)
        model = model.to(memory_format=torch.channels_last)
        x_eval = data.normalize(ds.x_test[:500], dataset).contiguous(memory_format=torch.channels_last)
        predict_rate = 500 / _predict_seconds(model, x_eval)
        single_ms = 1e3 * min(_predict_seconds(model, x_eval[:1]) for _ in range(5))
        for precision in precisions:
            emulated = precision == "bf16" and not cpu.native_bf16
            batch = EMULATED_BATCH if emulated else cfg.batch_size
            x = data.normalize(ds.x_train[:batch], dataset).contiguous(memory_format=torch.channels_last)
            seconds = _step_seconds(model.train(), x, ds.y_train[:batch], precision, 1 if emulated else steps)
            rate = batch / seconds
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "emulated": emulated,
                    "batch": batch,
                    "train_img_s": rate,
                    "epoch_min": EPOCH_IMAGES[dataset] / rate / 60,
                    "predict_img_s": predict_rate,
                    "single_ms": single_ms,
                }
            )
            if progress:
                print(
                    f"{name:15s} {precision}{' (emulated)' if emulated else '':11s} {rate:8.1f} img/s  "
                    f"{EPOCH_IMAGES[dataset] / rate / 60:7.1f} min/epoch",
                    flush=True,
                )
    df = pd.DataFrame(rows)
    df.attrs = {
        "cpu": cpu.model,
        "native_bf16": cpu.native_bf16,
        "threads": torch.get_num_threads(),
        "dataset": dataset,
    }
    return df


def job_plan(
    rates: pd.DataFrame, entries: list[tuple[str, str, dict]], profile: str = "cpu", auto: str | None = None
) -> pd.DataFrame:
    """Predicted wall time of each training job ``(model, dataset, overrides)`` of ``profile`` at ``rates``.

    Uses the rate of the precision ``"auto"`` picks (``auto``; by default the one it picks on this machine) or
    the job's forced one: epochs x (epoch time + the learning curve's prediction of the test split, in fp32, on
    the host loop's profiles) + prediction of both splits (+ the ET-profile's samples, timed one at a time, for
    Paper B's models).
    """
    auto = auto or hardware.resolve_precision("auto", torch.device("cpu"))
    rows = []
    for model, dataset, overrides in entries:
        cfg = training.profile_config(profile, model, **overrides)
        precision = auto if cfg.precision == "auto" else cfg.precision
        rate = rates.set_index(["model", "precision"]).loc[(model, precision)]
        train_min = cfg.epochs * EPOCH_IMAGES[dataset] / rate["train_img_s"] / 60
        observe_min = 0.0
        if profile not in training.RESIDENT_PROFILES:  # the host loop's learning curve
            observe_min = cfg.epochs * TEST_IMAGES[dataset] / rate["predict_img_s"] / 60
        predict_min = PROFILE_IMAGES[dataset] / rate["predict_img_s"] / 60
        et_samples = training.stage_params(model, dataset, profile, **overrides).get("et_samples", 0)
        et_min = et_samples * rate["single_ms"] / 1e3 / 60
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "epochs": cfg.epochs,
                "precision": precision,
                "train_min": train_min,
                "observe_min": observe_min,
                "predict_min": predict_min + et_min,
                "total_h": (train_min + observe_min + predict_min + et_min) / 60,
            }
        )
    return pd.DataFrame(rows)


#: A saved benchmark output's name: ``training-[<set>-]<kind>.txt``, the set naming which models it timed (``zoo``)
#: and the kind the CPU it ran on (:func:`hardware.cpu_kind`, which starts with the vendor).
_SAVED = re.compile(r"training-(?:.+?-)??(?P<kind>(?:amd|intel|arm|apple)-.*-\d+core)\.txt")


def kind_of(path: Path) -> str:
    """The CPU kind a saved benchmark output (``benchmarks/results/training-*.txt``) was measured on, from its name."""
    match = _SAVED.fullmatch(path.name)
    if match is None:
        raise ValueError(
            f"{path.name}: a saved training benchmark is named training-[<set>-]<cpu kind>.txt, the kind as "
            "earlyexit.core.hardware.cpu_kind() prints it (e.g. training-zoo-amd-epyc-avx512bf16-2core.txt)"
        )
    return match["kind"]


def read_rates(path: Path) -> tuple[str, pd.DataFrame]:
    """The machine line and the rates table (:func:`throughput`'s columns) of a saved benchmark output
    (``benchmarks/results/training-*.txt``, what ``benchmarks/bench_training.py`` prints)."""
    lines = path.read_text().splitlines()
    machine = next((line for line in lines if "native bf16" in line), "machine not recorded")
    start = next((i for i, line in enumerate(lines) if line.split()[:2] == ["model", "precision"]), None)
    if start is None:
        raise ValueError(f"{path} holds no rates table (a header line 'model precision emulated ...')")
    block = list(itertools.takewhile(str.strip, lines[start:]))
    return machine, pd.read_csv(io.StringIO("\n".join(block)), sep=r"\s+")


def auto_precision(kind: str) -> str:
    """The precision ``"auto"`` trains in on a CPU of ``kind`` (:func:`hardware.fast_bf16_kind`)."""
    return "bf16" if hardware.fast_bf16_kind(kind) else "fp32"


def rates_markdown(path: Path) -> str:
    """One saved benchmark output as a Markdown section: per model, training images per second in each
    precision and their ratio, minutes per epoch in the precision ``"auto"`` picks on that CPU kind, prediction
    rate and the batch-1 time of an ET-profile sample."""
    machine, rates = read_rates(path)
    auto = auto_precision(kind_of(path))
    rows = [
        "| model | batch | fp32 img/s | bf16 img/s | bf16 / fp32 | min/epoch (auto) | predict img/s | batch-1 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, part in rates.groupby("model", sort=False):
        by = part.set_index("precision")
        fp32, bf16 = by.train_img_s.get("fp32"), by.train_img_s.get("bf16")
        emulated = " (emulated)" if bool(by.emulated.get("bf16", False)) else ""
        cells = [
            model,
            by.batch.iloc[0],
            fp32 or "",
            f"{bf16}{emulated}" if bf16 else "",
            f"{bf16 / fp32:.2f}x" if fp32 and bf16 else "",
            by.epoch_min.get(auto, ""),
            part.predict_img_s.iloc[0],
            part.single_ms.iloc[0],
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    cpu = machine.split(";")[0]
    return f"**{path.name}**: {cpu}; precision 'auto' trains in {auto} on this kind\n\n" + "\n".join(rows)


def rates_by_kind(paths: list[Path]) -> dict[str, pd.DataFrame]:
    """The rates of every model measured on each CPU kind, over the saved outputs ``paths`` (in order: a model
    timed in two files of one kind keeps the first file's rates)."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        tables.setdefault(kind_of(path), []).append(read_rates(path)[1])
    return {
        kind: pd.concat(parts).drop_duplicates(["model", "precision"]).reset_index(drop=True)
        for kind, parts in tables.items()
    }


def read_tiers(path: Path) -> list[dict]:
    """The tiers of longer ``cpu`` training planned in ``path`` (``tiers.toml``): each ``{"title", "jobs"}``, a job
    ``{"model", "dataset", "overrides", "target"}`` checked as a training job of ``pipeline.toml`` (``target``:
    a :class:`Target` from the entry's ``target``, the last exit's test accuracy in %, and ``lead``, or None);
    a malformed file raises ValueError naming the entry."""
    try:
        tiers = tomllib.loads(path.read_text())["tiers"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as err:
        raise ValueError(f"{path}: cannot read its [[tiers]] ({type(err).__name__}: {err})") from None
    out = []
    for number, tier in enumerate(tiers, 1):
        jobs = []
        for entry in tier.get("jobs", []):
            try:
                job = job_fields(STAGE, "cpu", [entry["model"], entry["dataset"], entry.get("recipe", {})])
                target = _target(entry)
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}: tier {number}, job {entry!r}: {err}") from None
            jobs.append({**job, "target": target})
        out.append({"title": tier.get("title", f"tier {number}"), "jobs": jobs})
    return out


@dataclass(frozen=True)
class Target:
    """What stops a tier job early (issue 35): its last exit's test ``accuracy`` (%) and, where ``lead``, the
    last exit being the most accurate of all (Paper A's Fig. 10 offloads to the last exit: it must lead)."""

    accuracy: float
    lead: bool = False

    def met(self, exits: list[float]) -> bool:
        """Whether one epoch's test accuracies per exit (%, the last exit last) reach this target."""
        return exits[-1] >= self.accuracy and (not self.lead or exits[-1] >= max(exits))

    def __str__(self) -> str:
        return f"{self.accuracy:g} %" + (" and the most accurate exit" if self.lead else "")


def _target(entry: dict) -> Target | None:
    """The :class:`Target` of a tiers.toml job entry: ``target`` (%) and ``lead`` (bool, only with a target)."""
    accuracy, lead = entry.get("target"), entry.get("lead", False)
    if not isinstance(lead, bool):
        raise ValueError(f"lead must be true or false, not {lead!r}")
    if accuracy is None:
        if lead:
            raise ValueError("lead = true needs a target (the last exit's test accuracy, %)")
        return None
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
        raise ValueError(f"target must be a test accuracy in %, not {accuracy!r}")
    return Target(float(accuracy), lead)


def tier_targets(tiers: list[dict]) -> dict[tuple[str, str], Target | None]:
    """The target of every job of ``tiers`` (:func:`read_tiers`), by (model, dataset)."""
    return {(job["model"], job["dataset"]): job["target"] for tier in tiers for job in tier["jobs"]}


#: Issue 35's stopping rule: a network stops at its target (the last exit's test accuracy, %) or once it gains
#: less than ``MIN_GAIN_PP`` percentage points over ``WINDOW`` epochs.
WINDOW, MIN_GAIN_PP = 3, 0.3


def learning_verdict(history: list[dict], target: Target | None = None) -> str:
    """Issue 35's stopping rule on a run's learning curve (the ``test_accuracy`` per exit that
    :func:`training.test_accuracy_observer` records per epoch), at its last epoch, in words: its target reached
    (and when first), at a plateau, or still gaining."""
    exits = [h["test_accuracy"] for h in history if "test_accuracy" in h]
    if len(exits) < len(history) or not exits:
        return "no learning curve recorded"
    curve = [acc[-1] for acc in exits]
    last = f"last exit {curve[-1]:.2f} % after {len(curve)} epochs{_behind(exits[-1], target)}"
    if target is not None and target.met(exits[-1]):
        first = next(i for i, acc in enumerate(exits, 1) if target.met(acc))
        return f"target {target} reached ({last}; first at epoch {first})"
    if len(curve) <= WINDOW:
        return f"too few epochs to judge a plateau ({last})"
    gain = curve[-1] - curve[-1 - WINDOW]
    state = "plateau" if gain < MIN_GAIN_PP else "still gaining"
    return f"{state}: {gain:+.2f} pp over its last {WINDOW} epochs ({last})"


def _behind(exits: list[float], target: Target | None) -> str:
    """Where ``target`` asks the last exit to lead and it does not: which exit is ahead, in words."""
    best = int(np.argmax(exits))
    if target is None or not target.lead or exits[-1] >= exits[best]:
        return ""
    return f", behind exit {best + 1}'s {exits[best]:.2f} %"


def _hours(jobs: list[dict], rates: pd.DataFrame, kind: str) -> dict[tuple[str, str], float]:
    """Predicted hours of each of ``jobs`` whose model ``rates`` (of CPU kind ``kind``) measured, by (model, dataset)."""
    measured = [j for j in jobs if j["model"] in set(rates.model)]
    plan = job_plan(rates, [(j["model"], j["dataset"], j["overrides"]) for j in measured], "cpu", auto_precision(kind))
    return {(m, d): h for m, d, h in zip(plan.get("model", []), plan.get("dataset", []), plan.get("total_h", []))}


def _total(hours: dict[tuple[str, str], float], jobs: int) -> str:
    """A sum of :func:`_hours`, saying over how many of ``jobs`` it runs when some were not measured."""
    if not hours:
        return "not measured"
    return f"**{sum(hours.values()):.1f}**" + ("" if len(hours) == jobs else f" ({len(hours)} of {jobs} jobs)")


def _job_row(number: int, job: dict, hours: list[dict[tuple[str, str], float]]) -> str:
    """One job's row of :func:`tier_markdown`: its epochs, their share of the paper's, its target, its hours."""
    epochs = training.profile_config("cpu", job["model"], **job["overrides"]).epochs
    share = epochs / training.profile_config("paper", job["model"]).epochs
    target = "" if job["target"] is None else str(job["target"])
    key = (job["model"], job["dataset"])
    cells = [f"{h[key]:.1f}" if key in h else "not measured" for h in hours]
    return f"| {number} | {key[0]} / {key[1]} | {epochs} | {share:.0%} | {target} | " + " | ".join(cells) + " |"


def tier_markdown(tiers: list[dict], rates: dict[str, pd.DataFrame]) -> str:
    """The budget table of :func:`read_tiers`' plan: per job, its planned epochs and target and its predicted
    hours (:func:`job_plan`, in the precision ``"auto"`` picks there) on every CPU kind of ``rates``
    (:func:`rates_by_kind`); per tier and for the whole plan, the sum over the jobs measured on that kind."""
    kinds = sorted(rates)
    rows = [
        "| tier | network | epochs | of the paper's | target, last exit | "
        + " | ".join(f"h on {k}" for k in kinds)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(kinds),
    ]
    everything: list[dict] = [{} for _ in kinds]
    for number, tier in enumerate(tiers, 1):
        hours = [_hours(tier["jobs"], rates[k], k) for k in kinds]
        rows += [_job_row(number, job, hours) for job in tier["jobs"]]
        totals = [_total(h, len(tier["jobs"])) for h in hours]
        rows.append(f"| {number} | **{tier['title']}** | | | | " + " | ".join(totals) + " |")
        for every, h in zip(everything, hours):
            every |= {(number, *key): value for key, value in h.items()}
    jobs = sum(len(tier["jobs"]) for tier in tiers)
    rows.append("| all | **every tier** | | | | " + " | ".join(_total(e, jobs) for e in everything) + " |")
    return "\n".join(rows)


def epoch_check(times: pd.DataFrame, rates: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The benchmark's prediction of an epoch beside what shipped runs measured: ``times`` (one row per run and
    CPU kind: model, dataset, kind, precision, epochs, train_s, curve_s, as :func:`.pipeline.epoch_times` reads
    them from manifests) joined with the rates saved for its CPU kind (:func:`rates_by_kind`), in minutes per epoch of
    training (``train_min`` measured, ``predicted_min`` as :func:`job_plan` prices it) and of the learning curve
    (``curve_min``, ``curve_predicted_min``), with ``ratio`` = measured / predicted training. Runs on a kind,
    or of a model, the benchmark did not time are left out."""
    indexed = {kind: table.set_index(["model", "precision"]) for kind, table in rates.items()}
    rows = []
    for run in times.itertuples(index=False):
        by = indexed.get(run.kind)
        if by is None or (run.model, run.precision) not in by.index:
            continue
        rate = by.loc[(run.model, run.precision)]
        predicted = EPOCH_IMAGES[run.dataset] / rate["train_img_s"] / 60
        rows.append(
            {
                **run._asdict(),
                "train_min": run.train_s / 60,
                "predicted_min": predicted,
                "ratio": run.train_s / 60 / predicted,
                "curve_min": run.curve_s / 60,
                "curve_predicted_min": TEST_IMAGES[run.dataset] / rate["predict_img_s"] / 60,
            }
        )
    return pd.DataFrame(rows)


def epoch_check_markdown(check: pd.DataFrame) -> str:
    """:func:`epoch_check` as a Markdown table, then per CPU kind the median and range of measured / predicted."""
    if check.empty:
        return "No shipped run trained on a CPU kind the benchmark timed: nothing to compare."
    rows = [
        "| model | dataset | CPU kind | precision | epochs timed | training min/epoch | predicted | measured / predicted "
        "| learning curve min/epoch | predicted |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in check.itertuples(index=False):
        curve = "" if np.isnan(r.curve_min) else f"{r.curve_min:.1f}"
        rows.append(
            f"| {r.model} | {r.dataset} | {r.kind} | {r.precision} | {r.epochs} | {r.train_min:.1f} | "
            f"{r.predicted_min:.1f} | {r.ratio:.2f}x | {curve} | {r.curve_predicted_min:.1f} |"
        )
    summary = [
        f"- {kind}: median {part.ratio.median():.2f}x over {len(part)} runs "
        f"(range {part.ratio.min():.2f}x-{part.ratio.max():.2f}x)"
        for kind, part in check.groupby("kind")
    ]
    return "\n".join(rows) + "\n\nMeasured / predicted training time per epoch, by CPU kind:\n\n" + "\n".join(summary)
