"""Paper A §IV: end-to-end latency of device-edge co-inference (Eq. (11)) and the thresholds of Problem (10).

A sample costs ``O_device / r_comp`` seconds on the device (its on-device FLOPs, Eq. (3) or (4), at the
device's speed; Raspberry Pi 3: 3.62 GFLOPS, §V-C) plus ``D / r_comm`` seconds of transmission when no
early exit answers it (``D``: the bits of the compressed feature at the partition point; Eq. (11)).
Problem (10) picks the thresholds ``(lambda, gamma)`` with the highest accuracy whose *mean* latency
over the test set stays within ``tau`` (30 ms in §V-C). Mean latency is linear in each sample's
FLOPs and transmission, so every candidate is summarised once (accuracy, mean on-device FLOPs, share
of samples sent to the server) and a whole bandwidth sweep is a matrix comparison. Bandwidth-adaptive
thresholds (§IV) come from small regression models fitted to the optima at a few bandwidths.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..core import checks
from ..core.fingerprint import fingerprint, input_check
from ..engine import derived
from ..nets.flops import PartFlops
from ..nets.multiexit import MultiExitNet
from . import ep_inference

#: §V-C: Raspberry Pi 3 computation speed (FLOPs per second) and the latency requirement (seconds).
RPI3_FLOPS = 3.62e9
TAU = 0.030


def feature_bits(
    shape: tuple[int, int, int], channel_reduction: int = 4, spatial_stride: int = 2, bits: int = 8
) -> int:
    """Bits sent per offloaded sample: the partition feature ``(C, H, W)`` after an encoder that keeps
    ``C / channel_reduction`` channels at ``H / stride x W / stride`` and ``bits``-bit values (§V-C:
    1/4 of the channels, half the height and width, 32 -> 8 bits, a compression ratio of 64)."""
    checks.array("shape", shape, ndim=1, low=1, fix="the partition feature's (C, H, W)")
    checks.integer("channel_reduction", channel_reduction, low=1, fix="§V-C keeps 1/4 of the channels: 4")
    checks.integer("spatial_stride", spatial_stride, low=1, fix="§V-C halves the height and width: 2")
    checks.integer("bits", bits, low=1, fix="§V-C quantises to 8 bits")
    c, h, w = shape
    if c % channel_reduction or h % spatial_stride or w % spatial_stride:
        raise ValueError(
            f"feature shape {shape} is not divisible by the channel reduction {channel_reduction} "
            f"and the spatial stride {spatial_stride}"
        )
    return (c // channel_reduction) * (h // spatial_stride) * (w // spatial_stride) * bits


def mean_latency(
    device_flops: np.ndarray, offload_share: np.ndarray, bits: float, r_comp: float, r_comm: np.ndarray
) -> np.ndarray:
    """Eq. (11) averaged over samples, for every candidate (rows) and bandwidth ``r_comm`` in bit/s (columns)."""
    checks.array("device_flops", device_flops, ndim=1, low=0.0, fix="mean on-device FLOPs per candidate")
    checks.probabilities("offload_share", offload_share, ndim=1, fix="the share of samples sent to the server")
    checks.number("bits", bits, low=0.0, fix="the feature's size in bits (feature_bits)")
    checks.number("r_comp", r_comp, low=0.0, open_low=True, fix="the device's speed in FLOPs per second")
    _check_bandwidths(r_comm)
    device = np.asarray(device_flops, dtype=np.float64)[:, None] / r_comp
    return (
        device
        + np.asarray(offload_share, dtype=np.float64)[:, None] * bits / np.asarray(r_comm, dtype=np.float64)[None, :]
    )


@input_check
def _check_bandwidths(r_comm) -> None:
    """Bandwidths in bit/s: positive and finite."""
    arr = checks.array("r_comm", np.atleast_1d(r_comm), ndim=1, low=0.0, fix="bandwidths in bit/s, e.g. 1e6")
    if not np.all(arr > 0):
        raise ValueError(
            f"r_comm must hold positive bandwidths in bit/s, got {arr.min()!r}; pass e.g. 1e6 for 1 Mbit/s"
        )


@dataclass(frozen=True)
class Candidates:
    """Threshold candidates and what each gives on the test set: accuracy, mean on-device FLOPs per
    sample (the EP's cost included) and the share of samples sent to the server."""

    lam: np.ndarray  # (K, N-1)
    gamma: np.ndarray  # (K, N-1); zeros without an Exit Predictor
    accuracy: np.ndarray  # (K,)
    device_flops: np.ndarray  # (K,)
    offload_share: np.ndarray  # (K,)


def candidates(
    conf: np.ndarray,
    correct: np.ndarray,
    parts: list[PartFlops],
    lam_values,
    gamma_values=(0.0,),
    scores: np.ndarray | None = None,
    ep_flops: float = 0.0,
    oracle: bool = False,
    offload_flops: float = 0.0,
) -> Candidates:
    """Every combination of per-exit thresholds from ``lam_values`` (and ``gamma_values`` with ``scores``)
    evaluated by Algorithm 1 on the artifact's test confidences (``oracle``: §III's oracle instead).

    ``offload_flops`` is spent on the device for every sample sent to the server (the feature encoder).
    Algorithm 1 runs on all candidates in one compiled pass (:func:`ep_inference.evaluate_many`, the same rule
    as :func:`ep_inference.evaluate`), so tens of thousands of candidates take a second.
    """
    checks.probabilities("conf", conf, ndim=2, fix="pass every exit's softmax confidence, shape (samples, N)")
    checks.boolean("correct", correct, np.shape(conf), fix="pass every exit's correctness on the same samples")
    if scores is not None:
        checks.probabilities("scores", scores, ndim=2, fix="pass the Exit Predictor's sigmoid scores")
    conf, correct = np.asarray(conf), np.asarray(correct)
    n = conf.shape[1] - 1
    lam = np.array(list(itertools.product(lam_values, repeat=n)), dtype=np.float64)
    gamma = (
        np.array(list(itertools.product(gamma_values, repeat=n)), dtype=np.float64)
        if scores is not None
        else np.zeros((1, n))
    )
    lam, gamma = np.repeat(lam, len(gamma), 0), np.tile(gamma, (len(lam), 1))
    if oracle:
        if scores is not None:
            raise ValueError("the oracle needs no Exit Predictor scores")
        outcomes = [ep_inference.oracle(conf, parts, row) for row in lam]
        device = np.array([o.device_flops.mean() for o in outcomes])
        share = np.array([np.mean(o.exit == n) for o in outcomes])
        accuracy = np.array([o.summary(correct)["accuracy"] for o in outcomes])
    else:
        device, share, accuracy = ep_inference.evaluate_many(conf, parts, lam, gamma, scores, ep_flops, correct)
    return Candidates(lam, gamma, accuracy, device + offload_flops * share, share)


@dataclass(frozen=True)
class Choice:
    """Problem (10)'s answer per bandwidth: the chosen candidate, its mean latency, whether it meets tau."""

    index: np.ndarray  # (B,) into the candidates
    latency: np.ndarray  # (B,) seconds
    feasible: np.ndarray  # (B,) bool


def solve(cands: Candidates, r_comm, bits: float, r_comp: float = RPI3_FLOPS, tau: float = TAU) -> Choice:
    """Problem (10) for every bandwidth ``r_comm`` (bit/s): the most accurate candidate whose mean latency
    is at most ``tau`` (ties: the lower latency); where none meets ``tau``, the fastest one, flagged."""
    checks.number("tau", tau, low=0.0, open_low=True, fix="the latency requirement in seconds, e.g. 0.030")
    r_comm = np.atleast_1d(np.asarray(r_comm, dtype=np.float64))
    latency = mean_latency(cands.device_flops, cands.offload_share, bits, r_comp, r_comm)  # (K, B)
    ok = latency <= tau
    score = np.where(ok, cands.accuracy[:, None], -np.inf)
    best = score.max(0)
    tied = ok & (score == best[None, :])
    index = np.where(tied, latency, np.inf).argmin(0)
    fallback = latency.argmin(0)
    feasible = ok.any(0)
    index = np.where(feasible, index, fallback)
    cols = np.arange(len(r_comm))
    return Choice(index, latency[index, cols], feasible)


class ThresholdRegressor(nn.Module):
    """§IV: a small regression model of two FC layers from the bandwidth to the thresholds ``(lambda, gamma)``.

    Its input is ``log10`` of the bandwidth, scaled to [-1, 1] over the interval it serves; a sigmoid
    keeps every threshold in (0, 1).
    """

    def __init__(self, interval_mbps: tuple[float, float], outputs: int, hidden: int = 16):
        super().__init__()
        low, high = np.log10(interval_mbps)
        if not high > low:
            raise ValueError(f"a bandwidth interval needs low < high, got {interval_mbps}")
        self.interval_mbps = tuple(float(v) for v in interval_mbps)
        self.register_buffer("centre", torch.tensor((low + high) / 2))
        self.register_buffer("half_width", torch.tensor((high - low) / 2))
        self.layers = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, bandwidth_mbps: Tensor) -> Tensor:
        x = (torch.log10(bandwidth_mbps.reshape(-1, 1).double()) - self.centre) / self.half_width
        return torch.sigmoid(self.layers(x.to(self.layers[0].weight.dtype)))


def fit_regressor(
    bandwidths_mbps,
    thresholds: np.ndarray,
    interval_mbps: tuple[float, float],
    hidden: int = 16,
    steps: int = 3000,
    lr: float = 0.01,
    seed: int = 0,
) -> ThresholdRegressor:
    """Fit a :class:`ThresholdRegressor` to Problem (10)'s optimal thresholds (rows) at ``bandwidths_mbps``
    by full-batch Adam on the squared error (seeded, deterministic)."""
    x = torch.as_tensor(np.asarray(bandwidths_mbps, dtype=np.float64))
    y = torch.as_tensor(np.asarray(thresholds, dtype=np.float32))
    if y.ndim != 2 or len(y) != len(x):
        raise ValueError(f"need one row of thresholds per bandwidth, got {tuple(y.shape)} for {len(x)} bandwidths")
    torch.manual_seed(seed)
    model = ThresholdRegressor(interval_mbps, y.shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def fit_or_load_regressor(
    bandwidths_mbps, thresholds: np.ndarray, interval_mbps: tuple[float, float], path: str | os.PathLike, seed: int = 0
) -> ThresholdRegressor:
    """:func:`fit_regressor` kept in ``path`` (a derived result, :func:`earlyexit.engine.derived.load_or_compute`):
    its weights are read back when the bandwidths, target thresholds, interval and seed are the same, fitted by
    the same code. A stored regressor also answers the same on every CPU, where a refit may differ in its last
    bits."""
    targets = np.asarray(thresholds, dtype=np.float32)
    key = {
        "bandwidths_mbps": [float(b) for b in bandwidths_mbps],
        "thresholds": targets.tolist(),
        "interval_mbps": [float(v) for v in interval_mbps],
        "seed": seed,
        "code": fingerprint(fit_or_load_regressor),
    }

    def write(model: ThresholdRegressor, tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **{name: value.numpy() for name, value in model.state_dict().items()})

    def read(stored: Path) -> ThresholdRegressor:
        with np.load(stored) as f:
            weights = {name: torch.from_numpy(f[name]) for name in f.files}
        hidden, outputs = weights["layers.0.weight"].shape[0], weights["layers.2.weight"].shape[0]
        model = ThresholdRegressor(interval_mbps, outputs, hidden)
        model.load_state_dict(weights)
        return model.eval()

    return derived.load_or_compute(
        path, key, lambda: fit_regressor(bandwidths_mbps, targets, interval_mbps, seed=seed), write, read
    )


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):  # warm-up: allocator, lazy initialisation
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def time_parts(
    model: MultiExitNet,
    encoder: nn.Module,
    ep: nn.Module | None,
    input_shape: tuple[int, ...],
    repeats: int = 30,
    threads: int = 1,
) -> dict:
    """The measured counterpart of Eq. (11)'s on-device FLOPs: median seconds of every on-device part at
    batch 1 on this CPU with ``threads`` threads, in float32 — each on-device stage and early exit, the
    feature encoder and the Exit Predictor — and of one whole on-device pass (every stage and early exit,
    then the encoder) timed end to end, to check that the parts add up. Times do not depend on the
    weights' values, so an untrained network of the same architecture serves."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model, encoder = model.eval(), encoder.eval()
        x = torch.zeros(1, *input_shape)
        n = model.num_exits - 1
        inputs, h = [], x
        for i in range(n):
            inputs.append(h)
            h = model.stage(i, h)
        outputs = [model.stage(i, inputs[i]) for i in range(n)]

        def whole() -> None:
            z = x
            for i in range(n):
                z = model.stage(i, z)
                model.exit(i, z)
            encoder(z)

        return {
            "stage": np.array([_median_seconds(lambda i=i: model.stage(i, inputs[i]), repeats) for i in range(n)]),
            "exit": np.array([_median_seconds(lambda i=i: model.exit(i, outputs[i]), repeats) for i in range(n)]),
            "encoder": _median_seconds(lambda: encoder(h), repeats),
            "ep": _median_seconds(lambda: ep.eval()(x), repeats) if ep is not None else 0.0,
            "whole_pass": _median_seconds(whole, repeats),
            "threads": threads,
            "repeats": repeats,
        }
    finally:
        torch.set_num_threads(previous)
