"""ET-profile of a multi-exit network (Paper B §IV-B1, Fig. 4): the wall time of every conv part and branch.

The time model of elastic inference (:mod:`earlyexit.paper_b.elastic`) needs, per block ``k``, the time
``tc[k]`` of its conv part and ``tb[k]`` of its branch. They are measured here on real images, one at a
time, on this machine's CPU; the training stage stores them in a Paper B network's artifact.
"""

from __future__ import annotations

import platform
import time

import numpy as np
import torch

from ..core import data
from .multiexit import MultiExitNet


@torch.no_grad()
def measure_et_profile(
    model: MultiExitNet,
    x_uint8: torch.Tensor,
    dataset_name: str,
    samples: int = 1000,
    warmup: int = 10,
    percentiles: tuple[float, ...] = (5, 50, 90, 95),
) -> dict:
    """ET-profile of §IV-B: wall time of every conv part (stage) and branch (exit), per sample (Fig. 4).

    Runs the first ``samples`` images one at a time (batch 1, eval, no_grad, fp32, torch's current
    thread count) through the staged API, after ``warmup`` untimed samples; input normalisation is
    not timed. Times are in seconds, from ``time.perf_counter_ns``. Returns ``tc``/``tb`` of shape
    (samples, exits), their means (the ET-profile: ``tc_mean``, ``tb_mean``), medians, the
    ``percentiles`` per exit (``tc_percentiles``, shape (len(percentiles), exits)) and the machine.
    """
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("measure_et_profile times the fp32 model; convert it with model.float()")
    model.eval()
    x = data.normalize(x_uint8[:samples], dataset_name)
    n = model.num_exits
    for i in range(warmup):
        h = x[i % len(x) : i % len(x) + 1]
        for k in range(n):
            h = model.stage(k, h)
            model.exit(k, h)
    tc = np.empty((len(x), n), dtype=np.int64)
    tb = np.empty((len(x), n), dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(len(x)):
        h = x[i : i + 1]
        for k in range(n):
            t0 = clock()
            h = model.stage(k, h)
            t1 = clock()
            model.exit(k, h)
            t2 = clock()
            tc[i, k], tb[i, k] = t1 - t0, t2 - t1
    out: dict = {"samples": len(x), "percentiles": list(percentiles)}
    for name, ns in (("tc", tc), ("tb", tb)):
        s = ns / 1e9
        out |= {
            name: s,
            f"{name}_mean": s.mean(0),
            f"{name}_median": np.median(s, 0),
            f"{name}_percentiles": np.percentile(s, percentiles, axis=0),
        }
    out["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return out
