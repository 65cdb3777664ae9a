"""Paper A's multi-exit networks: shapes, the staged API, and FLOPs against the paper's tables."""

import pytest
import torch

from earlyexit.core import data, paper
from earlyexit.nets import flops
from earlyexit.nets.models import BUILDERS, PAPER_A, PAPER_B, build_model

CASES = [(m, d) for m in PAPER_A for d in ("cifar10", "cifar100")] + [
    (m, d) for m in PAPER_B for d in ("cifar10", "cifar100", "mnist")
]


@pytest.mark.parametrize("name,dataset", CASES)
def test_every_exit_outputs_class_logits(name, dataset):
    net = build_model(name, dataset, seed=0).eval()
    classes, (size, _, channels), _, _ = data.SPECS[dataset]
    with torch.no_grad():
        outputs = net(torch.randn(2, channels, size, size))
    assert len(outputs) == net.num_exits == len(net.loss_weights)
    assert all(z.shape == (2, classes) for z in outputs)
    assert all(w > 0 for w in net.loss_weights)


@pytest.mark.parametrize("name", PAPER_A)
def test_paper_a_loss_weights_sum_to_one(name):
    assert sum(build_model(name, "cifar10").loss_weights) == pytest.approx(1.0)  # Eq. (5)


@pytest.mark.parametrize("name", BUILDERS)
def test_staged_api_gives_the_logits_of_forward(name):
    net = build_model(name, "cifar100", seed=1).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        full = net(x)
        h, staged = x, []
        for n in range(net.num_exits):
            h = net.stage(n, h)
            staged.append(net.exit(n, h))
    for a, b in zip(full, staged):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_seed_makes_initial_weights_reproducible():
    a, b = (build_model("resnet44", "cifar10", seed=7).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_model_or_dataset_is_named():
    with pytest.raises(ValueError, match="unknown model 'resnet56'"):
        build_model("resnet56", "cifar10")
    with pytest.raises(ValueError, match="dataset must be one of"):
        build_model("resnet44", "mnist")


# Tolerance: the paper prints MFLOPs with two decimals; ours, rounded the same way, must be equal.
@pytest.mark.parametrize("table", ["table_backbone_mflops", "table5", "table6"])
def test_mflops_match_paper_tables_to_the_printed_digit(table):
    df = {
        "table_backbone_mflops": flops.table_backbone_mflops,
        "table5": lambda: flops.table_part_mflops(paper.A_TABLE5),
        "table6": lambda: flops.table_part_mflops(paper.A_TABLE6),
    }[table]()
    assert len(df) > 0
    assert (df["ours"] - df["paper"]).abs().max() < 0.005, df[df["ours"] != df["paper"]]


@pytest.mark.parametrize("reference", [paper.A_TABLE3, paper.A_TABLE4])
def test_exit_feature_sizes_match_tables_3_and_4(reference):
    df = flops.table_exit_shapes(reference)
    assert df["match"].all(), df[~df["match"]]


def test_light_exits_are_one_fc_layer_after_pooling():
    parts = flops.part_flops(build_model("vgg16bn_light", "cifar10"))
    # 2x2 max-pooling of 64x32x32 (65,536 FLOPs) then FC 16384 -> 10 (+10 bias).
    assert parts[0].exit == 64 * 32 * 32 + 64 * 16 * 16 * 10 + 10
    assert [p.stage for p in parts] == [p.stage for p in flops.part_flops(build_model("vgg16bn", "cifar10"))]


@pytest.mark.parametrize("name", PAPER_A)
def test_paper_a_networks_refuse_mnist_saying_which_take_it(name):
    with pytest.raises(ValueError, match="Paper B's models take MNIST"):
        build_model(name, "mnist")


def test_the_registry_is_both_papers_and_refuses_unknown_names():
    assert set(BUILDERS) == set(PAPER_A) | set(PAPER_B) and not set(PAPER_A) & set(PAPER_B)
    with pytest.raises(ValueError, match="unknown model 'lenet'"):
        build_model("lenet", "cifar10")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        build_model("b_alexnet", "svhn")
