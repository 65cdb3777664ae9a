"""EINet CS-Predictors (Paper B §IV-C): training set of Fig. 5, the MLP of §IV-C2, Eqs. (1)-(3), Activation Cache.

A CS-Predictor of an ``n``-exit network maps the *known* confidence scores of a sample (exits
already passed, later entries 0) to the scores of all exits. Its output is merged with the known
scores by the mask of Eq. (1): ``O' = O * M + L * (1 - M)``, ``M`` = 0 for passed exits, 1 after.

Conventions (the paper leaves them open):

* Rows of the training set (Fig. 5): executed prefixes ``x = 1 .. n-1`` per sample (``n - 1`` rows,
  two for three exits as in Fig. 5). ``x = n`` is left out: its mask is all zero, so Eq. (3) is
  empty and the row carries no gradient. ``x = 0`` (nothing known) is not in Fig. 5 either; the
  plan before the first exit uses :attr:`CSPredictor.prior`, the mean training CS-profile.
* Eq. (3) is a *sum* over the unexecuted exits of a row, averaged over the rows of a batch.
* Hidden sizes (§IV-C2): (2048, 1024) from :data:`LARGE_MIN_EXITS` = 14 exits on, (256, 128) below.
  The text says "around 30 branches"; Table III's cache sizes are ``4 * (h1 + n)`` bytes and put
  VGG-16 (14 exits) and MSDNet21 at ``h1 = 2048``, hence the threshold 14.
* Defaults of :func:`train_predictor`: SGD with momentum 0.9 (§VI-A), ``lr = 0.05``, batch 256,
  gradient-norm clipping at 1.0, dropout 0.1; one epoch = one pass over all Fig. 5 rows, and
  ``epochs=None`` makes about :data:`DEFAULT_ROWS` rows (1 epoch for 10,000 samples x 40 exits,
  80-115 s on one CPU thread; 20 for 3 exits, seconds). The paper trains 3000 epochs at
  ``lr = 0.001``; at that lr the large predictor is still far from its plateau after 1,000 steps,
  while ``lr = 0.05`` gets there in about one pass (and suits the small predictor too).
* :func:`train_to_plateau` is the same recipe trained to its validation plateau (held-out samples, learning-rate
  cuts, early stopping): beyond the paper, to measure what the short training costs EINet
  (:func:`earlyexit.paper_b.baselines.predictor_study`).
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core import files, timing
from ..core.fingerprint import fingerprint
from ..engine import derived, sgd

__all__ = [
    "LARGE_MIN_EXITS",
    "DEFAULT_ROWS",
    "predictor_dataset",
    "hidden_sizes",
    "CSPredictor",
    "masked_mse",
    "train_predictor",
    "PLATEAU_COLUMNS",
    "split_validation",
    "eq3_loss",
    "train_to_plateau",
    "stopped",
    "fit_or_load",
    "known_scores",
    "CachedPredictor",
    "measure_activation_cache",
]

LARGE_MIN_EXITS = 14
"""Fewest exits that get the large (2048, 1024) predictor (§IV-C2; threshold from Table III)."""

DEFAULT_ROWS = 400_000
"""Training rows :func:`train_predictor` sees with ``epochs=None``: ``max(1, round(DEFAULT_ROWS / rows))`` epochs."""


def predictor_dataset(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fig. 5: one row per sample and executed prefix ``x = 1 .. n-1``, sample-major.

    ``conf`` is a CS-profile, shape (samples, n). Row ``(i, x)`` has input ``conf[i, :x]`` followed by
    zeros, target ``conf[i]`` (the *Labels*) and mask ``M`` = 0 on exits ``1..x``, 1 after (Eq. (1)).
    Returns float32 ``(inputs, targets, masks)``, each of shape (samples * (n - 1), n).
    """
    conf = np.asarray(conf, dtype=np.float32)
    if conf.ndim != 2 or conf.shape[1] < 2:
        raise ValueError(f"conf must be a CS-profile of shape (samples, n >= 2), got {conf.shape}")
    samples, n = conf.shape
    known = np.arange(n)[None, :] < np.arange(1, n)[:, None]  # (n-1, n): row x-1 knows exits < x
    masks = np.broadcast_to(~known, (samples, n - 1, n)).reshape(-1, n).astype(np.float32)
    inputs = (conf[:, None, :] * known[None]).reshape(-1, n)
    targets = np.repeat(conf, n - 1, axis=0)
    return inputs, targets, masks


def hidden_sizes(n: int) -> tuple[int, int]:
    """(h1, h2) of §IV-C2: (2048, 1024) for ``n >= LARGE_MIN_EXITS`` exits, else (256, 128)."""
    return (2048, 1024) if n >= LARGE_MIN_EXITS else (256, 128)


class CSPredictor(nn.Module):
    """§IV-C2: input layer, ReLU + dropout, hidden layer, ReLU + dropout, output layer; Eq. (1) outside.

    ``prior`` (a buffer) is the mean training CS-profile, the scores assumed before any exit.
    """

    def __init__(self, n: int, hidden: tuple[int, int] | None = None, dropout: float = 0.1):
        super().__init__()
        h1, h2 = hidden or hidden_sizes(n)
        self.n = n
        self.net = nn.Sequential(
            nn.Linear(n, h1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(h2, n),
        )
        self.register_buffer("prior", torch.zeros(n))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``O' = O * M + L * (1 - M)`` (Eq. (1)) with ``L = x``, the known scores."""
        return self.net(x) * mask + x * (1 - mask)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Eq. (3): ``sum_{i > x} (O_i - L_i)^2`` per row (``mask`` selects ``i > x``), mean over rows."""
    return ((pred - target) ** 2 * mask).sum(-1).mean()


@contextmanager
def _seeded(conf_train: np.ndarray, hidden: tuple[int, int] | None, dropout: float, lr: float, seed: int):
    """A fresh :class:`CSPredictor` (``prior`` = mean of ``conf_train``), its SGD (momentum 0.9, §VI-A) and the
    generator that shuffles its rows, all seeded by ``seed`` inside ``fork_rng``: the caller's global generator
    is left as it was, as a notebook trains a predictor in the middle of its own seeded work."""
    conf = np.asarray(conf_train, dtype=np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CSPredictor(conf.shape[1], hidden, dropout)
        model.prior.copy_(torch.as_tensor(conf.mean(0)))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        yield model, opt, torch.Generator().manual_seed(seed)


def _rows(conf: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """The Fig. 5 rows of ``conf`` as tensors: inputs, targets, masks."""
    inputs, targets, masks = predictor_dataset(conf)
    return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(masks)


def _loss(model: CSPredictor, inputs: Tensor, targets: Tensor, masks: Tensor) -> Callable[[Tensor], Tensor]:
    """Eq. (3) of a batch of Fig. 5 rows, by their indices (the ``loss_of`` of :func:`earlyexit.engine.sgd.epoch`)."""

    def loss_of(rows: Tensor) -> Tensor:
        return masked_mse(model(inputs[rows], masks[rows]), targets[rows], masks[rows])

    return loss_of


def train_predictor(
    conf_train: np.ndarray,
    *,
    hidden: tuple[int, int] | None = None,
    epochs: int | None = None,
    lr: float = 0.05,
    batch_size: int = 256,
    clip: float = 1.0,
    dropout: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> tuple[CSPredictor, list[float]]:
    """Train a CS-Predictor on the Fig. 5 rows of ``conf_train`` with Eq. (3) (§IV-C3, §VI-A).

    SGD (:func:`earlyexit.engine.sgd.epoch`, momentum 0.9) at a constant learning rate, gradient-norm
    clipping at ``clip``, dropout; ``epochs=None`` picks ``max(1, round(DEFAULT_ROWS / rows))``. Unlike
    the image networks (:func:`earlyexit.engine.training.image_epoch`) there is no augmentation or schedule,
    and one generator, seeded once by ``seed``, shuffles every epoch (:func:`_seeded`). Returns the model
    (eval mode, ``prior`` set to the mean of ``conf_train``) and the mean loss of every epoch.
    """
    inputs, targets, masks = _rows(conf_train)
    epochs = max(1, round(DEFAULT_ROWS / len(inputs))) if epochs is None else epochs
    with _seeded(conf_train, hidden, dropout, lr, seed) as (model, opt, gen):
        history: list[float] = []
        loss_of = _loss(model, inputs, targets, masks)
        with tqdm(total=epochs * -(-len(inputs) // batch_size), disable=not progress, desc="CS-Predictor") as bar:
            for _ in range(epochs):
                order = torch.randperm(len(inputs), generator=gen)
                history.append(sgd.epoch(model, opt, order, batch_size, loss_of, clip=clip, bar=bar))
    return model.eval(), history


PLATEAU_COLUMNS = ("rows", "train_loss", "validation_loss", "lr")
"""The columns of :func:`train_to_plateau`'s history, one row per check; ``lr`` is the rate after the check."""


def split_validation(samples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the samples that fit and of those held out for validation: a seeded ``fraction`` held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng([seed, 3]).permutation(samples)
    held = max(1, round(fraction * samples))
    return np.sort(order[held:]), np.sort(order[:held])


def _stream(rows: int, size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Endless batches of ``size`` row indices: seeded shuffles of all ``rows``, one after the other."""
    buffer = torch.empty(0, dtype=torch.long)
    while True:
        while len(buffer) < size:
            buffer = torch.cat([buffer, torch.randperm(rows, generator=gen)])
        yield buffer[:size]
        buffer = buffer[size:]


def eq3_loss(model: CSPredictor, conf: np.ndarray) -> float:
    """Eq. (3) of ``model`` (in eval mode) on the Fig. 5 rows of ``conf``: the error :func:`train_to_plateau`
    watches on its held-out samples, and the predictor's error on any other CS-profile."""
    return _eq3(model.eval(), *_rows(conf))


def _eq3(model: CSPredictor, inputs: Tensor, targets: Tensor, masks: Tensor, batch: int = 65_536) -> float:
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(inputs), batch):
            part = slice(s, s + batch)
            total += float(masked_mse(model(inputs[part], masks[part]), targets[part], masks[part])) * len(inputs[part])
    return total / len(inputs)


def train_to_plateau(
    conf_train: np.ndarray,
    *,
    validation: float = 0.2,
    check_rows: int = 100_000,
    patience: int = 1,
    cuts: int = 2,
    threshold: float = 1e-3,
    max_rows: int = 2_000_000,
    hidden: tuple[int, int] | None = None,
    lr: float = 0.05,
    batch_size: int = 256,
    clip: float = 1.0,
    dropout: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> tuple[CSPredictor, list[list[float]]]:
    """A CS-Predictor trained to its validation plateau: :func:`train_predictor`'s recipe with early stopping.

    The paper trains 3000 epochs at lr 0.001 (§VI-A) and :func:`train_predictor` about one pass; here a seeded
    ``validation`` share of the samples of ``conf_train`` is held out (:func:`split_validation`) and the rest is
    trained on, checked every ``check_rows`` rows by Eq. (3) on the held-out rows (:func:`eq3_loss`). The learning
    rate is cut tenfold when ``patience`` + 1 checks in a row bring no new best by more than ``threshold`` of it
    (``ReduceLROnPlateau``, relative); training stops at the next such stall after ``cuts`` cuts, or after
    ``max_rows`` rows. Returns the model of the best check
    (eval mode, ``prior`` = the mean of the fitting samples) and one history row per check (:data:`PLATEAU_COLUMNS`).
    """
    conf = np.asarray(conf_train, dtype=np.float32)
    fit, held = split_validation(len(conf), validation, seed)
    inputs, targets, masks = _rows(conf[fit])
    held_out = _rows(conf[held])
    with _seeded(conf[fit], hidden, dropout, lr, seed) as (model, opt, gen):
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=patience, threshold=threshold)
        batches, loss_of = _stream(len(inputs), check_rows, gen), _loss(model, inputs, targets, masks)
        history: list[list[float]] = []
        best, state = np.inf, copy.deepcopy(model.state_dict())
        with tqdm(total=max_rows, disable=not progress, desc="CS-Predictor to plateau", unit="row") as bar:
            while len(history) * check_rows < max_rows and not _stalled(opt.param_groups[0]["lr"], lr, cuts):
                train = sgd.epoch(model, opt, next(batches), batch_size, loss_of, clip=clip)
                loss = _eq3(model.eval(), *held_out)
                if loss < best:
                    best, state = loss, copy.deepcopy(model.state_dict())
                plateau.step(loss)
                history.append([(len(history) + 1) * check_rows, train, loss, opt.param_groups[0]["lr"]])
                bar.update(check_rows)
                bar.set_postfix(validation=f"{loss:.4f}", lr=f"{history[-1][3]:g}")
        model.load_state_dict(state)
    return model.eval(), history


def _stalled(rate: float, start: float, cuts: int) -> bool:
    """Whether the learning rate has been cut more than ``cuts`` times tenfold from ``start``."""
    return rate < start * 0.1 ** (cuts + 0.5)


def stopped(history: list[list[float]], lr: float | None = None, cuts: int | None = None) -> str:
    """Why :func:`train_to_plateau` (run with ``lr`` and ``cuts``, by default its own) stopped: ``"plateau"`` or
    ``"row cap"``."""
    defaults = inspect.signature(train_to_plateau).parameters
    lr = defaults["lr"].default if lr is None else lr
    cuts = defaults["cuts"].default if cuts is None else cuts
    return "plateau" if _stalled(history[-1][3], lr, cuts) else "row cap"


def fit_or_load(
    conf_train: np.ndarray, path: str | os.PathLike, trainer: Callable = train_predictor, **kwargs
) -> tuple[CSPredictor, list]:
    """``trainer`` (:func:`train_predictor` or :func:`train_to_plateau`) with its result kept in ``path`` (an
    ``.npz`` of the weights and the history).

    A predictor stored there is read instead of retrained when it was trained on the same rows, with
    the same arguments and by the same code of this module (:func:`derived.load_or_compute`).
    """
    key = {
        "conf_sha256": files.array_sha256(np.asarray(conf_train, dtype=np.float32)),
        "kwargs": {k: v for k, v in kwargs.items() if k != "progress"},
        "code_sha256": fingerprint(trainer),
    }

    def write(result: tuple[CSPredictor, list], tmp: Path) -> None:
        model, losses = result
        with open(tmp, "wb") as f:
            np.savez_compressed(f, losses=np.asarray(losses), **{k: v.numpy() for k, v in model.state_dict().items()})

    def read(stored: Path) -> tuple[CSPredictor, list]:
        with np.load(stored) as f:
            state = {k: torch.from_numpy(f[k]) for k in f.files if k != "losses"}
            losses = f["losses"].tolist()
        hidden = (state["net.0.weight"].shape[0], state["net.3.weight"].shape[0])
        model = CSPredictor(len(state["prior"]), hidden, kwargs.get("dropout", 0.1))
        model.load_state_dict(state)
        return model.eval(), losses

    return derived.load_or_compute(path, key, lambda: trainer(conf_train, **kwargs), write, read)


def known_scores(produced_conf: np.ndarray, executed_mask: np.ndarray) -> np.ndarray:
    """The known-score vector ``L`` of passed exits (§IV-C2, last paragraph).

    Both arrays cover the exits passed so far (last axis). An executed exit keeps its score; a skipped
    one takes the score of the nearest previous executed exit, 0 before any. Works on batches.
    """
    conf = np.asarray(produced_conf, dtype=np.float64)
    executed = np.asarray(executed_mask, dtype=bool)
    idx = np.maximum.accumulate(np.where(executed, np.arange(conf.shape[-1]), -1), axis=-1)
    filled = np.take_along_axis(conf, np.maximum(idx, 0), axis=-1)
    return np.where(idx >= 0, filled, 0.0)


class CachedPredictor:
    """Activation Cache (§IV-C4, Eq. (4)) over a batch of samples in float32 numpy (batch 1 online).

    Per sample it keeps the known-score input ``x`` and the input layer's pre-activation
    ``a = W1 x + B1``. Setting score ``s`` at exit ``k`` adds ``W1[:, k] * (s - x_k)`` to ``a`` (new and
    changed scores alike); :meth:`predict` then applies ``f1`` = ReLU and the remaining layers (eval
    mode: dropout is the identity) and the mask of Eq. (1).
    """

    def __init__(self, model: CSPredictor, batch: int = 1):
        layers = [m for m in model.net if isinstance(m, nn.Linear)]
        w = [np.ascontiguousarray(l.weight.detach().cpu().numpy(), dtype=np.float32) for l in layers]
        self.b1, self.b2, self.b3 = (l.bias.detach().cpu().numpy().astype(np.float32) for l in layers)
        self.w1t = np.ascontiguousarray(w[0].T)  # (n, h1): row k = column k of W1, contiguous
        self.w2t, self.w3t = np.ascontiguousarray(w[1].T), np.ascontiguousarray(w[2].T)
        self.n = self.w1t.shape[0]
        self.reset(batch)

    def reset(self, batch: int | None = None) -> None:
        """Empty the cache: no known scores, ``a = B1``."""
        batch = self.x.shape[0] if batch is None else batch
        self.x = np.zeros((batch, self.n), dtype=np.float32)
        self.a = np.tile(self.b1, (batch, 1))

    @property
    def cache_nbytes(self) -> int:
        """Bytes cached per sample: ``a`` (h1 floats) and ``x`` (n floats), Table III's "Memory"."""
        return (self.a[0].nbytes + self.x[0].nbytes) if len(self.x) else 0

    def set(self, k: int, values, rows: np.ndarray | slice = slice(None)) -> None:
        """Eq. (4), incrementally: known score of exit ``k`` becomes ``values`` for ``rows``."""
        values = np.asarray(values, dtype=np.float32)
        delta = values - self.x[rows, k]
        self.a[rows] += delta[..., None] * self.w1t[k]
        self.x[rows, k] = values

    def _rest(self, a: np.ndarray, x: np.ndarray, passed: int) -> np.ndarray:
        """ReLU, hidden and output layers, then Eq. (1) with exits ``0 .. passed-1`` known."""
        h = np.maximum(np.maximum(a, 0.0) @ self.w2t + self.b2, 0.0)
        out = h @ self.w3t + self.b3
        out[:, :passed] = x[:, :passed]
        return out

    def predict(self, passed: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """O' of Eq. (1) for ``rows`` from the cache, exits ``0 .. passed-1`` known."""
        return self._rest(self.a[rows], self.x[rows], passed)

    def forward(self, x: np.ndarray, passed: int) -> np.ndarray:
        """The same O' without the cache: the input layer recomputed from ``x`` (batch, n)."""
        x = np.asarray(x, dtype=np.float32)
        return self._rest(x @ self.w1t + self.b1, x, passed)


def measure_activation_cache(predictor: CSPredictor, conf_rows: np.ndarray, pairs: int = 30, seed: int = 0) -> dict:
    """Table III: batch-1 incremental prediction over each row's exits, with and without the cache.

    For every row of ``conf_rows`` (samples, n) and every exit ``k < n - 1``, the score of ``k``
    arrives and the remaining scores are predicted: via :meth:`CachedPredictor.set` + ``predict``
    (cached) or by filling the input vector and running :meth:`CachedPredictor.forward` (uncached).
    The two are timed in ``pairs`` interleaved pairs (:func:`timing.ab_compare`); returns seconds per
    prediction, the time reduced in percent with its 95 % interval and verdict, and the cache's bytes
    per sample.
    """
    conf_rows = np.asarray(conf_rows, dtype=np.float32)
    cached = CachedPredictor(predictor, batch=1)
    n = cached.n
    x = np.zeros((1, n), dtype=np.float32)

    def run_cached() -> None:
        for row in conf_rows:
            cached.reset()
            for k in range(n - 1):
                cached.set(k, row[k : k + 1])
                cached.predict(k + 1)

    def run_uncached() -> None:
        for row in conf_rows:
            x[:] = 0.0
            for k in range(n - 1):
                x[0, k] = row[k]
                cached.forward(x, k + 1)

    ab = timing.ab_compare(run_uncached, run_cached, pairs, seed=seed)
    calls = len(conf_rows) * (n - 1)
    return {
        "exits": n,
        "hidden": (cached.w1t.shape[1], cached.w2t.shape[1]),
        "predictions": calls,
        "cached_s": ab["b_s"] / calls,
        "uncached_s": ab["a_s"] / calls,
        "reduced_pct": ab["saved_pct"],
        "reduced_ci": (ab["ci_low"], ab["ci_high"]),
        "verdict": {"B faster": "cache saves time", "B slower": "cache costs time"}.get(ab["verdict"], "within noise"),
        "cache_nbytes": cached.cache_nbytes,
    }
