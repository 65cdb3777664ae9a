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

:func:`compress_and_profile` runs steps 2 and 3 on a training job's weights (the checkpoint it left,
as the pruning stage does) and writes a profile artifact beside the training artifact. Paper A gives
no recipe for the two steps: we take the training recipe with a learning rate cosine-annealed from
0.01 (step 2, the codec learns from scratch) and from 0.001 (step 3, fine-tuning), epochs per profile
in :data:`STEPS`.
"""

from __future__ import annotations

import contextlib
import copy
import types
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import artifacts, data, hardware
from .flops import module_flops, part_flops
from .multiexit import MultiExitNet
from .pruning import load_artifact, trained_model
from .training import TrainConfig, predict, precision_used, profile_config, train


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


#: Epochs of §IV's steps 2 (codec + server side) and 3 (server side with the quantiser), per profile.
#: Paper A gives none; ``paper`` takes BottleNet++'s scale of fine-tuning, ``cpu`` one epoch each.
STEPS: dict[str, tuple[int, int]] = {"paper": (40, 20), "cpu": (1, 1), "smoke": (1, 1)}


def partition_channels(model: MultiExitNet, input_shape: tuple[int, ...]) -> int:
    """Channels of the feature sent to the server: the output of the last on-device stage."""
    return part_flops(model, input_shape)[-2].stage_output_shape[0]


def compress_params(model_name: str, dataset: str, profile: str, source_npz_sha256: str, reduction: int = 4,
                    bits: int = 8, **overrides) -> dict:
    """The parameters a compression artifact records: the job, the codec, both steps' recipes and the
    training artifact whose weights were compressed."""
    base = profile_config(profile, model_name, **overrides)
    step2, step3 = STEPS[profile]
    return {"stage": "compress", "model": model_name, "dataset": dataset, "profile": profile,
            "reduction": reduction, "bits": bits, "source_npz_sha256": source_npz_sha256,
            "step2": asdict(replace(base, epochs=step2, anneal_epochs=step2, lr=0.01)),
            "step3": asdict(replace(base, epochs=step3, anneal_epochs=step3, lr=0.001))}


def run_dir(artifact_root: str | Path, profile: str, model_name: str, dataset: str) -> Path:
    """The folder of a compression artifact: beside its training artifact, ``<model>-<dataset>-compressed``."""
    return artifacts.run_dir(artifact_root, profile, model_name, dataset).with_name(f"{model_name}-{dataset}-compressed")


def compress_and_profile(model_name: str, dataset: str, profile: str, artifact_root: str | Path,
                         data_dir: str | None = None, progress: bool = True, force: bool = False,
                         reduction: int = 4, bits: int = 8, **overrides) -> artifacts.Profile:
    """The compression stage: §IV's steps 2 and 3 on a trained job's weights, then its profile artifact.

    The artifact holds the test CS-profile of the compressed network (quantiser in the loop), the
    uncompressed network's part FLOPs (``part_flops``), the encoder's FLOPs (run on the device for every
    sample sent to the server) and the bits sent per such sample (``feature_bits``).
    """
    source = load_artifact(artifact_root, profile, model_name, dataset, **overrides)
    params = compress_params(model_name, dataset, profile, source.manifest["npz_sha256"], reduction, bits, **overrides)
    ds = data.load(dataset, data_dir)
    directory = run_dir(artifact_root, profile, model_name, dataset)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.load_profile(directory, params, ds.sha256)
    shape = tuple(ds.x_test.shape[1:])
    base = trained_model(artifact_root, profile, model_name, dataset, **overrides)
    channels = partition_channels(base, shape)
    net = step2_trainable(compressed(base, channels, reduction, bits))
    code = artifacts.code_sha256(model_name, "compress")
    history = []
    for step, prepare in (("step2", step2_trainable), ("step3", step3_trainable)):
        cfg = TrainConfig(**params[step])
        prepare(net)
        history += train(net, ds, cfg, directory / f"{step}.pt", progress, code_sha256=code, fresh=force)
    idx = data.stratified_indices(ds.y_test, params["step3"]["test_per_class"], params["step3"]["seed"])
    arrays = artifacts.exit_profile(predict(net, ds.x_test[idx], ds.name, progress=progress), ds.y_test[idx], "test")
    feature = part_flops(base, shape)[-2].stage_output_shape
    arrays |= {"part_flops": np.array([[p.stage, p.exit] for p in part_flops(base, shape)]),
               "encoder_flops": np.array(module_flops(codec(net).encoder.cpu().eval(), torch.zeros(1, *feature))),
               "feature_bits": np.array(codec(net).encoder[0].out_channels * np.prod(
                   [(s + 1) // 2 for s in feature[1:]]) * bits)}
    artifacts.write_profile(directory, arrays, params=params, data_sha256=ds.sha256,
                            wall_time_s=sum(h["seconds"] for h in history), epochs=len(history), history=history,
                            test_accuracy=arrays["test_correct"].mean(0).tolist(),
                            machine=hardware.machine_record(precision_used(history)))
    return artifacts.load_profile(directory, params, ds.sha256)


def load_compressed(artifact_root: str | Path, profile: str, model_name: str, dataset: str,
                    **overrides) -> artifacts.Profile:
    """A current compression artifact (of the current training artifact), refused if missing, corrupt or stale."""
    source = artifacts.read_manifest(artifacts.run_dir(artifact_root, profile, model_name, dataset))
    params = compress_params(model_name, dataset, profile, source["npz_sha256"], **overrides)
    return artifacts.load_profile(run_dir(artifact_root, profile, model_name, dataset), params)
