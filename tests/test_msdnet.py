"""MSDNet (Huang et al., ICLR 2018) in the shared multi-exit abstraction, and Paper B's 21/40-block variants."""

import pytest
import torch

from earlyexit.core import data
from earlyexit.engine.training import multi_exit_loss
from earlyexit.nets.models import build_model
from earlyexit.nets.msdnet import MSDLayer, PerScale, layer_scales, msdnet

VARIANTS = {"msdnet21": (21, 2), "msdnet40": (40, 1)}  # name: (blocks, step); base 4, 16 channels


@pytest.mark.parametrize("dataset,classes", [("cifar10", 10), ("cifar100", 100)])
@pytest.mark.parametrize("name", VARIANTS)
def test_one_logit_tensor_per_block(name, dataset, classes):
    net = build_model(name, dataset, seed=0).eval()
    blocks = VARIANTS[name][0]
    with torch.no_grad():
        outputs = net(torch.randn(2, 3, 32, 32))
    assert len(outputs) == net.num_exits == blocks
    assert all(z.shape == (2, classes) for z in outputs)
    assert net.loss_weights == (1.0,) * blocks  # summed, as MSDNet's reference code


# The staged API (stage/exit == forward) is tested for every registered model in test_models.py.


def test_scales_are_reduced_evenly_over_the_layers():
    # 44 MSD layers (base 4 + 20 x step 2): ceil(44 / 3) = 15 layers per scale count.
    schedule = layer_scales(21, 2, 4, 3)
    assert [len(b) for b in schedule] == [4] + [2] * 20
    assert sum(schedule, []) == [3] * 15 + [2] * 15 + [1] * 14
    schedule = layer_scales(40, 1, 4, 3)
    assert [len(b) for b in schedule] == [4] + [1] * 39
    assert sum(schedule, []) == [3] * 15 + [2] * 15 + [1] * 13
    assert layer_scales(4, 1, 2, 3) == [[3, 3], [2], [2], [1]]


@pytest.mark.parametrize("name", VARIANTS)
def test_built_network_follows_the_scale_schedule(name):
    blocks, step = VARIANTS[name]
    schedule = layer_scales(blocks, step, 4, 3)
    net = build_model(name, "cifar10", seed=0).eval()
    h = torch.zeros(1, 3, 32, 32)
    prev = 3
    for n, block in enumerate(schedule):
        layers = [m for m in net.stages[n] if isinstance(m, MSDLayer)]
        assert [len(layer) for layer in layers] == block  # one unit per output scale
        drops = sum(a < b for a, b in zip(block, [prev] + block))
        assert sum(isinstance(m, PerScale) for m in net.stages[n]) == drops  # a transition after each drop
        prev = block[-1]
        with torch.no_grad():
            h = net.stage(n, h)
        # the finest scales go first; the coarsest (8x8), where the exit reads, is always kept
        assert [t.shape[-1] for t in h] == [32, 16, 8][3 - block[-1] :]
    assert sum(isinstance(m, PerScale) for m in net.modules()) == 2


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="must be >= 1"):
        msdnet(10, blocks=0, step=1, base=2, channels=8)


def test_small_msdnet_learns_a_repeated_cifar10_batch(load_dataset):
    ds = load_dataset("cifar10")
    x, y = data.normalize(ds.x_train[:32], "cifar10"), ds.y_train[:32]
    torch.manual_seed(0)
    net = msdnet(10, blocks=4, step=1, base=2, channels=8).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = multi_exit_loss(net(x), y, net.loss_weights)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
