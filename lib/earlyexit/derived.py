"""Derived results: expensive computations on artifacts, stored with the inputs that determine them.

A figure notebook that simulates many plans or trains a CS-Predictor calls :func:`load_or_compute`
(or :func:`frame` for a table) with a *key*: everything its result depends on -- the artifacts'
content, the notebook's parameters and the source of the library modules doing the work
(:func:`code_sha256`). The result is stored beside a ``<name>.json`` record of that key; a later run
with the same key reads it back instead of recomputing, and any change of data, parameters or code
recomputes it. Results computed once are the same as recomputed ones (every computation here is
seeded), so the shipped ``cpu`` results let the figures regenerate in seconds. Writes are atomic,
the record last: a result without its record is never read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from . import artifacts, hardware

T = TypeVar("T")
#: pandas 3 parses CSV floats exactly by default (and deprecates asking for it); pandas 2 must be asked.
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def code_sha256(*modules: str) -> str:
    """sha256 of the source of the package's ``modules`` (file names such as ``"search.py"``)."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update((artifacts.PACKAGE / name).read_bytes())
    return digest.hexdigest()


def array_sha256(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return digest.hexdigest()


def artifact_key(profile: artifacts.Profile) -> dict:
    """What an artifact contributes to a key: its parameters and the checksums of its data and arrays.

    Its content, not the version of the training code: a derived result depends on what the artifact
    holds, so an artifact recertified after a code change (:mod:`earlyexit.recertify`, same arrays)
    keeps its derived results, while a retrained one (other arrays) recomputes them.
    """
    m = profile.manifest
    return {"params": m["params"], "data_sha256": m["data_sha256"], "npz_sha256": m["npz_sha256"]}


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def load_or_compute(path: str | os.PathLike, key: dict, compute: Callable[[], T],
                    write: Callable[[T, Path], None], read: Callable[[Path], T]) -> T:
    """``read(path)`` if ``path`` was computed for ``key``, else ``compute()`` stored with ``write`` and read
    back (so that a fresh and a stored result are the same object to the caller)."""
    path = Path(path)
    record = path.with_name(path.name + ".json")
    key = json.loads(json.dumps(key))  # as it reads back from JSON (tuples become lists)
    if path.exists() and record.exists() and json.loads(record.read_text()).get("key") == key:
        return read(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)
    _atomic(path, lambda tmp: write(value, tmp))
    info = {"key": key, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": artifacts.git_commit(), "machine": hardware.machine_record()}
    _atomic(record, lambda tmp: tmp.write_text(json.dumps(info, indent=1)))
    return read(path)


def frame(path: str | os.PathLike, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """:func:`load_or_compute` for a table, stored as CSV (floats round-trip exactly)."""
    return load_or_compute(path, key, compute, lambda df, tmp: df.to_csv(tmp, index=False),
                           lambda p: pd.read_csv(p, **_EXACT_FLOATS))
