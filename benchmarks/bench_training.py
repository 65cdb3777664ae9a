"""Training throughput of every network of both papers on this machine, and the predicted wall time of
every `cpu`-profile training job (plan training budgets from this, on each machine kind).

Usage: python benchmarks/bench_training.py [--models resnet44,msdnet40] [--dataset cifar100] [--steps 3]
"""

from __future__ import annotations

import argparse

import pandas as pd

from earlyexit import pipeline
from earlyexit.core import hardware
from earlyexit.engine import train_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        help="comma-separated model names (default: every model; also " + ", ".join(train_bench.VARIANTS) + ")",
    )
    parser.add_argument("--dataset", default="cifar100", help="dataset whose images are used (default cifar100)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model and precision")
    args = parser.parse_args()
    cpu = hardware.cpu_info()
    print(
        f"{cpu.model}: native bf16 {'yes' if cpu.native_bf16 else 'no'}; precision 'auto' trains in "
        f"{hardware.resolve_precision('auto', hardware.device())}\n"
    )
    rates = train_bench.throughput(args.models.split(",") if args.models else None, args.dataset, args.steps)
    with pd.option_context("display.float_format", "{:.1f}".format, "display.width", 200):
        print("\n" + rates.to_string(index=False))
        fp32 = rates[rates.precision == "fp32"].set_index("model")["train_img_s"]
        bf16 = rates[rates.precision == "bf16"].set_index("model")["train_img_s"]
        print(
            "\nbf16 / fp32 training throughput: "
            + ", ".join(f"{m} {bf16[m] / fp32[m]:.2f}x" for m in fp32.index if m in bf16.index)
        )
        entries = [
            (j["model"], j["dataset"], j["overrides"])
            for j in pipeline.entries("train", "cpu")
            if j["model"] in set(rates.model)
        ]
        if not entries:
            print("\nNo cpu-profile training job of pipeline.toml uses these models: no wall time to predict.")
            return
        plan = train_bench.job_plan(rates, entries)
        print("\nPredicted wall time of the cpu-profile training jobs of pipeline.toml on this machine:")
        print(plan.to_string(index=False))
        print(f"total: {plan.total_h.sum():.1f} h")


if __name__ == "__main__":
    main()
