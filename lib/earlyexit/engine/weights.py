"""Trained weights beside a artifact, for the work that needs the network itself.

Most of both papers runs on what a trained network says about each sample (the artifact).
Some work needs the network: Paper B's real mode (Figs. 1, 2: the elastic runtime on this CPU under
a deadline), or reusing a trained network elsewhere. The training stage keeps its checkpoint
(``checkpoint.pt``, not committed: it holds the optimiser's state too) in the ``cpu`` and ``paper``
profiles; :func:`export` writes the final weights of a network small enough to ship
(:data:`MAX_BYTES` in float32: ResNet44 and its three-exit variant; AlexNet, VGG16-BN and the
MSDNets are 45-140 MB) as ``weights.npz`` beside the artifact, after checking that the checkpoint
is the run that made the artifact, and ``weights.json`` tying them to the artifact's npz checksum,
so that weights of an earlier training are refused once the artifact is remade. Both are written
atomically, the record last. The training notebook exports after every training;
``python -m earlyexit.engine.weights export artifacts/cpu/resnet44_3exit-cifar100`` does it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from ..core import files
from ..nets.models import build_model
from ..nets.multiexit import MultiExitNet
from . import artifacts
from .training import TrainConfig

WEIGHTS, RECORD = "weights.npz", "weights.json"
#: Largest network (float32 parameters and buffers) whose weights the training stage ships.
MAX_BYTES = 8 * 2**20


class WeightsError(RuntimeError):
    """An artifact's weights are missing, corrupt or belong to another training run."""


def state_bytes(model: torch.nn.Module) -> int:
    """Size of ``model``'s parameters and floating buffers in float32."""
    return sum(4 * t.numel() for t in model.state_dict().values() if t.is_floating_point())


def current(directory: str | os.PathLike) -> dict | None:
    """The record of the weights beside the artifact in ``directory`` if they belong to it, else None."""
    try:
        return _record(Path(directory))
    except WeightsError:
        return None


def save(model: MultiExitNet, directory: str | os.PathLike, max_bytes: int = MAX_BYTES) -> dict | None:
    """Write ``model``'s weights beside the artifact in ``directory`` (its manifest must exist).

    Returns the record, or None (and removes weights of an earlier run) when the network is larger
    than ``max_bytes``.
    """
    directory = Path(directory)
    manifest = artifacts.read_manifest(directory)
    if state_bytes(model) > max_bytes:
        for name in (RECORD, WEIGHTS):
            (directory / name).unlink(missing_ok=True)
        return None
    state = {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}
    (directory / RECORD).unlink(missing_ok=True)  # weights without a record are never read
    files.atomic_write(directory / WEIGHTS, lambda f: np.savez_compressed(f, **state))
    record = {
        "artifact_npz_sha256": manifest["npz_sha256"],
        "weights_sha256": files.file_sha256(directory / WEIGHTS),
        "model": manifest["params"]["model"],
        "dataset": manifest["params"]["dataset"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
    }
    files.write_text(directory / RECORD, json.dumps(record, indent=1))
    return record


def load_model(directory: str | os.PathLike) -> MultiExitNet:
    """The trained network of the training-stage artifact in ``directory``, in eval mode on the CPU."""
    directory = Path(directory)
    manifest = artifacts.read_manifest(directory)
    params = manifest["params"]
    if "stage" in params:
        raise WeightsError(
            f"{directory} is a {params['stage']} artifact; weights are shipped for training-stage "
            "artifacts only (load the network its training job made)"
        )
    _record(directory)
    model = build_model(params["model"], params["dataset"], seed=params.get("seed", 0))
    with np.load(directory / WEIGHTS, allow_pickle=False) as f:
        model.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files})
    return model.eval()


def from_checkpoint(
    directory: str | os.PathLike, checkpoint: str | os.PathLike | None = None, retrain: str = "retrain the job"
) -> MultiExitNet:
    """The trained network of the artifact in ``directory``, from the training checkpoint that made it.

    The checkpoint (default ``<directory>/checkpoint.pt``) must hold the artifact's recipe, data
    checksum and per-epoch history, and its code fingerprint or one the artifact was recertified from;
    otherwise, or if it is gone (checkpoints are not shipped, and ``smoke`` deletes its own), a
    :class:`WeightsError` says so and how to get it back (``retrain``).
    """
    directory = Path(directory)
    checkpoint = Path(checkpoint or directory / "checkpoint.pt")
    manifest = artifacts.read_manifest(directory)
    if not checkpoint.exists():
        raise WeightsError(
            f"no checkpoint {checkpoint}: the trained weights of {directory.name} are needed (checkpoints are "
            f"not shipped; the training stage keeps its own in the cpu and paper profiles); {retrain}"
        )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    params = manifest["params"]
    recipe = {f.name: params.get(f.name) for f in fields(TrainConfig)}
    state = state if isinstance(state, dict) else {}
    made = {
        "recipe": state.get("config") == recipe,
        "data": state.get("data_sha256") == manifest["data_sha256"],
        "code": state.get("code_sha256") in _certified_code(manifest),
        "history": state.get("history") == manifest.get("history"),
    }
    if not all(made.values()):
        raise WeightsError(
            f"checkpoint {checkpoint} is not the run that made the artifact in {directory} (other "
            f"{', '.join(k for k, ok in made.items() if not ok)}); {retrain}"
        )
    model = build_model(params["model"], params["dataset"])
    model.load_state_dict(state["model"])
    return model


def export(directory: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> dict | None:
    """Write the weights of the artifact in ``directory`` from the training checkpoint that made it
    (:func:`from_checkpoint`). Weights already current are kept as they are (their file is not rewritten)."""
    if (record := current(Path(directory))) is not None:
        return record
    return save(from_checkpoint(directory, checkpoint, "retrain the job to get its weights"), Path(directory))


def _certified_code(manifest: dict) -> set[str]:
    """The code versions known to compute the artifact: its own and every one it was recertified from
    (:mod:`earlyexit.engine.recertify` replays both and finds them identical)."""
    return {manifest["code_sha256"]} | {r["from_code_sha256"] for r in manifest.get("recertified", [])}


def _record(directory: Path) -> dict:
    """The weights record of the artifact in ``directory``, checked against the artifact and the weights file."""
    try:
        record = json.loads((directory / RECORD).read_text())
    except FileNotFoundError:
        raise WeightsError(
            f"{directory} has no weights ({RECORD}): they are shipped for networks up to "
            f"{MAX_BYTES // 2**20} MB trained since weights were introduced; {_export_hint(directory)}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{directory / RECORD} is not valid JSON ({err}); {_export_hint(directory)}") from None
    if not isinstance(record, dict) or not {"artifact_npz_sha256", "weights_sha256"} <= set(record):
        raise WeightsError(f"{directory / RECORD} is not a weights record; {_export_hint(directory)}")
    if not (directory / WEIGHTS).exists():
        raise WeightsError(f"{directory / WEIGHTS} is missing; {_export_hint(directory)}")
    if record["artifact_npz_sha256"] != artifacts.read_manifest(directory)["npz_sha256"]:
        raise WeightsError(
            f"{directory / WEIGHTS} belongs to another training run than the artifact beside it "
            f"(the artifact was remade); {_export_hint(directory)}"
        )
    if files.file_sha256(directory / WEIGHTS) != record["weights_sha256"]:
        raise WeightsError(
            f"{directory / WEIGHTS} does not match the checksum in {RECORD} (corrupt or half-written); "
            f"{_export_hint(directory)}"
        )
    return record


def _export_hint(directory: Path) -> str:
    return (
        f"write them from the training checkpoint with `python -m earlyexit.engine.weights export {directory}`, "
        f"or retrain the job"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.engine.weights", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export"])
    parser.add_argument("directory", help="a training-stage artifact folder, e.g. artifacts/cpu/resnet44-cifar100")
    parser.add_argument("--checkpoint", help="the checkpoint that made it (default: <directory>/checkpoint.pt)")
    args = parser.parse_args(argv)
    record = export(args.directory, args.checkpoint)
    print(
        f"{args.directory}: "
        + (
            "network larger than the shipping limit, no weights written"
            if record is None
            else f"{record['parameters']:,} parameters written to {WEIGHTS}"
        )
    )


if __name__ == "__main__":
    main()
