"""Derived results: expensive computations on artifacts, stored with the inputs that determine them.

A figure notebook that simulates many plans or trains a CS-Predictor calls :func:`load_or_compute`
(or :func:`frame` for a table) with a *key*: everything its result depends on -- the artifacts'
content, the notebook's parameters and the fingerprint of the code doing the work
(:func:`earlyexit.core.fingerprint.fingerprint` of the computing function: its normalised source and
that of everything it reaches, so a docstring or a move changes nothing and a change of what it
computes recomputes the result). The result is stored beside a ``<name>.json`` record of that key
and of the result's own sha256; a later run with the same key reads it back instead of recomputing,
once the file is checked against that checksum (an edited, cut or half-written result is computed
again, with a warning). Results computed once are the same as recomputed ones (every computation here
is seeded), so the shipped ``cpu`` results let the figures regenerate in seconds. Writes are atomic,
the record last: a result without its record is never read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ..core import files, hardware
from ..core.fingerprint import bookkeeping
from . import artifacts

T = TypeVar("T")
#: pandas 3 parses CSV floats exactly by default (and deprecates asking for it); pandas 2 must be asked.
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def artifact_key(run: artifacts.Artifact) -> dict:
    """What an artifact contributes to a key: its parameters and the checksums of its data and arrays.

    Its content, not the version of the training code: a derived result depends on what the artifact
    holds, so an artifact recertified after a code change (:mod:`earlyexit.engine.recertify`, same arrays)
    keeps its derived results, while a retrained one (other arrays) recomputes them.
    """
    m = run.manifest
    return {"params": m["params"], "data_sha256": m["data_sha256"], "npz_sha256": m["npz_sha256"]}


def record_path(path: str | os.PathLike) -> Path:
    """The ``<name>.json`` record beside a derived result."""
    path = Path(path)
    return path.with_name(path.name + ".json")


@bookkeeping
def stored_for(path: str | os.PathLike, key: dict) -> bool:
    """Whether ``path`` holds the result computed for ``key``: its record names that key and the file's
    sha256 matches the record (a missing, unreadable or edited file or record does not)."""
    path, record = Path(path), record_path(path)
    try:
        info = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(info, dict) or info.get("key") != json.loads(json.dumps(key)) or not path.exists():
        return False
    if info.get("sha256") != files.file_sha256(path):
        warnings.warn(
            f"{path} does not match the checksum in {record.name} (edited or cut); computing it again", stacklevel=3
        )
        return False
    return True


@bookkeeping
def load_or_compute(
    path: str | os.PathLike,
    key: dict,
    compute: Callable[[], T],
    write: Callable[[T, Path], None],
    read: Callable[[Path], T],
) -> T:
    """``read(path)`` if ``path`` was computed for ``key`` (:func:`stored_for`), else ``compute()`` stored
    with ``write`` and read back (so that a fresh and a stored result are the same object to the caller).

    Two processes asking for the same missing result take turns (:func:`earlyexit.core.files.locked`):
    the first computes it, the second reads what the first stored.
    """
    path = Path(path)
    if stored_for(path, key):
        return read(path)
    with files.locked(path):
        if not stored_for(path, key):
            value = compute()
            record_path(path).unlink(missing_ok=True)
            with files.atomic_path(path) as tmp:
                write(value, tmp)
            write_record(path, key)
        return read(path)


@bookkeeping
def write_record(path: str | os.PathLike, key: dict, **info) -> None:
    """Write the record of the derived result ``path``: its key, its sha256, when, at which commit, where."""
    record = {
        "key": json.loads(json.dumps(key)),
        "sha256": files.file_sha256(path),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": artifacts.git_commit(),
        "machine": hardware.machine_record(),
        **info,
    }
    files.write_text(record_path(path), json.dumps(record, indent=1))


@bookkeeping
def frame(path: str | os.PathLike, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """:func:`load_or_compute` for a table, stored as CSV (floats round-trip exactly)."""
    return load_or_compute(
        path, key, compute, lambda df, tmp: df.to_csv(tmp, index=False), lambda p: pd.read_csv(p, **_EXACT_FLOATS)
    )
