"""The "measure before you spend" recipe study of issue 35: test accuracy per CPU-hour of VGG16-BN on CIFAR-10
at a fixed CPU budget, today's ``cpu`` recipe against three others (:data:`ARMS`).

Each arm times a few of its own training steps on a throwaway copy of the network to estimate the CPU-seconds
of an epoch at each of its resolutions, plans the epochs its budget buys (schedules need their length up
front; cheaper epochs buy more of them), trains, and then evaluates every exit on the CIFAR-10 test set (32 px,
fp32, as the artifacts are). The budget is process CPU time (``time.process_time``, all threads), not wall time,
because the machine is shared; it counts the timing probe and training, not data loading or evaluation. Arms
train on one torch thread by default: with two, while another process kept one of this machine's two cores busy,
the baseline's probe measured 1,100-4,700 CPU-s per epoch (OpenMP threads waiting on a descheduled partner still
burn CPU time) against 633 on the idle machine; on one thread it measured 580-590 either way.

Rule (issue 35): adopt an arm only if its last-exit test accuracy per CPU-hour is at least 1.10x the baseline's.
The hours are the budget's, or what the arm spent where it overran (:func:`per_cpu_hour`): the budget is fixed, and
an arm whose probe over-estimated its epochs, leaving budget unused, is not paid for stopping early.
Label smoothing, mixup and anything else that changes what an exit's confidence means are out.

VGG16-BN's exits end in fully-connected layers of a fixed size and its backbone pools five times, so it takes
only 32-px images. For the progressive arm's smaller images, :func:`at_resolution` lets the max-poolings round up
(a 1x1 map stays 1x1) and resizes each flattened feature map to its size at 32 px; at 32 px it changes nothing.

Usage:
    python benchmarks/bench_recipe.py --arm baseline|large-batch|progressive|one-cycle|all [--cpu-hours 2.0]
        [--out benchmarks/results] [--subset N] [--probe-steps 3] [--threads 1]
    python benchmarks/bench_recipe.py --summary [--kind KIND]

Each arm writes OUT/recipe/<arm>-<cpu kind>.json; once all four exist for one CPU kind (after an arm, or with
``--summary``), OUT/recipe-vgg16bn-cifar10-<kind>.txt tabulates them with the verdict. ``--subset N`` trains on
N and tests on N class-balanced images: a check of the machinery, not a result (its files say so in their name).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from earlyexit.core import data, files, hardware
from earlyexit.engine import sgd, training
from earlyexit.nets.models import build_model
from earlyexit.nets.multiexit import MultiExitNet

MODEL, DATASET, FULL_PX = "vgg16bn", "cifar10", 32
ADOPT = 1.10  # an arm is adopted only at >= 1.10x the baseline's accuracy per CPU-hour
CPU = training.profile_config("cpu", MODEL)  # today's recipe: batch 128, SGD momentum 0.9, wd 5e-4, lr 0.1 -> 1e-4

#: Hyper-parameters of the arms. The learning rate rises linearly from ``lr_start`` to ``lr`` over the first
#: ``warmup`` of all steps, then follows a cosine to ``lr_end`` at the last step (:func:`lr_at`).
#: ``resolutions``: (image side in px, share of the epochs), in training order. Momentum and weight decay: CPU's.
ARMS: dict[str, dict] = {
    "baseline": {  # today's cpu recipe, cosine annealed over the epochs the budget buys
        "batch": CPU.batch_size,  # images per step
        "lr": CPU.lr,  # peak learning rate
        "lr_start": CPU.lr,  # learning rate of the first step (no warm-up)
        "lr_end": CPU.lr_end,  # learning rate of the last step
        "warmup": 0.0,  # share of all steps
        "resolutions": ((FULL_PX, 1.0),),  # (px, share of epochs)
    },
    "large-batch": {  # 4x batch, linear scaling rule (Goyal et al. 2017) with a linear warm-up from the old lr
        "batch": 4 * CPU.batch_size,
        "lr": 4 * CPU.lr,
        "lr_start": CPU.lr,
        "lr_end": CPU.lr_end,
        "warmup": 0.1,
        "resolutions": ((FULL_PX, 1.0),),
    },
    "progressive": {  # today's recipe on 16-px images for the first half of the epochs, then 32 px
        "batch": CPU.batch_size,
        "lr": CPU.lr,
        "lr_start": CPU.lr,
        "lr_end": CPU.lr_end,
        "warmup": 0.0,
        "resolutions": ((16, 0.5), (FULL_PX, 0.5)),
    },
    "one-cycle": {  # Smith's one-cycle as PyTorch's OneCycleLR defaults (2x peak; momentum kept at 0.9)
        "batch": CPU.batch_size,
        "lr": 2 * CPU.lr,
        "lr_start": 2 * CPU.lr / 25,  # div_factor 25
        "lr_end": 2 * CPU.lr / 25 / 1e4,  # final_div_factor 1e4: ~0
        "warmup": 0.3,  # pct_start 0.3, linear up (OneCycleLR's three_phase=False, anneal cos)
        "resolutions": ((FULL_PX, 1.0),),
    },
}


def lr_at(hp: dict, progress: float) -> float:
    """The learning rate at ``progress`` (the fraction of all steps done, 0 to 1) of an arm's schedule."""
    warmup = hp["warmup"]
    if progress < warmup:
        return hp["lr_start"] + (hp["lr"] - hp["lr_start"]) * progress / warmup
    p = min((progress - warmup) / (1.0 - warmup), 1.0)
    return hp["lr_end"] + 0.5 * (hp["lr"] - hp["lr_end"]) * (1.0 + math.cos(math.pi * p))


def plan_epochs(cpu_s_per_epoch: dict[int, float], resolutions: tuple, budget_s: float) -> list[int]:
    """The image side of each epoch: the most epochs (at least one) whose estimated CPU-seconds fit ``budget_s``,
    shared among ``resolutions`` in order, the earlier ones rounded down (the last gets at least one epoch)."""

    def schedule(n: int) -> list[int]:
        bounds, share = [0], 0.0
        for _, s in resolutions[:-1]:
            share += s
            bounds.append(min(math.floor(share * n), n - 1))
        bounds.append(n)
        return [px for (px, _), a, b in zip(resolutions, bounds, bounds[1:]) for _ in range(b - a)]

    n = 1
    while n < 10_000 and sum(cpu_s_per_epoch[px] for px in schedule(n + 1)) <= budget_s:
        n += 1
    return schedule(n)


def _flatten_sizes(model: MultiExitNet) -> dict[nn.Module, tuple[int, int]]:
    """The spatial size of every flattened feature map of ``model`` on a 32-px image."""
    sizes, flats = {}, [m for m in model.modules() if isinstance(m, nn.Flatten)]
    hooks = [f.register_forward_pre_hook(lambda m, a: sizes.__setitem__(m, tuple(a[0].shape[-2:]))) for f in flats]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, FULL_PX, FULL_PX).contiguous(memory_format=torch.channels_last))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return sizes


@contextlib.contextmanager
def at_resolution(model: MultiExitNet, px: int) -> Iterator[None]:
    """``model`` taking ``px``-px images in the block: max-poolings round up and each flattened feature map is
    resized (bilinear) to its size at 32 px, so every layer keeps its weights' shape. Nothing changes at 32 px."""
    if px == FULL_PX:
        yield
        return
    resize = lambda hw: lambda m, a: (F.interpolate(a[0], size=hw, mode="bilinear", align_corners=False),)
    hooks = [f.register_forward_pre_hook(resize(hw)) for f, hw in _flatten_sizes(model).items()]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d) and not m.ceil_mode]
    for p in pools:
        p.ceil_mode = True
    try:
        yield
    finally:
        for p in pools:
            p.ceil_mode = False
        for h in hooks:
            h.remove()


def _loss_of(model: MultiExitNet, ds: data.Dataset, gen: torch.Generator, px: int, precision: str) -> Callable:
    """The Eq. (5) loss of a batch of training rows, augmented, normalised and downsampled to ``px``."""
    dev = torch.device("cpu")

    def loss_of(rows: Tensor) -> Tensor:
        x = data.normalize(training.augmented(ds.x_train[rows], ds.name, gen), ds.name)
        if px != x.shape[-1]:
            x = F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False, antialias=True)
        with training._autocast(dev, precision):
            logits = model(x.contiguous(memory_format=torch.channels_last))
            return training.multi_exit_loss(logits, ds.y_train[rows], model.loss_weights)

    return loss_of


def _sgd(model: nn.Module, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=CPU.momentum, weight_decay=CPU.weight_decay)


def probe(model: MultiExitNet, ds: data.Dataset, rows: Tensor, hp: dict, px: int, precision: str, steps: int) -> float:
    """Estimated CPU-seconds of one epoch over ``rows`` at ``px``: ``steps`` timed steps (after one untimed) of a
    throwaway copy of ``model`` on full batches."""
    twin, gen = copy.deepcopy(model), torch.Generator().manual_seed(CPU.seed)
    opt, batch = _sgd(twin, hp["lr_start"]), hp["batch"]
    with at_resolution(twin, px):
        sgd.epoch(
            twin,
            opt,
            rows[torch.randint(len(rows), (batch,), generator=gen)],
            batch,
            _loss_of(twin, ds, gen, px, precision),
        )
        start = time.process_time()
        timed = rows[torch.randint(len(rows), (steps * batch,), generator=gen)]
        sgd.epoch(twin, opt, timed, batch, _loss_of(twin, ds, gen, px, precision))
        spent = time.process_time() - start
    return spent / steps * math.ceil(len(rows) / batch)


def train(
    model: MultiExitNet, ds: data.Dataset, rows: Tensor, hp: dict, plan: list[int], precision: str, progress: bool
) -> list[dict]:
    """Train ``model`` one epoch per entry of ``plan`` (its image side), seeded per epoch as the library's loop
    (:func:`earlyexit.engine.training.image_epoch`); returns the per-epoch history."""
    cfg = training.profile_config("cpu", MODEL, epochs=len(plan), anneal_epochs=len(plan))
    opt, steps, history = _sgd(model, hp["lr_start"]), math.ceil(len(rows) / hp["batch"]), []
    with tqdm(total=len(plan) * steps, disable=not progress, desc=f"train ({precision})") as bar:
        for epoch, px in enumerate(plan):
            cpu, wall = time.process_time(), time.perf_counter()
            gen = torch.Generator().manual_seed(training._epoch_seed(cfg, epoch))
            torch.manual_seed(training._epoch_seed(cfg, epoch))
            order = rows[torch.randperm(len(rows), generator=gen)]
            lr = lambda t: lr_at(hp, (epoch + t) / len(plan))
            with at_resolution(model, px):
                loss = sgd.epoch(
                    model, opt, order, hp["batch"], _loss_of(model, ds, gen, px, precision), lr=lr, bar=bar
                )
            history.append(
                {
                    "epoch": epoch + 1,
                    "px": px,
                    "loss": loss,
                    "cpu_s": time.process_time() - cpu,
                    "wall_s": time.perf_counter() - wall,
                }
            )
    return history


def test_accuracy(model: MultiExitNet, ds: data.Dataset, rows: Tensor, progress: bool) -> list[float]:
    """Every exit's test accuracy (%) on the test images ``rows``, at 32 px in fp32 (:func:`training.predict`)."""
    probs = training.predict(model, ds.x_test[rows], ds.name, progress=progress)
    return (100 * (probs.argmax(-1) == ds.y_test[rows, None]).double().mean(0)).tolist()


def _stem(arm: str, kind: str, subset: int | None) -> str:
    return f"{arm}-{kind}" + (f"-subset{subset}" if subset else "")


def run_arm(
    arm: str,
    cpu_hours: float,
    out: Path,
    subset: int | None = None,
    probe_steps: int = 3,
    progress: bool = True,
    threads: int = 1,
) -> dict:
    """Run one arm of the study on ``threads`` torch threads and write its record to
    ``out/recipe/<arm>-<kind>.json``; returns the record."""
    hp, dev = ARMS[arm], torch.device("cpu")
    torch.set_num_threads(threads)
    ds = data.load(DATASET)
    per_class = None if subset is None else max(1, subset // ds.num_classes)
    train_rows = data.stratified_indices(ds.y_train, per_class, CPU.seed)
    test_rows = data.stratified_indices(ds.y_test, per_class, CPU.seed)
    precision = hardware.resolve_precision("auto", dev)
    model = build_model(MODEL, DATASET, seed=CPU.seed).to(memory_format=torch.channels_last)

    cpu0, wall0, budget_s = time.process_time(), time.perf_counter(), cpu_hours * 3600
    per_epoch = {px: probe(model, ds, train_rows, hp, px, precision, probe_steps) for px, _ in hp["resolutions"]}
    probe_s = time.process_time() - cpu0
    plan = plan_epochs(per_epoch, hp["resolutions"], budget_s - probe_s)
    estimate = ", ".join(f"{px} px {s:.0f} CPU-s" for px, s in per_epoch.items())
    print(
        f"{arm}: {estimate} per epoch (probe {probe_s:.0f} CPU-s); {budget_s:.0f} CPU-s buy {len(plan)} epochs "
        f"({', '.join(f'{plan.count(px)} at {px} px' for px, _ in hp['resolutions'])}), "
        f"estimated {sum(per_epoch[px] for px in plan) + probe_s:.0f} CPU-s",
        flush=True,
    )
    history = train(model, ds, train_rows, hp, plan, precision, progress)
    cpu_train, wall_train = time.process_time() - cpu0, time.perf_counter() - wall0
    accuracy = test_accuracy(model, ds, test_rows, progress)
    cpu = hardware.cpu_info()
    record = {
        "study": "recipe",
        "model": MODEL,
        "dataset": DATASET,
        "arm": arm,
        "recipe": {
            **{k: list(map(list, v)) if k == "resolutions" else v for k, v in hp.items()},
            "schedule": f"linear {hp['lr_start']:g} -> {hp['lr']:g} over {hp['warmup']:.0%} of steps, "
            f"then cosine to {hp['lr_end']:g}",
            "momentum": CPU.momentum,
            "weight_decay": CPU.weight_decay,
            "seed": CPU.seed,
            "epochs": len(plan),
            "epoch_px": plan,
        },
        "cpu": cpu.model,
        "cpu_kind": hardware.cpu_kind(cpu),
        "native_bf16": cpu.native_bf16,
        "precision": precision,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_hours_budget": cpu_hours,
        "subset": subset,
        "train_images": len(train_rows),
        "test_images": len(test_rows),
        "probe_cpu_s_per_epoch": {str(px): s for px, s in per_epoch.items()},
        "cpu_s_probe": probe_s,
        "cpu_s_train": cpu_train,  # probe included: what the budget counts
        "cpu_s_eval": time.process_time() - cpu0 - cpu_train,
        "wall_s_train": wall_train,
        "wall_s_eval": time.perf_counter() - wall0 - wall_train,
        "test_accuracy_pct": accuracy,
        "last_exit_accuracy_pct": accuracy[-1],
        "accuracy_pct_per_cpu_hour": per_cpu_hour(accuracy[-1], cpu_train, cpu_hours),
        "history": history,
    }
    path = out / "recipe" / f"{_stem(arm, record['cpu_kind'], subset)}.json"
    files.write_text(path, json.dumps(record, indent=1) + "\n")
    print(f"{arm}: last exit {accuracy[-1]:.2f} % after {cpu_train / 3600:.2f} CPU-h; wrote {path}", flush=True)
    return record


def per_cpu_hour(accuracy_pct: float, cpu_s: float, budget_h: float) -> float:
    """Last-exit accuracy (%) per CPU-hour of the arm's fixed budget, or of the CPU-seconds ``cpu_s`` it spent where
    it overran. Not of what it spent below the budget: accuracy saturates, so dividing by a shorter spend would
    reward stopping early (the large-batch arm's probe over-estimated its epochs by 12 % and it used 1.72 of its 2
    CPU-hours: 1.12x the baseline per hour spent, at 1 pp less accuracy)."""
    return accuracy_pct / max(budget_h, cpu_s / 3600)


def _per_cpu_hour(record: dict) -> float:
    return per_cpu_hour(record["last_exit_accuracy_pct"], record["cpu_s_train"], record["cpu_hours_budget"])


def adopted(results: list[dict]) -> list[tuple[str, float]]:
    """The arms that win by the issue's rule, with their ratio to the baseline's accuracy per CPU-hour, best first."""
    ratios = _ratios(results)
    return sorted(((a, r) for a, r in ratios.items() if a != "baseline" and r >= ADOPT), key=lambda ar: -ar[1])


def _ratios(results: list[dict]) -> dict[str, float]:
    """Each arm's accuracy per CPU-hour over the baseline's; refuses results of mixed CPU kinds or budgets."""
    for key in ("cpu_kind", "cpu_hours_budget", "subset"):
        values = {r["arm"]: r[key] for r in results}
        if len(set(values.values())) > 1:
            raise ValueError(
                f"the arms differ in {key} ({', '.join(f'{a}: {v}' for a, v in values.items())}): accuracy per "
                "CPU-hour compares only on one CPU kind, one budget and one data set; rerun them on one"
            )
    by_arm = {r["arm"]: r for r in results}
    if "baseline" not in by_arm:
        raise ValueError("no baseline arm: nothing to compare with")
    base = _per_cpu_hour(by_arm["baseline"])
    return {arm: _per_cpu_hour(r) / base for arm, r in by_arm.items()}


def summary(results: list[dict]) -> str:
    """The study's table and verdict (refused for mixed CPU kinds or budgets)."""
    ratios, winners = _ratios(results), adopted(results)
    spent = {r["arm"]: r["last_exit_accuracy_pct"] / r["cpu_s_train"] for r in results}
    first = results[0]
    table = pd.DataFrame(
        {
            "arm": r["arm"],
            "batch": r["recipe"]["batch"],
            "lr": f"{r['recipe']['lr_start']:g}->{r['recipe']['lr']:g}->{r['recipe']['lr_end']:g}",
            "warmup": f"{r['recipe']['warmup']:.0%}",
            "epochs": r["recipe"]["epochs"],
            "epochs_by_px": " ".join(
                f"{p}px:{r['recipe']['epoch_px'].count(p)}" for p, _ in r["recipe"]["resolutions"]
            ),
            "cpu_h": r["cpu_s_train"] / 3600,
            "last_exit_%": r["last_exit_accuracy_pct"],
            "exits_%": " / ".join(f"{a:.1f}" for a in r["test_accuracy_pct"]),
            "budget_used": f"{r['cpu_s_train'] / 3600 / r['cpu_hours_budget']:.0%}",
            "%_per_cpu_h": _per_cpu_hour(r),
            "vs_baseline": ratios[r["arm"]],
            "per_h_spent": spent[r["arm"]] / spent["baseline"],  # shown, not judged: rewards stopping early
        }
        for r in sorted(results, key=lambda r: list(ARMS).index(r["arm"]) if r["arm"] in ARMS else len(ARMS))
    )
    verdict = (
        f"adopt {winners[0][0]} ({winners[0][1]:.2f}x)"
        + "".join(f"; also >= {ADOPT:.2f}x: {a} ({r:.2f}x), combination untested" for a, r in winners[1:])
        if winners
        else f"adopt none: no arm reaches {ADOPT:.2f}x the baseline's accuracy per CPU-hour"
    )
    return (
        f"Recipe study (issue 35): {MODEL} / {DATASET}, {first['cpu_hours_budget']:g} CPU-hours per arm "
        f"(process CPU time, timing probe included), {first['cpu']} ({first['cpu_kind']}), "
        f"{first['torch_threads']} torch threads, precision {first['precision']}"
        + (f", subset {first['subset']} (a check, not a result)" if first["subset"] else "")
        + f"\nRule: adopt an arm only if its last-exit accuracy per CPU-hour is >= {ADOPT:.2f}x the baseline's "
        "(hours of the budget, or spent where an arm overran it: unused budget earns nothing; per_h_spent divides "
        "by the hours spent instead, for comparison).\n\n"
        + table.to_string(index=False, float_format=lambda v: f"{v:.2f}")
        + f"\n\nVerdict: {verdict}.\n"
    )


def write_summary(out: Path, kind: str, subset: int | None = None) -> Path:
    """Write ``out/recipe-vgg16bn-cifar10-<kind>.txt`` from the four arms' records of CPU kind ``kind``;
    refused (ValueError) unless all four exist for that kind."""
    records = [json.loads(p.read_text()) for p in sorted((out / "recipe").glob("*.json"))]
    records = [r for r in records if r.get("subset") == subset]
    ours = [r for r in records if r["cpu_kind"] == kind and r["arm"] in ARMS]
    missing = sorted(set(ARMS) - {r["arm"] for r in ours})
    if missing:
        elsewhere = ", ".join(f"{r['arm']} on {r['cpu_kind']}" for r in records if r["cpu_kind"] != kind)
        raise ValueError(
            f"no summary for {kind}: arm(s) {', '.join(missing)} not measured on it"
            + (f" (mixed CPU kinds are not compared: {elsewhere})" if elsewhere else "")
        )
    path = out / f"recipe-{MODEL}-{DATASET}-{kind}{'-subset' + str(subset) if subset else ''}.txt"
    files.write_text(path, summary(ours))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=[*ARMS, "all"], help="the arm to run, or all four in turn")
    parser.add_argument("--cpu-hours", type=float, default=2.0, help="process CPU-hours per arm (default 2.0)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--subset", type=int, help="N training and N test images (a quick check, not a result)")
    parser.add_argument("--probe-steps", type=int, default=3, help="timed steps per resolution (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see the docstring)")
    parser.add_argument("--summary", action="store_true", help="only write the summary of the four arms")
    parser.add_argument("--kind", default=hardware.cpu_kind(), help="CPU kind to summarise (default: this machine's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.summary and args.arm is None:
        parser.error("give --arm NAME|all or --summary")
    for arm in [] if args.summary else list(ARMS) if args.arm == "all" else [args.arm]:
        run_arm(arm, args.cpu_hours, args.out, args.subset, args.probe_steps, not args.quiet, args.threads)
    try:
        print(f"wrote {write_summary(args.out, args.kind, args.subset)}")
    except ValueError as err:
        if args.summary:
            raise SystemExit(str(err)) from None
        print(f"no summary yet: {err}")


if __name__ == "__main__":
    main()
