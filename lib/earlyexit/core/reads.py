"""Which artifact folders a process reads: the inputs a figure notebook's stamp covers.

The pipeline runs a figure's kernel with :data:`RECORD_ENV` naming a record file and :data:`ROOT_ENV` the
artifacts folder. Importing :mod:`earlyexit` then installs an audit hook (:pep:`578`) that appends to the
record, once each, the ``<profile>/<artifact>`` folder of every file the process opens under that root,
whatever opens it (a manifest, the arrays, weights, a derived result) and whether or not the file exists:
a folder the notebook looked for before it was made is an input too. Nothing is recorded without the two
variables, so the hook costs nothing elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RECORD_ENV = "EARLYEXIT_READS"
ROOT_ENV = "EARLYEXIT_READS_UNDER"


def install_from_env() -> None:
    """Install the recording hook when the pipeline asked for it (both variables set)."""
    record, root = os.environ.get(RECORD_ENV), os.environ.get(ROOT_ENV)
    if record and root:
        sys.addaudithook(_hook(Path(record), os.path.abspath(root) + os.sep))


def _hook(record: Path, prefix: str):
    """The audit hook: an ``open`` of a file two folders below ``prefix`` appends that folder to ``record``."""
    seen: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if not path.startswith(prefix):
            return
        parts = path[len(prefix) :].split(os.sep)
        folder = "/".join(parts[:2])
        if len(parts) > 2 and folder not in seen:
            seen.add(folder)
            fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, f"{folder}\n".encode())
            finally:
                os.close(fd)

    return hook


def recorded(record: Path) -> list[str]:
    """The ``<profile>/<artifact>`` folders appended to ``record``, sorted (none if it is missing)."""
    try:
        return sorted(set(record.read_text().split()))
    except FileNotFoundError:
        return []
