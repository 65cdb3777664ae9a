"""Paper A's Exit Predictor (§III-B, Fig. 6) and the ablation architectures of Table II.

The Exit Predictor (EP) reads the input image and outputs ``N - 1`` prediction scores ``s_n`` in
(0, 1) (Eq. (7)), one per early exit: exit ``n`` is computed only if ``s_n >= gamma_n``
(Algorithm 1). Its architecture (Fig. 6):

* a standard 3x3 convolution, 16 channels, stride 2 (the only non-separable convolution);
* three depthwise-separable blocks: a 3x3 depthwise convolution with stride 2, then the block's
  input, max-pooled by 2, concatenated to the depthwise output ("Cat.", [32]), squeeze-and-
  excitation over the concatenation ("SE", [33]), and a pointwise (1x1) convolution to 32, 64 and
  128 channels;
* fully-connected layers and a sigmoid.

Convolutions are bias-free and followed by BatchNorm and ReLU, as in the backbones. Where the paper
is silent we chose (and keep as parameters): SE's own default reduction ratio 16 (``se_reduction``)
and two FC layers with 64 hidden units (``hidden``). With them ptflops 0.6.9 counts 0.3985 MFLOPs for
two scores, Table II's 0.40. The ablations are the same design without concatenation and SE
(0.2865; Table II: 0.29), two FC layers of 128 hidden units on the flattened image (0.3937; 0.39) and
LeNet-5 (0.6704; 0.67): every printed digit is matched (``tests/test_exit_predictor.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core import data
from ..core.fingerprint import fingerprint
from ..engine import derived, training
from ..nets.multiexit import conv_bn_relu
from .ep_inference import ep_labels


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class SqueezeExcitation(nn.Module):
    """SE of Hu et al. [33]: global average pool, FC to ``channels / reduction``, ReLU, FC back, sigmoid,
    and the input's channels rescaled by the result."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        inner = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, inner), nn.ReLU(inplace=True), nn.Linear(inner, channels), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.pool(x))[:, :, None, None]


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride 2) + BN + ReLU, optionally [max-pooled input, depthwise output] concatenated
    and squeeze-and-excited, then pointwise 1x1 + BN + ReLU to ``cout`` channels (Fig. 6)."""

    def __init__(self, cin: int, cout: int, concat: bool = True, se_reduction: int | None = 16):
        super().__init__()
        self.depthwise = nn.Sequential(nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), *_bn_relu(cin))
        self.pool = nn.MaxPool2d(2) if concat else None
        width = 2 * cin if concat else cin
        self.se = SqueezeExcitation(width, se_reduction) if se_reduction else nn.Identity()
        self.pointwise = nn.Sequential(nn.Conv2d(width, cout, 1, bias=False), *_bn_relu(cout))

    def forward(self, x: Tensor) -> Tensor:
        h = self.depthwise(x)
        if self.pool is not None:
            h = torch.cat([self.pool(x), h], 1)
        return self.pointwise(self.se(h))


class ExitPredictor(nn.Module):
    """The EP of Fig. 6 for ``scores = N - 1`` early exits; ``forward`` returns the logits ``z_EP``
    (Eq. (8)); :meth:`scores` applies the sigmoid of Eq. (7)."""

    def __init__(
        self,
        scores: int,
        in_channels: int = 3,
        image_size: int = 32,
        widths: tuple[int, ...] = (32, 64, 128),
        concat: bool = True,
        se_reduction: int | None = 16,
        hidden: int = 64,
    ):
        super().__init__()
        layers: list[nn.Module] = conv_bn_relu(in_channels, 16, stride=2)
        cin, size = 16, image_size // 2
        for cout in widths:
            layers.append(SeparableBlock(cin, cout, concat, se_reduction))
            cin, size = cout, (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * size * size, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, scores)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def scores(self, x: Tensor) -> Tensor:
        """Prediction scores ``s_n = sigmoid(z_EP_n)`` (Eq. (7))."""
        return torch.sigmoid(self(x))


def fcs_only(scores: int, in_channels: int = 3, image_size: int = 32, hidden: int = 128) -> nn.Sequential:
    """Table II's "FCs only": two FC layers on the flattened image (0.39 MFLOPs for a 32x32x3 input)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * image_size**2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, scores)
    )


def lenet(scores: int, in_channels: int = 3) -> nn.Sequential:
    """Table II's LeNet [42] (LeNet-5 for 32x32 inputs: two 5x5 convs with max-pooling, FCs 120 and 84)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(inplace=True),
        nn.Linear(120, 84),
        nn.ReLU(inplace=True),
        nn.Linear(84, scores),
    )


#: Table II's EP architectures by name: builders of ``scores`` outputs (logits; the sigmoid is applied outside).
ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "ours": lambda scores: ExitPredictor(scores),
    "w/o Cat. & SE": lambda scores: ExitPredictor(scores, concat=False, se_reduction=None),
    "FCs only": fcs_only,
    "LeNet": lenet,
}


def build_exit_predictor(architecture: str, scores: int, seed: int | None = None) -> nn.Module:
    """An EP of one of :data:`ARCHITECTURES` with ``scores = N - 1`` outputs (seeded if ``seed`` is given)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown Exit Predictor architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if not isinstance(scores, int) or scores < 1:
        raise ValueError(f"scores must be the number of early exits N - 1 >= 1, got {scores!r}")
    if seed is not None:
        torch.manual_seed(seed)
    return ARCHITECTURES[architecture](scores)


def bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Eq. (6): the binary cross-entropies of the N-1 scores summed, averaged over the batch; the
    sigmoid of Eq. (7) is folded into the loss for numerical stability."""
    return nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1).mean()


def train_exit_predictor(
    ep: nn.Module,
    x_train: Tensor,
    labels: Tensor,
    dataset: str,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.1,
    lr_end: float = 1e-4,
    weight_decay: float = 2e-4,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``ep`` on raw uint8 images ``x_train`` and Eq. (9) ``labels`` (samples, N-1) with Eq. (6).

    §V-A: as the early-exit networks (SGD, momentum 0.9, batch 128, cosine from 0.1 to 1e-4, the same
    crop-and-flip augmentation) except weight decay 2e-4; annealed over all ``epochs``. Seeded per
    epoch. Returns the mean loss of every epoch.
    """
    if len(x_train) != len(labels):
        raise ValueError(f"{len(x_train)} images but {len(labels)} label rows; pass the labels of these images")
    cfg = training.TrainConfig(
        epochs=epochs,
        anneal_epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_end=lr_end,
        weight_decay=weight_decay,
        seed=seed,
    )
    opt = torch.optim.SGD(ep.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    rows = torch.arange(len(x_train))
    history = []
    with tqdm(total=epochs * -(-len(x_train) // batch_size), disable=not progress, desc="Exit Predictor") as bar:
        for epoch in range(epochs):
            history.append(
                training.image_epoch(
                    ep, opt, x_train, dataset, rows, cfg, epoch, lambda x, batch: bce_loss(ep(x), labels[batch]), bar
                )
            )
    return history


@torch.no_grad()
def predict_scores(ep: nn.Module, x: Tensor, dataset: str, batch_size: int = 1000) -> Tensor:
    """Prediction scores ``s_n`` (Eq. (7)) of raw uint8 images ``x``, shape (samples, N-1)."""
    ep.eval()
    return torch.cat(
        [torch.sigmoid(ep(data.normalize(x[i : i + batch_size], dataset))) for i in range(0, len(x), batch_size)]
    )


def fit_or_load_scores(
    run, ds, lam, path, architecture: str = "ours", epochs: int = 4, seed: int = 0, progress: bool = False
) -> tuple[np.ndarray, list[float]]:
    """Train an EP of ``architecture`` for the thresholds ``lam`` on the images of a artifact's
    training split and return its scores on the artifact's test split, kept in ``path`` (a derived result).

    Labels are Eq. (9) on the artifact's training confidences; the images are the artifact's rows
    (the same class-balanced selection its training stage made from the same data, checked by the
    dataset checksum and the labels).
    """
    params = run.manifest["params"]
    if ds.sha256 != run.manifest["data_sha256"]:
        raise ValueError(f"the artifact was made from other data than this {ds.name} (dataset checksums differ)")
    rows = {
        split: data.stratified_indices(getattr(ds, f"y_{split}"), params.get(f"{split}_per_class"), params["seed"])
        for split in ("train", "test")
    }
    for split, idx in rows.items():
        if not np.array_equal(getattr(ds, f"y_{split}")[idx].numpy(), run[f"{split}_label"]):
            raise ValueError(f"the artifact's {split} rows are not {ds.name}'s images in the training stage's order")
    labels = torch.from_numpy(ep_labels(run["train_conf"], lam))
    key = {
        "artifact": derived.artifact_key(run),
        "lam": np.atleast_1d(lam).tolist(),
        "architecture": architecture,
        "epochs": epochs,
        "seed": seed,
        "code": fingerprint(fit_or_load_scores),
    }

    def compute() -> tuple[np.ndarray, list[float]]:
        ep = build_exit_predictor(architecture, labels.shape[1], seed=seed)
        losses = train_exit_predictor(
            ep, ds.x_train[rows["train"]], labels, ds.name, epochs=epochs, seed=seed, progress=progress
        )
        return predict_scores(ep, ds.x_test[rows["test"]], ds.name).numpy(), losses

    def write(result, tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, scores=result[0], losses=np.asarray(result[1]))

    def read(stored):
        with np.load(stored) as f:
            return f["scores"], f["losses"].tolist()

    return derived.load_or_compute(path, key, compute, write, read)
