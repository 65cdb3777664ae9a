"""Paper A's multi-exit backbones and the registry of every network of both papers (:func:`build_model`).

Paper A's networks follow §V-A, footnote 4 and Tables III-VI: convolutions of VGG16-BN and ResNet44
are bias-free (they are followed by BatchNorm), AlexNet keeps its biases (no BatchNorm); they take
CIFAR images. Every network is a :class:`~earlyexit.nets.multiexit.MultiExitNet`; Paper B's MSDNets live
in :mod:`.msdnet`, the rest of its model zoo in :mod:`.einet_models`, all for CIFAR and MNIST.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..core import data
from . import einet_models, msdnet
from .multiexit import MultiExitNet, Residual, classifier, conv_bn_relu, conv_relu, projection

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


# --------------------------------------------------------------------------------------- AlexNet
def alexnet(num_classes: int) -> MultiExitNet:
    """CIFAR AlexNet of Paper A footnote 4 with exits of 2 and 1 conv layers (Table III, Table V).

    Exits sit after the first and second conv layer (each with its ReLU and max-pooling).
    """
    stages = [
        nn.Sequential(*conv_relu(3, 64, stride=2), nn.MaxPool2d(2)),
        nn.Sequential(*conv_relu(64, 192), nn.MaxPool2d(2)),
        nn.Sequential(*conv_relu(192, 384), *conv_relu(384, 256), *conv_relu(256, 256), nn.MaxPool2d(2)),
    ]
    exits = [
        nn.Sequential(*conv_relu(64, 64), *conv_relu(64, 64), *classifier(64 * 4 * 4, num_classes, nn.MaxPool2d(2))),
        nn.Sequential(*conv_relu(192, 64), *classifier(64 * 2 * 2, num_classes, nn.MaxPool2d(2))),
        nn.Sequential(
            nn.Flatten(),
            nn.Dropout(),
            nn.Linear(256 * 2 * 2, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        ),
    ]
    return MultiExitNet(stages, exits, (0.2, 0.3, 0.5))


# --------------------------------------------------------------------------------------- VGG16-BN
def _vgg_tail() -> nn.Sequential:
    """VGG16-BN after its third conv layer (conv 4-13 with their max-poolings): 128x16x16 -> 512x1x1."""
    layers: list[nn.Module] = [*conv_bn_relu(128, 128), nn.MaxPool2d(2)]
    for cin, cout in ((128, 256), (256, 512), (512, 512)):
        layers += conv_bn_relu(cin, cout) + conv_bn_relu(cout, cout) + conv_bn_relu(cout, cout) + [nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def _vgg_classifier(num_classes: int) -> nn.Sequential:
    """The VGG classifier 512 -> 4096 -> 4096 -> classes; gives Table I's 333.08/333.45 MFLOPs."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(512, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, num_classes),
    )


def _vgg_stages() -> list[nn.Module]:
    """Exits after conv 1 and conv 3 (Paper A §V-A, Fig. 2)."""
    return [
        nn.Sequential(*conv_bn_relu(3, 64)),
        nn.Sequential(*conv_bn_relu(64, 64), nn.MaxPool2d(2), *conv_bn_relu(64, 128)),
        _vgg_tail(),
    ]


def vgg16bn(num_classes: int) -> MultiExitNet:
    """VGG16-BN with the regular-size exits of Fig. 2: 3 conv + FC and 2 conv + FC (Table III)."""
    exits = [
        nn.Sequential(
            *conv_bn_relu(64, 64, stride=2),
            *conv_bn_relu(64, 32),
            *conv_bn_relu(32, 32),
            *classifier(32 * 16 * 16, num_classes),
        ),
        nn.Sequential(*conv_bn_relu(128, 128, stride=2), *conv_bn_relu(128, 64), *classifier(64 * 8 * 8, num_classes)),
        _vgg_classifier(num_classes),
    ]
    return MultiExitNet(_vgg_stages(), exits, (0.2, 0.3, 0.5))


def vgg16bn_light(num_classes: int) -> MultiExitNet:
    """VGG16-BN with *light* exits (Fig. 3, after [13]): one FC layer after a 2x2 max-pooling."""
    exits = [
        nn.Sequential(*classifier(64 * 16 * 16, num_classes, nn.MaxPool2d(2))),
        nn.Sequential(*classifier(128 * 8 * 8, num_classes, nn.MaxPool2d(2))),
        _vgg_classifier(num_classes),
    ]
    return MultiExitNet(_vgg_stages(), exits, (0.2, 0.3, 0.5))


# --------------------------------------------------------------------------------------- ResNet44
class BasicBlock(Residual):
    """Residual block (RB) of the CIFAR ResNet [37]; a 1x1 projection shortcut when the shape changes.

    The ReLU after the residual addition is a functional call (:class:`Residual`), so ptflops counts one
    ReLU per block; with this convention Tables V and VI of Paper A come out to the printed digit.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn_relu(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.shortcut = projection(cin, cout, stride)


def _resnet44_blocks() -> list[BasicBlock]:
    """The 21 residual blocks of ResNet44 (3 stages of 7 blocks at 16, 32, 64 channels)."""
    blocks, cin = [], 16
    for cout in (16, 32, 64):
        for i in range(7):
            blocks.append(BasicBlock(cin, cout, stride=2 if i == 0 and cout != 16 else 1))
            cin = cout
    return blocks


def _resnet_exit(channels: int, num_blocks: int, size: int, num_classes: int) -> nn.Sequential:
    """Exit of ``num_blocks`` residual blocks, 2x2 max-pooling and an FC layer (Tables III/IV)."""
    blocks = [BasicBlock(channels, channels) for _ in range(num_blocks)]
    return nn.Sequential(*blocks, *classifier(channels * (size // 2) ** 2, num_classes, nn.MaxPool2d(2)))


def _resnet44(
    cuts: tuple[int, ...], exit_specs: list[tuple[int, int, int]], num_classes: int, loss_weights: tuple[float, ...]
) -> MultiExitNet:
    """ResNet44 cut after the residual blocks listed in ``cuts`` (1-based), exits from ``exit_specs``."""
    blocks = _resnet44_blocks()
    stem = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
    bounds = (0, *cuts, len(blocks))
    stages = [nn.Sequential(*blocks[a:b]) for a, b in zip(bounds, bounds[1:])]
    stages[0] = nn.Sequential(*stem, *stages[0])
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    exits = [_resnet_exit(c, k, s, num_classes) for c, k, s in exit_specs] + [head]
    return MultiExitNet(stages, exits, loss_weights)


def resnet44(num_classes: int) -> MultiExitNet:
    """ResNet44 with 2 early exits: 2 RBs after RB 1, 1 RB after RB 8 (Paper A §V-A, Table III)."""
    return _resnet44((1, 8), [(16, 2, 32), (32, 1, 16)], num_classes, (0.2, 0.3, 0.5))


def resnet44_3exit(num_classes: int) -> MultiExitNet:
    """ResNet44 with 3 early exits after RBs 1, 4 and 8 (ablation, Table IV, Table VI, Fig. 9).

    Fig. 9 lists the loss weights as "0.2, 0.2, 0.4" for four exits; we read them as
    (0.2, 0.2, 0.2, 0.4), which sums to one like the two-exit weights (0.2, 0.3, 0.5).
    """
    return _resnet44((1, 4, 8), [(16, 2, 32), (16, 1, 32), (32, 1, 16)], num_classes, (0.2, 0.2, 0.2, 0.4))


#: Paper A's networks: ``builder(num_classes)``, CIFAR only.
PAPER_A: dict[str, Callable[[int], MultiExitNet]] = {
    "alexnet": alexnet,
    "vgg16bn": vgg16bn,
    "vgg16bn_light": vgg16bn_light,
    "resnet44": resnet44,
    "resnet44_3exit": resnet44_3exit,
}
#: Paper B's model zoo (§VI-A): ``builder(num_classes, in_channels, image_size)``, any dataset.
PAPER_B: dict[str, Callable[[int, int, int], MultiExitNet]] = {
    "b_alexnet": einet_models.b_alexnet,
    "flexvgg16": einet_models.flexvgg16,
    "vgg16_finegrained": einet_models.vgg16_finegrained,
    "resnet50_finegrained": einet_models.resnet50_finegrained,
    "msdnet21": msdnet.msdnet21,
    "msdnet40": msdnet.msdnet40,
}
BUILDERS: dict[str, Callable[..., MultiExitNet]] = PAPER_A | PAPER_B
#: The zoo's tables, opaque to the code fingerprint of an artifact (:mod:`earlyexit.engine.provenance`),
#: which names its own network's builder instead: editing one network stales only its artifacts.
ZOO = (PAPER_A, PAPER_B, BUILDERS)


def build_model(name: str, dataset: str, seed: int | None = None) -> MultiExitNet:
    """Build a multi-exit network of either paper for ``dataset`` (Paper A's: CIFAR only).

    With ``seed``, torch's global generator is seeded first, so the initial weights are reproducible.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(BUILDERS)}")
    if dataset not in data.SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(data.SPECS)}")
    if name in PAPER_A and dataset not in NUM_CLASSES:
        raise ValueError(
            f"Paper A's networks take 32x32 CIFAR images; dataset must be one of "
            f"{', '.join(NUM_CLASSES)}, got {dataset!r} (Paper B's models take MNIST too)"
        )
    if seed is not None:
        torch.manual_seed(seed)
    if name in PAPER_A:
        return PAPER_A[name](NUM_CLASSES[dataset])
    classes, (size, _, channels), _, _ = data.SPECS[dataset]
    return PAPER_B[name](classes, channels, size)
