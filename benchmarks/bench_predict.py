"""Prediction throughput of :func:`earlyexit.engine.training.predict` by batch size, measured in one run, and
whether the probabilities are the same bits at every batch size (they decide an artifact's content).

Usage: python benchmarks/bench_predict.py [--models resnet44,vgg16bn] [--images 500] [--batches 16,32,64,128,500]
"""

from __future__ import annotations

import argparse
import time

import torch

from earlyexit.core import data, hardware
from earlyexit.engine import training
from earlyexit.nets.models import build_model

MODELS = "resnet44,vgg16bn,resnet50_finegrained,msdnet40"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help=f"comma-separated model names (default {MODELS})")
    parser.add_argument("--images", type=int, default=500, help="CIFAR-100 test images timed per batch size")
    parser.add_argument("--batches", default="16,32,64,128,500", help="batch sizes to time")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    x = data.load("cifar100").x_test[: args.images]
    print(
        f"{hardware.cpu_info().model}, {torch.get_num_threads()} threads: images per second by batch size "
        f"(ratio to batch 500), default {training.PREDICT_BATCH}"
    )
    for name in args.models.split(","):
        model = build_model(name, "cifar100", seed=0)
        rates, probs = {}, {}
        for batch in batches:
            training.predict(model, x[:batch], "cifar100", batch_size=batch, progress=False)  # warm-up
            start = time.perf_counter()
            probs[batch] = training.predict(model, x, "cifar100", batch_size=batch, progress=False)
            rates[batch] = len(x) / (time.perf_counter() - start)
        same = all(torch.equal(probs[batches[0]], p) for p in probs.values())
        row = " | ".join(f"{b}: {rates[b]:.0f} ({rates[b] / rates.get(500, rates[b]):.2f}x)" for b in batches)
        print(f"{name:22s} {row} | same probabilities at every batch size: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
