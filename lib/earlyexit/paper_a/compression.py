"""Paper A §IV / §V-C: compression of the feature sent from the device to the edge server.

BottleNet++'s autoencoder with Paper A's change: the encoder is a convolution that keeps a quarter of
the channels and halves height and width (stride 2), BatchNorm and a ReLU (BottleNet++ ends in a
sigmoid); the decoder, on the server, is the transposed convolution back to the feature's shape,
BatchNorm and ReLU. Between them an 8-bit quantiser: 1/4 of the channels x 1/4 of the positions x
8/32 bits is the compression ratio of 64 of §V-C.

:func:`compressed` inserts ``encoder -> quantiser -> decoder`` at the partition point (the input of
the last stage), so the result is an ordinary :class:`MultiExitNet` that the training loop, prediction
and FLOP counting handle unchanged. :func:`pruned_codec` removes encoder filters (fewer channels sent),
the baseline "EE (Adaptive, Pruning)" of Fig. 10. The three training steps of §IV:

1. the early-exit network is pre-trained (the training stage);
2. encoder and decoder are trained with the server-side network, the on-device network frozen
   (:func:`freeze` keeps its BatchNorm statistics too, so the early exits do not change);
3. the server-side network is fine-tuned with the quantiser in the loop, the on-device network and
   the encoder frozen (the quantiser has no gradient; nothing before it needs one).

:func:`compress_and_profile` runs steps 2 and 3 on a training job's weights (the checkpoint it left,
as the pruning stage does) and writes a artifact beside the training artifact, with the last
exit's correctness under every encoder pruning ratio of :data:`ENCODER_PRUNE_RATIOS`. Paper A gives
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
from tqdm.auto import tqdm

from ..core import data, hardware
from ..engine import artifacts, provenance
from ..engine.pruning import load_artifact, trained_model
from ..engine.stage import Stage, training_source
from ..engine.training import RECORDED, TrainConfig, predict, profile_config, train, write_artifact
from ..nets.flops import module_flops, part_flops
from ..nets.models import BUILDERS, ZOO
from ..nets.multiexit import MultiExitNet


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


def encoder(channels: int, reduction: int = 4, width: int | None = None) -> nn.Sequential:
    """Conv 3x3 with stride 2 to ``channels / reduction`` channels (or ``width`` of them), BatchNorm, ReLU
    (Paper A's BottleNet++ encoder)."""
    return nn.Sequential(
        nn.Conv2d(channels, _width(channels, reduction, width), 3, 2, 1, bias=False),
        nn.BatchNorm2d(_width(channels, reduction, width)),
        nn.ReLU(inplace=True),
    )


def decoder(channels: int, reduction: int = 4, width: int | None = None) -> nn.Sequential:
    """Transposed conv 2x2 with stride 2 from the encoder's width back to ``channels``, BatchNorm, ReLU (on the server)."""
    return nn.Sequential(
        nn.ConvTranspose2d(_width(channels, reduction, width), channels, 2, 2, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


def _width(channels: int, reduction: int, width: int | None) -> int:
    """Channels the encoder sends: ``width`` if given, else ``channels / reduction``."""
    if width is not None:
        return width
    if channels % reduction:
        raise ValueError(f"{channels} channels cannot be reduced by {reduction}")
    return channels // reduction


class Codec(nn.Sequential):
    """``encoder -> quantiser -> decoder`` at the partition point; ``quantise=False`` skips the quantiser
    (step 2 trains through the codec without it)."""

    def __init__(self, channels: int, reduction: int = 4, bits: int = 8, width: int | None = None):
        super().__init__()
        self.encoder, self.quantiser = encoder(channels, reduction, width), Quantiser(bits)
        self.decoder = decoder(channels, reduction, width)
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


def pruned_codec(c: Codec, ratio: float) -> Codec:
    """A copy of codec ``c`` whose encoder has lost the fraction ``ratio`` of its filters with the smallest
    l2 norm (Li et al.'s criterion, as the pruning baseline), removed physically from the encoder's
    convolution and BatchNorm and from the decoder's input, so fewer channels are sent (Fig. 10's
    "EE (Adaptive, Pruning)"). No fine-tuning follows: §V-C prunes the trained codec."""
    conv = c.encoder[0]
    drop = int(round(ratio * conv.out_channels))
    if not 0 <= drop < conv.out_channels:
        raise ValueError(
            f"an encoder pruning ratio must leave at least one of {conv.out_channels} filters, got {ratio}"
        )
    keep = (
        conv.weight.detach().flatten(1).norm(dim=1).argsort(descending=True)[: conv.out_channels - drop].sort().values
    )
    out = Codec(conv.in_channels, bits=c.quantiser.bits, width=len(keep))
    out.quantise = c.quantise
    src_bn, dst_bn = c.encoder[1], out.encoder[1]
    with torch.no_grad():
        out.encoder[0].weight.copy_(conv.weight[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst_bn, name).copy_(getattr(src_bn, name)[keep])
        out.decoder[0].weight.copy_(c.decoder[0].weight[keep])
        out.decoder[1].load_state_dict(c.decoder[1].state_dict())
    return out.eval()


def sent_bits(c: Codec, feature_shape: tuple[int, int, int]) -> int:
    """Bits the device sends per offloaded sample: the encoder's channels at half the feature's height and
    width (stride 2, rounded up), ``bits`` each; the per-sample scale of the quantiser is not counted."""
    _, h, w = feature_shape
    return c.encoder[0].out_channels * ((h + 1) // 2) * ((w + 1) // 2) * c.quantiser.bits


@torch.no_grad()
def encoder_pruning_correct(
    net: MultiExitNet, x: Tensor, labels: Tensor, dataset: str, ratios, batch_size: int = 500, progress: bool = True
) -> np.ndarray:
    """Correctness of the last exit, shape (ratios, samples), when the encoder of compressed network ``net``
    is pruned by each ratio (:func:`pruned_codec`); the on-device feature is computed once per batch and
    every pruned codec and the server side run on it."""
    dev = hardware.device()
    net = net.to(dev).eval()
    codecs = [pruned_codec(codec(net), r).to(dev) for r in ratios]
    server = net.stages[-1][1]
    out = np.zeros((len(codecs), len(x)), dtype=bool)
    for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc="encoder pruning"):
        h = data.normalize(x[start : start + batch_size], dataset).to(dev)
        for stage in net.stages[:-1]:
            h = stage(h)
        truth = labels[start : start + batch_size].to(dev)
        for i, c in enumerate(codecs):
            out[i, start : start + len(truth)] = (net.exits[-1](server(c(h))).argmax(1) == truth).cpu().numpy()
    return out


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


#: Fractions of the encoder's filters removed for Fig. 10's "EE (Adaptive, Pruning)": 0, 1/8, ..., 7/8.
ENCODER_PRUNE_RATIOS: tuple[float, ...] = tuple(k / 8 for k in range(8))

#: Epochs of §IV's steps 2 (codec + server side) and 3 (server side with the quantiser), per profile.
#: Paper A gives none; ``paper`` takes BottleNet++'s scale of fine-tuning. ``cpu`` trains the codec 4 epochs and
#: fine-tunes 1: with one epoch each, the codec cost VGG16-BN / CIFAR-100 (24 epochs) 7.9 pp of its last exit.
STEPS: dict[str, tuple[int, int]] = {"paper": (40, 20), "cpu": (4, 1), "smoke": (1, 1)}


def partition_channels(model: MultiExitNet, input_shape: tuple[int, ...]) -> int:
    """Channels of the feature sent to the server: the output of the last on-device stage."""
    return part_flops(model, input_shape)[-2].stage_output_shape[0]


def compress_params(
    model_name: str, dataset: str, profile: str, source_npz_sha256: str, reduction: int = 4, bits: int = 8, **overrides
) -> dict:
    """The parameters a compression artifact records: the job, the codec, both steps' recipes and the
    training artifact whose weights were compressed."""
    base = profile_config(profile, model_name, **overrides)
    step2, step3 = STEPS[profile]
    return {
        "stage": "compress",
        "model": model_name,
        "dataset": dataset,
        "profile": profile,
        "reduction": reduction,
        "bits": bits,
        "source_npz_sha256": source_npz_sha256,
        "encoder_prune_ratios": list(ENCODER_PRUNE_RATIOS),
        "step2": asdict(replace(base, epochs=step2, anneal_epochs=step2, lr=0.01)),
        "step3": asdict(replace(base, epochs=step3, anneal_epochs=step3, lr=0.001)),
    }


def run_dir(artifact_root: str | Path, profile: str, model_name: str, dataset: str) -> Path:
    """The folder of a compression artifact: beside its training artifact, ``<model>-<dataset>-compressed``."""
    return artifacts.run_dir(artifact_root, profile, model_name, dataset).with_name(
        f"{model_name}-{dataset}-compressed"
    )


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """What computes a feature-compression job's artifact (:mod:`earlyexit.engine.provenance`):
    :func:`compress_and_profile` and the builder of its network (the zoo's other builders are opaque)."""
    return (compress_and_profile, BUILDERS[params["model"]]), ZOO + RECORDED


def compress_and_profile(
    model_name: str,
    dataset: str,
    profile: str,
    artifact_root: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    force: bool = False,
    reduction: int = 4,
    bits: int = 8,
    **overrides,
) -> artifacts.Artifact:
    """The compression stage: §IV's steps 2 and 3 on a trained job's weights, then its artifact.

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
            return artifacts.read(directory, params, ds.sha256)
    shape = tuple(ds.x_test.shape[1:])
    base = trained_model(artifact_root, profile, model_name, dataset, **overrides)
    channels = partition_channels(base, shape)
    net = step2_trainable(compressed(base, channels, reduction, bits))
    code = provenance.code_fingerprint(params)
    history = []
    for step, prepare in (("step2", step2_trainable), ("step3", step3_trainable)):
        cfg = TrainConfig(**params[step])
        prepare(net)
        history += train(net, ds, cfg, directory / f"{step}.pt", progress, code_sha256=code, fresh=force)
    idx = data.stratified_indices(ds.y_test, params["step3"]["test_per_class"], params["step3"]["seed"])
    x, y = ds.x_test[idx], ds.y_test[idx]
    arrays = artifacts.cs_profile(predict(net, x, ds.name, progress=progress), y, "test")
    feature = part_flops(base, shape)[-2].stage_output_shape
    ratios = params["encoder_prune_ratios"]
    arrays |= {
        "part_flops": np.array([[p.stage, p.exit] for p in part_flops(base, shape)]),
        "encoder_flops": np.array(module_flops(codec(net).encoder.cpu().eval(), torch.zeros(1, *feature))),
        "feature_bits": np.array(sent_bits(codec(net), feature)),
        "encoder_prune_ratio": np.array(ratios),
        "encoder_prune_bits": np.array([sent_bits(pruned_codec(codec(net), r), feature) for r in ratios]),
        "encoder_prune_correct": encoder_pruning_correct(net, x, y, ds.name, ratios, progress=progress),
    }
    return write_artifact(directory, arrays, params, ds, history)


def load_compressed(
    artifact_root: str | Path, profile: str, model_name: str, dataset: str, **overrides
) -> artifacts.Artifact:
    """A current compression artifact (of the current training artifact), refused if missing, corrupt or stale."""
    source = artifacts.read_manifest(artifacts.run_dir(artifact_root, profile, model_name, dataset))
    params = compress_params(model_name, dataset, profile, source["npz_sha256"], **overrides)
    return artifacts.read(run_dir(artifact_root, profile, model_name, dataset), params)


def codec_fit(trained: dict, compressed: dict) -> str:
    """Why the codec costs accuracy (§V-C), read from the histories in two manifests: the training loss (Eq. (5),
    every exit) at the last epoch of the backbone and of §IV's steps 2 and 3, and how much step 2's loss still fell
    in its last epoch.

    The early exits are frozen in both steps, so a step that ends above the backbone's loss left the network less
    well fit to its training data than the backbone was. A loss still falling says that longer training of the steps
    may recover it; a longer step 2 tells that apart from the floor that the bottleneck's information loss sets.
    Returns "" when both steps end at or below the backbone's loss.
    """
    before = trained["history"][-1]["loss"]
    step2 = compressed["params"]["step2"]["epochs"]
    losses = [entry["loss"] for entry in compressed["history"]]
    ends = {"step2": losses[step2 - 1], "step3": losses[-1]}
    if max(ends.values()) <= before:
        return ""
    recipes = {step: compressed["params"][step] for step in ends}
    steps = [
        f"{loss:.3f} after step {step[-1]} ({recipes[step]['epochs']} epoch"
        f"{'s' if recipes[step]['epochs'] != 1 else ''} from lr {recipes[step]['lr']:g})"
        for step, loss in ends.items()
    ]
    falling = f"; step 2's loss fell {losses[step2 - 2] - losses[step2 - 1]:.3f} in its last epoch" if step2 > 1 else ""
    return (
        f"the codec's network fits its training data less well than the backbone: training loss (Eq. 5) "
        f"{' and '.join(steps)}, against the backbone's {before:.3f} at its last epoch{falling}"
    )


#: The feature-compression stage (:class:`earlyexit.engine.stage.Stage`): one job per ``[model, dataset]``.
STAGE = Stage(
    kind="compress",
    fields=("model", "dataset"),
    on_training=True,
    check=lambda profile, job: job,
    params=lambda profile, job, root: compress_params(
        job["model"], job["dataset"], profile, training_source(root, profile, job), **job["overrides"]
    ),
    directory=lambda root, profile, job: run_dir(root, profile, job["model"], job["dataset"]),
    suffix=lambda job: f"-{job['model']}-{job['dataset']}-compressed",
    label=lambda job: f"{job['model']}, feature codec trained (steps 2, 3 of §IV)",
    code_roots=code_roots,
)
