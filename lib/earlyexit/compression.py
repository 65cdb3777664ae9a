"""Paper A §IV / §V-C: compression of the feature sent from the device to the edge server.

BottleNet++'s autoencoder with Paper A's change: the encoder is a convolution that keeps a quarter of
the channels and halves height and width (stride 2), BatchNorm and a ReLU (BottleNet++ ends in a
sigmoid); the decoder, on the server, is the transposed convolution back to the feature's shape,
BatchNorm and ReLU. Between them an 8-bit quantiser: 1/4 of the channels x 1/4 of the positions x
8/32 bits is the compression ratio of 64 of §V-C.

:func:`compressed` inserts ``encoder -> quantiser -> decoder`` at the partition point (the input of
the last stage), so the result is an ordinary :class:`MultiExitNet` that the training loop, prediction
and FLOP counting handle unchanged. The three training steps of §IV:

1. the early-exit network is pre-trained (the training stage);
2. encoder and decoder are trained with the server-side network, the on-device network frozen
   (:func:`freeze` keeps its BatchNorm statistics too, so the early exits do not change);
3. the server-side network is fine-tuned with the quantiser in the loop, the on-device network and
   the encoder frozen (the quantiser has no gradient; nothing before it needs one).
"""

from __future__ import annotations

import copy
import types

import torch
from torch import Tensor, nn

from .multiexit import MultiExitNet


class Quantiser(nn.Module):
    """Uniform ``bits``-bit quantisation of a non-negative feature, per sample: values are scaled by the
    sample's maximum (sent alongside as one 32-bit float), rounded to ``2**bits - 1`` levels and scaled
    back. The round trip is within half a step, ``max / (2 * (2**bits - 1))``."""

    def __init__(self, bits: int = 8):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"quantiser bits must be an integer in [1, 16], got {bits!r}")
        self.bits = bits

    def forward(self, x: Tensor) -> Tensor:
        levels = 2**self.bits - 1
        scale = x.detach().flatten(1).amax(1).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))
        return torch.round(x.detach() / scale * levels) / levels * scale


def encoder(channels: int, reduction: int = 4) -> nn.Sequential:
    """Conv 3x3 with stride 2 to ``channels / reduction`` channels, BatchNorm, ReLU (Paper A's BottleNet++ encoder)."""
    if channels % reduction:
        raise ValueError(f"{channels} channels cannot be reduced by {reduction}")
    return nn.Sequential(nn.Conv2d(channels, channels // reduction, 3, 2, 1, bias=False),
                         nn.BatchNorm2d(channels // reduction), nn.ReLU(inplace=True))


def decoder(channels: int, reduction: int = 4) -> nn.Sequential:
    """Transposed conv 2x2 with stride 2 back to ``channels``, BatchNorm, ReLU (on the server)."""
    return nn.Sequential(nn.ConvTranspose2d(channels // reduction, channels, 2, 2, bias=False),
                         nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class Codec(nn.Sequential):
    """``encoder -> quantiser -> decoder`` at the partition point; ``quantise=False`` skips the quantiser
    (step 2 trains through the codec without it)."""

    def __init__(self, channels: int, reduction: int = 4, bits: int = 8):
        super().__init__()
        self.encoder, self.quantiser, self.decoder = encoder(channels, reduction), Quantiser(bits), decoder(channels, reduction)
        self.quantise = True

    def forward(self, x: Tensor) -> Tensor:
        z = self.encoder(x)
        return self.decoder(self.quantiser(z) if self.quantise else z)


def compressed(model: MultiExitNet, channels: int, reduction: int = 4, bits: int = 8) -> MultiExitNet:
    """A copy of ``model`` with a :class:`Codec` inserted before its last (server-side) stage."""
    net = copy.deepcopy(model)
    net.stages[-1] = nn.Sequential(Codec(channels, reduction, bits), net.stages[-1])
    return net


def codec(net: MultiExitNet) -> Codec:
    """The :class:`Codec` of a network made by :func:`compressed`."""
    first = net.stages[-1][0]
    if not isinstance(first, Codec):
        raise ValueError("this network has no feature codec; build it with compression.compressed(model, channels)")
    return first


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(module: nn.Module) -> nn.Module:
    """Stop ``module`` from learning: no gradients, and its BatchNorm statistics stay as they are even when
    the network around it is put in training mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.train = types.MethodType(_stay_in_eval, module)  # bound, so a deep copy stays frozen too
    return module.eval()


def step2_trainable(net: MultiExitNet) -> MultiExitNet:
    """§IV step 2: freeze the on-device network (every stage and exit before the partition point); the
    codec (without quantiser) and the server-side network learn."""
    for part in [*net.stages[:-1], *net.exits[:-1]]:
        freeze(part)
    codec(net).quantise = False
    return net


def step3_trainable(net: MultiExitNet) -> MultiExitNet:
    """§IV step 3: also freeze the encoder and put the quantiser in the loop; the decoder and the
    server-side network are fine-tuned."""
    step2_trainable(net)
    freeze(codec(net).encoder)
    codec(net).quantise = True
    return net
