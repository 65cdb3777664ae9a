"""The device-resident loop (the paper profile's), run on the CPU: the host loop's augmentation and
normalisation, seeded epochs, the time budget, and the stage that picks a loop per profile."""

import pytest
import torch

from earlyexit.core import data
from earlyexit.engine import budget, provenance, resident, train_stage, training
from earlyexit.nets.models import build_model

TINY = dict(epochs=2, anneal_epochs=2, train_per_class=2, test_per_class=1, batch_size=8, precision="fp32")


def test_augmentation_draws_and_images_equal_the_host_loops(load_dataset):
    x = load_dataset("cifar10").x_train[:300]
    for seed in (0, 7):
        host = data.augment(x, torch.Generator().manual_seed(seed))
        on_device = resident.augment(x, torch.Generator().manual_seed(seed))
        assert torch.equal(host, on_device)


def test_augmentation_statistics(load_dataset):
    """Offsets uniform over the 9x9 crops, half the images mirrored: measured on real images."""
    x = load_dataset("cifar10").x_train[:1]
    n = 4000
    batch = resident.augment(x.expand(n, -1, -1, -1).contiguous(), torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))[0]
    crops = {
        (dy, dx, f): padded[:, dy : dy + 32, dx : dx + 32].flip(-1) if f else padded[:, dy : dy + 32, dx : dx + 32]
        for dy in range(9)
        for dx in range(9)
        for f in (0, 1)
    }
    seen = {}
    for image in batch:
        key = next(k for k, crop in crops.items() if torch.equal(crop, image))
        seen[key] = seen.get(key, 0) + 1
    flipped = sum(c for (_, _, f), c in seen.items() if f) / n
    offsets = torch.tensor([sum(c for (dy, _, _), c in seen.items() if dy == d) for d in range(9)], dtype=torch.float)
    assert abs(flipped - 0.5) < 0.03
    assert (offsets / n - 1 / 9).abs().max() < 0.02


def test_standardised_equals_the_host_normalisation(load_dataset):
    ds = load_dataset("cifar100")
    split = resident.split_on(ds, torch.arange(4), torch.device("cpu"))
    assert torch.equal(split.standardised(ds.x_train[:64]), data.normalize(ds.x_train[:64], "cifar100"))


def _train(ds, checkpoint, **overrides):
    cfg = training.profile_config("paper", "alexnet", **(TINY | overrides))
    model = build_model("alexnet", "cifar10", seed=cfg.seed)
    history = resident.train(model, ds, cfg, checkpoint, "code", device=torch.device("cpu"), progress=False)
    return model, history


def test_seeded_runs_are_identical_on_the_cpu(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    a, ha = _train(ds, tmp_path / "a.pt")
    b, hb = _train(ds, tmp_path / "b.pt")
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert {(h["device"], h["processes"], h["compiled"]) for h in ha} == {("cpu", 1, None)}


def test_budget_stops_at_an_epoch_boundary_and_the_run_resumes(load_dataset, tmp_path, monkeypatch):
    ds = load_dataset("cifar10")
    reference, _ = _train(ds, tmp_path / "ref.pt")
    monkeypatch.setenv(budget.DEADLINE_ENV, "0")  # long past: no second epoch fits
    with pytest.raises(budget.BudgetSpent, match="after epoch 1 of 2"):
        _train(ds, tmp_path / "b.pt")
    assert len(torch.load(tmp_path / "b.pt", weights_only=True)["history"]) == 1
    monkeypatch.delenv(budget.DEADLINE_ENV)
    resumed, history = _train(ds, tmp_path / "b.pt")
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(torch.equal(reference.state_dict()[k], resumed.state_dict()[k]) for k in reference.state_dict())


def test_host_loop_budget_stops_and_resumes_bit_for_bit(load_dataset, tmp_path, monkeypatch):
    ds = load_dataset("cifar10")
    cfg = training.profile_config("smoke", "alexnet", **TINY)
    run = lambda path: training.train(build_model("alexnet", "cifar10"), ds, cfg, path, progress=False)  # noqa: E731
    reference = run(tmp_path / "ref.pt")
    monkeypatch.setenv(budget.DEADLINE_ENV, "0")
    with pytest.raises(budget.BudgetSpent):
        run(tmp_path / "b.pt")
    monkeypatch.delenv(budget.DEADLINE_ENV)
    assert [h["loss"] for h in run(tmp_path / "b.pt")] == [h["loss"] for h in reference]


def test_a_bad_deadline_or_budget_names_the_problem(monkeypatch):
    monkeypatch.setenv(budget.DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match="EARLYEXIT_DEADLINE must be seconds"):
        budget.exhausted(1.0)
    with pytest.raises(ValueError, match="positive number of minutes"):
        budget.set_minutes(0)


def test_each_profile_trains_with_its_loop_and_fingerprints_it():
    assert train_stage.trainer("paper") is resident.train_and_profile
    assert train_stage.trainer("cpu") is train_stage.trainer("smoke") is training.train_and_profile
    params = {"model": "resnet44", "dataset": "cifar100"}
    assert provenance.code_fingerprint(params | {"profile": "paper"}) != provenance.code_fingerprint(
        params | {"profile": "cpu"}
    )


def test_an_unknown_compile_mode_is_refused(load_dataset, tmp_path):
    cfg = training.profile_config("paper", "alexnet", **TINY)
    with pytest.raises(ValueError, match="compile mode must be one of"):
        resident.train(
            build_model("alexnet", "cifar10"),
            load_dataset("cifar10"),
            cfg,
            tmp_path / "c.pt",
            "code",
            device=torch.device("cpu"),
            compile_mode="fastest",
            progress=False,
        )


def test_the_host_loop_refuses_the_paper_profile(tmp_path):
    with pytest.raises(ValueError, match="train_stage.train_and_profile"):
        training.train_and_profile("alexnet", "cifar10", "paper", tmp_path)


def test_the_training_notebook_trains_the_paper_profile_on_the_resident_loop(tmp_path):
    from earlyexit import pipeline
    from earlyexit.engine import artifacts

    overrides = TINY | {"epochs": 1, "anneal_epochs": 1}
    params = {"model": "alexnet", "dataset": "cifar10", "profile": "paper", "overrides": overrides}
    notebook = pipeline.ROOT / "notebooks" / "01_train_multiexit.ipynb"
    pipeline.execute(pipeline.Job("train", "train", notebook, params | {"artifact_root": str(tmp_path)}), "paper")
    directory = artifacts.run_dir(tmp_path, "paper", "alexnet", "cifar10")
    run = artifacts.read(directory, training.stage_params("alexnet", "cifar10", "paper", **overrides))
    assert [(h["device"], h["processes"]) for h in run.manifest["history"]] == [("cpu", 1)]
