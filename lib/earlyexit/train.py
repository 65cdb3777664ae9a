"""Train one job of a profile and write its artifact, on one device or many.

    python -m earlyexit.train --profile paper --model resnet44 --dataset cifar100
    torchrun --nproc-per-node=4 -m earlyexit.train --profile paper --model vgg16bn --dataset cifar100

The job is the pipeline's training stage (:mod:`earlyexit.engine.train_stage`) with the recipe of the
profile and ``pipeline.toml``'s overrides for it, outside a notebook. Under ``torchrun`` the processes
form a group (NCCL on GPUs, gloo on CPUs) and train the job with DistributedDataParallel on the
device-resident loop (:mod:`earlyexit.engine.resident`: the ``paper`` profile); the first process writes
the checkpoint and the artifact. ``--budget MINUTES`` stops at an epoch boundary (exit status 75) so
that the same command continues later from the checkpoint.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from . import pipeline
from .engine import budget, resident, train_stage, training
from .engine.training import PROFILES


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper", help=f"one of {', '.join(PROFILES)} (default paper)")
    parser.add_argument("--model", required=True, help="a model of the profile's training matrix, e.g. resnet44")
    parser.add_argument("--dataset", required=True, help="cifar10, cifar100 or mnist")
    parser.add_argument("--artifacts", default=str(pipeline.ROOT / "artifacts"), help="artifact root folder")
    parser.add_argument("--data-dir", help="folder of <dataset>.npz files (default $EARLYEXIT_DATA)")
    parser.add_argument("--budget", type=float, help="minutes; stop at an epoch boundary before they are spent")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=resident.COMPILE_MODES,
        help="torch.compile the network in this mode (default: default; the device-resident loop only)",
    )
    parser.add_argument("--force", action="store_true", help="retrain from scratch even if the artifact is current")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change the recipe (recorded in the artifact), e.g. --set epochs=2; repeatable",
    )
    return parser.parse_args(argv)


def _changes(items: list[str]) -> dict:
    """``--set NAME=VALUE`` items as recipe overrides (values are Python literals: 2, 0.05, None, 'fp32')."""
    changes = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            changes[name.strip()] = ast.literal_eval(value.strip()) if sep else None
        except (ValueError, SyntaxError):
            changes[name.strip()] = value.strip()
        if not sep or not name.strip():
            raise SystemExit(f"--set {item!r}: write NAME=VALUE, e.g. --set epochs=2")
    return changes


def _start_group(profile: str) -> None:
    """Join the ``torchrun`` process group, if started by it: NCCL with one GPU per process, else gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return
    if profile not in training.RESIDENT_PROFILES:
        raise SystemExit(
            f"torchrun trains the device-resident loop (profile {', '.join(training.RESIDENT_PROFILES)}); "
            f"the {profile} profile trains on the host loop in one process: run it without torchrun"
        )
    dev = resident.local_device()
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    pipeline.check_profile(args.profile)
    if args.data_dir is not None:
        os.environ["EARLYEXIT_DATA"] = str(Path(args.data_dir).resolve())
    overrides = pipeline.overrides(args.profile, args.model, args.dataset) | _changes(args.set)
    if args.compile and args.profile not in training.RESIDENT_PROFILES:
        raise SystemExit("--compile applies to the device-resident loop (the paper profile) only")
    extra = {"compile_mode": args.compile} if args.compile else {}
    if args.budget is not None:  # else a deadline set by whoever started this process (the bundle, a pool) holds
        budget.set_minutes(args.budget)
    _start_group(args.profile)
    torch.backends.cudnn.benchmark = True
    try:
        run = train_stage.train_and_profile(
            args.model,
            args.dataset,
            args.profile,
            args.artifacts,
            progress=not args.quiet,
            force=args.force,
            **extra,
            **overrides,
        )
    except budget.BudgetSpent as err:
        print(err, flush=True)
        return pipeline.EXIT_BUDGET
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if run is not None:
        accuracy = " / ".join(f"{100 * a:.2f}" for a in run.accuracy)
        print(f"{args.model} on {args.dataset} ({args.profile}): test accuracy per exit {accuracy} %", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
