"""The training loop: Eq. (5), the learning-rate schedule, determinism and resume after interruption."""

import time

import pytest
import torch

from earlyexit.core import hardware
from earlyexit.engine import budget, training
from earlyexit.nets.models import build_model

TINY = dict(epochs=2, anneal_epochs=2, train_per_class=2, test_per_class=1, batch_size=8, precision="fp32")


def test_loss_is_the_weighted_sum_of_exit_cross_entropies():
    logits = [torch.randn(4, 10) for _ in range(3)]
    y = torch.tensor([1, 2, 3, 4])
    expected = sum(w * torch.nn.functional.cross_entropy(z, y) for w, z in zip((0.2, 0.3, 0.5), logits))
    torch.testing.assert_close(training.multi_exit_loss(logits, y, (0.2, 0.3, 0.5)), expected)


def test_cosine_schedule_of_the_paper_profile():
    cfg = training.profile_config("paper", "vgg16bn")
    assert training.learning_rate(cfg, 0) == pytest.approx(0.1)
    assert training.learning_rate(cfg, 100) == pytest.approx((0.1 + 1e-4) / 2)
    assert training.learning_rate(cfg, 200) == pytest.approx(1e-4)
    assert training.learning_rate(cfg, 219.5) == pytest.approx(1e-4)
    assert (cfg.epochs, cfg.batch_size, cfg.weight_decay, cfg.train_per_class) == (220, 128, 5e-4, None)


def test_msdnet_follows_paper_b_recipe_with_a_constant_learning_rate():
    cfg = training.profile_config("paper", "msdnet40")
    assert (cfg.epochs, cfg.momentum, cfg.lr) == (300, 0.9, 1e-3)
    assert training.learning_rate(cfg, 0) == training.learning_rate(cfg, 299) == pytest.approx(1e-3)
    cpu = training.profile_config("cpu", "msdnet40")
    assert (cpu.lr, cpu.batch_size, cpu.train_per_class) == (cfg.lr, cfg.batch_size, None) and cpu.epochs < 300


def test_profile_errors_name_the_bad_input():
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        training.profile_config("gpu", "resnet44")
    with pytest.raises(ValueError, match=r"unknown training parameter\(s\) \['epoch'\]"):
        training.profile_config("cpu", "resnet44", epoch=3)


def _run(ds, checkpoint, **overrides):
    cfg = training.profile_config("smoke", "alexnet", **(TINY | overrides))
    model = build_model("alexnet", "cifar10", seed=cfg.seed)
    history = training.train(model, ds, cfg, checkpoint, progress=False)
    return model, history


def test_resume_after_interruption_reproduces_an_uninterrupted_run(load_dataset, tmp_path, monkeypatch):
    ds = load_dataset("cifar10")
    reference, _ = _run(ds, tmp_path / "a.pt")

    real_epoch, calls = training._train_epoch, []

    def crash_in_second_epoch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args)

    monkeypatch.setattr(training, "_train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        _run(ds, tmp_path / "b.pt")
    monkeypatch.setattr(training, "_train_epoch", real_epoch)
    assert len(torch.load(tmp_path / "b.pt", weights_only=False)["history"]) == 1
    resumed, history = _run(ds, tmp_path / "b.pt")
    assert [h["epoch"] for h in history] == [1, 2]
    ref, res = reference.state_dict(), resumed.state_dict()
    assert all(torch.equal(ref[k], res[k]) for k in ref)


def test_an_observed_run_records_its_learning_curve_and_trains_the_same_weights(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    plain, plain_history = _run(ds, tmp_path / "plain.pt")
    after_plain = torch.get_rng_state()
    cfg = training.profile_config("smoke", "alexnet", **TINY)
    with training.observing(training.test_accuracy_observer("alexnet", ds, cfg)):
        observed, history = _run(ds, tmp_path / "observed.pt")
    assert torch.equal(torch.get_rng_state(), after_plain)  # building its copy of the network drew no numbers
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), observed.state_dict().values()))
    assert [h["loss"] for h in history] == [h["loss"] for h in plain_history]
    assert all(len(h["test_accuracy"]) == observed.num_exits and h["observe_seconds"] > 0 for h in history)
    rows = training.data.stratified_indices(ds.y_test, cfg.test_per_class, cfg.seed)
    right = training.predict(observed, ds.x_test[rows], ds.name, progress=False).argmax(-1) == ds.y_test[rows][:, None]
    assert history[-1]["test_accuracy"] == (100 * right.double().mean(0)).tolist()
    assert torch.load(tmp_path / "observed.pt", weights_only=True)["history"] == history
    assert not training._OBSERVERS and not {"test_accuracy", "observe_seconds"} & set(plain_history[-1])


def test_the_time_spent_observing_counts_against_the_budget(load_dataset, tmp_path, monkeypatch):
    """A deadline that another epoch of training alone would meet, but not with the observer's second."""
    ds = load_dataset("cifar10")

    def slow_observer(state):
        time.sleep(1.0)
        monkeypatch.setenv(budget.DEADLINE_ENV, repr(time.time() + state["history"][-1]["seconds"] + 0.5))

    with training.observing(slow_observer), pytest.raises(budget.BudgetSpent, match="after epoch 1 of 2"):
        _run(ds, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["history"][0]["observe_seconds"] >= 1.0


def test_every_epoch_records_its_cpu_kind_and_from_the_second_the_share_other_processes_used(
    load_dataset, tmp_path, monkeypatch
):
    """The share covers the epoch's training: from this process's previous checkpoint write to the epoch's end."""
    ds = load_dataset("cifar10")
    samples = [
        hardware.CpuUse(wall=t, machine=m, own=o) for t, m, o in ((0, 0, 0), (10, 1, 1), (20, 12, 2), (30, 13, 3))
    ]
    taken = iter(samples)
    monkeypatch.setattr(training.hardware, "cpu_use", lambda: next(taken))
    _, history = _run(ds, tmp_path / "c.pt")
    assert [h["kind"] for h in history] == [hardware.cpu_kind()] * 2
    assert "others_share" not in history[0]  # this process wrote no epoch before it
    assert history[1]["others_share"] == round(hardware.others_share(samples[1], samples[2]), 3) > 0
    assert torch.load(tmp_path / "c.pt", weights_only=True)["history"] == history


def test_checkpoint_of_other_parameters_is_refused(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    _run(ds, tmp_path / "c.pt", epochs=1, anneal_epochs=1)
    with pytest.raises(ValueError, match="made with other parameters"):
        _run(ds, tmp_path / "c.pt", epochs=1, anneal_epochs=1, lr=0.05)


def test_predict_returns_probabilities_of_every_exit(load_dataset):
    ds = load_dataset("cifar10")
    probs = training.predict(build_model("resnet44", "cifar10", seed=0), ds.x_test[:6], "cifar10", progress=False)
    assert probs.shape == (6, 3, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(6, 3))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"epochs": "3"}, r"'epochs' must be an integer >= 1, got '3' \(str\)"),
        ({"epochs": -1}, r"'epochs' must be an integer >= 1, got -1"),
        ({"anneal_epochs": 0}, r"'anneal_epochs' must be an integer >= 1, got 0"),
        ({"batch_size": 0}, r"'batch_size' must be an integer >= 1, got 0"),
        ({"lr": 0.0}, r"'lr' must be positive"),
        ({"momentum": 1.5}, r"'momentum' must be a number in \[0.0, 1.0\)"),
        ({"train_per_class": 0}, r"'train_per_class' must be an integer >= 1 or None"),
        ({"precision": "fp16"}, r"precision must be one of auto, bf16, fp32"),
    ],
)
def test_bad_training_parameters_are_refused_when_given(override, message):
    with pytest.raises(ValueError, match=message):
        training.profile_config("cpu", "resnet44", **override)


def test_checkpoint_of_other_code_or_data_is_refused(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    cfg = training.profile_config("smoke", "alexnet", **(TINY | {"epochs": 1, "anneal_epochs": 1}))
    training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, tmp_path / "c.pt", False, code_sha256="old")
    with pytest.raises(training.StaleCheckpointError, match=r"c\.pt was made with other code"):
        training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, tmp_path / "c.pt", False, code_sha256="new")
    other_data = type(ds)(ds.name, ds.x_train, ds.y_train, ds.x_test, ds.y_test, "other")
    with pytest.raises(training.StaleCheckpointError, match="other data"):
        training.train(
            build_model("alexnet", "cifar10", seed=0), other_data, cfg, tmp_path / "c.pt", False, code_sha256="old"
        )


def test_truncated_or_foreign_checkpoint_is_named(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    cfg = training.profile_config("smoke", "alexnet", **(TINY | {"epochs": 1, "anneal_epochs": 1}))
    path = tmp_path / "c.pt"
    training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, path, False)
    with pytest.raises(training.CheckpointError, match=r"c\.pt holds another network's weights"):
        training.train(build_model("resnet44", "cifar10", seed=0), ds, cfg, path, False)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(training.CheckpointError, match=r"c\.pt is unreadable"):
        training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, path, False)


SMOKE_TINY = {"train_per_class": 2, "test_per_class": 1, "precision": "fp32"}


def test_force_retrains_from_scratch_and_smoke_keeps_no_checkpoint(load_dataset, tmp_path, monkeypatch):
    load_dataset("cifar10")
    calls = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(k["fresh"]) or real_train(*a, **k))
    first = training.train_and_profile("alexnet", "cifar10", "smoke", tmp_path, progress=False, **SMOKE_TINY)
    again = training.train_and_profile("alexnet", "cifar10", "smoke", tmp_path, progress=False, **SMOKE_TINY)
    assert calls == [False] and again.manifest["created"] == first.manifest["created"]
    forced = training.train_and_profile(
        "alexnet", "cifar10", "smoke", tmp_path, progress=False, force=True, **SMOKE_TINY
    )
    assert calls == [False, True]
    assert not (artifacts_dir := tmp_path / "smoke" / "alexnet-cifar10" / "checkpoint.pt").exists(), artifacts_dir
    machine = forced.manifest["machine"]
    assert machine["precision"] == "fp32" and machine["cpu"] and forced.manifest["history"][0]["precision"] == "fp32"


def test_a_stale_checkpoint_is_discarded_saying_so(load_dataset, tmp_path, capsys):
    ds = load_dataset("cifar10")
    cfg = training.profile_config("smoke", "alexnet", **SMOKE_TINY)
    checkpoint = tmp_path / "smoke" / "alexnet-cifar10" / "checkpoint.pt"
    training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, checkpoint, False, code_sha256="older code")
    training.train_and_profile("alexnet", "cifar10", "smoke", tmp_path, progress=False, **SMOKE_TINY)
    out = capsys.readouterr().out
    assert "made with other code" in out and "discarding it, training from scratch" in out


def test_mnist_trains_on_its_images_as_they_are_and_cifar_on_augmented_ones(load_dataset):
    x = load_dataset("mnist").x_train[:16]
    assert training.augmented(x, "mnist", torch.Generator().manual_seed(0)) is x
    cifar = load_dataset("cifar10").x_train[:16]
    out = training.augmented(cifar, "cifar10", torch.Generator().manual_seed(0))
    assert torch.equal(out, training.data.augment(cifar, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, cifar)


class _Payload:
    """An object whose unpickling would run code (here: create a file)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    cfg = training.TrainConfig(epochs=1, anneal_epochs=1, train_per_class=1, precision="fp32")
    marker = tmp_path / "ran"
    torch.save({"model": {}, "optimizer": {}, "history": [], "config": _Payload(marker)}, tmp_path / "c.pt")
    with pytest.raises(training.CheckpointError, match="unreadable"):
        training.train(build_model("alexnet", "cifar10", seed=0), ds, cfg, tmp_path / "c.pt", False)
    assert not marker.exists()
