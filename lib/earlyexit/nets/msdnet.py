"""MSDNet for 32x32 images as a :class:`MultiExitNet`, and Paper B's two MSDNet variants.

MSDNet is Huang et al., ICLR 2018, "Multi-scale dense networks for resource efficient image
classification"; we follow its CIFAR design (§4, Appendix A) and reference code defaults
(growth rate 6, growth and bottleneck factors 1-2-4, scales reduced evenly, compression 0.5):

* the first layer makes ``scales`` feature maps (32x32, 16x16, 8x8 for three scales): a 3x3 conv,
  then strided 3x3 convs; scale ``s`` carries ``c * 2**s`` channels, ``c`` starting at ``channels``;
* every MSD layer adds ``growth * 2**s`` channels at each kept scale ``s`` (dense connectivity, by
  concatenation): at the finest kept scale from a conv of that scale; at the others half from a
  conv of the same scale and half from a strided conv of the next finer scale.  Every conv is a
  1x1 bottleneck (at most ``2**s`` times its output wide) and a 3x3 conv, each with BN and ReLU;
* with ``L`` MSD layers in all, the finest scale is dropped every ``ceil(L / scales)`` layers; each
  drop is followed by a transition (1x1 conv per scale) that compresses ``c`` by ``reduction``;
* block 1 is the first layer and ``base`` MSD layers, every later block ``step`` layers (step mode
  "even"); a classifier follows every block and reads the coarsest scale.

In the shared abstraction stage ``k`` is MSD block ``k`` and exit ``k`` its classifier; the feature
passed between stages is the list of per-scale tensors, finest first.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .multiexit import MultiExitNet, conv_bn_relu

#: Channels of the branch conv and width of its hidden FC layer (the reference CIFAR classifier's 128).
BRANCH_WIDTH = 128


def _conv1x1(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _bottleneck_conv(cin: int, cout: int, width_factor: int, stride: int) -> nn.Sequential:
    """1x1 bottleneck to ``min(cin, width_factor * cout)`` channels, then a 3x3 conv (stride ``stride``)."""
    inner = min(cin, width_factor * cout)
    return nn.Sequential(*_conv1x1(cin, inner), *conv_bn_relu(inner, cout, stride))


class ScaleUnit(nn.Module):
    """New features at scale ``scale``, concatenated to its input: from the same scale, and half of
    them from the next finer scale by a strided conv when the layer reads one (``c_finer > 0``)."""

    def __init__(self, c_same: int, c_finer: int, new: int, scale: int):
        super().__init__()
        own = new // 2 if c_finer else new
        self.same = _bottleneck_conv(c_same, own, 2**scale, 1)
        self.down = _bottleneck_conv(c_finer, new - own, 2 ** (scale - 1), 2) if c_finer else None

    def forward(self, same: Tensor, finer: Tensor | None) -> Tensor:
        parts = [same, self.same(same)]
        if self.down is not None:
            parts.append(self.down(finer))
        return torch.cat(parts, 1)


class MSDLayer(nn.ModuleList):
    """One MSD layer, a :class:`ScaleUnit` per output scale; given one scale more than it has units,
    it drops the finest (whose features still feed the next scale's strided conv)."""

    def forward(self, h: list[Tensor]) -> list[Tensor]:
        drop = len(h) - len(self)
        return [unit(h[j + drop], h[j + drop - 1] if j + drop else None) for j, unit in enumerate(self)]


class PerScale(nn.ModuleList):
    """One module per scale, applied scale-wise (the transition layers)."""

    def forward(self, h: list[Tensor]) -> list[Tensor]:
        return [m(x) for m, x in zip(self, h, strict=True)]


class FirstLayer(nn.ModuleList):
    """MSDNet's first layer: a chain of convs, each output kept as one scale."""

    def forward(self, x: Tensor) -> list[Tensor]:
        h = []
        for conv in self:
            x = conv(x)
            h.append(x)
        return h


class Branch(nn.Sequential):
    """Paper B §IV-A2 branch on the coarsest scale: one 3x3 conv (stride 2, 8x8 -> 4x4, like the first
    conv of MSDNet's CIFAR classifier) + BN + ReLU, global average pooling, FC + ReLU, FC."""

    def __init__(self, cin: int, num_classes: int, width: int = BRANCH_WIDTH):
        super().__init__(
            *conv_bn_relu(cin, width, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, num_classes),
        )

    def forward(self, h: list[Tensor]) -> Tensor:
        return super().forward(h[-1])


def layer_scales(blocks: int, step: int, base: int, scales: int) -> list[list[int]]:
    """Number of scales output by every MSD layer, grouped by block (MSDNet's "even" steps with the
    scales reduced evenly, the reference code's ``prune='max'``)."""
    sizes = [base] + [step] * (blocks - 1)
    interval = math.ceil(sum(sizes) / scales)
    out = iter(scales - n // interval for n in range(sum(sizes)))
    return [[next(out) for _ in range(k)] for k in sizes]


def msdnet(
    num_classes: int,
    blocks: int,
    step: int,
    base: int,
    channels: int,
    growth: int = 6,
    scales: int = 3,
    reduction: float = 0.5,
    in_channels: int = 3,
) -> MultiExitNet:
    """MSDNet with ``blocks`` exits for 32x32 (or MNIST's 28x28) inputs of ``in_channels`` channels
    (Paper B §IV-A1 names blocks/step/base/channels).

    Growth and bottleneck factors are ``2**s`` at scale ``s`` (1-2-4 for three scales);
    ``reduction`` in (0, 1] is the transitions' compression.  Convs get MSDNet's He (fan-out)
    initialisation.  All exits have loss weight 1: MSDNet's reference code sums the classifiers'
    cross-entropies (a mean would divide every learning rate by ``blocks``).
    """
    if min(blocks, step, base, channels, growth, scales) < 1 or not 0 < reduction <= 1:
        raise ValueError("blocks, step, base, channels, growth and scales must be >= 1, reduction in (0, 1]")
    first = FirstLayer(
        nn.Sequential(*conv_bn_relu(channels * 2 ** (s - 1) if s else in_channels, channels * 2**s, 2 if s else 1))
        for s in range(scales)
    )
    stages, exits, c, prev = [], [], channels, scales
    for k, block in enumerate(layer_scales(blocks, step, base, scales)):
        parts: list[nn.Module] = [first] if k == 0 else []
        for out in block:
            kept = range(scales - out, scales)
            finer = [c * 2 ** (s - 1) if s > kept[0] or out < prev else 0 for s in kept]
            parts.append(MSDLayer(ScaleUnit(c * 2**s, f, growth * 2**s, s) for s, f in zip(kept, finer)))
            c += growth
            if out < prev:
                compressed = math.floor(reduction * c)
                parts.append(PerScale(nn.Sequential(*_conv1x1(c * 2**s, compressed * 2**s)) for s in kept))
                c = compressed
            prev = out
        stages.append(nn.Sequential(*parts))
        exits.append(Branch(c * 2 ** (scales - 1), num_classes))
    model = MultiExitNet(stages, exits, (1.0,) * blocks)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def msdnet21(num_classes: int, in_channels: int = 3, image_size: int = 32) -> MultiExitNet:
    """Paper B's 21-block MSDNet: "21 blocks, 2 steps, 4 bases, and 16 channels" (§VI-D2); 44 MSD layers.

    ``image_size`` is accepted for the zoo's common signature; the branches pool globally, so any size
    the three scales can halve twice works."""
    return msdnet(num_classes, blocks=21, step=2, base=4, channels=16, in_channels=in_channels)


def msdnet40(num_classes: int, in_channels: int = 3, image_size: int = 32) -> MultiExitNet:
    """Paper B's 40-block MSDNet, step 1 as §VI-D1 prescribes for 40 or more blocks.

    The paper gives no base or channels for it; we keep those of the 21-block model (base 4,
    16 channels, also the MSDNet reference's CIFAR anytime setting), so both backbones have nearly
    the same depth (43 vs 44 MSD layers), consistent with §VI-B3's final exits within 0.5%.
    """
    return msdnet(num_classes, blocks=40, step=1, base=4, channels=16, in_channels=in_channels)
