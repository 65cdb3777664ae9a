"""Recertify an artifact after a code change: show that the new code computes what the old code did.

``python -m earlyexit.engine.recertify artifacts/cpu/resnet44-cifar100``

An artifact records the fingerprint of the code that computed it (:mod:`.provenance`): docstrings,
comments, formatting, renamed locals and moved functions leave it current, but any change of what its
stage computes makes it stale. Some such changes still compute the same numbers (a loop restructured,
a helper inlined), and retraining to find that out costs CPU-hours. When only the normal form changed
(a new version of :mod:`earlyexit.core.fingerprint`), the old code fingerprinted by the new module has
the new fingerprint, and that is the whole proof. Otherwise recertification replays a short
piece of the artifact's own training and prediction with both code versions -- the old one taken from
git, at a commit whose code has the manifest's fingerprint -- in separate processes on this machine,
in the precision the artifact was trained in, and compares the trained weights, the losses and the
predicted probabilities bit for bit. Only if they are identical is the manifest's ``code_sha256``
replaced, atomically, and the check recorded under ``recertified`` (old and new fingerprints and
commits, what was replayed, when, on which CPU).

The replay covers the code paths of a full run (model construction, seeded data order and
augmentation, the loss, SGD with the schedule, checkpointing, prediction) on a class-balanced slice;
it cannot cover data-dependent branches that the slice never takes, which these modules do not have.

Artifacts of the stages after training (``params["stage"]``) depend on the training code and on their
stage's (:func:`.provenance.code_roots`). Their replay trains the slice as above with the stage's own
recipe, then runs the stage on that network: pruning and fine-tuning (its pruning ratio); the codec's
steps 2 and 3 and the encoder-pruning sweep; or the single-exit network compressed to its share of the
FLOPs and fine-tuned. It compares the weights, losses and probabilities as above, and the pruned
network's part FLOPs, the codec's encoder-pruning correctness, or the compressed network's pruning
ratio and FLOPs. A design artifact (an MSDNet variant trained by its own stage) replays as a training
artifact of that variant. Measured times (ET-profiles) are not replayed: they are measurements.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..core import hardware
from . import artifacts

#: Parameters renamed since older artifacts were made: old name -> (new name, translation of the value).
RENAMED_PARAMS = {"bf16": ("precision", lambda on: "bf16" if on else "fp32")}
#: The replay: one epoch on this many training images per class, then prediction of this many test images.
REPLAY_TRAIN_PER_CLASS = {"cifar10": 20, "cifar100": 2, "mnist": 20}
REPLAY_TEST_IMAGES = 100  # more than one batch of training.predict

_PROBE = r"""
import dataclasses, json, sys, pathlib
import torch
from earlyexit.core import data
from earlyexit.engine import training
from earlyexit.nets import models
spec = json.loads(sys.argv[1])
if spec.get("hash_only"):
    from earlyexit.engine import provenance
    print(json.dumps({"fingerprint": provenance.code_fingerprint(spec["params"]),
                      "digests": provenance.code_digests(spec["params"])}))
    raise SystemExit
torch.set_num_threads(spec["threads"])
names = {f.name for f in dataclasses.fields(training.TrainConfig)}


def config(entries):
    kw = {k: v for k, v in entries.items() if k in names}
    if "precision" in names:
        kw["precision"] = spec["precision"]
    else:
        kw["bf16"] = spec["precision"] == "bf16"
    return training.TrainConfig(**kw)


cfg = config(spec["config"])
ds = data.load(spec["dataset"])
if spec.get("stage") == "design":
    from earlyexit.paper_b import msdnet_design
    variant = msdnet_design.Variant.parse(spec["model"].removeprefix("msdnet-"))
    model = msdnet_design.build(variant, spec["dataset"], cfg.seed)
else:
    model = models.build_model(spec["model"], spec["dataset"], seed=cfg.seed)
out = pathlib.Path(spec["out"])
history = training.train(model, ds, cfg, out / "checkpoint.pt", progress=False)
x, y = ds.x_test[: spec["test_images"]], ds.y_test[: spec["test_images"]]
shape = tuple(ds.x_test.shape[1:])
extra = {}
if spec.get("stage") == "prune":
    from earlyexit.engine import pruning
    from earlyexit.nets import flops
    model = pruning.prune_filters(model, spec["ratio"], shape)
    history += training.train(model, ds, config(spec["stage_configs"][0]), out / "stage.pt", progress=False)
    extra["part_flops"] = [[p.stage, p.exit] for p in flops.part_flops(model.cpu(), shape)]
elif spec.get("stage") == "compress":
    from earlyexit.paper_a import compression as c
    model = c.step2_trainable(c.compressed(model, c.partition_channels(model, shape), spec["reduction"], spec["bits"]))
    for (step, prepare), entries in zip((("step2", c.step2_trainable), ("step3", c.step3_trainable)), spec["stage_configs"]):
        prepare(model)
        history += training.train(model, ds, config(entries), out / f"{step}.pt", progress=False)
    extra["encoder_prune_correct"] = c.encoder_pruning_correct(model, x, y, ds.name, spec["encoder_prune_ratios"],
                                                               progress=False).tolist()
elif spec.get("stage") == "single_exit":
    import copy
    from earlyexit.paper_b import single_exit as se
    compressed = se.compress(se.single_exit(copy.deepcopy(model)), spec["flops_fraction"], shape)
    model = compressed.model
    history += training.train(model, ds, config(spec["stage_configs"][0]), out / "stage.pt", progress=False)
    extra["compressed"] = [compressed.ratio, compressed.flops_before, compressed.flops_after]
probs = training.predict(model, x, ds.name, progress=False)
torch.save({"state": model.state_dict(), "loss": [h["loss"] for h in history], "probs": probs, "extra": extra},
           out / "result.pt")
"""


class RecertifyError(RuntimeError):
    """The artifact cannot be recertified; the message says why."""


REPO = artifacts.REPO


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def probe(lib: Path, spec: dict, code: str = _PROBE) -> str:
    """Run the probe ``code`` (by default the artifact replay) with the package found in ``lib``; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": str(lib), "PYTHONHASHSEED": "0"}
    run = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env, capture_output=True, text=True)
    if run.returncode:
        raise RecertifyError(f"the replay failed with the code in {lib}:\n{run.stderr[-2000:]}")
    return run.stdout.strip()


def checkout(commit: str, target: Path) -> Path:
    """The package ``lib/earlyexit`` at ``commit``, extracted under ``target``; returns its ``lib``."""
    archive = subprocess.run(
        ["git", "archive", commit, "lib/earlyexit"], cwd=REPO, capture_output=True, check=True
    ).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "lib"


def find_code(manifest: dict, work: Path) -> tuple[str, Path]:
    """The commit whose code made the artifact (its modules hash to ``code_sha256``), and that code's ``lib``.

    Candidates: the commit of the last recertification (else the manifest's own) and every later
    commit that touched the package, oldest first.
    """
    made_at = manifest.get("recertified", [{}])[-1].get("to_commit") or manifest.get("git_commit", "unknown")
    first = made_at.removesuffix("-dirty")
    try:
        later = _git("rev-list", "--reverse", f"{first}..HEAD", "--", "lib/earlyexit").split()
    except subprocess.CalledProcessError as err:
        raise RecertifyError(f"the artifact's commit {first!r} is not in this repository's history") from err
    for commit in [first, *later]:
        lib = checkout(commit, work / commit)
        if _code_of(lib, manifest["params"])["fingerprint"] == manifest["code_sha256"]:
            return commit, lib
    raise RecertifyError(
        f"no commit from {first[:12]} on has code hashing to the manifest's code_sha256 "
        f"{manifest['code_sha256'][:12]}; the code that made this artifact is not in git"
    )


def _code_of(lib: Path, params: dict) -> dict:
    """The fingerprint and per-entry digests of the code in ``lib`` that computes an artifact with ``params``."""
    return json.loads(probe(lib, {"hash_only": True, "params": params}))


#: The recipes a stage artifact records, by stage (each one replayed in turn after the training replay).
STAGE_CONFIGS = {"prune": ("finetune",), "compress": ("step2", "step3"), "single_exit": ("finetune",), "design": ()}


def _replay_spec(manifest: dict, out: Path, precision: str | None = None) -> dict:
    params = manifest["params"]
    stage = params.get("stage")
    if stage is not None and stage not in STAGE_CONFIGS:
        raise RecertifyError(f"no replay for artifacts of stage {stage!r}; stages: {', '.join(STAGE_CONFIGS)}")
    short = {"epochs": 1, "anneal_epochs": 1, "train_per_class": REPLAY_TRAIN_PER_CLASS[params["dataset"]]}
    stage_configs = [params[key] | short for key in STAGE_CONFIGS.get(stage, ())]
    own = ("model", "dataset", "profile", "et_samples", "stage", *RENAMED_PARAMS)
    config = stage_configs[0] if stage_configs else {k: v for k, v in params.items() if k not in own} | short
    spec = {
        "model": params["model"],
        "dataset": params["dataset"],
        "config": config,
        "out": str(out),
        "precision": precision or _precision(manifest),
        "threads": torch.get_num_threads(),
        "test_images": REPLAY_TEST_IMAGES,
    }
    if stage:
        spec |= {
            "stage": stage,
            "stage_configs": stage_configs,
            "ratio": params.get("pruning_ratio"),
            "reduction": params.get("reduction"),
            "bits": params.get("bits"),
            "flops_fraction": params.get("flops_fraction"),
            "encoder_prune_ratios": params.get("encoder_prune_ratios"),
        }
    return spec


def _precision(manifest: dict) -> str:
    if "bf16" in manifest["params"]:
        return RENAMED_PARAMS["bf16"][1](manifest["params"]["bf16"])
    return artifacts.trained_precision(manifest).split("+")[0]


def _identical(a: dict, b: dict) -> list[str]:
    """Names of what differs between two replay results (empty: bit for bit equal)."""
    differ = [
        k
        for k in a["state"].keys() | b["state"].keys()
        if k not in a["state"] or k not in b["state"] or not torch.equal(a["state"][k], b["state"][k])
    ]
    if a["loss"] != b["loss"]:
        differ.append("loss")
    if not torch.equal(a["probs"], b["probs"]):
        differ.append("probs")
    differ += [
        k
        for k in a.get("extra", {}).keys() | b.get("extra", {}).keys()
        if a.get("extra", {}).get(k) != b.get("extra", {}).get(k)
    ]
    return sorted(differ)


#: What a recertification by the new normal form has shown.
NORMAL_FORM = "only the normal form changed: the old code has the new fingerprint under the new fingerprint module"


def new_normal_form(old_lib: Path, new_lib: Path) -> bool:
    """Whether the fingerprint module differs between the two codes (else the normal form is the same)."""
    module = Path("earlyexit", "core", "fingerprint.py")
    old = old_lib / module
    return not old.exists() or old.read_bytes() != (new_lib / module).read_bytes()


def renormalised(old_lib: Path, new_lib: Path, work: Path) -> Path:
    """A copy of ``old_lib`` with the fingerprint module of ``new_lib``: the old code in the new normal form."""
    hybrid = work / "renormalised" / "lib"
    shutil.copytree(old_lib, hybrid)
    shutil.copy2(new_lib / "earlyexit" / "core" / "fingerprint.py", hybrid / "earlyexit" / "core" / "fingerprint.py")
    return hybrid


def _replayed(manifest: dict, old_commit: str, old_lib: Path, new_lib: Path, work: Path, precision: str | None) -> dict:
    """Replay the artifact's computation with both codes; what was replayed and compared (raises if they differ)."""
    results = {}
    for label, lib in (("old", old_lib), ("new", new_lib)):
        out = work / f"replay-{label}"
        out.mkdir()
        probe(lib, _replay_spec(manifest, out, precision))
        results[label] = torch.load(out / "result.pt", weights_only=True)
    differ = _identical(results["old"], results["new"])
    if differ:
        raise RecertifyError(
            f"the new code computes something else than the code of {old_commit[:12]} "
            f"({len(differ)} difference(s), first: {differ[:3]}); retrain the artifact"
        )
    spec = _replay_spec(manifest, Path("."), precision)
    shown = {
        "replay": {
            k: spec[k] for k in ("config", "precision", "threads", "test_images", "stage", "stage_configs") if k in spec
        },
        "compared": "trained weights, losses and test probabilities"
        + (f", {' and '.join(sorted(results['new']['extra']))}" if results["new"].get("extra") else "")
        + ", bit for bit: identical",
        "digest": hashlib.sha256(results["new"]["probs"].numpy().tobytes()).hexdigest(),
    }
    if spec["precision"] != _precision(manifest):
        shown["note"] = f"replayed in {spec['precision']}, not in the artifact's {_precision(manifest)}"
    return shown


def recertify(
    directory: str | os.PathLike, new_lib: Path = artifacts.REPO / "lib", precision: str | None = None
) -> dict:
    """Recertify the artifact in ``directory`` for the code in ``new_lib`` (default: this package's ``lib``).

    The replays run in the artifact's own precision, or in ``precision`` when given (e.g. ``"fp32"`` on a
    CPU that only emulates bf16, where a bf16 replay is 7-50x slower; the record says so). Returns the
    updated manifest; raises :class:`RecertifyError` if the old code cannot be found or the replays differ.
    """
    directory = Path(directory)
    manifest = artifacts.read_manifest(directory)
    code_now = _code_of(new_lib, manifest["params"])
    new_code = code_now["fingerprint"]
    if manifest["code_sha256"] == new_code:
        return manifest
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_commit, old_lib = find_code(manifest, work)
        if new_normal_form(old_lib, new_lib) and (
            _code_of(renormalised(old_lib, new_lib, work), manifest["params"])["fingerprint"] == new_code
        ):
            shown = {"compared": NORMAL_FORM}
        else:
            shown = _replayed(manifest, old_commit, old_lib, new_lib, work, precision)
    record = {
        "from_code_sha256": manifest["code_sha256"],
        "from_commit": old_commit,
        "to_code_sha256": new_code,
        "to_commit": artifacts.git_commit(),
        **shown,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": hardware.cpu_info().model,
    }
    params = dict(manifest["params"])
    for old, (new, translate) in RENAMED_PARAMS.items():
        if old in params:
            params[new] = translate(params.pop(old))
    machine = {
        **manifest.get("machine", {}),
        "precision": manifest.get("machine", {}).get("precision", _precision(manifest)),
    }
    updated = {
        **manifest,
        "params": params,
        "machine": machine,
        "code_sha256": new_code,
        "code": code_now["digests"],
        "recertified": [*manifest.get("recertified", []), record],
    }
    artifacts.write_manifest(directory, updated)
    return updated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.engine.recertify", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", help="artifact folders, e.g. artifacts/cpu/resnet44-cifar100")
    parser.add_argument(
        "--precision", choices=("bf16", "fp32"), help="replay in this precision (default: the artifact's)"
    )
    args = parser.parse_args(argv)
    for directory in args.artifacts:
        try:
            manifest = recertify(directory, precision=args.precision)
        except (RecertifyError, artifacts.ArtifactError) as err:
            raise SystemExit(f"{directory}: not recertified: {err}") from None
        last = manifest.get("recertified", [{}])[-1]
        print(
            f"{directory}: current for code {manifest['code_sha256'][:12]}"
            + (f" (recertified from {last['from_code_sha256'][:12]})" if last else "")
        )


if __name__ == "__main__":
    main(sys.argv[1:])
