"""The networks Paper B evaluates EINet on (§VI-A), as :class:`MultiExitNet` for MNIST (28x28x1) and CIFAR (32x32x3).

* **B-AlexNet** [5] with three exits: BranchyNet's CIFAR AlexNet (5x5 and 3x3 convs with max-pooling
  and local response normalisation, FCs 256 and 128) with its two branches, after conv 2 (2 convs)
  and after conv 3 (1 conv), each ending in max-pooling and an FC layer, as BranchyNet's own code.
* **FlexVGG-16** [25] with five exits: VGG-16 with an exit after each of its first four pooling
  blocks (after convs 2, 4, 7 and 10) and the final classifier. FlexDNN searches its exits' designs;
  Paper B does not give them, so every early exit is Paper B's branch (below).
* **Fine-grained VGG-16** with 14 exits (§IV-A1, Fig. 3): each of the 13 convolutions (with its
  BatchNorm, ReLU and max-pooling) is a conv part with a branch after it, and the final classifier is
  the 14th exit (its part is empty).
* **Fine-grained ResNet-50** with six exits: residual units are conv parts (§IV-A1); Paper B keeps six
  exits without saying where, so we put branches after units 3, 5, 7, 10 and 13 of the 16 (the ends of
  stages 1-3 and the middles of stages 2-3) and the classifier after unit 16 (``exits_after``).
  ``stem="cifar"`` is the 3x3 CIFAR stem (full resolution in stage 1), ``"imagenet"`` torchvision's
  7x7/2 convolution and 3x3/2 max-pooling, 16 times cheaper on 32x32 images.

**Branch** (§IV-A2): ``convs`` 3x3 convolutions with BatchNorm and ReLU (the first with stride 2), a
2x2 adaptive average pooling and ``fcs`` FC layers; Paper B settles on one conv and two FCs, the
default, and Fig. 14(b) compares the other combinations. Paper B gives no widths: we take 32 channels
and a hidden FC of 128. VGG-16 and ResNet-50 use BatchNorm (Paper B trains from scratch and does not
say; without it a 16-layer VGG hardly trains in a CPU budget). Paper B's recipe sums the exits'
cross-entropies, so every exit's loss weight is 1.
"""

from __future__ import annotations

import torch
from torch import nn

from .multiexit import MultiExitNet, Residual, conv_bn_relu, projection

#: Channels of a branch's convolutions and width of its hidden FC layers.
BRANCH_CHANNELS, BRANCH_HIDDEN = 32, 128


def _features(module: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Output shape of ``module`` on one input of ``shape`` (channels, height, width)."""
    was_training = module.training
    with torch.no_grad():
        out = module.eval()(torch.zeros(1, *shape))
    module.train(was_training)
    return tuple(out.shape[1:])


def branch(
    cin: int,
    num_classes: int,
    convs: int = 1,
    fcs: int = 2,
    channels: int = BRANCH_CHANNELS,
    hidden: int = BRANCH_HIDDEN,
) -> nn.Sequential:
    """Paper B's branch: ``convs`` conv-BN-ReLU layers (the first strided), 2x2 average pooling, ``fcs`` FCs."""
    if convs < 0 or fcs < 1:
        raise ValueError(f"a branch needs convs >= 0 and fcs >= 1, got convs={convs}, fcs={fcs}")
    layers: list[nn.Module] = []
    c = cin
    for i in range(convs):
        layers += conv_bn_relu(c, channels, stride=2 if i == 0 else 1)
        c = channels
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
    width = c * 4
    for _ in range(fcs - 1):
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def _ones(n: int) -> tuple[float, ...]:
    return (1.0,) * n


# ------------------------------------------------------------------------------------------ B-AlexNet
def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(3, alpha=5e-05, beta=0.75)


def _pool3() -> nn.MaxPool2d:
    """BranchyNet's 3x3/2 max-pooling (Chainer's ``cover_all``: ceil mode)."""
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def b_alexnet(num_classes: int, in_channels: int = 3, image_size: int = 32) -> MultiExitNet:
    """BranchyNet's B-AlexNet: exits after conv 2 and conv 3 and the final classifier.

    The branches read the convolutions' outputs before their ReLU (as BranchyNet), so the ReLUs where
    a stage's output is shared are not in place.
    """
    stages = [
        nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            _pool3(),
            _lrn(),
            nn.Conv2d(32, 64, 5, padding=2),
        ),
        nn.Sequential(nn.ReLU(), _pool3(), _lrn(), nn.Conv2d(64, 96, 3, padding=1)),
    ]
    trunk = nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(96, 96, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(96, 64, 3, padding=1),
        nn.ReLU(inplace=True),
        _pool3(),
        nn.Flatten(),
    )
    heads = [
        nn.Sequential(
            nn.ReLU(),
            _pool3(),
            _lrn(),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            _pool3(),
            nn.Flatten(),
        ),
        nn.Sequential(
            nn.ReLU(), _pool3(), _lrn(), nn.Conv2d(96, 32, 3, padding=1), nn.ReLU(inplace=True), _pool3(), nn.Flatten()
        ),
    ]
    shape = (in_channels, image_size, image_size)
    after = [_features(stages[0], shape)]
    after.append(_features(stages[1], after[0]))
    exits = [nn.Sequential(*head, nn.Linear(_features(head, s)[0], num_classes)) for head, s in zip(heads, after)]
    flat = _features(trunk, after[1])[0]
    stages.append(
        nn.Sequential(
            *trunk,
            nn.Linear(flat, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(),
        )
    )
    exits.append(nn.Linear(128, num_classes))
    return MultiExitNet(stages, exits, _ones(3))


# ------------------------------------------------------------------------------------------ VGG-16
#: VGG-16's convolutions: output channels, and whether a 2x2 max-pooling follows.
VGG16_CONVS = (
    (64, False),
    (64, True),
    (128, False),
    (128, True),
    (256, False),
    (256, False),
    (256, True),
    (512, False),
    (512, False),
    (512, True),
    (512, False),
    (512, False),
    (512, True),
)


def _vgg_parts(in_channels: int) -> list[nn.Sequential]:
    """The 13 conv parts of VGG-16 with BatchNorm; max-pooling in ceil mode so that 28x28 reaches 1x1."""
    parts, c = [], in_channels
    for cout, pool in VGG16_CONVS:
        parts.append(nn.Sequential(*conv_bn_relu(c, cout), *([nn.MaxPool2d(2, ceil_mode=True)] if pool else [])))
        c = cout
    return parts


def _vgg_classifier(num_classes: int) -> nn.Sequential:
    """VGG's CIFAR classifier: 512 -> 512 -> 512 -> classes, with dropout."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, num_classes),
    )


def vgg16_exits(
    num_classes: int, exits_after: tuple[int, ...], in_channels: int = 3, convs: int = 1, fcs: int = 2
) -> MultiExitNet:
    """VGG-16 cut after the convolutions ``exits_after`` (1-based), a branch at each cut, the classifier last."""
    if (
        not exits_after
        or list(exits_after) != sorted(set(exits_after))
        or not 1 <= exits_after[0] <= exits_after[-1] <= 13
    ):
        raise ValueError(f"exits_after must be increasing conv indices in 1..13, got {exits_after}")
    parts = _vgg_parts(in_channels)
    bounds = (0, *exits_after, 13)
    stages = [nn.Sequential(*parts[a:b]) for a, b in zip(bounds, bounds[1:])]
    exits = [branch(VGG16_CONVS[k - 1][0], num_classes, convs, fcs) for k in exits_after] + [
        _vgg_classifier(num_classes)
    ]
    return MultiExitNet(stages, exits, _ones(len(exits)))


def flexvgg16(num_classes: int, in_channels: int = 3, image_size: int = 32) -> MultiExitNet:
    """FlexVGG-16: exits after each of VGG-16's first four pooling blocks, and the classifier (5 exits)."""
    return vgg16_exits(num_classes, (2, 4, 7, 10), in_channels)


def vgg16_finegrained(num_classes: int, in_channels: int = 3, image_size: int = 32) -> MultiExitNet:
    """Fine-grained VGG-16 (Fig. 3): a branch after every convolution and the classifier (14 exits)."""
    return vgg16_exits(num_classes, tuple(range(1, 14)), in_channels)


# ------------------------------------------------------------------------------------------ ResNet-50
class Bottleneck(Residual):
    """ResNet's bottleneck unit: 1x1, 3x3 (stride), 1x1 to 4x the width, projection when the shape changes."""

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            *conv_bn_relu(width, width, stride),
            nn.Conv2d(width, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = projection(cin, cout, stride)


def _resnet50_units() -> list[Bottleneck]:
    """The 16 bottleneck units of ResNet-50: stages of 3, 4, 6, 3 units at widths 64, 128, 256, 512."""
    units, cin = [], 64
    for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(count):
            units.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = 4 * width
    return units


def _stem(kind: str, in_channels: int) -> list[nn.Module]:
    if kind == "cifar":
        return [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    if kind == "imagenet":
        return [
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
    raise ValueError(f"stem must be 'cifar' or 'imagenet', got {kind!r}")


def resnet50_finegrained(
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    exits_after: tuple[int, ...] = (3, 5, 7, 10, 13),
    stem: str = "cifar",
) -> MultiExitNet:
    """ResNet-50 with branches after the residual units ``exits_after`` (1-based) and its classifier."""
    units = _resnet50_units()
    if (
        not exits_after
        or list(exits_after) != sorted(set(exits_after))
        or not 1 <= exits_after[0] <= exits_after[-1] < 16
    ):
        raise ValueError(f"exits_after must be increasing unit indices in 1..15, got {exits_after}")
    bounds = (0, *exits_after, 16)
    stages = [nn.Sequential(*units[a:b]) for a, b in zip(bounds, bounds[1:])]
    stages[0] = nn.Sequential(*_stem(stem, in_channels), *stages[0])
    widths = [units[k - 1].body[-1].num_features for k in exits_after]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, num_classes))
    return MultiExitNet(stages, [branch(c, num_classes) for c in widths] + [head], _ones(len(exits_after) + 1))
