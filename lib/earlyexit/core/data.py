"""Real CIFAR-10, CIFAR-100 and MNIST: offline from ``.npz`` files, or through torchvision's download.

The data directory is, in order: the ``data_dir`` argument, the ``EARLYEXIT_DATA`` environment
variable, ``~/.cache/earlyexit/data``.  It holds ``<name>.npz`` with keys ``x_train y_train x_test
y_test`` (uint8 images NHWC or NHW, integer labels in ``[0, classes)``), as
``../shared/data/unpack.py DIR`` writes them.
With ``download=True`` a missing file is fetched by torchvision and written there as the same
``.npz``, the fast cache.  Augmentation works on whole uint8 tensors, not per-sample PIL images.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import files
from .fingerprint import bookkeeping

DATA_ENV = "EARLYEXIT_DATA"
DOWNLOAD_ENV = "EARLYEXIT_DOWNLOAD"
KEYS = ("x_train", "y_train", "x_test", "y_test")
#: (number of classes, image shape HWC, per-channel mean, per-channel std) on the training set.
SPECS: dict[str, tuple[int, tuple[int, int, int], tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": (10, (32, 32, 3), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": (100, (32, 32, 3), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": (10, (28, 28, 1), (0.1307,), (0.3081,)),
}
SPLIT_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "mnist": (60000, 10000)}


class DataError(RuntimeError):
    """A dataset is missing or malformed; the message says what was expected where and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 NCHW tensors and int64 labels, with the checksum of the arrays they came from."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    sha256: str

    @property
    def num_classes(self) -> int:
        return SPECS[self.name][0]


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: argument, then ``$EARLYEXIT_DATA``, then ``~/.cache/earlyexit/data``."""
    chosen = path or os.environ.get(DATA_ENV) or Path.home() / ".cache" / "earlyexit" / "data"
    return Path(chosen).expanduser()


def _check_name(name: str) -> None:
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}")


@bookkeeping
def _download_npz(name: str, target: Path) -> None:
    """Fetch ``name`` with torchvision and store it as ``target`` (atomically)."""
    import torchvision.datasets as tvd

    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "mnist": tvd.MNIST}[name]
    raw = target.parent / "torchvision"
    splits = {split: cls(str(raw), train=split == "train", download=True) for split in ("train", "test")}
    arrays = {}
    for split, ds in splits.items():
        arrays[f"x_{split}"] = np.asarray(ds.data, dtype=np.uint8)
        arrays[f"y_{split}"] = np.asarray(ds.targets, dtype=np.int64)
    arrays["classes"] = np.asarray(splits["train"].classes)
    files.atomic_write(target, lambda f: np.savez(f, **arrays))


def _validate(name: str, path: Path, arrays: dict[str, np.ndarray]) -> None:
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the keys {missing}; it must hold {', '.join(KEYS)}. "
            f"Rebuild it with `python ../shared/data/unpack.py {path.parent}` or delete it to re-download."
        )
    shape = SPECS[name][1]
    for split, n in zip(("train", "test"), SPLIT_SIZES[name]):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        image_ok = x.dtype == np.uint8 and x.shape[1:3] == shape[:2] and x.shape[3:] in ((), (shape[2],))
        if not image_ok or x.shape[0] != n or y.shape != (n,):
            raise DataError(
                f"{path}: {split} split has images {x.shape} {x.dtype} and labels {y.shape}; "
                f"expected {n} uint8 images of {shape} and {n} labels. The file is not {name}."
            )
        _validate_labels(path, split, y, SPECS[name][0])


def _validate_labels(path: Path, split: str, y: np.ndarray, classes: int) -> None:
    """Labels must be integers in ``[0, classes)``: no NaN, no fractions, any integer dtype."""
    where = f"{path}: {split} labels"
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where} have dtype {y.dtype}; expected integers in 0..{classes - 1}. The file is corrupt.")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DataError(
                f"{where} hold {int(bad.sum())} non-integer value(s) (first: {float(y[bad][0])} at index "
                f"{int(np.argmax(bad))}); expected integers in 0..{classes - 1}. The file is corrupt."
            )
    if y.min() < 0 or y.max() >= classes:
        raise DataError(f"{where} lie in {y.min()}..{y.max()}, outside 0..{classes - 1}; the file is corrupt.")


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> Dataset:
    """Load dataset ``name`` from ``data_dir`` (see :func:`resolve_data_dir`); download with torchvision if asked.

    ``download=None`` follows the environment variable ``EARLYEXIT_DOWNLOAD=1``.
    """
    _check_name(name)
    if download is None:
        download = os.environ.get(DOWNLOAD_ENV) == "1"
    return _load(name, str(resolve_data_dir(data_dir)), download)


@lru_cache(maxsize=4)
def _load(name: str, root: str, download: bool) -> Dataset:
    path = Path(root) / f"{name}.npz"
    if not path.exists():
        if not download:
            raise DataError(
                f"dataset file {path} not found. Offline: run `python ../shared/data/unpack.py {path.parent}` "
                f"(or point ${DATA_ENV} / data_dir at a folder holding {name}.npz). "
                f"Online: pass download=True (or set {DOWNLOAD_ENV}=1) to fetch it with torchvision."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        _download_npz(name, path)
    arrays = _read_npz(path)
    _validate(name, path, arrays)
    digest = hashlib.sha256()
    for k in KEYS:
        digest.update(np.ascontiguousarray(arrays[k]).tobytes())
    tensors = {k: _to_tensor(arrays[k]) for k in KEYS}
    return Dataset(
        name, tensors["x_train"], tensors["y_train"], tensors["x_test"], tensors["y_test"], digest.hexdigest()
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The dataset arrays of ``path``, or a DataError saying the file is damaged and how to replace it."""
    fix = (
        f"delete it and rebuild it (`python ../shared/data/unpack.py {path.parent}`) or re-download it (download=True)"
    )
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an .npz archive (a truncated, overwritten or foreign file); {fix}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files if k in KEYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err}); the file is damaged; {fix}.") from None


def _to_tensor(a: np.ndarray) -> Tensor:
    """uint8 NHWC/NHW images to NCHW tensors; labels (1-D, any validated integer-valued dtype) to int64."""
    if a.ndim == 1:
        return torch.from_numpy(a.astype(np.int64))
    t = torch.from_numpy(a)
    return (t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)).contiguous()


def stratified_indices(labels: Tensor, per_class: int | None, seed: int) -> Tensor:
    """Indices of ``per_class`` samples of every class, drawn after a seeded shuffle (all if None).

    The offline CIFAR arrays are sorted by class, so a plain prefix would hold few classes.
    """
    if per_class is None:
        return torch.arange(len(labels))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    keep = torch.cat([order[shuffled == c][:per_class] for c in range(int(labels.max()) + 1)])
    return keep.sort().values


def normalize(x: Tensor, name: str) -> Tensor:
    """uint8 NCHW images to float32, scaled to [0,1] and standardised with the dataset's statistics."""
    _, _, mean, std = SPECS[name]
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def augment(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop after zero-padding by ``pad`` and random horizontal flip, on a uint8 NCHW batch."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = dx[:, None] + torch.arange(w)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chan, rows, cols]
