"""The dataset loader and the in-memory augmentation, on the real data."""

import numpy as np
import pytest
import torch

from earlyexit import data

COUNTS = {
    "cifar10": ([5000] * 10, [1000] * 10),
    "cifar100": ([500] * 100, [100] * 100),
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
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
        windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
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
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.zeros(5, np.int64),
             x_test=np.zeros((5, 32, 32, 3), np.uint8), y_test=np.zeros(5, np.int64))
    with pytest.raises(data.DataError, match="expected 50000 uint8 images"):
        data.load("cifar10", str(tmp_path))


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        data.load("svhn")
