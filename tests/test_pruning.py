"""Filter pruning of the on-device network (Paper A Figs. 7, 8): what is removed, what is kept, its cost."""

import numpy as np
import pytest
import torch
from torch import nn

from earlyexit.engine import artifacts, provenance, pruning, training, weights
from earlyexit.nets.flops import part_flops
from earlyexit.nets.models import build_model
from earlyexit.nets.multiexit import MultiExitNet, classifier, conv_bn_relu


def small_net(width: int, exit_width: int) -> MultiExitNet:
    """Two exits on a 3-conv backbone; stage 0 and exit 0 are on-device, stage 1 and exit 1 server-side."""
    torch.manual_seed(0)
    stages = [nn.Sequential(*conv_bn_relu(3, width)), nn.Sequential(*conv_bn_relu(width, 16), *conv_bn_relu(16, 16))]
    exits = [
        nn.Sequential(*conv_bn_relu(width, exit_width), *classifier(exit_width, 10, nn.AdaptiveAvgPool2d(1))),
        nn.Sequential(*classifier(16, 10, nn.AdaptiveAvgPool2d(1))),
    ]
    return MultiExitNet(stages, exits, (0.5, 0.5))


def test_pruning_removes_the_lowest_l2_filters_and_costs_what_the_narrower_net_costs():
    model = small_net(20, 10)
    weight = model.stages[0][0].weight.detach().clone()
    keep = np.sort(np.argsort(-weight.flatten(1).norm(dim=1).numpy(), kind="stable")[:18])
    pruning.prune_filters(model, 0.1, (3, 8, 8))
    assert model.stages[0][0].out_channels == 18 and model.exits[0][0].out_channels == 9
    torch.testing.assert_close(model.stages[0][0].weight, weight[keep])
    assert model.stages[1][0].in_channels == 18 and model.stages[1][0].out_channels == 16  # server side kept
    narrower = small_net(18, 9)
    expected = [(p.stage, p.exit) for p in part_flops(narrower, (3, 8, 8))]
    assert [(p.stage, p.exit) for p in part_flops(model, (3, 8, 8))] == expected


@pytest.mark.parametrize("model_name", ["alexnet", "vgg16bn", "resnet44", "resnet44_3exit"])
def test_pruning_keeps_every_exit_and_the_server_side_and_lowers_on_device_flops(model_name):
    model = build_model(model_name, "cifar100", seed=0)
    before = part_flops(model)
    server = [m.out_channels for m in model.stages[-1].modules() if isinstance(m, nn.Conv2d)]
    fcs = [m.out_features for m in pruning.kept_layers(model)[2:]]
    pruning.prune_filters(model, 0.3)
    after = part_flops(model)
    with torch.no_grad():
        assert [tuple(z.shape) for z in model.eval()(torch.zeros(2, 3, 32, 32))] == [(2, 100)] * model.num_exits
    assert [m.out_channels for m in model.stages[-1].modules() if isinstance(m, nn.Conv2d)] == server
    assert [m.out_features for m in pruning.kept_layers(model)[2:]] == fcs
    for b, a in zip(before[:-1], after[:-1]):  # every on-device part costs less, by about 1 - 0.7^2 per conv
        assert a.stage < b.stage and a.exit < b.exit
    on_device = lambda parts: sum(p.stage + p.exit for p in parts[:-1])
    assert 0.3 < 1 - on_device(after) / on_device(before) < 0.6


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, True, "0.1"])
def test_bad_ratios_are_refused(ratio):
    with pytest.raises(ValueError, match="pruning ratio"):
        pruning.check_ratio(ratio)


def test_a_pruning_artifact_sits_beside_its_training_artifact_and_depends_on_the_pruning_code(tmp_path):
    assert (
        pruning.run_dir(tmp_path, "cpu", "resnet44", "cifar100", 0.1) == tmp_path / "cpu" / "resnet44-cifar100-pruned10"
    )
    assert {"prune_and_profile", "prune_filters"} <= provenance.code_digests(
        {"model": "resnet44", "stage": "prune"}
    ).keys()
    assert provenance.code_fingerprint({"model": "resnet44", "stage": "prune"}) != provenance.code_fingerprint(
        {"model": "resnet44"}
    )


def test_pruning_without_the_trained_weights_says_how_to_get_them(tmp_path):
    params = training.stage_params("alexnet", "cifar10", "smoke")
    directory = artifacts.run_dir(tmp_path, "smoke", "alexnet", "cifar10")
    n = 5
    arrays = {"test_conf": np.ones((n, 3), np.float32), "test_correct": np.ones((n, 3), bool)}
    artifacts.write(directory, arrays, params=params, data_sha256="x", wall_time_s=1.0, history=[])
    with pytest.raises(weights.WeightsError, match="no checkpoint.*stages train --force"):
        pruning.trained_model(tmp_path, "smoke", "alexnet", "cifar10")
    torch.save({"config": {}, "history": [], "data_sha256": "x", "model": {}}, directory / "checkpoint.pt")
    with pytest.raises(weights.WeightsError, match="not the run that made the artifact.*stages train --force"):
        pruning.trained_model(tmp_path, "smoke", "alexnet", "cifar10")


# The cpu profile keeps its checkpoints (smoke deletes them); a tiny slice and one epoch keep it fast.
TINY = {"epochs": 1, "anneal_epochs": 1, "train_per_class": 2, "test_per_class": 1, "precision": "fp32"}


def test_the_kept_checkpoint_is_the_artifacts_network_and_the_pruning_stage_profiles_it(load_dataset, tmp_path):
    ds = load_dataset("cifar10")
    run = training.train_and_profile("alexnet", "cifar10", "cpu", tmp_path, progress=False, **TINY)
    model = pruning.trained_model(tmp_path, "cpu", "alexnet", "cifar10", **TINY)
    idx = training.data.stratified_indices(ds.y_test, 1, 0)
    conf = training.predict(model, ds.x_test[idx], "cifar10", progress=False).max(-1).values.numpy()
    np.testing.assert_allclose(conf, run["test_conf"], rtol=1e-5)
    pruned = pruning.prune_and_profile("alexnet", "cifar10", "cpu", 0.5, tmp_path, progress=False, **TINY)
    assert pruned["test_conf"].shape == run["test_conf"].shape and pruned.manifest["params"]["stage"] == "prune"
    assert pruned["part_flops"][0, 0] < part_flops(model)[0].stage
    assert pruning.load_pruned(tmp_path, "cpu", "alexnet", "cifar10", 0.5, **TINY).manifest == pruned.manifest
    training.train_and_profile("alexnet", "cifar10", "cpu", tmp_path, progress=False, seed=1, **TINY)  # retrained
    with pytest.raises(artifacts.StaleArtifactError, match="source_npz_sha256"):
        pruning.load_pruned(tmp_path, "cpu", "alexnet", "cifar10", 0.5, seed=1, **TINY)
