"""Paper B's model zoo: exits, shapes on MNIST and CIFAR, the staged API, branch variants and their cost."""

import pytest
import torch

from earlyexit.nets import einet_models as Z
from earlyexit.nets.flops import module_flops, part_flops

ZOO = {
    "b_alexnet": (Z.b_alexnet, 3),
    "flexvgg16": (Z.flexvgg16, 5),
    "vgg16_finegrained": (Z.vgg16_finegrained, 14),
    "resnet50_finegrained": (Z.resnet50_finegrained, 6),
}


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("in_channels, size, classes", [(1, 28, 10), (3, 32, 100)])
def test_every_model_has_its_exits_on_mnist_and_cifar_and_stages_compose_to_forward(name, in_channels, size, classes):
    build, exits = ZOO[name]
    torch.manual_seed(0)
    net = build(classes, in_channels, size).eval()
    x = torch.rand(2, in_channels, size, size)
    with torch.no_grad():
        out = net(x)
        h, staged = x, []
        for n in range(net.num_exits):
            h = net.stage(n, h)
            staged.append(net.exit(n, h))
    assert net.num_exits == exits and [tuple(z.shape) for z in out] == [(2, classes)] * exits
    assert all(torch.equal(a, b) for a, b in zip(out, staged))
    assert all(p.stage >= 0 and p.exit > 0 for p in part_flops(net, (in_channels, size, size)))


def test_b_alexnet_follows_branchynet_sizes_on_cifar():
    net = Z.b_alexnet(10)
    assert [net.exits[n][-1].in_features for n in range(2)] == [32 * 4 * 4, 32 * 2 * 2]
    assert net.stages[2][-6].in_features == 64 * 4 * 4  # FC 1024 -> 256, as BranchyNet's B-AlexNet


@pytest.mark.parametrize("convs, fcs", [(0, 1), (1, 1), (2, 1), (1, 2), (2, 2)])
def test_branch_variants_have_their_layers_and_cost(convs, fcs):
    b = Z.branch(64, 10, convs, fcs)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in b.modules()) == convs
    assert sum(isinstance(m, torch.nn.Linear) for m in b.modules()) == fcs
    x = torch.zeros(1, 64, 16, 16)
    c, s = (32, 8) if convs else (64, 16)
    conv = (8 * 8 * 32 * 64 * 9 + 8 * 8 * 32 * 32 * 9 * (convs - 1)) if convs else 0
    fc = (c * 4 * 128 + 128 + 128 + 128 * 10 + 10) if fcs == 2 else (c * 4 * 10 + 10)
    bn_relu = convs * (2 * 32 * 8 * 8 + 32 * 8 * 8)
    pool = c * s * s
    assert module_flops(b.eval(), x) == conv + bn_relu + pool + fc


def test_the_imagenet_stem_is_far_cheaper_than_the_cifar_stem():
    cifar = sum(p.stage for p in part_flops(Z.resnet50_finegrained(10)))
    imagenet = sum(p.stage for p in part_flops(Z.resnet50_finegrained(10, stem="imagenet")))
    assert 10 < cifar / imagenet < 20
    with pytest.raises(ValueError, match="exits_after"):
        Z.resnet50_finegrained(10, exits_after=(5, 3))
