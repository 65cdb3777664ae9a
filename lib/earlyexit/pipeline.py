"""Run the numbered notebooks in order with papermill: ``python -m earlyexit.pipeline --profile cpu``.

Stages come from ``pipeline.toml``. A stage that makes artifacts (:data:`STAGES`, one
:class:`earlyexit.engine.stage.Stage` per kind: *train*, *prune*, *compress*, *single_exit*, *design*)
runs its notebook once per entry of its profile's matrix and is skipped while that job's artifact is
current (its parameters, the fingerprint of the code that computes it, the data); the stages after
training read the weights a training job left behind and go stale when it is retrained. A *figure*
stage is skipped while what its code cells compute, its parameters, the library code it calls and the
content of the profile's artifacts are unchanged (its stamp). ``--force`` rebuilds. Executed copies go
to ``runs/<profile>/``; a notebook run with its own default parameters (the shipped ``cpu`` profile) is
also written back in place, so the repository shows the outputs that made its figures and artifacts.
The run stops at the first failing notebook and names it and the cell.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib
import inspect
import json
import os
import re
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from .core import data, files, fingerprint, hardware, paper, reads
from .engine import artifacts, budget, parallel, pruning, resident, train_bench, train_stage, training, weights
from .engine.stage import Stage, job_fields
from .engine.training import PROFILES, recipe, stage_params
from .nets.models import BUILDERS
from .nets.multiexit import MultiExitNet
from .paper_a import compression
from .paper_b import baselines, msdnet_design, single_exit

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
TIERS = ROOT / "tiers.toml"  # the plan of longer cpu training (issue 35): engine.train_bench.read_tiers
DEFAULT_PROFILE = "cpu"
#: The exit status of a run stopped by its time budget (EX_TEMPFAIL: run the same command again to continue).
EXIT_BUDGET = 75


#: The stages that make artifacts, by kind, in the order a pipeline needs them (the stages after training
#: read a training job's weights); figure stages read artifacts only.
STAGES: dict[str, Stage] = {
    s.kind: s for s in (train_stage.STAGE, pruning.STAGE, compression.STAGE, single_exit.STAGE, msdnet_design.STAGE)
}
KINDS = (*STAGES, "figure")


@dataclass(frozen=True)
class Job:
    """One notebook execution: a stage, its parameters and where the executed copy goes."""

    stage: str
    kind: str
    notebook: Path
    params: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.notebook.stem + ("" if self.kind == "figure" else STAGES[self.kind].suffix(self.params))


def load_stages(path: Path = ROOT / "pipeline.toml") -> list[dict]:
    """The stages of ``pipeline.toml`` in order; a malformed file exits naming it and what is wrong."""
    try:
        stages = tomllib.loads(path.read_text())["stages"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as err:
        raise SystemExit(f"{path}: cannot read the pipeline's stages ({type(err).__name__}: {err})") from None
    for s in stages:
        missing = {"id", "kind", "notebook"} - set(s)
        if missing or s.get("kind") not in KINDS:
            raise SystemExit(
                f"{path}: stage {s.get('id', '?')!r} needs id, notebook and a kind of {KINDS} "
                f"(missing {sorted(missing)}, kind {s.get('kind')!r})"
            )
        unknown = set(s.get("profiles", PROFILES)) - set(PROFILES)
        if unknown:
            raise SystemExit(
                f"{path}: stage {s['id']!r} names unknown profile(s) {sorted(unknown)} in 'profiles'; "
                f"choose from {', '.join(PROFILES)}"
            )
    return stages


def _stage_jobs(stage: dict, profile: str, path: Path, trained: dict[tuple[str, str], dict]) -> list[dict]:
    """The checked jobs of one stage of ``pipeline.toml`` in ``profile`` (``trained``: the training jobs by
    ``(model, dataset)``, whose overrides a stage after training takes); a bad entry exits naming it."""
    kind = STAGES[stage["kind"]]
    out = []
    for entry in stage.get("matrix", {}).get(profile, []):
        where = f"{path}: stage {stage['id']!r}, matrix.{profile} entry {entry!r}"
        try:
            job = job_fields(kind, profile, entry)
        except ValueError as err:
            raise SystemExit(f"{where}: {err}") from None
        if kind.on_training:
            if (job["model"], job["dataset"]) not in trained:
                raise SystemExit(
                    f"{where}: [model, dataset] must be a training job of the same profile ({sorted(trained)})"
                )
            job["overrides"] = trained[job["model"], job["dataset"]]["overrides"]
        out.append(job)
    return out


def _training_jobs(profile: str, path: Path) -> dict[tuple[str, str], dict]:
    """The checked training jobs of ``profile``, by ``(model, dataset)``."""
    check_profile(profile)
    return {
        (j["model"], j["dataset"]): j
        for s in load_stages(path)
        if s["kind"] == "train"
        for j in _stage_jobs(s, profile, path, {})
    }


def entries(kind: str, profile: str, path: Path = ROOT / "pipeline.toml") -> list[dict]:
    """The checked jobs of every stage of ``kind`` in ``profile`` (a stage after training gets its training
    job's ``overrides``)."""
    trained = _training_jobs(profile, path)
    return [job for s in load_stages(path) if s["kind"] == kind for job in _stage_jobs(s, profile, path, trained)]


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`training.PROFILES`, else exit saying which are."""
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def matrix(profile: str, path: Path = ROOT / "pipeline.toml") -> list[tuple[str, str]]:
    """The ``(model, dataset)`` pairs the train stage covers in ``profile``."""
    return [(j["model"], j["dataset"]) for j in entries("train", profile, path)]


def trained(profile: str, artifact_root: str | Path = ROOT / "artifacts") -> list[tuple[str, str]]:
    """The ``(model, dataset)`` pairs of ``profile``'s matrix that have an artifact (all of them for ``cpu``; a
    part for ``paper``, as far as GPU runs have got). Whether each is current is :func:`load_artifact`'s check."""
    return [
        (m, d)
        for m, d in matrix(profile)
        if (artifacts.run_dir(artifact_root, profile, m, d) / artifacts.MANIFEST).is_file()
    ]


def paper_b_models(profile: str, path: Path = ROOT / "pipeline.toml") -> list[tuple[str, str]]:
    """The ``(model, dataset)`` pairs of Paper B's recipe (with ET-profiles) that ``profile`` trains."""
    return [(model, dataset) for model, dataset in matrix(profile, path) if recipe(model) == "B"]


def _on_paper_b_models(
    profile: str, artifact_root: str | Path, compute: Callable[[artifacts.Artifact, Path], T]
) -> list[T]:
    """``compute(artifact, derived_dir)`` on every model of :func:`paper_b_models`; a ValueError if there is none."""
    out = [
        compute(load_artifact(profile, m, d, artifact_root), derived_dir(profile, m, d, artifact_root))
        for m, d in paper_b_models(profile)
    ]
    if not out:
        raise ValueError(f"profile {profile!r} trains none of Paper B's models; add one to the train stage's matrix")
    return out


def paper_b_comparison(
    profile: str, setup: baselines.Setup = baselines.Setup(), artifact_root: str | Path = ROOT / "artifacts"
) -> pd.DataFrame:
    """:func:`baselines.compare` (uniform preemption) on every model of :func:`paper_b_models`, one table."""
    tables = _on_paper_b_models(
        profile, artifact_root, lambda run, folder: baselines.compare(run, folder, profile, setup)
    )
    return pd.concat(tables, ignore_index=True)


def beyond_einet(
    profile: str, setup: baselines.Setup = baselines.Setup(), artifact_root: str | Path = ROOT / "artifacts"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`baselines.beyond` (uniform preemption) on every model of :func:`paper_b_models`: the decompositions
    and the spread sweeps, one table each."""
    parts = _on_paper_b_models(
        profile, artifact_root, lambda run, folder: baselines.beyond(run, folder, profile, setup)
    )
    return pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True)


def beyond_predictors(
    profile: str, setup: baselines.Setup = baselines.Setup(), artifact_root: str | Path = ROOT / "artifacts"
) -> pd.DataFrame:
    """:func:`baselines.predictor_study` (uniform preemption) on every model of :func:`paper_b_models`: today's
    CS-Predictor against two trained to their validation plateau, one table."""
    tables = _on_paper_b_models(
        profile, artifact_root, lambda run, folder: baselines.predictor_study(run, folder, profile, setup)
    )
    return pd.concat(tables, ignore_index=True)


def common_networks(
    profile: str,
    dataset: str,
    flops_fraction: float,
    m: int = 5,
    runs: int = 10,
    seed: int = 0,
    artifact_root: str | Path = ROOT / "artifacts",
) -> pd.DataFrame:
    """:func:`single_exit.compare` (Fig. 10) on every single-exit job of ``profile`` on ``dataset`` at
    ``flops_fraction``, one table; a ValueError names the stage to add when there is none."""
    jobs_ = [(md, d) for md, d, f in single_exits(profile) if d == dataset and f == flops_fraction]
    if not jobs_:
        raise ValueError(
            f"profile {profile!r} has no single-exit job on {dataset} at flops_fraction {flops_fraction}; "
            "add [model, dataset, flops_fraction] to the single-exit stage's matrix in pipeline.toml"
        )
    return pd.concat(
        [
            single_exit.compare(
                load_artifact(profile, md, d, artifact_root),
                load_single_exit(profile, md, d, flops_fraction, artifact_root),
                derived_dir(profile, md, d, artifact_root),
                profile,
                m,
                runs,
                seed,
            )
            for md, d in jobs_
        ],
        ignore_index=True,
    )


def overrides(profile: str, model: str, dataset: str, path: Path = ROOT / "pipeline.toml") -> dict:
    """The changes to ``profile``'s recipe for one training job: the optional third item of its
    matrix entry, e.g. ``["msdnet40", "cifar100", {epochs = 1}]`` (recorded in the artifact's manifest)."""
    return next(
        (j["overrides"] for j in entries("train", profile, path) if (j["model"], j["dataset"]) == (model, dataset)), {}
    )


def load_artifact(
    profile: str, model: str, dataset: str, artifact_root: str | Path = ROOT / "artifacts"
) -> artifacts.Artifact:
    """The artifact of a training job of ``pipeline.toml`` (its recipe with the job's :func:`overrides`),
    refused if missing, corrupt or stale."""
    _check_names(model, dataset)
    params = stage_params(model, dataset, profile, **overrides(profile, model, dataset))
    return artifacts.read(artifacts.run_dir(artifact_root, profile, model, dataset), params)


def _check_names(model: str, dataset: str) -> None:
    """A model of the zoo and a dataset the library knows, else a ValueError listing the choices."""
    if model not in BUILDERS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(BUILDERS)}")
    if dataset not in data.SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(data.SPECS)}")


def load_network(
    profile: str, model: str, dataset: str, artifact_root: str | Path = ROOT / "artifacts"
) -> MultiExitNet:
    """The trained network of a training job from its shipped weights (:mod:`earlyexit.engine.weights`), once
    its artifact is checked current."""
    load_artifact(profile, model, dataset, artifact_root)
    return weights.load_model(artifacts.run_dir(artifact_root, profile, model, dataset))


def artifact_rows(run: artifacts.Artifact, ds: data.Dataset, split: str = "test") -> np.ndarray:
    """Indices into ``ds``'s ``split`` of an artifact's rows: the class-balanced selection its training
    stage made (all images outside ``smoke``), checked against the dataset checksum and the labels."""
    params = run.manifest["params"]
    if ds.sha256 != run.manifest["data_sha256"]:
        raise ValueError(f"the artifact was made from other data than this {ds.name} (dataset checksums differ)")
    labels = getattr(ds, f"y_{split}")
    idx = data.stratified_indices(labels, params.get(f"{split}_per_class"), params["seed"]).numpy()
    if not np.array_equal(labels[idx].numpy(), run[f"{split}_label"]):
        raise ValueError(f"the artifact's {split} rows are not {ds.name}'s images in the training stage's order")
    return idx


def derived_dir(profile: str, model: str, dataset: str, artifact_root: str | Path = ROOT / "artifacts") -> Path:
    """The folder of a training job's derived results (:mod:`earlyexit.engine.derived`), beside its artifact."""
    return artifacts.run_dir(artifact_root, profile, model, dataset) / "derived"


def ep_scores_path(
    profile: str,
    model: str,
    dataset: str,
    lam,
    architecture: str = "ours",
    artifact_root: str | Path = ROOT / "artifacts",
) -> Path:
    """Where the test scores of an Exit Predictor of ``architecture`` trained for ``lam`` (one threshold
    for every exit, or one per exit) on a training job's artifact are kept (a derived result shared by
    the notebooks that use the same EP): ``ep-<architecture>-lam0.95.npz``, ``ep-ours-lam0.95-0.85.npz``."""
    slug = re.sub(r"[^a-z0-9]+", "-", architecture.lower()).strip("-")
    lams = "-".join(f"{float(v):g}" for v in np.atleast_1d(lam))
    return derived_dir(profile, model, dataset, artifact_root) / f"ep-{slug}-lam{lams}.npz"


def load_pruned(
    profile: str, model: str, dataset: str, ratio: float, artifact_root: str | Path = ROOT / "artifacts"
) -> artifacts.Artifact:
    """The artifact of a pruning job of ``pipeline.toml``, refused if missing, corrupt or stale."""
    return pruning.load_pruned(artifact_root, profile, model, dataset, ratio, **overrides(profile, model, dataset))


def pruned(profile: str) -> list[tuple[str, str, float]]:
    """The ``(model, dataset, ratio)`` of every pruning job of ``profile``."""
    return [(j["model"], j["dataset"], j["ratio"]) for j in entries("prune", profile)]


def load_compressed(
    profile: str, model: str, dataset: str, artifact_root: str | Path = ROOT / "artifacts"
) -> artifacts.Artifact:
    """The artifact of a feature-compression job of ``pipeline.toml``, refused if missing, corrupt or stale."""
    return compression.load_compressed(artifact_root, profile, model, dataset, **overrides(profile, model, dataset))


def single_exits(profile: str) -> list[tuple[str, str, float]]:
    """The ``(model, dataset, flops_fraction)`` of every single-exit job of ``profile``."""
    return [(j["model"], j["dataset"], j["flops_fraction"]) for j in entries("single_exit", profile)]


def load_single_exit(
    profile: str, model: str, dataset: str, flops_fraction: float, artifact_root: str | Path = ROOT / "artifacts"
) -> artifacts.Artifact:
    """The artifact of a single-exit job of ``pipeline.toml``, refused if missing, corrupt or stale."""
    return single_exit.load_single_exit(
        artifact_root, profile, model, dataset, flops_fraction, **overrides(profile, model, dataset)
    )


def designs(profile: str) -> list[tuple[msdnet_design.Variant, str]]:
    """The ``(variant, dataset)`` of every MSDNet design job of ``profile``."""
    return [(msdnet_design.Variant.parse(j["variant"]), j["dataset"]) for j in entries("design", profile)]


def design_table(
    profile: str, m: int = 5, runs: int = 5, seed: int = 0, artifact_root: str | Path = ROOT / "artifacts"
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`msdnet_design.elastic_accuracy` of every design job of ``profile`` trained so far, one table
    (with the dataset), and the names of the jobs not trained yet (a stale or corrupt artifact is refused)."""
    rows, missing = [], []
    for variant, dataset in designs(profile):
        directory = msdnet_design.run_dir(artifact_root, profile, variant, dataset)
        if not (directory / artifacts.MANIFEST).exists():
            missing.append(f"{variant.name} / {dataset}")
            continue
        run = msdnet_design.load_design(artifact_root, profile, variant, dataset)
        rows.append(
            msdnet_design.elastic_accuracy(run, directory / "derived", profile, m, runs, seed).assign(dataset=dataset)
        )
    if not rows:
        raise ValueError(
            f"profile {profile!r} has no trained MSDNet design; run the design stage "
            f"(python -m earlyexit.pipeline --profile {profile} --stages design)"
        )
    return pd.concat(rows, ignore_index=True), missing


#: Profiles whose figures are shipped beside the ``cpu`` ones, in ``figures/<profile>/`` (what has run on a GPU).
SHIPPED_FIGURES = ("paper",)


def figures_dir(profile: str) -> Path:
    """Where a profile's figures go: ``figures/`` for the shipped ``cpu`` profile, ``figures/paper/`` for the
    GPU runs of the ``paper`` profile, else ``runs/<profile>/figures``."""
    if profile == DEFAULT_PROFILE:
        return ROOT / "figures"
    return ROOT / "figures" / profile if profile in SHIPPED_FIGURES else ROOT / "runs" / profile / "figures"


def jobs(profile: str, only: list[str] | None = None) -> list[Job]:
    """Every notebook execution of ``profile``, in pipeline order (optionally only some stages).

    A figure stage that ``needs`` models the profile does not train, or whose ``profiles`` do not
    include it, is left out; its ``params.PROFILE`` table sets notebook parameters in that profile only.
    """
    check_profile(profile)
    stages = load_stages()
    unknown = set(only or []) - {s["id"] for s in stages}
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; stages are {[s['id'] for s in stages]}")
    trained_jobs = _training_jobs(profile, ROOT / "pipeline.toml")
    trained = set(trained_jobs)
    common = {} if profile == DEFAULT_PROFILE else {"profile": profile}
    # relative to the notebooks (their working directory), so that a figure's stamp is the same in every clone
    figures = os.path.relpath(figures_dir(profile), ROOT / "notebooks")
    figure_params = {} if profile == DEFAULT_PROFILE else {"figures_dir": figures}
    out = []
    for s in stages:
        if only and s["id"] not in only:
            continue
        notebook = ROOT / s["notebook"]
        if not notebook.is_file():
            raise SystemExit(
                f"pipeline.toml: stage {s['id']!r} names the notebook {s['notebook']}, which does not exist; "
                "fix the path (relative to the repository root) or remove the stage"
            )
        if s["kind"] in STAGES:
            out += [
                Job(s["id"], s["kind"], notebook, {**common, **job})
                for job in _stage_jobs(s, profile, ROOT / "pipeline.toml", trained_jobs)
            ]
        elif profile in s.get("profiles", PROFILES) and {tuple(pair) for pair in s.get("needs", [])} <= trained:
            out.append(Job(s["id"], "figure", notebook, common | figure_params | _profile_params(s, profile)))
    return out


def _profile_params(stage: dict, profile: str) -> dict:
    """The notebook parameters a figure stage sets in ``profile`` only (its ``params.PROFILE`` table of
    ``pipeline.toml``); a table of an unknown profile exits naming it."""
    tables = stage.get("params", {})
    unknown = set(tables) - set(PROFILES)
    if unknown:
        raise SystemExit(
            f"pipeline.toml: stage {stage['id']!r} sets params for unknown profile(s) {sorted(unknown)}; "
            f"choose from {', '.join(PROFILES)}"
        )
    return tables.get(profile, {})


def injected(notebook: Path, params: dict) -> dict:
    """The ``params`` that differ from the notebook's own defaults; an undeclared name is an error."""
    import ast

    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    unknown = set(params) - set(declared)
    if unknown:
        raise SystemExit(
            f"{notebook.name} has no parameter(s) {sorted(unknown)}; its parameters are {sorted(declared)}"
        )
    return {k: v for k, v in params.items() if ast.literal_eval(declared[k]["default"]) != v}


def _stamps_path(profile: str) -> Path:
    """Where the figure stamps of ``profile`` are kept: committed beside the notebooks for the profiles whose
    figures are shipped (``stamps.json`` for ``cpu``, ``stamps-paper.json``; so that a fresh clone knows its
    figures are current), under ``runs/`` for the others."""
    if profile == DEFAULT_PROFILE:
        return ROOT / "notebooks" / "stamps.json"
    if profile in SHIPPED_FIGURES:
        return ROOT / "notebooks" / f"stamps-{profile}.json"
    return ROOT / "runs" / profile / "stamps.json"


def _stamps(profile: str) -> dict[str, dict]:
    """The figure stamps of ``profile``: job name -> ``{"stamp": hash, "reads": artifact folders}``."""
    path = _stamps_path(profile)
    try:
        stamps = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


_STAMPS_LOCK = threading.Lock()  # figure jobs of one run (--jobs) finish in threads of this process


def _write_stamp(job: Job, profile: str, read: list[str]) -> None:
    """Record that ``job`` ran on its current inputs, ``read`` being the artifact folders it read."""
    stamp = {"stamp": _figure_stamp(job, profile, read), "reads": read}
    with _STAMPS_LOCK:
        stamps = _stamps(profile) | {job.name: stamp}
        files.write_text(_stamps_path(profile), json.dumps(stamps, indent=1, sort_keys=True) + "\n")


def _code_cells(path: Path) -> list[str]:
    """The code cells of a notebook, as source."""
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _parsed_cells(path: Path) -> list[ast.Module]:
    """The code cells of a notebook, parsed (a cell that is not Python, such as a magic, is kept as text)."""
    cells = []
    for source in _code_cells(path):
        try:
            cells.append(fingerprint.parse(source))
        except SyntaxError:
            cells.append(ast.Module([ast.Expr(ast.Constant(source))], []))
    return cells


def _is_library_import(node: ast.stmt) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])]
    return isinstance(node, ast.Import | ast.ImportFrom) and all(n.split(".")[0] == "earlyexit" for n in names)


def _notebook_code(path: Path) -> str:
    """What a notebook computes, by meaning: its code cells without comments or formatting, and without
    their imports of :mod:`earlyexit` (what those bring is fingerprinted as code), so that markdown, a
    comment, a reformatted line or a library module moved elsewhere change nothing; f-strings written as the
    fingerprints write them, so that the text is the same on every Python from 3.11 to 3.13."""
    return "\n".join(
        fingerprint.canonical_source(ast.Module([n for n in cell.body if not _is_library_import(n)], []))
        for cell in _parsed_cells(path)
    )


def _imported(module: str, name: str):
    """What ``from module import name`` binds: an attribute of the module, else its submodule."""
    parent = importlib.import_module(module)
    return getattr(parent, name) if hasattr(parent, name) else importlib.import_module(f"{module}.{name}")


def _notebook_roots(path: Path) -> list:
    """The library objects a notebook uses: every name it imports from :mod:`earlyexit`, and every attribute
    it takes of an imported :mod:`earlyexit` module."""
    modules, roots = {}, []
    for cell in _parsed_cells(path):
        for node in ast.walk(cell):
            if isinstance(node, ast.ImportFrom) and _is_library_import(node):
                for alias in node.names:
                    value = _imported(node.module, alias.name)
                    (
                        modules.__setitem__(alias.asname or alias.name, value)
                        if inspect.ismodule(value)
                        else roots.append(value)
                    )
            elif isinstance(node, ast.Import) and _is_library_import(node):
                modules |= {a.asname: importlib.import_module(a.name) for a in node.names if a.asname}
        roots += [
            getattr(modules[n.value.id], n.attr)
            for n in ast.walk(cell)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in modules
            and hasattr(modules[n.value.id], n.attr)
        ]
    return roots


def _artifact_content(directory: Path) -> str:
    """What a figure reads of an artifact: its parameters, data hash and its arrays' content.

    Not its creation time, wall time or code fingerprint, so a re-profile or recertification that yields
    the same arrays changes nothing. Corrupt artifacts raise :class:`artifacts.ArtifactError` (a figure
    made from one is never current).
    """
    manifest = artifacts.read_manifest(directory)
    return _arrays_digest(directory, manifest["npz_sha256"]) + json.dumps(
        [manifest["params"], manifest["data_sha256"]], sort_keys=True
    )


@functools.lru_cache(maxsize=64)
def _arrays_digest(directory: Path, npz_sha256: str) -> str:
    """:func:`files.array_sha256` of an artifact's arrays, once per npz file version (every figure job
    of a run asks for the same artifacts)."""
    with artifacts.open_arrays(directory) as arrays:
        return files.array_sha256(*(arrays[key] for key in sorted(arrays.files)))


def _figure_stamp(job: Job, profile: str, read: list[str]) -> str:
    """Hash of everything a figure notebook's outputs depend on: what its code cells compute, its
    parameters, the fingerprint of the library code it calls, which artifacts exist in the profiles it read
    (a new one may be one it lists) and the content of the artifact folders ``read`` (``<profile>/<name>``,
    recorded as it ran: :mod:`.core.reads`), so that retraining a network stales only the figures that read it."""
    digest = hashlib.sha256(_notebook_code(job.notebook).encode() + json.dumps(job.params, sort_keys=True).encode())
    digest.update(fingerprint.fingerprint(*_notebook_roots(job.notebook), package="earlyexit").encode())
    root = ROOT / "artifacts"
    for p in sorted({profile} | {folder.split("/")[0] for folder in read}):
        digest.update(json.dumps(sorted(m.parent.name for m in (root / p).glob(f"*/{artifacts.MANIFEST}"))).encode())
    for folder in read:
        made = (root / folder / artifacts.MANIFEST).exists()
        digest.update(f"{folder}:{_artifact_content(root / folder) if made else 'absent'}".encode())
    return digest.hexdigest()


def is_current(job: Job, profile: str) -> bool:
    """Whether ``job``'s outputs are up to date (its artifact, or its figure stamp)."""
    return why_run(job, profile) is None


def why_run(job: Job, profile: str) -> str | None:
    """Why ``job`` must run (``None``: it is up to date): artifact missing or stale, figure inputs changed."""
    p = job.params
    if job.kind in STAGES:
        stage = STAGES[job.kind]
        try:
            params = stage.params(profile, p, ROOT / "artifacts")
        except artifacts.ArtifactError:
            return "its training job has no artifact yet"
        return _artifact_reason(stage.directory(ROOT / "artifacts", profile, p), params, p["dataset"])
    stamp = _stamps(profile).get(job.name)
    if not isinstance(stamp, dict):
        return "never run here" if stamp is None else "stamped by an older pipeline"
    try:
        current = stamp.get("stamp") == _figure_stamp(job, profile, list(stamp.get("reads", [])))
        return None if current else "notebook, parameters, code or the artifacts it read changed"
    except artifacts.ArtifactError:
        return "an artifact is corrupt"


def _artifact_reason(directory: Path, params: dict, dataset: str) -> str | None:
    """Why the artifact in ``directory`` must be (re)made for ``params``; None if it is current."""
    if not (directory / artifacts.MANIFEST).exists():
        return "no artifact"
    try:
        manifest = artifacts.read_manifest(directory)
    except artifacts.ArtifactError:
        return "corrupt artifact"
    reasons = artifacts.staleness(manifest, params, data.load(dataset).sha256)
    return f"stale: {reasons[0]}" if reasons else None


def _kernel_manager(log: Path, cwd: Path, env: dict[str, str] | None = None):
    """A kernel manager whose kernels start in ``cwd``, talk over local IPC sockets in a temporary folder
    (nothing on the network, no "running over TCP without encryption" warning), write their own stderr to
    ``log`` and see ``env`` on top of this process's environment; the folder is removed with the manager.

    The kernel is given its folder rather than papermill's ``cwd``, which changes this whole process's working
    directory while a notebook runs: under ``--jobs`` a second thread's kernel then started wherever the first
    thread had left it, so its ``../artifacts`` could name a folder outside the repository."""
    import shutil
    import tempfile
    import weakref

    from jupyter_client.manager import AsyncKernelManager

    class QuietIPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            folder = tempfile.mkdtemp(prefix="earlyexit-kernel-")
            super().__init__(transport="ipc", ip=str(Path(folder) / "ipc"), **kwargs)
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)

        async def start_kernel(self, **kw):
            kw["cwd"] = str(cwd)
            if env:
                kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            with open(log, "wb") as stderr:
                await super().start_kernel(stderr=stderr, **kw)

    return QuietIPCKernelManager


class BudgetStopped(Exception):
    """A training notebook stopped at an epoch boundary because the time budget was spent (:mod:`.engine.budget`)."""


class StaleCheckpoint(SystemExit):
    """A stage refused a checkpoint made with other parameters, code or data (:class:`.training.StaleCheckpointError`);
    :func:`_run` discards it and runs the stage again, and where that cannot help the pipeline exits with it."""


def execute(job: Job, profile: str, env: dict[str, str] | None = None, alone: bool = True) -> None:
    """Run one notebook with papermill (its kernel seeing ``env`` too), keeping the executed copy (and the
    kernel's own log beside it); exits naming the failing cell, or raises :class:`BudgetStopped`. ``alone``:
    no other job of this pipeline runs meanwhile, so a busy machine is worth a warning (:func:`_record_machine`).

    The run writes to a scratch copy that replaces the previous executed copy only once it finishes: a
    failed or interrupted run leaves the last good copy in place, beside ``<name>.failed.ipynb`` or
    ``<name>.interrupted.ipynb`` (removed by the next successful run).
    """
    import papermill as pm

    copy = ROOT / "runs" / profile / f"{job.name}.ipynb"
    copy.parent.mkdir(parents=True, exist_ok=True)
    running, failed, interrupted = (
        copy.with_suffix(s) for s in (".running.ipynb", ".failed.ipynb", ".interrupted.ipynb")
    )
    params = injected(job.notebook, job.params)
    record = copy.with_suffix(".reads")  # the artifact folders a figure reads (core.reads), for its stamp
    record.unlink(missing_ok=True)
    if job.kind == "figure":
        env = {**(env or {}), reads.RECORD_ENV: str(record), reads.ROOT_ENV: str(ROOT / "artifacts")}
    before = hardware.cpu_use()
    try:
        pm.execute_notebook(
            job.notebook,
            running,
            parameters=params,
            progress_bar=False,
            kernel_manager_class=_kernel_manager(copy.with_suffix(".kernel.log"), job.notebook.resolve().parent, env),
        )
    except pm.PapermillExecutionError as err:
        if err.ename == budget.BudgetSpent.__name__:
            _mark_interrupted(running, interrupted)
            raise BudgetStopped(err.evalue) from None
        running.replace(failed)
        failure = StaleCheckpoint if err.ename == training.StaleCheckpointError.__name__ else SystemExit
        raise failure(
            f"stage {job.stage!r} failed: notebook {job.notebook.relative_to(ROOT)} "
            f"(executed copy {failed.relative_to(ROOT)}, kernel log {copy.with_suffix('.kernel.log').relative_to(ROOT)}), "
            f"cell {err.cell_index}: {err.ename}: {err.evalue}"
        ) from None
    except KeyboardInterrupt:
        _mark_interrupted(running, interrupted)
        raise SystemExit(
            f"interrupted: stage {job.stage!r}, notebook {job.notebook.relative_to(ROOT)}; its partial copy "
            f"is {interrupted.relative_to(ROOT)}. Run the pipeline again to "
            "continue (training resumes from its last checkpoint)."
        ) from None
    _record_machine(running, job, before, warn=alone)
    running.replace(copy)
    failed.unlink(missing_ok=True)
    interrupted.unlink(missing_ok=True)
    if not set(params) - {"force"}:
        files.atomic_write(job.notebook, lambda f: f.write(copy.read_bytes()))
    if job.kind == "figure":
        _write_stamp(job, profile, reads.recorded(record))
    record.unlink(missing_ok=True)


#: Share of the CPUs other processes may keep busy while a notebook runs before the pipeline warns that the
#: times it measured are of a shared machine, and while a training epoch runs before :func:`epoch_times` leaves
#: its time out.
SHARED = 0.2


def _record_machine(executed: Path, job: Job, before: hardware.CpuUse | None, warn: bool = True) -> None:
    """Write the CPU kind (:func:`hardware.cpu_kind`) and the share of the CPUs that other processes used while it
    ran (:func:`hardware.others_share`, from ``before``) into an executed notebook's metadata, beside papermill's
    duration, so that :func:`durations_table` says where and under what load each time was measured; with
    ``warn``, says so above :data:`SHARED`."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["earlyexit"] = {"machine": hardware.cpu_kind()}
    after = hardware.cpu_use()
    if before is not None and after is not None:
        share = hardware.others_share(before, after)
        nb.metadata["earlyexit"]["others_cpu_pct"] = round(100 * share, 1)
        if warn and share > SHARED:
            _say(
                f"warning: {job.name}: other processes kept {share:.0%} of the {os.cpu_count()} CPUs busy while it "
                "ran; any time it measured is of a shared machine (rerun it on an idle one: --stages "
                f"{job.stage} --force)"
            )
    nbformat.write(nb, executed)


def _mark_interrupted(copy: Path, target: Path) -> None:
    """Move an interrupted run's executed ``copy`` to ``target``, with a banner saying so."""
    import nbformat

    if not copy.exists():
        return
    nb = nbformat.read(copy, as_version=4)
    nb.cells.insert(
        0,
        nbformat.v4.new_markdown_cell(
            "**Interrupted**: this run was stopped before it finished; cells after the running one did not execute."
        ),
    )
    nb.metadata.setdefault("papermill", {})["interrupted"] = True
    nbformat.write(nb, target)
    copy.unlink()


def run(
    profile: str,
    only: list[str] | None = None,
    force: bool = False,
    kinds: tuple[str, ...] = KINDS,
    concurrent: int = 1,
    compile_mode: str | None = None,
) -> bool:
    """Run the pipeline of ``profile``: every job not current (all of them with ``force``), ``concurrent`` at a
    time (:func:`.engine.parallel.run_pool`: each kernel with its own GPU or share of the cores), in pipeline
    order as each job's inputs are ready (:func:`_waits_for`). Returns False when the time budget stopped a
    training job at an epoch boundary: what waits for it is then left for the same command to continue.
    ``compile_mode`` trains the networks of the device-resident loop's profiles ``torch.compile``-d in that mode."""
    todo = []
    for job in jobs(profile, only):
        if job.kind not in kinds:
            continue
        reason = "forced" if force else why_run(job, profile)
        if reason is None:
            print(f"[{profile}] {job.stage}: {job.name}: up to date, skipped", flush=True)
            continue
        if force and job.kind != "figure":
            job = Job(job.stage, job.kind, job.notebook, {**job.params, "force": True})
        if compile_mode and job.kind == "train" and profile in training.RESIDENT_PROFILES:
            job = Job(job.stage, job.kind, job.notebook, {**job.params, "compile_mode": compile_mode})
        todo.append((job, reason))
    after = _figures_after()
    waits = [_waits_for(job, [j for j, _ in todo[:i]], after) for i, (job, _) in enumerate(todo)]
    ran = parallel.run_pool(todo, concurrent, lambda t, env: _run(*t, profile, env, concurrent == 1), waits)
    if not all(ran):
        print(
            f"[{profile}] time budget spent: {ran.count(False)} training job(s) stopped at an epoch boundary, "
            f"their checkpoints kept, and {ran.count(None)} job(s) after them left; run the same command again "
            "to continue",
            flush=True,
        )
        return False
    return True


def _figures_after(path: Path = ROOT / "pipeline.toml") -> dict[str, list[str]]:
    """The figure stages each figure stage waits for (its ``after`` in ``pipeline.toml``: the stages whose
    result tables its claims read), checked to name earlier figure stages."""
    out, earlier = {}, set()
    for s in load_stages(path):
        if s["kind"] != "figure":
            continue
        unknown = set(s.get("after", [])) - earlier
        if unknown:
            raise SystemExit(
                f"pipeline.toml: stage {s['id']!r} is after {sorted(unknown)}, which are not figure stages "
                "before it; name earlier figure stages"
            )
        out[s["id"]], earlier = list(s.get("after", [])), earlier | {s["id"]}
    return out


def _waits_for(job: Job, earlier: list[Job], after: dict[str, list[str]]) -> set[int]:
    """The ``earlier`` jobs (by index) whose outputs ``job`` reads: a stage after training waits for its
    training job, a figure for every artifact (its stamp hashes them all) and for the figure stages it is
    ``after``; training and design jobs read none."""
    if job.kind == "figure":
        return {i for i, e in enumerate(earlier) if e.kind != "figure" or e.stage in after.get(job.stage, ())}
    if STAGES[job.kind].on_training:
        key = (job.params["model"], job.params["dataset"])
        return {
            i for i, e in enumerate(earlier) if e.kind == "train" and (e.params["model"], e.params["dataset"]) == key
        }
    return set()


def _run(job: Job, reason: str, profile: str, env: dict[str, str] | None = None, alone: bool = True) -> bool:
    """Execute one job (``alone``: no other job runs meanwhile), saying so; False if the time budget stopped it."""
    label = f"[{profile}] {job.stage}: {job.name}"
    _say(f"{label}: running ({reason}) ...")
    start = time.perf_counter()
    try:
        execute(job, profile, env, alone)
    except BudgetStopped as err:
        _say(f"{label}: {err}")
        return False
    except StaleCheckpoint:  # made by the stage's older code (a training job discards its own: train_and_profile)
        stage = STAGES.get(job.kind)  # None: a figure, which keeps no checkpoint of its own
        gone = _discard(stage.directory(ROOT / "artifacts", profile, job.params).glob("*.pt")) if stage else []
        if not gone:
            raise
        _say(f"{label}: discarded {len(gone)} checkpoint(s) of other parameters, code or data")
        return _run(job, "again, from scratch", profile, env, alone)
    if job.kind == "train":
        discard_checkpoints_on(job.params["model"], job.params["dataset"], profile)
    _say(f"{label}: done in {time.perf_counter() - start:.0f} s")
    return True


def discard_checkpoints_on(model: str, dataset: str, profile: str) -> list[Path]:
    """Delete the checkpoints of the stages on a network that was just trained (pruning, the feature codec, the
    single-exit network): they hold weights made from the network it replaced, and their parameters, code and
    data would still match, so a run would resume them as current. Returns what was deleted."""
    folders = [
        stage.directory(ROOT / "artifacts", profile, entry)
        for kind, stage in STAGES.items()
        if stage.on_training
        for entry in entries(kind, profile)
        if (entry["model"], entry["dataset"]) == (model, dataset)
    ]
    return _discard(path for folder in folders for path in folder.glob("*.pt"))


def _discard(checkpoints: Iterable[Path]) -> list[Path]:
    """Delete ``checkpoints``; returns them, sorted."""
    gone = sorted(checkpoints)
    for path in gone:
        path.unlink()
    return gone


def _say(line: str) -> None:
    """Print ``line`` in one write, so that jobs running in threads (``--jobs``) never share a line."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def durations_table(profile: str) -> str:
    """Markdown table of the last papermill run time of every figure notebook of ``profile``, with the machine
    it ran on and the share of its CPUs other processes used meanwhile (:func:`_record_machine`)."""
    rows, total = [], 0.0
    for job in jobs(profile):
        if job.kind != "figure":
            continue
        executed = job.notebook if profile == DEFAULT_PROFILE else ROOT / "runs" / profile / f"{job.name}.ipynb"
        meta = json.loads(executed.read_text())["metadata"] if executed.exists() else {}
        seconds = meta.get("papermill", {}).get("duration")
        machine = meta.get("earlyexit", {}).get("machine", "not recorded")
        others = meta.get("earlyexit", {}).get("others_cpu_pct", "not recorded")
        total += seconds or 0.0
        run_s = "not run" if seconds is None else f"{seconds:.1f}"
        rows.append(f"| `{job.notebook.stem}` | {run_s} | {machine} | {others} |")
    header = ["| notebook | seconds | machine | CPU used by other processes (%) |", "|---|---|---|---|"]
    return "\n".join([*header, *rows, f"| **all** | **{total:.1f}** | | |"])


def ledger_table(profile: str, kinds: tuple[str, ...] = tuple(STAGES)) -> str:
    """Markdown compute ledger of a profile's artifacts of the stage ``kinds``, from their manifests: what was
    trained, how long, on which machine and precision, and the accuracy of every exit, beside the paper's for a
    training run (:func:`_paper_accuracy`: the papers print none for a pruned, compressed or design network); a
    training run also gets issue 35's stopping rule on its learning curve, against its
    target in ``tiers.toml`` (:func:`.engine.train_bench.learning_verdict`)."""
    rows = [
        "| model | dataset | epochs | training (min) | machine | precision | test accuracy per exit (%) "
        "| paper (%) | stopping rule |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    targets = train_bench.tier_targets(train_bench.read_tiers(TIERS))
    for model, dataset, label, directory, trained in _runs(profile, kinds):
        try:
            m = artifacts.read_manifest(directory)
        except artifacts.ArtifactError:
            rows.append(f"| {label} | {dataset} | {_unfinished(directory)} | | | | | | |")
            continue
        acc = [100 * a for a in m.get("test_accuracy", [])]
        accuracy = (
            " / ".join(f"{a:.2f}" for a in acc)
            if len(acc) <= 4
            else f"{len(acc)} exits: first {acc[0]:.2f}, last {acc[-1]:.2f}, range {min(acc):.2f}-{max(acc):.2f}"
        )
        rule = train_bench.learning_verdict(m.get("history", []), targets.get((model, dataset))) if trained else ""
        rows.append(
            f"| {label} | {dataset} | {m.get('epochs')} | {m['wall_time_s'] / 60:.1f} | "
            f"{_machine_label(m)} | {artifacts.trained_precision(m)} | {accuracy} | {_paper_accuracy(model, dataset) if trained else ''} | {rule} |"
        )
    return "\n".join(rows)


def _runs(profile: str, kinds: tuple[str, ...]) -> list[tuple[str, str, str, Path, bool]]:
    """Every job of ``profile``'s stages of ``kinds``: model, dataset, label, artifact folder, whether it trains
    a network from scratch."""
    return [
        (
            job.get("model") or f"msdnet-{job['variant']}",
            job["dataset"],
            stage.label(job),
            stage.directory(ROOT / "artifacts", profile, job),
            stage.kind == "train",
        )
        for stage in STAGES.values()
        if stage.kind in kinds
        for job in entries(stage.kind, profile)
    ]


def epoch_times(profile: str) -> pd.DataFrame:
    """What an epoch of every finished training run of ``profile`` took, from its manifest, one row per CPU kind
    and precision it trained in: model, dataset, kind, precision, the epochs counted, and the median seconds of an
    epoch's training (``train_s``) and of its learning curve's prediction of the test split (``curve_s``, NaN where
    not recorded for all of them). Runs on a GPU are left out, and so are epochs whose kind cannot be told
    (:func:`_epoch_kinds`) and epochs during which other processes kept more than :data:`SHARED` of the machine
    busy (their ``others_share``), whose time is not the kind's."""
    rows = []
    for model, dataset, _, directory, _ in _runs(profile, ("train",)):
        try:
            m = artifacts.read_manifest(directory)
        except artifacts.ArtifactError:
            continue
        history = m.get("history", [])
        kinds = _epoch_kinds(m)
        measured = pd.DataFrame(
            [
                {
                    "kind": kind,
                    "precision": h.get("precision"),
                    "train_s": h["seconds"],
                    "curve_s": h.get("observe_seconds", float("nan")),
                }
                for h, kind in zip(history, kinds, strict=True)
                if kind is not None and "seconds" in h and h.get("others_share", 0.0) <= SHARED
            ],
            columns=["kind", "precision", "train_s", "curve_s"],
        )
        for (kind, precision), part in measured.groupby(["kind", "precision"], sort=True):
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "kind": kind,
                    "precision": precision,
                    "epochs": len(part),
                    "train_s": float(part.train_s.median()),
                    "curve_s": float(part.curve_s.median()) if part.curve_s.notna().all() else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["model", "dataset", "kind", "precision", "epochs", "train_s", "curve_s"])


def _epoch_kinds(manifest: dict) -> list[str | None]:
    """The CPU kind each epoch of a training run's ``history`` trained on: the kind the epoch recorded; for a run
    whose epochs record none (made before they did), the kind of its machine record
    (:func:`hardware.recorded_kind`) if it trained in one precision, as a run resumed on another kind does not;
    else None, which cannot be told."""
    history = manifest.get("history", [])
    if any("kind" in h for h in history):
        return [h.get("kind") for h in history]
    one = artifacts.trained_precision(manifest) in ("bf16", "fp32")
    kind = hardware.recorded_kind(manifest.get("machine", {}), _asked_precision(manifest["params"]) == "auto")
    return [kind if one else None] * len(history)


def _paper_accuracy(model: str, dataset: str) -> str:
    """What the papers print for a network: Paper A's backbone accuracy (Table I), or for Paper B's networks
    EINet's accuracy under uniform preemption (Table II: not a backbone's; ours is in notebook 27)."""
    if (dataset, model) in paper.A_TABLE1:
        return f"{paper.A_TABLE1[dataset, model][0]:.2f} (backbone, A Table I)"
    name = paper.B_MODEL_NAMES.get(model)
    if (dataset, name) in paper.B_TABLE2:
        return f"{paper.B_TABLE2[dataset, name][1]:.2f} (EINet, B Table II)"
    return ""


def _unfinished(directory: Path) -> str:
    """The ledger's word for a job without an artifact: how far its checkpoint got, or "not trained"."""
    state, problem = read_checkpoint(directory / "checkpoint.pt")
    if state is None:
        return f"not trained (its checkpoint {problem})" if problem else "not trained"
    return f"{len(state['history'])} of {state['config']['epochs']} (checkpoint, resumable)"


def read_checkpoint(path: Path) -> tuple[dict | None, str]:
    """The state of the training checkpoint ``path`` (tensors only, nothing unpickled), or None and why it cannot
    be read ("" when there is none); whether a run resumes it is :func:`engine.training.train_and_profile`'s call."""
    if not path.is_file():
        return None, ""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        return None, f"is unreadable ({type(err).__name__}: {err}): delete it"
    if not isinstance(state, dict) or not {"history", "config"} <= set(state):
        return None, "is not a training checkpoint of earlyexit: delete it"
    return state, ""


def _machine_label(manifest: dict) -> str:
    """The GPU a manifest's network was trained on, else its CPU (:func:`_cpu_label`)."""
    gpu = manifest.get("machine", {}).get("gpu")
    return f"{gpu} (GPU)" if gpu else _cpu_label(manifest)


def _cpu_label(manifest: dict) -> str:
    """The CPU of a manifest, marked when it computes bf16 natively (recorded, or implied by ``auto``
    having chosen bf16): one model name covers CPUs with and without it. Where ``auto`` chose fp32 on
    such a CPU, bf16 is not faster there (:attr:`hardware.CPU.fast_bf16`), and the mark says so."""
    machine = manifest.get("machine", {})
    if "cpu" not in machine:
        return "not recorded"
    auto, precision = _asked_precision(manifest["params"]) == "auto", artifacts.trained_precision(manifest)
    native = machine.get("native_bf16")
    if native is None:
        native = auto and precision == "bf16"
    if not native:
        return machine["cpu"]
    return machine["cpu"] + (
        " (native bf16, not faster than fp32 here)" if auto and precision == "fp32" else " (native bf16)"
    )


def _asked_precision(params: dict) -> str | None:
    """The ``precision`` a run asked for: its own parameter, else that of its training recipes (the
    ``finetune`` of a pruned or single-exit network, the ``step2``/``step3`` of a feature codec)."""
    if "precision" in params:
        return params["precision"]
    return next((v["precision"] for v in params.values() if isinstance(v, dict) and "precision" in v), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m earlyexit.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)} (default cpu)")
    parser.add_argument("--stages", help="comma-separated stage ids to run (default: all)")
    parser.add_argument("--figures-only", action="store_true", help="run figure stages only, never train")
    parser.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="jobs at once, each as soon as what it reads is made (each its own GPU or share of the cores; "
        "default 1; figures timed under it share the machine)",
    )
    parser.add_argument(
        "--budget", type=float, help="minutes; training stops at an epoch boundary before they are spent (exit 75)"
    )
    parser.add_argument(
        "--compile",
        choices=resident.COMPILE_MODES,
        help="paper profile: train torch.compile-d in this mode (reduce-overhead: CUDA graphs, for GPUs)",
    )
    parser.add_argument("--data-dir", help="folder of <dataset>.npz files (default $EARLYEXIT_DATA)")
    parser.add_argument("--list", action="store_true", help="list the jobs and whether each is up to date")
    parser.add_argument("--notebooks", action="store_true", help="print the profile's figure notebooks (for nbval)")
    parser.add_argument(
        "--ledger", action="store_true", help="print a Markdown compute ledger of the profile's trained artifacts"
    )
    parser.add_argument(
        "--durations",
        action="store_true",
        help="print a Markdown table of each figure notebook's last run time (papermill's record)",
    )
    args = parser.parse_args(argv)
    check_profile(args.profile)
    if args.data_dir is not None:
        if not Path(args.data_dir).is_dir():
            raise SystemExit(
                f"--data-dir {args.data_dir}: no such folder; pass the folder holding <dataset>.npz "
                "(python ../shared/data/unpack.py DIR writes them) or leave it out"
            )
        os.environ["EARLYEXIT_DATA"] = str(Path(args.data_dir).resolve())
    only = None if args.stages is None else [s.strip() for s in args.stages.split(",")]
    if only is not None and not all(only):
        raise SystemExit(f"--stages {args.stages!r}: name one or more stage ids separated by commas, or leave it out")
    if args.notebooks:
        print(" ".join(str(j.notebook.relative_to(ROOT)) for j in jobs(args.profile, only) if j.kind == "figure"))
        return
    if args.ledger:
        print(ledger_table(args.profile))
        return
    if args.durations:
        print(durations_table(args.profile))
        return
    if args.list:
        for job in jobs(args.profile, only):
            print(f"{job.stage:24s} {job.name:48s} {why_run(job, args.profile) or 'current'}")
        return
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give a number of jobs at once, 1 or more")
    if args.budget is not None:
        budget.set_minutes(args.budget)
    kinds = ("figure",) if args.figures_only else KINDS
    if not run(args.profile, only, args.force, kinds, args.jobs, args.compile):
        raise SystemExit(EXIT_BUDGET)


if __name__ == "__main__":
    main(sys.argv[1:])
