"""The dataset loader and the in-memory augmentation, on the real data."""

import numpy as np
import pytest
import torch

from earlyexit.core import data

COUNTS = {
    "cifar10": ([5000] * 10, [1000] * 10),
    "cifar100": ([500] * 100, [100] * 100),
    "mnist": (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_counts_per_class_and_layout(load_dataset, name):
    ds = load_dataset(name)
    train_counts, test_counts = COUNTS[name]
    assert torch.bincount(ds.y_train).tolist() == train_counts
    assert torch.bincount(ds.y_test).tolist() == test_counts
    channels = 1 if name == "mnist" else 3
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1] == channels
    assert ds.num_classes == len(train_counts)


def test_normalisation_constants_fit_the_training_set(load_dataset):
    ds = load_dataset("cifar10")
    idx = data.stratified_indices(ds.y_train, 200, seed=0)
    x = data.normalize(ds.x_train[idx], "cifar10")
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def test_stratified_subset_is_balanced_and_seeded(load_dataset):
    ds = load_dataset("cifar100")
    idx = data.stratified_indices(ds.y_train, 3, seed=5)
    assert torch.bincount(ds.y_train[idx]).tolist() == [3] * 100
    assert torch.equal(idx, data.stratified_indices(ds.y_train, 3, seed=5))
    assert not torch.equal(idx, data.stratified_indices(ds.y_train, 3, seed=6))


def test_augmentation_is_a_padded_crop_or_its_mirror(load_dataset):
    x = load_dataset("cifar10").x_train[:16]
    out = data.augment(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    assert out.shape == x.shape and out.dtype == torch.uint8
    flips = 0
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < len(x)


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(data.DataError, match=r"cifar10\.npz not found.*unpack\.py.*download=True"):
        data.load("cifar10", str(tmp_path))


def test_malformed_dataset_is_refused(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match="lacks the keys"):
        data.load("mnist", str(tmp_path))
    np.savez(
        tmp_path / "cifar10.npz",
        x_train=np.zeros((5, 32, 32, 3), np.uint8),
        y_train=np.zeros(5, np.int64),
        x_test=np.zeros((5, 32, 32, 3), np.uint8),
        y_test=np.zeros(5, np.int64),
    )
    with pytest.raises(data.DataError, match="expected 50000 uint8 images"):
        data.load("cifar10", str(tmp_path))


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        data.load("svhn")


def _cifar10_copy(tmp_path, **changes):
    """The real CIFAR-10 arrays written to ``tmp_path`` with some of them replaced."""
    with np.load(data.resolve_data_dir() / "cifar10.npz") as f:
        arrays = {k: f[k] for k in data.KEYS}
    np.savez(tmp_path / "cifar10.npz", **(arrays | changes))
    return tmp_path / "cifar10.npz"


@pytest.mark.parametrize(
    "labels, message",
    [
        ("nan", r"non-integer value\(s\) \(first: nan"),
        ("fraction", r"non-integer value\(s\) \(first: 3\.7"),
        ("negative", r"lie in -1\.\.9, outside 0\.\.9"),
    ],
)
def test_labels_must_be_integers_of_the_dataset(load_dataset, tmp_path, labels, message):
    y = load_dataset("cifar10").y_test.numpy()
    bad = {
        "nan": np.where(np.arange(y.size) == 5, np.nan, y.astype(float)),
        "fraction": np.where(np.arange(y.size) == 5, 3.7, y.astype(float)),
        "negative": np.where(np.arange(y.size) == 5, -1, y),
    }[labels]
    _cifar10_copy(tmp_path, y_test=bad)
    with pytest.raises(data.DataError, match=message):
        data.load("cifar10", data_dir=tmp_path)


def test_labels_of_any_integer_dtype_load_as_int64(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    _cifar10_copy(tmp_path, y_test=ds.y_test.numpy().astype(np.uint8))
    loaded = data.load("cifar10", data_dir=tmp_path)
    assert loaded.y_test.dtype == torch.int64 and torch.equal(loaded.y_test, ds.y_test)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "text"])
def test_a_damaged_npz_is_a_data_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "mnist.npz"
    if damage == "text":
        path.write_text("x_train,y_train\n1,2\n")
    else:
        raw = (data.resolve_data_dir() / "mnist.npz").read_bytes()
        if damage == "truncated":
            raw = raw[: len(raw) // 2]
        else:
            middle = len(raw) // 2
            raw = raw[:middle] + bytes(b ^ 0xFF for b in raw[middle : middle + 64]) + raw[middle + 64 :]
        path.write_bytes(raw)
    with pytest.raises(data.DataError, match=rf"{path}.*(not an \.npz archive|damaged|labels|images)"):
        data.load("mnist", data_dir=tmp_path)
