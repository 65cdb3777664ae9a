"""Paper A's inference with early exits and the Exit Predictor: staged (Algorithm 1) and on artifacts.

Exits are 0-based here: exits ``0 .. N-2`` are the early exits on the device, exit ``N-1`` is the
backbone's classifier on the edge server. For a sample, early exit ``n`` is *computed* when its
prediction score ``s_n >= gamma_n`` (always, without an Exit Predictor), and *terminates* the
inference when computed and its confidence ``c_n >= lambda_n``; a sample no early exit terminates
is sent to the server and answered by the last exit.

* :func:`staged_inference` runs Algorithm 1 for real on a batch, part by part (only the parts each
  sample needs), as a device would;
* :func:`evaluate` gives the same outcome from a artifact's confidences (every exit of every
  sample, computed once) for any thresholds in milliseconds, with the on-device FLOPs of Eq. (3)
  (no Exit Predictor) and Eq. (4) (with one), and the total FLOPs including the server part;
* :func:`oracle` is the bound of §III: a sample computes only the exit that terminates it;
* :func:`select_gamma` picks the prediction thresholds as Fig. 7's caption does;
* :func:`ep_labels` are the Exit Predictor's training targets ``u(c_n - lambda_n)`` of Eq. (9).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from torch import Tensor

from ..core import checks
from ..core.fingerprint import input_check
from ..nets.flops import PartFlops
from ..nets.multiexit import MultiExitNet


@dataclass(frozen=True)
class Outcome:
    """Per-sample result of early-exit inference: the exit that answered, the early exits computed,
    and the on-device and total FLOPs (MACs, as ptflops counts them) spent on the sample."""

    exit: np.ndarray  # (samples,) int: 0 .. N-1
    computed: np.ndarray  # (samples, N-1) bool: early exit n's classifier was run
    device_flops: np.ndarray  # (samples,) float
    total_flops: np.ndarray  # (samples,) float

    def summary(self, correct: np.ndarray) -> dict:
        """Accuracy, share of samples per exit and mean MFLOPs, given every exit's correctness (samples, N)."""
        checks.boolean(
            "correct",
            correct,
            (len(self.exit), self.computed.shape[1] + 1),
            fix="every exit's correctness, same samples",
        )
        n = correct.shape[1]
        right = correct[np.arange(len(self.exit)), self.exit]
        return {
            "accuracy": float(right.mean()),
            "exit_share": np.bincount(self.exit, minlength=n) / len(self.exit),
            "device_mflops": float(self.device_flops.mean() / 1e6),
            "total_mflops": float(self.total_flops.mean() / 1e6),
        }


def _thresholds(name: str, values, n: int) -> np.ndarray:
    """One threshold per early exit (a scalar is repeated), each in [0, 1]."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{name} must be one value in [0, 1] or one per early exit ({n}), got {values!r}")
    return arr


@input_check
def _check_conf(conf) -> None:
    """Every exit's confidence (samples, N), N >= 2: softmax maxima in [0, 1], no NaN."""
    arr = checks.probabilities("conf", conf, ndim=2, fix="pass every exit's softmax confidence, shape (samples, N)")
    if arr.shape[1] < 2:
        raise ValueError(f"conf has {arr.shape[1]} exit; Algorithm 1 needs early exits and a last exit (N >= 2)")


@input_check
def _check_candidates(candidates) -> None:
    """Fig. 7's candidate prediction thresholds: None (the default grid), or values in [0, 1] that include 0."""
    if candidates is None:
        return
    grid = checks.probabilities("candidates", candidates, ndim=1, fix="thresholds gamma to try, e.g. [0, 0.5, 1]")
    if not np.any(grid == 0):
        raise ValueError(
            f"candidates {grid.tolist()} must include 0 (it computes every early exit, so some choice is feasible)"
        )


def _costs(parts: list[PartFlops], n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Stage and exit FLOPs of the ``n`` exits, and the server part (last stage + last classifier)."""
    if len(parts) != n:
        raise ValueError(f"part FLOPs are for {len(parts)} exits, the confidences for {n}; pass part_flops(model)")
    stage = np.array([p.stage for p in parts], dtype=np.float64)
    head = np.array([p.exit for p in parts], dtype=np.float64)
    return stage, head, float(stage[-1] + head[-1])


def outcome(exit_: np.ndarray, computed: np.ndarray, parts: list[PartFlops], ep_flops: float = 0.0) -> Outcome:
    """FLOPs of each sample from the exit that answered it and the early exits it computed.

    On the device (Eq. (3), Eq. (4)): the Exit Predictor, the backbone stages up to the answering exit
    (all of stages ``0 .. N-2`` for a sample answered by the server) and every computed early exit.
    The server adds the last stage and the last classifier for the samples it answers.
    """
    n = computed.shape[1] + 1
    stage, head, server = _costs(parts, n)
    depth = np.minimum(exit_, n - 2)  # last on-device stage each sample runs
    reached = np.arange(n - 1)[None, :] <= depth[:, None]
    device = ep_flops + (reached * stage[None, : n - 1]).sum(1) + (computed * head[None, : n - 1]).sum(1)
    return Outcome(exit_, computed, device, device + np.where(exit_ == n - 1, server, 0.0))


def evaluate(
    conf: np.ndarray, parts: list[PartFlops], lam, gamma=None, scores: np.ndarray | None = None, ep_flops: float = 0.0
) -> Outcome:
    """Algorithm 1 on a profile: ``conf`` (samples, N) every exit's confidence; ``lam`` the N-1 confidence
    thresholds; with ``scores`` (samples, N-1) and ``gamma`` the Exit Predictor's scores and thresholds.

    Without scores every early exit is computed until one terminates (Eq. (3)); with them exit ``n`` is
    computed only if ``s_n >= gamma_n`` (Eq. (4), ``ep_flops`` = the EP's own cost per sample).
    """
    _check_conf(conf)
    checks.number("ep_flops", ep_flops, low=0.0, fix="the Exit Predictor's FLOPs per sample")
    conf = np.asarray(conf)
    samples, n = conf.shape
    lam = _thresholds("lam", lam, n - 1)
    if scores is None:
        run = np.ones((samples, n - 1), dtype=bool)
    else:
        checks.probabilities("scores", scores, ndim=2, fix="pass the Exit Predictor's sigmoid scores")
        scores = np.asarray(scores)
        if scores.shape != (samples, n - 1):
            raise ValueError(f"scores must have shape (samples, N-1) = {(samples, n - 1)}, got {scores.shape}")
        run = scores >= _thresholds("gamma", gamma, n - 1)[None, :]
    stops = run & (conf[:, : n - 1] >= lam[None, :])
    exit_ = np.where(stops.any(1), stops.argmax(1), n - 1)
    computed = run & (np.arange(n - 1)[None, :] <= exit_[:, None])
    return outcome(exit_, computed, parts, ep_flops)


def oracle(conf: np.ndarray, parts: list[PartFlops], lam) -> Outcome:
    """§III's oracle: every sample ends at the exit Eq. (3)'s network would end it at, but computes only
    that exit's classifier (none for samples answered by the server)."""
    plain = evaluate(conf, parts, lam)
    n = plain.computed.shape[1] + 1
    computed = np.arange(n - 1)[None, :] == plain.exit[:, None]
    return outcome(plain.exit, computed, parts)


def ep_labels(conf: np.ndarray, lam) -> np.ndarray:
    """Eq. (9): the Exit Predictor's targets ``u(c_n - lambda_n)``, 1 where early exit n's confidence
    reaches its threshold; ``conf`` (samples, N) holds every exit's confidence, the last is not used."""
    _check_conf(conf)
    conf = np.asarray(conf)
    lam = _thresholds("lam", lam, conf.shape[1] - 1)
    return (conf[:, :-1] >= lam[None, :]).astype(np.float32)


@njit(cache=True)
def _sums(conf, scores, lam, gamma, stage, head, correct):  # pragma: no cover - compiled; tested via evaluate_many
    """Per threshold row: the summed on-device FLOPs (without the EP), samples sent on and samples right."""
    rows, (samples, n) = lam.shape[0], conf.shape
    flops, last, right = np.zeros(rows), np.zeros(rows), np.zeros(rows)
    for r in range(rows):
        for i in range(samples):
            exit_, spent = n, 0.0
            for k in range(n):
                if scores.shape[0] == 0 or scores[i, k] >= gamma[r, k]:
                    spent += head[k]
                    if conf[i, k] >= lam[r, k]:
                        exit_ = k
                        break
            flops[r] += spent + stage[min(exit_, n - 1)]
            last[r] += exit_ == n
            right[r] += correct[i, exit_]
    return flops, last, right


def evaluate_many(
    conf: np.ndarray,
    parts: list[PartFlops],
    lam: np.ndarray,
    gamma: np.ndarray,
    scores: np.ndarray | None = None,
    ep_flops: float = 0.0,
    correct: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`evaluate` for K rows of thresholds at once, ``lam`` and ``gamma`` each (K, N-1) (``gamma`` is not
    used without ``scores``), in one compiled pass over rows and samples.

    Returns each row's mean on-device FLOPs (Eq. (3), or Eq. (4) with ``scores``: ``ep_flops`` included), the
    share of samples the last exit answers and, given every exit's ``correct``ness (samples, N), the accuracy
    (zeros without it). FLOPs are whole numbers, so their sums are exact in any order.
    """
    n = conf.shape[1] - 1
    stage = np.cumsum([p.stage for p in parts[:n]], dtype=np.float64)  # stages run up to each exit
    head = np.array([p.exit for p in parts[:n]], dtype=np.float64)
    right = np.zeros(conf.shape, dtype=bool) if correct is None else np.asarray(correct, dtype=bool)
    flops, last, hits = _sums(
        np.asarray(conf[:, :n], dtype=np.float64),
        np.zeros((0, n)) if scores is None else np.asarray(scores, dtype=np.float64),
        np.ascontiguousarray(lam, dtype=np.float64),
        np.ascontiguousarray(gamma, dtype=np.float64),
        stage,
        head,
        right,
    )
    samples = conf.shape[0]
    return ep_flops + flops / samples, last / samples, hits / samples


def select_gamma(
    conf: np.ndarray,
    scores: np.ndarray,
    parts: list[PartFlops],
    lam,
    ep_flops: float = 0.0,
    extra_last: float = 0.02,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, Outcome]:
    """Fig. 7's prediction thresholds: the lowest mean on-device FLOPs while fewer than ``extra_last``
    (2 %) additional samples end at the last exit than without the Exit Predictor.

    Searches every combination of ``candidates`` per early exit (default 0, 0.05, ..., 1; gamma = 0
    computes every exit, so a feasible choice always exists: it must be among them) at once
    (:func:`evaluate_many`); ties go to the smaller thresholds. Returns them with their :func:`evaluate` outcome.
    """
    _check_conf(conf)
    checks.number("extra_last", extra_last, low=0.0, high=1.0, open_low=True, fix="a share of samples, e.g. 0.02")
    _check_candidates(candidates)
    checks.probabilities("scores", scores, ndim=2, fix="pass the Exit Predictor's sigmoid scores")
    conf, scores = np.asarray(conf), np.asarray(scores)
    n = conf.shape[1]
    lam = _thresholds("lam", lam, n - 1)
    base = np.mean(evaluate(conf, parts, lam).exit == n - 1)
    grid = np.linspace(0.0, 1.0, 21) if candidates is None else np.asarray(candidates, dtype=np.float64)
    gammas = np.array(list(itertools.product(grid, repeat=n - 1)), dtype=np.float64)
    cost, last, _ = evaluate_many(conf, parts, np.broadcast_to(lam, gammas.shape), gammas, scores, ep_flops)
    best = int(np.argmin(np.where(last - base < extra_last, cost, np.inf)))  # the first of equal costs
    return gammas[best], evaluate(conf, parts, lam, gammas[best], scores, ep_flops)


def _rows(h: Tensor | list[Tensor], keep: Tensor) -> Tensor | list[Tensor]:
    """The samples ``keep`` of a feature (a tensor, or one tensor per scale)."""
    return h[keep] if isinstance(h, Tensor) else [t[keep] for t in h]


@torch.no_grad()
def staged_inference(model: MultiExitNet, x: Tensor, lam, gamma=None, scores: Tensor | None = None) -> dict:
    """Algorithm 1 on a normalised batch ``x``, part by part: each sample runs the backbone stages and
    the early exits it needs, stops at the first computed exit whose confidence reaches ``lambda_n``,
    else continues to the server part (the last stage and classifier).

    ``scores`` (samples, N-1): the Exit Predictor's prediction scores (None: every exit computed).
    Returns numpy arrays: ``exit``, ``pred``, ``conf`` of the answering exit and ``computed`` (samples, N-1).
    """
    model.eval()
    n, samples = model.num_exits, len(x)
    lam = _thresholds("lam", lam, n - 1)
    run = (
        torch.ones(samples, n - 1, dtype=torch.bool)
        if scores is None
        else scores >= torch.as_tensor(_thresholds("gamma", gamma, n - 1), dtype=scores.dtype)
    )
    out = {
        "exit": np.full(samples, n - 1),
        "pred": np.zeros(samples, dtype=np.int64),
        "conf": np.zeros(samples),
        "computed": np.zeros((samples, n - 1), dtype=bool),
    }
    active, h = torch.arange(samples), x
    for k in range(n - 1):
        h = model.stage(k, h)
        compute = run[active, k]
        if compute.any():
            conf, pred = model.exit(k, _rows(h, compute)).softmax(-1).max(-1)
            ids = active[compute]
            out["computed"][ids.numpy(), k] = True
            done = conf >= lam[k]
            out["exit"][ids[done].numpy()] = k
            out["pred"][ids[done].numpy()] = pred[done].numpy()
            out["conf"][ids[done].numpy()] = conf[done].double().numpy()
            stay = torch.ones(len(active), dtype=torch.bool)
            stay[compute.nonzero().squeeze(1)[done]] = False
            active, h = active[stay], _rows(h, stay)
        if len(active) == 0:
            return out
    conf, pred = model.exit(n - 1, model.stage(n - 1, h)).softmax(-1).max(-1)
    out["pred"][active.numpy()], out["conf"][active.numpy()] = pred.numpy(), conf.double().numpy()
    return out
