"""Artifacts: per-sample per-exit confidences (CS-profiles) of a trained model, with provenance.

An artifact is a folder ``<root>/<profile>/<model>-<dataset>/`` holding ``profile.npz`` and
``manifest.json``.  The npz holds, for the test split and the training split, every sample's
label and, per exit, the top-1 softmax confidence (Paper A Eq. (2); Paper B's CS-profile), the
prediction and its correctness.  The manifest records the parameters, the data checksum, the
fingerprint of the code that computed it (:mod:`.provenance`: by meaning, not bytes) and the wall time
that made it, the machine (CPU, precision used), and the npz's own sha256.  Both files are written atomically (manifest last), and :func:`read` refuses a
missing, corrupt or stale artifact.

Staleness rule for precision: the training precision says *how* a run computed, not *what* it was
asked for. A request for ``precision="auto"`` accepts an artifact trained in any precision (it
records which one in ``machine.precision``), so an artifact made in bf16 on one machine stays
current on a machine that would have chosen fp32; a forced ``"bf16"`` or ``"fp32"`` accepts only an
artifact trained in that precision.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import files, hardware
from ..core.fingerprint import bookkeeping
from . import provenance

#: The repository (for its git commit, recorded in every manifest).
REPO = Path(__file__).resolve().parents[3]
NPZ, MANIFEST = "profile.npz", "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact is missing or corrupt."""


class StaleArtifactError(ArtifactError):
    """An artifact was made by other parameters, data or code than the ones asked for."""


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: arrays by name (``test_conf`` ...) and the manifest."""

    arrays: dict[str, np.ndarray]
    manifest: dict

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    @property
    def accuracy(self) -> np.ndarray:
        """Test accuracy of each exit."""
        return self.arrays["test_correct"].mean(0)


def run_dir(root: str | os.PathLike, profile: str, model: str, dataset: str) -> Path:
    """The folder of one trained model's artifact."""
    return Path(root) / profile / f"{model}-{dataset}"


#: A run outside a git checkout (the GPU bundle) names the commit of its code here.
COMMIT_ENV = "EARLYEXIT_GIT_COMMIT"


@bookkeeping
def git_commit() -> str:
    """The repository's commit (with ``-dirty`` if uncommitted changes exist): ``$EARLYEXIT_GIT_COMMIT`` where
    set (a run from the GPU bundle), else git's, or ``unknown``."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout
        return run("rev-parse", "HEAD").strip() + ("-dirty" if run("status", "--porcelain").strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cs_profile(probs: torch.Tensor, labels: torch.Tensor, split: str) -> dict[str, np.ndarray]:
    """Confidence (max softmax), prediction and correctness of every exit for one split."""
    conf, pred = probs.max(-1)
    labels = labels.cpu()
    return {
        f"{split}_label": labels.numpy().astype(np.int16),
        f"{split}_conf": conf.numpy().astype(np.float32),
        f"{split}_pred": pred.numpy().astype(np.int16),
        f"{split}_correct": (pred == labels[:, None]).numpy(),
    }


@bookkeeping
def write(
    directory: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    *,
    params: dict,
    data_sha256: str,
    wall_time_s: float,
    machine: dict | None = None,
    **info,
) -> dict:
    """Write ``arrays`` and their manifest atomically into ``directory``; returns the manifest.

    ``params`` are what the artifact must match to be current (model, dataset, profile, training
    hyper-parameters); ``machine`` defaults to :func:`hardware.machine_record`; ``info`` is recorded
    as is (e.g. epochs, per-epoch history). The code is fingerprinted before anything is written, so that a
    refused fingerprint (:class:`.fingerprint.FingerprintError`: the source changed under the process) leaves
    the previous artifact whole.
    """
    directory = Path(directory)
    code = {"code_sha256": provenance.code_fingerprint(params), "code": provenance.code_digests(params)}
    directory.mkdir(parents=True, exist_ok=True)
    files.atomic_write(directory / NPZ, lambda f: np.savez_compressed(f, **arrays))
    manifest = {
        "params": params,
        "data_sha256": data_sha256,
        **code,
        "git_commit": git_commit(),
        "npz_sha256": files.file_sha256(directory / NPZ),
        "wall_time_s": round(wall_time_s, 1),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine or hardware.machine_record(),
        **info,
    }
    write_manifest(directory, manifest)
    return manifest


@bookkeeping
def write_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    """Replace the manifest of the artifact in ``directory`` atomically."""
    files.write_text(Path(directory) / MANIFEST, json.dumps(manifest, indent=1))


def trained_precision(manifest: dict) -> str:
    """The precision an artifact was trained in: its machine record, else its forced ``precision`` parameter."""
    return manifest.get("machine", {}).get("precision") or manifest["params"].get("precision", "unknown")


@bookkeeping
def staleness(manifest: dict, params: dict, data_sha256: str | None = None) -> list[str]:
    """Reasons why an artifact with ``manifest`` does not match ``params``/code/data (empty: current)."""
    reasons = [
        f"parameter {k!r} is {manifest['params'].get(k)!r}, wanted {v!r}"
        for k, v in params.items()
        if k != "precision" and manifest["params"].get(k) != v
    ]
    wanted = params.get("precision", "auto")
    if wanted != "auto" and trained_precision(manifest) != wanted:
        reasons.append(f"trained in {trained_precision(manifest)}, but precision {wanted!r} was asked for")
    if manifest["code_sha256"] != provenance.code_fingerprint(manifest["params"]):
        made_at = manifest.get("recertified", [{}])[-1].get("to_commit", manifest.get("git_commit"))
        reasons.append(
            f"made by other code (what its stage computes changed since commit {made_at}: "
            f"{provenance.changed_code(manifest)})"
        )
    if data_sha256 is not None and manifest["data_sha256"] != data_sha256:
        reasons.append("made from other data (dataset checksum differs)")
    return reasons


@bookkeeping
def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of the artifact in ``directory``, after checking the npz against its checksum."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise ArtifactError(
            f"no artifact in {directory} (missing {MANIFEST}); create it with the training "
            f"stage: `python -m earlyexit.pipeline --profile {directory.parent.name} --stages train`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path} is not valid JSON ({err}); {_rebuild_hint(directory)}") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise ArtifactError(f"{path} is not an artifact manifest: {problem}; {_rebuild_hint(directory)}")
    if not ((directory / NPZ).exists() and files.file_sha256(directory / NPZ) == manifest["npz_sha256"]):
        raise ArtifactError(
            f"{directory / NPZ} is missing or does not match the checksum in its manifest "
            f"(corrupt or half-written); {_rebuild_hint(directory)}"
        )
    return manifest


def _manifest_problem(manifest) -> str | None:
    """What makes ``manifest`` unusable (None if nothing does)."""
    if not isinstance(manifest, dict):
        return f"it holds a JSON {type(manifest).__name__}, not an object"
    if not isinstance(manifest.get("params"), dict):
        return "'params' is missing or not an object"
    missing = [k for k in ("code_sha256", "data_sha256", "npz_sha256") if not isinstance(manifest.get(k), str)]
    return f"{', '.join(missing)} missing or not a string" if missing else None


def _modified_shipped(directory: Path) -> bool:
    """Whether git tracks this artifact (a shipped one) and its files differ from the committed ones
    (derived results beside them do not count)."""
    try:
        git = lambda *a: subprocess.run(["git", *a, "--", MANIFEST, NPZ], cwd=directory, capture_output=True)
        return git("ls-files", "--error-unmatch").returncode == 0 and git("diff", "--quiet", "HEAD").returncode == 1
    except OSError:
        return False


@bookkeeping
def _rebuild_hint(directory: str | os.PathLike, code_changed: bool = False) -> str:
    """How to get a current artifact back: the shipped copy from git, recertification, or retraining."""
    directory = Path(directory)
    profile, job = directory.parent.name, directory.name
    retrain = (
        f"retrain it with `python -m earlyexit.pipeline --profile {profile} --stages train --force` "
        f"(job {job}; a cpu-profile job takes minutes to hours)"
    )
    hints = []
    if directory.exists() and _modified_shipped(directory):
        hints.append(f"restore the shipped copy with `git checkout -- {directory}`")
    if code_changed:
        hints.append(
            f"if your code change does not alter what training computes, prove it and update the "
            f"manifest with `python -m earlyexit.engine.recertify {directory}`"
        )
    return "; or ".join(hints + [retrain])


@bookkeeping
def open_arrays(directory: str | os.PathLike):
    """The npz of the artifact in ``directory``, opened (use as a context manager); check it first with
    :func:`read_manifest`."""
    return np.load(Path(directory) / NPZ, allow_pickle=False)


@bookkeeping
def read(
    directory: str | os.PathLike, params: dict | None = None, data_sha256: str | None = None, allow_stale: bool = False
) -> Artifact:
    """Load a artifact, refusing it if corrupt, or stale against ``params``/code/data.

    With ``allow_stale=True`` a stale artifact is returned with a warning instead.
    """
    manifest = read_manifest(directory)
    reasons = staleness(manifest, params or {}, data_sha256)
    if reasons:
        message = f"artifact {directory} is stale: " + "; ".join(reasons)
        if not allow_stale:
            hint = _rebuild_hint(directory, code_changed=any("other code" in r for r in reasons))
            raise StaleArtifactError(f"{message}. To fix: {hint}; or pass allow_stale=True to use it anyway.")
        import warnings

        warnings.warn(message, stacklevel=2)
    with open_arrays(directory) as f:
        return Artifact({k: f[k] for k in f.files}, manifest)
