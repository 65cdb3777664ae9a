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
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import ep_inference
from .flops import PartFlops

#: §V-C: Raspberry Pi 3 computation speed (FLOPs per second) and the latency requirement (seconds).
RPI3_FLOPS = 3.62e9
TAU = 0.030


def feature_bits(shape: tuple[int, int, int], channel_reduction: int = 4, spatial_stride: int = 2,
                 bits: int = 8) -> int:
    """Bits sent per offloaded sample: the partition feature ``(C, H, W)`` after an encoder that keeps
    ``C / channel_reduction`` channels at ``H / stride x W / stride`` and ``bits``-bit values (§V-C:
    1/4 of the channels, half the height and width, 32 -> 8 bits, a compression ratio of 64)."""
    c, h, w = shape
    if c % channel_reduction or h % spatial_stride or w % spatial_stride:
        raise ValueError(f"feature shape {shape} is not divisible by the channel reduction {channel_reduction} "
                         f"and the spatial stride {spatial_stride}")
    return (c // channel_reduction) * (h // spatial_stride) * (w // spatial_stride) * bits


def mean_latency(device_flops: np.ndarray, offload_share: np.ndarray, bits: float, r_comp: float,
                 r_comm: np.ndarray) -> np.ndarray:
    """Eq. (11) averaged over samples, for every candidate (rows) and bandwidth ``r_comm`` in bit/s (columns)."""
    device = np.asarray(device_flops, dtype=np.float64)[:, None] / r_comp
    return device + np.asarray(offload_share, dtype=np.float64)[:, None] * bits / np.asarray(r_comm, dtype=np.float64)[None, :]


@dataclass(frozen=True)
class Candidates:
    """Threshold candidates and what each gives on the test set: accuracy, mean on-device FLOPs per
    sample (the EP's cost included) and the share of samples sent to the server."""

    lam: np.ndarray  # (K, N-1)
    gamma: np.ndarray  # (K, N-1); zeros without an Exit Predictor
    accuracy: np.ndarray  # (K,)
    device_flops: np.ndarray  # (K,)
    offload_share: np.ndarray  # (K,)


def candidates(conf: np.ndarray, correct: np.ndarray, parts: list[PartFlops], lam_values, gamma_values=(0.0,),
               scores: np.ndarray | None = None, ep_flops: float = 0.0, oracle: bool = False) -> Candidates:
    """Every combination of per-exit thresholds from ``lam_values`` (and ``gamma_values`` with ``scores``)
    evaluated by Algorithm 1 on the artifact's test confidences (``oracle``: §III's oracle instead)."""
    n = conf.shape[1] - 1
    lams = list(itertools.product(lam_values, repeat=n))
    gammas = list(itertools.product(gamma_values, repeat=n)) if scores is not None else [(0.0,) * n]
    rows = []
    for lam, gamma in itertools.product(lams, gammas):
        if oracle:
            result = ep_inference.oracle(conf, parts, lam)
        elif scores is None:
            result = ep_inference.evaluate(conf, parts, lam)
        else:
            result = ep_inference.evaluate(conf, parts, lam, gamma, scores, ep_flops)
        s = result.summary(correct)
        rows.append((lam, gamma, s["accuracy"], result.device_flops.mean(), s["exit_share"][-1]))
    lam, gamma, acc, flops, share = (np.array(col, dtype=np.float64) for col in zip(*rows))
    return Candidates(lam, gamma, acc, flops, share)


@dataclass(frozen=True)
class Choice:
    """Problem (10)'s answer per bandwidth: the chosen candidate, its mean latency, whether it meets tau."""

    index: np.ndarray  # (B,) into the candidates
    latency: np.ndarray  # (B,) seconds
    feasible: np.ndarray  # (B,) bool


def solve(cands: Candidates, r_comm, bits: float, r_comp: float = RPI3_FLOPS, tau: float = TAU) -> Choice:
    """Problem (10) for every bandwidth ``r_comm`` (bit/s): the most accurate candidate whose mean latency
    is at most ``tau`` (ties: the lower latency); where none meets ``tau``, the fastest one, flagged."""
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


def fit_regressor(bandwidths_mbps, thresholds: np.ndarray, interval_mbps: tuple[float, float], hidden: int = 16,
                  steps: int = 3000, lr: float = 0.01, seed: int = 0) -> ThresholdRegressor:
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
