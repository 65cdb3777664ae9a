"""Paper A §V-C, Fig. 10: the seven methods of latency-aware co-inference over a bandwidth sweep.

Every method is evaluated on one compression artifact (the compressed network's test confidences and
correctness, its part FLOPs, the encoder's FLOPs and bits per offloaded sample, and the last exit's
correctness under encoder pruning) and, for the EP methods, the Exit Predictor's test scores. Latency
is Eq. (11) averaged over the test set; accuracy counts each sample at the exit that answered it.

* **Backbone**: every sample runs the on-device layers and is sent (no exit is computed);
* **EE (Static)**, **EE+EP (Static)**: fixed thresholds (the EP's by Fig. 7's criterion);
* **EE (Adaptive)**, **EE+Oracle (Adaptive)**, **EE+EP (Adaptive)**: thresholds from §IV's regression
  models (:class:`latency.ThresholdRegressor`), one per bandwidth interval, fitted to Problem (10)'s
  optima at a few bandwidths of the interval; :func:`optimum` solves Problem (10) at every bandwidth
  instead (what the regressors approximate);
* **EE (Adaptive, Pruning)**: EE (Static)'s thresholds with the smallest encoder pruning ratio whose
  mean latency meets tau (the most pruned codec, flagged, where none does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..engine.artifacts import Artifact
from ..nets.flops import PartFlops
from . import ep_inference, latency

#: §V-C: the regression models' bandwidth intervals (Mbit/s) and the bandwidths each is fitted on.
TRAINING_MBPS: dict[tuple[float, float], tuple[float, ...]] = {
    (0.1, 1.0): (0.1, 0.3, 0.5, 0.7, 1.0),
    (1.0, 10.0): (1.0, 3.0, 5.0, 7.0, 10.0),
    (10.0, 100.0): (10.0, 30.0, 50.0, 70.0, 100.0),
}


@dataclass(frozen=True)
class Setting:
    """What Fig. 10's methods are evaluated on: a compression artifact, the EP's scores, the device and tau."""

    conf: np.ndarray  # (samples, N) every exit's confidence, the last through the codec
    correct: np.ndarray  # (samples, N)
    parts: list[PartFlops]
    encoder_flops: float  # on the device, per sample sent
    bits: float  # sent per offloaded sample
    prune_ratio: np.ndarray  # (R,) encoder filters removed, 0 first
    prune_bits: np.ndarray  # (R,)
    prune_correct: np.ndarray  # (R, samples) the last exit's correctness per ratio
    scores: np.ndarray | None = None  # (samples, N-1) Exit Predictor scores
    ep_flops: float = 0.0
    r_comp: float = latency.RPI3_FLOPS
    tau: float = latency.TAU

    @classmethod
    def from_artifact(
        cls,
        run: Artifact,
        scores: np.ndarray | None = None,
        ep_flops: float = 0.0,
        r_comp: float = latency.RPI3_FLOPS,
        tau: float = latency.TAU,
    ) -> Setting:
        """The setting of a compression artifact (``pipeline.load_compressed``)."""
        parts = [PartFlops(int(s), int(e), ()) for s, e in run["part_flops"]]
        if scores is not None and scores.shape != (len(run["test_label"]), len(parts) - 1):
            raise ValueError(
                f"EP scores of shape {scores.shape} do not fit the artifact's "
                f"{len(run['test_label'])} test samples and {len(parts) - 1} early exits"
            )
        return cls(
            run["test_conf"],
            run["test_correct"],
            parts,
            float(run["encoder_flops"]),
            float(run["feature_bits"]),
            run["encoder_prune_ratio"],
            run["encoder_prune_bits"],
            run["encoder_prune_correct"],
            scores,
            ep_flops,
            r_comp,
            tau,
        )


@dataclass(frozen=True)
class Sweep:
    """One method over a bandwidth sweep: accuracy, mean latency, its on-device part, and the knobs set."""

    method: str
    kind: str  # backbone, ee, ep, oracle or pruning: how its operating points are evaluated
    bandwidth_mbps: np.ndarray
    accuracy: np.ndarray
    latency: np.ndarray  # seconds, Eq. (11) averaged over samples
    device_latency: np.ndarray  # seconds on the device
    tau: float
    knobs: dict[str, np.ndarray] = field(default_factory=dict)  # thresholds or pruning ratio per bandwidth

    @property
    def meets_tau(self) -> np.ndarray:
        return self.latency <= self.tau * (1 + 1e-9)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "method": self.method,
                "bandwidth_mbps": self.bandwidth_mbps,
                "accuracy_pct": 100 * self.accuracy,
                "latency_ms": 1e3 * self.latency,
                "device_ms": 1e3 * self.device_latency,
                "meets_tau": self.meets_tau,
                **{k: np.round(v, 4) for k, v in self.knobs.items()},
            }
        )


def _point(s: Setting, lam, gamma=None, oracle: bool = False, skip_exits: bool = False) -> tuple[float, float, float]:
    """Accuracy, mean on-device FLOPs (encoder included) and share sent to the server, by Algorithm 1."""
    n = s.conf.shape[1] - 1
    if oracle:
        o = ep_inference.oracle(s.conf, s.parts, lam)
    elif skip_exits:  # no exit is ever computed: an EP whose scores never reach its thresholds, at no cost
        o = ep_inference.evaluate(s.conf, s.parts, np.ones(n), np.ones(n), np.zeros((len(s.conf), n)))
    elif gamma is None:
        o = ep_inference.evaluate(s.conf, s.parts, lam)
    else:
        o = ep_inference.evaluate(s.conf, s.parts, lam, gamma, s.scores, s.ep_flops)
    summary = o.summary(s.correct)
    share = float(summary["exit_share"][-1])
    return summary["accuracy"], float(o.device_flops.mean()) + s.encoder_flops * share, share


def _sweep(
    s: Setting,
    method: str,
    kind: str,
    bandwidth_mbps,
    points: list[tuple[float, float, float]],
    knobs: dict | None = None,
) -> Sweep:
    """A sweep from each bandwidth's (accuracy, on-device FLOPs, share sent): Eq. (11) averaged over samples."""
    bw = np.atleast_1d(np.asarray(bandwidth_mbps, dtype=np.float64))
    acc, flops, share = (np.array(col, dtype=np.float64) for col in zip(*points))
    device = flops / s.r_comp
    return Sweep(method, kind, bw, acc, device + share * s.bits / (bw * 1e6), device, s.tau, knobs or {})


def _per_exit(s: Setting, values) -> np.ndarray:
    """One threshold per early exit (a scalar is repeated)."""
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (s.conf.shape[1] - 1,)).copy()


def backbone(s: Setting, bandwidth_mbps) -> Sweep:
    """Backbone: the on-device layers for every sample, whose compressed feature is always sent."""
    return _sweep(
        s,
        "Backbone",
        "backbone",
        bandwidth_mbps,
        [_point(s, None, skip_exits=True)] * len(np.atleast_1d(bandwidth_mbps)),
    )


def static(s: Setting, bandwidth_mbps, lam, gamma=None) -> Sweep:
    """EE (Static) with confidence thresholds ``lam``; EE+EP (Static) with the EP's thresholds ``gamma`` too."""
    if gamma is not None and s.scores is None:
        raise ValueError(
            "EE+EP (Static) needs the Exit Predictor's scores: Setting.from_artifact(run, scores, ep_flops)"
        )
    b = len(np.atleast_1d(bandwidth_mbps))
    lam, gamma = _per_exit(s, lam), None if gamma is None else _per_exit(s, gamma)
    name = "EE (Static)" if gamma is None else "EE+EP (Static)"
    knobs = _knobs(np.tile(lam, (b, 1)), None if gamma is None else np.tile(gamma, (b, 1)))
    return _sweep(s, name, "ee" if gamma is None else "ep", bandwidth_mbps, [_point(s, lam, gamma)] * b, knobs=knobs)


def _knobs(lam: np.ndarray, gamma: np.ndarray | None) -> dict[str, np.ndarray]:
    out = {f"lam{i + 1}": lam[:, i] for i in range(lam.shape[1])}
    return out | ({f"gamma{i + 1}": gamma[:, i] for i in range(gamma.shape[1])} if gamma is not None else {})


ADAPTIVE = {"ee": "EE (Adaptive)", "oracle": "EE+Oracle (Adaptive)", "ep": "EE+EP (Adaptive)"}


def candidates(s: Setting, kind: str, lam_grid, gamma_grid) -> latency.Candidates:
    """Problem (10)'s candidates of an adaptive method ``kind`` (``ee``, ``oracle`` or ``ep``)."""
    if kind not in ADAPTIVE:
        raise ValueError(f"unknown adaptive method {kind!r}; choose one of {', '.join(ADAPTIVE)}")
    if kind == "ep" and s.scores is None:
        raise ValueError(
            "EE+EP (Adaptive) needs the Exit Predictor's scores: Setting.from_artifact(run, scores, ep_flops)"
        )
    ep = kind == "ep"
    return latency.candidates(
        s.conf,
        s.correct,
        s.parts,
        lam_grid,
        gamma_grid if ep else (0.0,),
        s.scores if ep else None,
        s.ep_flops if ep else 0.0,
        oracle=kind == "oracle",
        offload_flops=s.encoder_flops,
    )


def _evaluate_rows(s: Setting, kind: str, rows: np.ndarray) -> list[tuple[float, float, float]]:
    n = s.conf.shape[1] - 1
    return [_point(s, r[:n], r[n:] if kind == "ep" else None, oracle=kind == "oracle") for r in rows]


def _thresholds(cands: latency.Candidates, kind: str, index: np.ndarray) -> np.ndarray:
    return np.hstack([cands.lam[index], cands.gamma[index]]) if kind == "ep" else cands.lam[index]


def optimum(s: Setting, bandwidth_mbps, kind: str, cands: latency.Candidates) -> Sweep:
    """Problem (10) solved at every bandwidth over ``cands`` (what the regression models approximate)."""
    choice = latency.solve(cands, np.asarray(bandwidth_mbps) * 1e6, s.bits, s.r_comp, s.tau)
    rows = _thresholds(cands, kind, choice.index)
    n = s.conf.shape[1] - 1
    return _sweep(
        s,
        ADAPTIVE[kind] + " optimum",
        kind,
        bandwidth_mbps,
        _evaluate_rows(s, kind, rows),
        knobs=_knobs(rows[:, :n], rows[:, n:] if kind == "ep" else None),
    )


@dataclass(frozen=True)
class Regressors:
    """§IV's regression models of one adaptive method, one per bandwidth interval, and their training optima."""

    models: dict[tuple[float, float], latency.ThresholdRegressor]
    optima: pd.DataFrame  # interval, bandwidth and the optimal thresholds it was fitted on

    def __call__(self, bandwidth_mbps) -> np.ndarray:
        """Thresholds (B, k) at each bandwidth, from the first interval containing it (the nearest outside),
        set to 0.001 (so that the last bits of a float, which differ between CPUs, never move a decision)."""
        bw = np.atleast_1d(np.asarray(bandwidth_mbps, dtype=np.float64))
        intervals = list(self.models)
        outputs = self.models[intervals[0]].layers[-1].out_features
        out = np.zeros((len(bw), outputs))
        with torch.no_grad():
            for i, b in enumerate(bw):
                out[i] = self.models[_interval_of(b, intervals)](torch.tensor([b])).double().numpy()[0]
        return np.round(out, 3)


def _interval_of(bandwidth: float, intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """The first interval containing ``bandwidth``; outside them all, the nearest one."""
    inside = [i for i in intervals if i[0] <= bandwidth <= i[1]]
    if inside:
        return inside[0]
    return min(intervals, key=lambda i: min(abs(np.log10(bandwidth / i[0])), abs(np.log10(bandwidth / i[1]))))


def fit_regressors(
    s: Setting,
    kind: str,
    cands: latency.Candidates,
    training_mbps: dict[tuple[float, float], tuple[float, ...]] = TRAINING_MBPS,
    seed: int = 0,
    store: str | os.PathLike | None = None,
) -> Regressors:
    """One regression model per interval, fitted to Problem (10)'s optimal thresholds at its bandwidths; with
    ``store`` (a folder of derived results), each kept there (:func:`latency.fit_or_load_regressor`)."""
    models, rows = {}, []
    for interval, bws in training_mbps.items():
        choice = latency.solve(cands, np.asarray(bws) * 1e6, s.bits, s.r_comp, s.tau)
        targets = _thresholds(cands, kind, choice.index)
        if store is None:
            models[interval] = latency.fit_regressor(bws, targets, interval, seed=seed)
        else:
            path = Path(store) / f"regressor-{kind}-{interval[0]:g}-{interval[1]:g}mbps.npz"
            models[interval] = latency.fit_or_load_regressor(bws, targets, interval, path, seed=seed)
        rows += [
            {
                "interval_mbps": f"{interval[0]:g}-{interval[1]:g}",
                "bandwidth_mbps": b,
                "thresholds": np.round(t, 3).tolist(),
                "accuracy_pct": 100 * cands.accuracy[i],
                "meets_tau": bool(f),
            }
            for b, t, i, f in zip(bws, targets, choice.index, choice.feasible)
        ]
    return Regressors(models, pd.DataFrame(rows))


def adaptive(s: Setting, bandwidth_mbps, kind: str, regressors: Regressors) -> Sweep:
    """An adaptive method: at each bandwidth, the thresholds its regression models give, run by Algorithm 1."""
    rows = np.clip(regressors(bandwidth_mbps), 0.0, 1.0)
    n = s.conf.shape[1] - 1
    return _sweep(
        s,
        ADAPTIVE[kind],
        kind,
        bandwidth_mbps,
        _evaluate_rows(s, kind, rows),
        knobs=_knobs(rows[:, :n], rows[:, n:] if kind == "ep" else None),
    )


def encoder_pruning(s: Setting, bandwidth_mbps, lam) -> Sweep:
    """EE (Adaptive, Pruning): EE (Static)'s thresholds, and at each bandwidth the smallest encoder pruning
    ratio whose mean latency meets tau (the most pruned codec where none does). The pruned encoder's
    FLOPs shrink with its channels; samples sent to the server are answered by the pruned codec's last exit."""
    bw = np.atleast_1d(np.asarray(bandwidth_mbps, dtype=np.float64))
    lam = _per_exit(s, lam)
    o = ep_inference.evaluate(s.conf, s.parts, lam)
    n = s.conf.shape[1] - 1
    sent = o.exit == n
    early = s.correct[np.arange(len(o.exit)), o.exit] & ~sent
    share = float(sent.mean())
    width = s.prune_bits / s.prune_bits[0]
    device = (o.device_flops.mean() + s.encoder_flops * width * share) / s.r_comp  # (R,)
    lat = device[:, None] + share * s.prune_bits[:, None] / (bw[None, :] * 1e6)  # (R, B)
    ok = lat <= s.tau * (1 + 1e-9)
    pick = np.where(ok.any(0), ok.argmax(0), len(width) - 1)
    accuracy = (early[None, :] | (sent[None, :] & s.prune_correct)).mean(1)
    cols = np.arange(len(bw))
    return Sweep(
        "EE (Adaptive, Pruning)",
        "pruning",
        bw,
        accuracy[pick],
        lat[pick, cols],
        device[pick],
        s.tau,
        _knobs(np.tile(lam, (len(bw), 1)), None) | {"prune_ratio": s.prune_ratio[pick]},
    )


def on_device(s: Setting, sweep: Sweep) -> np.ndarray:
    """Mean on-device cost divided by ``s.r_comp`` of each operating point of ``sweep``, evaluated under ``s``.

    With a setting whose part costs, EP cost and encoder cost are *measured seconds* and ``r_comp = 1``
    (see :func:`latency.time_parts`), this is the measured counterpart of ``sweep.device_latency``.
    """
    n = s.conf.shape[1] - 1
    lam = np.stack([sweep.knobs[f"lam{i + 1}"] for i in range(n)], 1) if sweep.kind != "backbone" else None
    gamma = np.stack([sweep.knobs[f"gamma{i + 1}"] for i in range(n)], 1) if sweep.kind == "ep" else None
    out = np.empty(len(sweep.bandwidth_mbps))
    for i in range(len(out)):
        if sweep.kind == "backbone":
            _, flops, _ = _point(s, None, skip_exits=True)
        else:
            _, flops, share = _point(s, lam[i], None if gamma is None else gamma[i], oracle=sweep.kind == "oracle")
            if sweep.kind == "pruning":  # the pruned encoder's cost shrinks with its channels
                k = int(np.flatnonzero(s.prune_ratio == sweep.knobs["prune_ratio"][i])[0])
                flops -= s.encoder_flops * share * (1 - s.prune_bits[k] / s.prune_bits[0])
        out[i] = flops / s.r_comp
    return out
