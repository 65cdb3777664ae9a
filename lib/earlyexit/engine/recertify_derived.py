"""Recertify derived results after a code change that computes the same: the counterpart of :mod:`.recertify`.

``python -m earlyexit.engine.recertify_derived --from COMMIT artifacts/cpu``

A derived result (:mod:`.derived`) is keyed by the fingerprint of the function that computed it, one of
:data:`KEY_ROOTS`. When that fingerprint changes, the result is recomputed -- unless the new code is shown
to compute the same, which is cheaper by far (the 63 Exit Predictors and 19 CS-Predictors of the ``cpu``
profile take over an hour). For each key root whose fingerprint differs between ``COMMIT`` and the working
code, in this order:

1. **Equivalent normal form.** The old code, fingerprinted by the *new* :mod:`earlyexit.core.fingerprint`,
   has the new fingerprint: only the normal form changed (fingerprint format 2 writing f-strings as calls).
2. **Replay.** The replays of :data:`REPLAYS` whose functions the root reaches cover (in their closures)
   every function, class or constant that differs between the two closures (both in the new normal
   form), and each of them -- a short training and prediction on a slice of real data, run with the old
   and the new code in separate processes -- gives bit-for-bit identical losses, weights and outputs.

Otherwise the root is left alone and its results are recomputed when next asked for. A record whose key
names a certified old fingerprint gets the new one and a ``recertified`` entry (what was shown, how,
between which commits, when, on which CPU); the result file itself is not touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from ..core import files, hardware
from . import artifacts
from .recertify import NORMAL_FORM, RecertifyError, checkout, new_normal_form, probe, renormalised

#: The functions whose fingerprint keys each kind of derived result (the longest of these a result's file name
#: starts with, followed by ``-`` or ``.``).
KEY_ROOTS = {
    "ep": ("earlyexit.paper_a.exit_predictor:fit_or_load_scores",),
    "cs": ("earlyexit.paper_b.predictor:train_predictor",),
    "comparison": ("earlyexit.paper_b.baselines:compare",),
    "common": ("earlyexit.paper_b.single_exit:compare",),
    "elastic": ("earlyexit.paper_b.msdnet_design:elastic_accuracy",),
    "fig13": (
        "earlyexit.paper_b.elastic:simulate",
        "earlyexit.paper_b.elastic:Dynamic",
        "earlyexit.paper_b.elastic:Oracle",
        "earlyexit.paper_b.robust:choose",
    ),
    "beyond": ("earlyexit.paper_b.baselines:beyond",),
    "cs-predictor-plateau": ("earlyexit.paper_b.predictor:train_to_plateau",),
    "beyond-predictors": ("earlyexit.paper_b.baselines:predictor_study",),
    "regressor": ("earlyexit.paper_a.latency:fit_or_load_regressor",),
}
#: Replays: the functions each exercises, and the code it runs (printing one digest of everything computed).
REPLAYS = {
    "exit-predictor": (
        (
            "earlyexit.paper_a.exit_predictor:build_exit_predictor",
            "earlyexit.paper_a.exit_predictor:train_exit_predictor",
            "earlyexit.paper_a.exit_predictor:predict_scores",
        ),
        """
ds = data.load("cifar10")
rows = data.stratified_indices(ds.y_train, 20, 0)
labels = (torch.rand(len(rows), 2, generator=torch.Generator().manual_seed(1)) > 0.5).float()
for name in exit_predictor.ARCHITECTURES:
    ep = exit_predictor.build_exit_predictor(name, 2, seed=0)
    losses = exit_predictor.train_exit_predictor(ep, ds.x_train[rows], labels, ds.name, epochs=2, progress=False)
    add(losses, ep.state_dict(), exit_predictor.predict_scores(ep, ds.x_test[:100], ds.name))
""",
    ),
    "cs-predictor": (
        ("earlyexit.paper_b.predictor:train_predictor",),
        """
with np.load(REPO / "artifacts/cpu/msdnet21-cifar10/profile.npz") as f:
    conf = f["train_conf"][:400]
model, losses = predictor.train_predictor(conf, epochs=2, seed=0, progress=False)
add(losses, model.state_dict())
""",
    ),
    "cs-predictor-store": (
        ("earlyexit.paper_b.predictor:fit_or_load",),
        """
import tempfile
with np.load(REPO / "artifacts/cpu/msdnet21-cifar10/profile.npz") as f:
    conf = f["train_conf"][:400]
with tempfile.TemporaryDirectory() as tmp:
    for _ in range(2):  # trained and stored, then read back
        model, losses = predictor.fit_or_load(conf, pathlib.Path(tmp) / "cs.npz", epochs=1, seed=0, progress=False)
        add(losses, model.state_dict())
""",
    ),
    "elastic-simulation": (
        ("earlyexit.paper_b.elastic:simulate", "earlyexit.paper_b.elastic:Dynamic"),
        """
from earlyexit.paper_b import elastic
with np.load(REPO / "artifacts/cpu/msdnet21-cifar10/profile.npz") as f:
    conf, correct = f["test_conf"][:300], f["test_correct"][:300]
    tc, tb = f["et_tc"].mean(0), f["et_tb"].mean(0)
cs, _ = predictor.train_predictor(conf[::2], epochs=1, seed=0, progress=False)
plans = [elastic.Dynamic(cs), elastic.Dynamic(cs, "exact"), elastic.Dynamic(elastic.Oracle(), "exact")]
for policy in [*plans, elastic.Threshold(0.7), np.ones(conf.shape[1], dtype=bool)]:  # every default as it is
    for law in ((), (elastic.Preemption.gaussian(0.5),)):
        r = elastic.simulate(tc, tb, conf[1::2], correct[1::2], policy, *law, progress=False)
        add(r.run_accuracy.tolist(), r.accuracy, r.branches, r.decisions)
""",
    ),
    "robust-planner": (
        ("earlyexit.paper_b.robust:paired_gain",),
        """
from earlyexit.paper_b import robust
with np.load(REPO / "artifacts/cpu/msdnet21-cifar10/profile.npz") as f:
    conf, correct = f["test_conf"][:300], f["test_correct"][:300]
    tc, tb = f["et_tc"].mean(0), f["et_tb"].mean(0)
cs, _ = predictor.train_predictor(conf[::2], epochs=1, seed=0, progress=False)
fit, scored = (conf[::2], correct[::2]), (conf[1::2], correct[1::2])
choice = robust.choose(tc, tb, *fit, cs, runs=2)  # a paired gain and its standard error per candidate weight
sweep = robust.spread_sweep(tc, tb, scored, np.ones(tc.size, dtype=bool), (0.1,), runs=2)
add(choice.weight, choice.held_out.to_dict("split"), sweep.to_dict("split"))
""",
    ),
    **{
        f"baselines-{name}": (
            (f"earlyexit.paper_b.baselines:{name}",),
            f"""
import tempfile
from earlyexit.engine import artifacts
from earlyexit.paper_b import baselines
folder = REPO / "artifacts/cpu/flexvgg16-cifar10"
with np.load(folder / "profile.npz") as f:
    arrays = {{k: f[k][:400] if k.startswith(("test_", "train_")) else f[k] for k in f.files}}
run = artifacts.Artifact(arrays, artifacts.read_manifest(folder))
with tempfile.TemporaryDirectory() as tmp:
    tables = baselines.{name}(run, tmp, "smoke", baselines.Setup(random_k=100, runs=2))
for table in tables if isinstance(tables, tuple) else (tables,):
    add(table.drop(columns="search_ms", errors="ignore").to_dict("split"))  # search_ms: a measured time
""",
        )
        for name in ("compare", "predictor_study", "beyond")
    },
}

_PROBE = r"""
import hashlib, importlib, json, pathlib, sys
import numpy as np, torch
from earlyexit.core import data
from earlyexit.core.fingerprint import closure, fingerprint
spec = json.loads(sys.argv[1])
REPO = pathlib.Path(spec["repo"])


def resolve(reference):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


if "roots" in spec:
    found = {}
    for name, roots in spec["roots"].items():
        try:
            objects = [resolve(r) for r in roots]
        except (ImportError, AttributeError):
            continue
        found[name] = {"fingerprint": fingerprint(*objects), "closure": closure(*objects)}
    print(json.dumps(found))
    raise SystemExit
torch.set_num_threads(spec["threads"])
from earlyexit.paper_a import exit_predictor
from earlyexit.paper_b import predictor
digest = hashlib.sha256()


def add(*values):
    for value in values:
        if isinstance(value, dict):
            add(*value.values())
        elif isinstance(value, torch.Tensor):
            digest.update(value.detach().contiguous().numpy().tobytes())
        else:
            digest.update(json.dumps(value).encode())


exec(spec["code"])
print(digest.hexdigest())
"""


def _code(lib: Path, roots: dict[str, tuple[str, ...]]) -> dict[str, dict]:
    """Fingerprint and closure of each set of ``roots`` in the code in ``lib`` (sets it lacks are left out)."""
    return json.loads(probe(lib, {"roots": roots, "repo": str(artifacts.REPO)}, _PROBE))


def _replayed(name: str, old_lib: Path, new_lib: Path) -> bool:
    spec = {"code": REPLAYS[name][1], "repo": str(artifacts.REPO), "threads": 2}
    return probe(old_lib, spec, _PROBE) == probe(new_lib, spec, _PROBE)


def certify(
    old_commit: str, new_lib: Path = artifacts.REPO / "lib", kinds: tuple[str, ...] = tuple(KEY_ROOTS)
) -> dict[str, dict]:
    """Old fingerprint -> ``{"to", "how", "kind"}`` for every key root of :data:`KEY_ROOTS` (those of ``kinds``)
    whose code changed since ``old_commit`` but is shown to compute the same (see the module's docstring)."""
    roots = {kind: KEY_ROOTS[kind] for kind in kinds}
    certified: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_lib = checkout(old_commit, work / "old")
        old, new = _code(old_lib, roots), _code(new_lib, roots)
        in_new_form = _code(renormalised(old_lib, new_lib, work), roots) if new_normal_form(old_lib, new_lib) else old
        replay_closures = _code(new_lib, {name: roots for name, (roots, _) in REPLAYS.items()})
        passed: dict[str, bool] = {}
        for kind, now in new.items():
            if kind not in old or old[kind]["fingerprint"] == now["fingerprint"]:
                continue
            if in_new_form[kind]["fingerprint"] == now["fingerprint"]:
                how = NORMAL_FORM
            else:
                how = _replays_show(kind, in_new_form[kind], now, replay_closures, passed, old_lib, new_lib)
            if how:
                certified[old[kind]["fingerprint"]] = {"to": now["fingerprint"], "how": how, "kind": kind}
    return certified


def _replays_show(
    kind: str, before: dict, now: dict, replay_closures: dict, passed: dict[str, bool], old_lib: Path, new_lib: Path
) -> str | None:
    """How the replays the root reaches show that its changes compute the same; None (saying why) if they do not.
    ``passed`` keeps each replay's outcome, so that one replay serves every root reaching it."""
    changed = _changed(before["closure"], now["closure"])
    names = [n for n, (replay_roots, _) in REPLAYS.items() if _names(replay_roots) <= set(now["closure"])]
    covered = set().union(*(replay_closures[n]["closure"] for n in names))
    if not changed <= covered:
        print(f"{kind}: {', '.join(sorted(changed - covered))} changed, no replay covers it", file=sys.stderr)
        return None
    for name in names:
        if name not in passed:
            passed[name] = _replayed(name, old_lib, new_lib)
    if not all(passed[n] for n in names):
        print(f"{kind}: a replay differs between the two codes: recompute", file=sys.stderr)
        return None
    replays = f"{', '.join(names[:-1])} and {names[-1]} replays are" if len(names) > 1 else f"{names[0]} replay is"
    return f"{', '.join(sorted(changed))} changed; the {replays} bit for bit identical"


def _names(roots: tuple[str, ...]) -> set[str]:
    """The closure names of ``"module:name"`` roots."""
    return {root.partition(":")[2] for root in roots}


def _changed(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}


def apply(certified: dict[str, dict], root: Path, old_commit: str) -> list[Path]:
    """Give every derived record under ``root`` whose key names a certified fingerprint the new one; returns them."""
    updated = []
    for record in sorted(root.glob("*/derived/*.json")):
        info = json.loads(record.read_text())
        field = "code" if "code" in info["key"] else "code_sha256"
        found = certified.get(info["key"].get(field))
        if found is None:
            continue
        entry = {
            "from_code": info["key"][field],
            "to_code": found["to"],
            "from_commit": old_commit,
            "to_commit": artifacts.git_commit(),
            "how": found["how"],
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpu": hardware.cpu_info().model,
        }
        info["key"][field] = found["to"]
        info["recertified"] = [*info.get("recertified", []), entry]
        files.write_text(record, json.dumps(info, indent=1))
        updated.append(record)
    return updated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m earlyexit.engine.recertify_derived", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--from", dest="old", required=True, help="the commit whose code made the results")
    parser.add_argument("roots", nargs="+", help="artifact roots, e.g. artifacts/cpu")
    args = parser.parse_args(argv)
    try:
        certified = certify(args.old)
    except (RecertifyError, OSError) as err:
        raise SystemExit(f"not recertified: {err}") from None
    for old, found in certified.items():
        print(f"{found['kind']}: {old[:12]} -> {found['to'][:12]}: {found['how']}")
    for root in args.roots:
        print(f"{root}: {len(apply(certified, Path(root), args.old))} derived results recertified")


if __name__ == "__main__":
    main(sys.argv[1:])
