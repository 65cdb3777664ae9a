"""Training throughput of the device-resident loop (the ``paper`` profile's, :mod:`earlyexit.engine.resident`)
against the host loop (:mod:`earlyexit.engine.training`, the ``cpu`` profile's), measured in one run on the
same images, model and precision; on a GPU also ``torch.compile``-d.

Usage: python benchmarks/bench_resident.py [--models resnet44,alexnet] [--dataset cifar100] [--images 2048]
       [--device cpu|cuda] [--compile default reduce-overhead] [--no-host] [--sheets ../shared/data/cifar100]

``--sheets`` reads the test split straight from a folder of WebP sheets (a GPU bundle still being staged);
otherwise the training split's first ``--images`` class-balanced rows are used. One untimed epoch warms up
each loop (and compiles), then ``--epochs`` are timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from earlyexit.core import data, hardware
from earlyexit.engine import resident, training
from earlyexit.nets.models import build_model


def _from_sheets(folder: Path, images: int) -> data.Dataset:
    """The test split decoded from its WebP sheets with the data's own unpacker, standing as the training split."""
    sys.path.insert(0, str(folder.parent))
    from unpack import _split  # the unpacker beside the sheets (../shared/data/unpack.py)

    x = data._to_tensor(_split(folder, json.loads((folder / "meta.json").read_text()), "test")[:images])
    y = torch.from_numpy(np.load(folder / "labels.npz")["y_test"][:images].astype(np.int64))
    return data.Dataset(folder.name, x, y, x, y, "sheets")


def _timed(step_epoch, epochs: int, sync) -> float:
    step_epoch(0)
    sync()
    start = time.perf_counter()
    for e in range(1, epochs + 1):
        step_epoch(e)
    sync()
    return (time.perf_counter() - start) / epochs


def measure(name: str, ds: data.Dataset, dev: torch.device, epochs: int, compile_modes: list[str], host: bool) -> dict:
    """Images per second of one model on ``ds``'s training split: host loop, resident loop, compiled ones."""
    cfg = training.profile_config("paper", name, precision="auto")
    precision = hardware.resolve_precision(cfg.precision, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = torch.arange(len(ds.y_train))
    row: dict = {"model": name, "device": resident.device_name(dev), "precision": precision, "images": len(rows)}

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = build_model(name, ds.name, seed=0).to(dev, memory_format=torch.channels_last)
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    if host:
        model, opt = fresh()
        loop = lambda e: training._train_epoch(model, opt, ds, rows, cfg, e, dev, precision, None)  # noqa: E731
        row["host_img_s"] = len(rows) / _timed(loop, epochs, sync)
    split = resident.split_on(ds, rows, dev)
    for label, mode in (("resident", None), *((f"compiled_{m}", m) for m in compile_modes)):
        model, opt = fresh()
        net = torch.compile(model, mode=mode, dynamic=False) if mode else model
        start = time.perf_counter()
        run = lambda e: resident.epoch(net, opt, split, cfg, e, model.loss_weights, precision)  # noqa: E731
        row[f"{label}_img_s"] = len(rows) / _timed(run, epochs, sync)
        row[f"{label}_first_epoch_s"] = time.perf_counter() - start - epochs * len(rows) / row[f"{label}_img_s"]
        print(f"{name} {label}: {row[f'{label}_img_s']:.0f} img/s", flush=True)
    if host:
        row["resident_vs_host"] = row["resident_img_s"] / row["host_img_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet44,alexnet", help="comma-separated model names")
    parser.add_argument("--dataset", default="cifar100")
    parser.add_argument("--images", type=int, default=2048, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop")
    parser.add_argument("--device", default=str(hardware.device()))
    parser.add_argument("--compile", nargs="*", default=[], help="also time the resident loop compiled in these modes")
    parser.add_argument("--no-host", action="store_true", help="leave out the host loop")
    parser.add_argument("--sheets", type=Path, help="a folder of WebP sheets to read the test split from")
    args = parser.parse_args()
    if args.sheets:
        ds = _from_sheets(args.sheets, args.images)
    else:
        full = data.load(args.dataset)
        rows = data.stratified_indices(full.y_train, args.images // data.SPECS[args.dataset][0], 0)
        x, y = full.x_train[rows], full.y_train[rows]
        ds = data.Dataset(full.name, x, y, x, y, full.sha256)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    print(f"{hardware.cpu_info().model}, {resident.device_name(dev)}, torch {torch.__version__}", flush=True)
    for name in args.models.split(","):
        row = measure(name, ds, dev, args.epochs, args.compile, not args.no_host)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
