"""The notebooks' parameters: papermill may set only the names a notebook declares.

``papermill -p NAME VALUE`` injects a cell of assignments (``# Parameters``) after the cell tagged
``parameters`` and, for a name the notebook does not declare, only logs a warning: a typo runs the notebook
with its defaults and exits 0. Every notebook calls :func:`check_parameters` right after its parameters.
"""

from __future__ import annotations

import ast

#: The first line of the cell papermill injects (its Python translator's comment).
INJECTED_HEADER = "# Parameters"


def assigned_names(source: str) -> set[str]:
    """The names a cell assigns at its top level (``x = ...``, ``x: int = ...``)."""
    names = set()
    for node in ast.parse(source).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def unknown_parameters(history: list[str]) -> set[str]:
    """Names the injected cell in ``history`` (the sources of the executed cells, in order) sets that the cell
    run before it, the notebook's parameters, does not declare; empty when nothing was injected."""
    for i in range(1, len(history)):
        if history[i].startswith(INJECTED_HEADER + "\n"):
            return assigned_names(history[i]) - assigned_names(history[i - 1])
    return set()


def check_parameters() -> None:
    """Refuse parameters papermill injected that this notebook does not declare (a no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    history = list(shell.user_ns.get("In", [])) if shell is not None else []
    unknown = unknown_parameters(history)
    if unknown:
        declared = next(history[i - 1] for i in range(1, len(history)) if history[i].startswith(INJECTED_HEADER))
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)}: this notebook declares {sorted(assigned_names(declared))}; "
            "check the spelling of papermill's -p options"
        )
