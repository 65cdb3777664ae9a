"""The multi-exit abstraction shared by both papers, and the layer helpers their networks are built from.

A :class:`MultiExitNet` is a backbone cut into ``N`` stages with one exit (classifier) after each
stage.  Stage ``n`` holds the backbone layers between exits ``n-1`` and ``n`` (the part whose cost
Paper A calls :math:`O_{l_n}`), exit ``n`` the intermediate classifier (cost :math:`O_{e_n}`); the
last exit is the backbone's own classifier.  ``forward`` returns every exit's logits; ``stage`` and
``exit`` run one part at a time, as Paper A's Algorithm 1 and Paper B's elastic inference need.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MultiExitNet(nn.Module):
    """A backbone split into stages, with exit ``n`` attached after stage ``n``."""

    def __init__(self, stages: list[nn.Module], exits: list[nn.Module], loss_weights: tuple[float, ...]):
        super().__init__()
        if len(stages) != len(exits) or len(loss_weights) != len(exits):
            raise ValueError(
                f"need one exit and one loss weight per stage, got {len(stages)} stages, "
                f"{len(exits)} exits and {len(loss_weights)} weights"
            )
        self.stages = nn.ModuleList(stages)
        self.exits = nn.ModuleList(exits)
        self.loss_weights = tuple(float(w) for w in loss_weights)

    @property
    def num_exits(self) -> int:
        return len(self.exits)

    def stage(self, n: int, h: Tensor) -> Tensor:
        """Run backbone stage ``n`` (0-based) on the feature ``h`` of the previous stage."""
        return self.stages[n](h)

    def exit(self, n: int, h: Tensor) -> Tensor:
        """Run exit ``n`` (0-based) on the output of stage ``n``; returns logits, Eq. (1) of Paper A."""
        return self.exits[n](h)

    def forward(self, x: Tensor) -> list[Tensor]:
        logits = []
        for n in range(self.num_exits):
            x = self.stage(n, x)
            logits.append(self.exit(n, x))
        return logits


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution (bias-free) + BatchNorm + ReLU, the VGG16-BN layer."""
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def conv_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution with bias + ReLU, the AlexNet layer."""
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True)]


def classifier(in_features: int, num_classes: int, pool: nn.Module | None = None) -> list[nn.Module]:
    """Optional pooling, flatten and the exit's fully-connected layer."""
    return ([pool] if pool is not None else []) + [nn.Flatten(), nn.Linear(in_features, num_classes)]


def projection(cin: int, cout: int, stride: int) -> nn.Module:
    """The shortcut of a residual unit: the identity, or a 1x1 convolution with BatchNorm where the shape changes."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    """A residual unit, ``relu(body(x) + shortcut(x))``; subclasses build ``body`` and ``shortcut``
    (:func:`projection`). The ReLU after the addition is a functional call, so ptflops counts one per unit."""

    body: nn.Module
    shortcut: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))
