"""Which code an artifact depends on: the fingerprint of the computation of its stage.

An artifact records ``code_sha256``: :func:`earlyexit.core.fingerprint.fingerprint` of the functions
that computed it (its stage's :func:`code_roots`) and of everything they reach in the package. So a
docstring, comment or formatting edit, a renamed local or a function moved to another module leaves
every artifact current, while a change of what training, profiling or a stage computes makes exactly
the artifacts that depend on it stale. The network of a job counts through its own builder only (the
model zoo's other builders are opaque), so editing one network stales its artifacts alone.

Each kind of stage is defined in its own module (``STAGE``, a :class:`.stage.Stage` whose ``code_roots``
gives ``(roots, opaque)``); the table below says where, and the module is imported when first needed,
so that this layer (the engine) never imports the layers above it.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from functools import cache

from ..core.fingerprint import bookkeeping, closure, fingerprint

#: The module that defines each kind of stage's ``STAGE`` (``params["stage"]``; training has none).
STAGE_MODULES = {
    "train": "earlyexit.engine.train_stage",
    "prune": "earlyexit.engine.pruning",
    "compress": "earlyexit.paper_a.compression",
    "single_exit": "earlyexit.paper_b.single_exit",
    "design": "earlyexit.paper_b.msdnet_design",
}


def stage_kind(params: dict) -> str:
    """The kind of stage that made an artifact with ``params`` (a training job records none)."""
    kind = params.get("stage") or "train"
    if kind not in STAGE_MODULES:
        raise ValueError(f"unknown stage {kind!r} in an artifact's parameters; stages are {', '.join(STAGE_MODULES)}")
    return kind


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """``(roots, opaque)`` of the computation that made an artifact with ``params``."""
    roots_of: Callable[[dict], tuple[tuple, tuple]] = importlib.import_module(
        STAGE_MODULES[stage_kind(params)]
    ).STAGE.code_roots
    return roots_of(params)


@bookkeeping
def code_fingerprint(params: dict) -> str:
    """The fingerprint of the code that computes an artifact with ``params`` (its ``code_sha256``)."""
    return _cached(stage_kind(params), params.get("model"), params.get("profile"))


@cache
def _cached(kind: str, model: str | None, profile: str | None) -> str:
    roots, opaque = code_roots({"stage": kind, "model": model, "profile": profile})
    return fingerprint(*roots, opaque=opaque)


def code_digests(params: dict) -> dict[str, str]:
    """A short digest of every function, class and constant in the code an artifact depends on, by name
    (recorded in its manifest, so that a stale artifact can say which of them changed)."""
    roots, opaque = code_roots(params)
    return {
        name: hashlib.sha256(source.encode()).hexdigest()[:16]
        for name, source in closure(*roots, opaque=opaque).items()
    }


def changed_code(manifest: dict) -> str:
    """Which functions, classes or constants changed since ``manifest`` was made, in words."""
    recorded = manifest.get("code")
    if not isinstance(recorded, dict):
        return "this manifest does not record which"
    now = code_digests(manifest["params"])
    changed = sorted(n for n in recorded.keys() & now.keys() if recorded[n] != now[n])
    parts = [
        f"changed {', '.join(changed)}" if changed else "",
        f"new {', '.join(sorted(now.keys() - recorded.keys()))}" if now.keys() - recorded.keys() else "",
        f"gone {', '.join(sorted(recorded.keys() - now.keys()))}" if recorded.keys() - now.keys() else "",
    ]
    return "; ".join(p for p in parts if p) or "no single entry (their set differs)"
