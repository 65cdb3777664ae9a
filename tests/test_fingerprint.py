"""Fingerprints by meaning: edits that keep the code's meaning keep the fingerprint, others change it.

Each case writes a small scratch package, edits it and fingerprints it in a fresh subprocess (a fresh import of the
edited files), comparing with the unedited package's fingerprint.
"""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parents[1] / "lib" / "earlyexit" / "core" / "fingerprint.py"

PACKAGE = {
    "scratchpkg/__init__.py": '"""Scratch package."""\n',
    "scratchpkg/a.py": '''
        """Losses."""
        from fingerprint_under_test import bookkeeping

        from . import b
        from .b import helper

        WEIGHTS = (0.3, 0.7)
        UNUSED = 5


        def loss(xs, scale=2.0):
            """Weighted loss."""
            assert len(xs) > 0, "no inputs"
            total = 0.0
            for i, x in enumerate(xs):  # accumulate
                total += WEIGHTS[i % 2] * helper(x) * scale
            if total < 0:
                raise ValueError(f"negative loss {total}") from None
            report(total)
            squares = [v * v for v in xs]
            return b.finish(total) + sum(squares)


        @bookkeeping
        def report(value):
            print("loss", value)
            return value


        def unreached(x):
            return x + 1


        def run(x):
            return b.dispatch("double", x)
        ''',
    "scratchpkg/b.py": '''
        """Helpers."""
        from fingerprint_under_test import input_check


        @input_check
        def positive(name, x):
            if not x > 0:
                raise ValueError(f"{name} must be positive")
            return float(x)


        def helper(x):
            return x * 2


        def finish(t):
            from .sub import c

            return c.deep(t) - 1 + c.Model(3).predict(t)


        def double(x):
            return 2 * x


        def triple(x):
            return 3 * x


        ROUTES = {"double": double, "triple": triple}


        def dispatch(name, x):
            return ROUTES[name](x)
        ''',
    "scratchpkg/sub/__init__.py": "",
    "scratchpkg/sub/c.py": '''
        """Deep code."""
        from dataclasses import dataclass

        OFFSET = 10
        LIMIT = None


        def deep(t):
            return t * 1.5 + OFFSET if LIMIT is None else LIMIT


        class Base:
            scale = 1.0


        @dataclass
        class Model(Base):
            size: int
            factor: float = 0.5

            def predict(self, t):
                return t * self.factor * self.size * self.scale
        ''',
    "scratchpkg/misc.py": """
        import json

        COUNTER = 0


        def tricky(items, path):
            global COUNTER
            COUNTER += 1
            found = []
            with open(path) as handle:
                text = handle.read()
            try:
                data = json.loads(text)
            except ValueError as err:
                data = {"error": str(err)}
            if (size := len(items)) > 2:
                found.append(size)

            def bump():
                nonlocal found
                found = found + [1]

            bump()
            return [k for k in data if k in items] + found + [COUNTER] + list(map(lambda q: q + 1, items))


        def label(row, width):
            return f"{row['name']!r:>{width}} = {row['n']:.3f}"
        """,
}

ROOTS = {  # name -> (roots, opaque), each "module:qualname"
    "loss": (["scratchpkg.a:loss"], []),
    "tricky": (["scratchpkg.misc:tricky"], []),
    "run": (["scratchpkg.a:run"], []),
    "run, dispatch opaque": (["scratchpkg.a:run", "scratchpkg.b:double"], ["scratchpkg.b:dispatch"]),
    "module c": (["scratchpkg.sub.c"], []),
    "label": (["scratchpkg.misc:label"], []),
}

SCRIPT = """
import importlib, importlib.util, json, sys

spec = importlib.util.spec_from_file_location("fingerprint_under_test", sys.argv[1])
fp = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = fp
spec.loader.exec_module(fp)


def resolve(reference):
    module, _, qualname = reference.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


results = {}
for name, (roots, opaque) in json.loads(sys.argv[2]).items():
    roots, opaque = [resolve(r) for r in roots], [resolve(r) for r in opaque]
    results[name] = {"fingerprint": fp.fingerprint(*roots, opaque=opaque), "closure": fp.closure(*roots, opaque=opaque)}
print(json.dumps(results))
"""

FSTRING = """f"{row['name']!r:>{width}} = {row['n']:.3f}\""""
FSTRING_QUOTED = """f'{row["name"]!r:>{width}} = {row["n"]:.3f}'"""
MOVE_HELPER = [
    ("edit", "scratchpkg/b.py", "def helper(x):\n    return x * 2\n", ""),
    ("edit", "scratchpkg/sub/c.py", "OFFSET = 10\n", "OFFSET = 10\n\n\ndef helper(x):\n    return x * 2\n"),
    ("edit", "scratchpkg/a.py", "from .b import helper", "from .sub.c import helper"),
]
MOVE_MODULE = [
    ("move", "scratchpkg/sub/c.py", "scratchpkg/other/c.py"),
    ("write", "scratchpkg/other/__init__.py", ""),
    ("edit", "scratchpkg/b.py", "from .sub import c", "from .other import c"),
]
RENAME_LOCALS = [
    ("edit", "scratchpkg/misc.py", old, new)
    for old, new in [
        ("[k for k in data if k in", "[key for key in data if key in"),
        ("handle", "fh"),
        ("text", "raw"),
        ("data", "parsed"),
        ("as err:", "as exc:"),
        ("str(err)", "str(exc)"),
        ("size", "n"),
        ("found", "acc"),
    ]
]

_SCALE = ("edit", "scratchpkg/a.py", "    total = 0.0\n")
CASES = [  # id, edits (op, path, ...), root set, fingerprint stays the same
    ("input check added", [(*_SCALE, '    b.positive("scale", scale)\n    total = 0.0\n')], "loss", True),
    (
        "input check added, imported by name",
        [
            (*_SCALE, '    positive("scale", scale)\n    total = 0.0\n'),
            ("edit", "scratchpkg/a.py", "from .b import helper", "from .b import helper, positive"),
        ],
        "loss",
        True,
    ),
    (
        "input check edited where only called as a statement",
        [
            (*_SCALE, '    b.positive("scale", scale)\n    total = 0.0\n'),
            ("edit", "scratchpkg/b.py", "if not x > 0:", "if not x >= 0:"),
        ],
        "loss",
        True,
    ),
    (
        "input check's value used",
        [(*_SCALE, '    scale = b.positive("scale", scale)\n    total = 0.0\n')],
        "loss",
        False,
    ),
    ("other call added as a statement", [(*_SCALE, "    b.helper(scale)\n    total = 0.0\n")], "loss", False),
    ("docstring edited", [("edit", "scratchpkg/a.py", "Weighted loss.", "The weighted loss of xs.")], "loss", True),
    (
        "docstring added",
        [("edit", "scratchpkg/b.py", "def helper(x):\n", 'def helper(x):\n    """Twice."""\n')],
        "loss",
        True,
    ),
    ("module docstring edited", [("edit", "scratchpkg/a.py", '"""Losses."""', '"""Loss functions."""')], "loss", True),
    ("comments", [("edit", "scratchpkg/a.py", "# accumulate", "# add up\n        # weighted terms")], "loss", True),
    (
        "reformatted",
        [
            (
                "edit",
                "scratchpkg/a.py",
                "total += WEIGHTS[i % 2] * helper(x) * scale",
                "total += (\n  WEIGHTS[ i%2 ]\n            * helper( x )*scale\n        )",
            )
        ],
        "loss",
        True,
    ),
    (
        "string statement in a block",
        [("edit", "scratchpkg/a.py", "if total < 0:\n", "if total < 0:\n        'bad'\n")],
        "loss",
        True,
    ),
    (
        "locals renamed",
        [
            ("edit", "scratchpkg/a.py", "total", "acc"),
            ("edit", "scratchpkg/a.py", "[v * v for v in xs]", "[w * w for w in xs]"),
        ],
        "loss",
        True,
    ),
    ("locals renamed: with, except, walrus, nonlocal, comprehension", RENAME_LOCALS, "tricky", True),
    (
        "raise message edited",
        [("edit", "scratchpkg/a.py", 'f"negative loss {total}") from None', '"below zero")')],
        "loss",
        True,
    ),
    ("assert message edited", [("edit", "scratchpkg/a.py", '"no inputs"', '"xs is empty"')], "loss", True),
    ("helper moved to another module", MOVE_HELPER, "loss", True),
    ("module moved to another subpackage", MOVE_MODULE, "loss", True),
    (
        "constant moved to another module",
        [
            ("edit", "scratchpkg/a.py", "WEIGHTS = (0.3, 0.7)\n", ""),
            ("edit", "scratchpkg/a.py", "from .b import helper", "from .b import WEIGHTS, helper"),
            ("edit", "scratchpkg/b.py", '"""Helpers."""\n', '"""Helpers."""\nWEIGHTS = 0.3, 0.7\n'),
        ],
        "loss",
        True,
    ),
    (
        "base class moved to another module",
        [
            ("edit", "scratchpkg/sub/c.py", "class Base:\n    scale = 1.0\n", ""),
            ("edit", "scratchpkg/sub/c.py", "OFFSET = 10\n", "from ..b import Base\n\nOFFSET = 10\n"),
            ("edit", "scratchpkg/b.py", '"""Helpers."""\n', '"""Helpers."""\n\n\nclass Base:\n    scale = 1.0\n'),
        ],
        "loss",
        True,
    ),
    (
        "mod.func written as func",
        [
            ("edit", "scratchpkg/a.py", "b.finish(total)", "finish(total)"),
            ("edit", "scratchpkg/a.py", "import helper", "import finish, helper"),
        ],
        "loss",
        True,
    ),
    (
        "import alias",
        [
            ("edit", "scratchpkg/a.py", "import helper", "import helper as h"),
            ("edit", "scratchpkg/a.py", "helper(x)", "h(x)"),
        ],
        "loss",
        True,
    ),
    (
        "import alias inside a function",
        [("edit", "scratchpkg/b.py", "import c\n", "import c as cc\n"), ("edit", "scratchpkg/b.py", "c.", "cc.")],
        "loss",
        True,
    ),
    ("unreached function changed", [("edit", "scratchpkg/a.py", "return x + 1", "return x + 2")], "loss", True),
    ("unreached constant changed", [("edit", "scratchpkg/a.py", "UNUSED = 5", "UNUSED = 6")], "loss", True),
    (
        "bookkeeping body changed",
        [("edit", "scratchpkg/a.py", 'print("loss", value)', 'print("the loss", value)')],
        "loss",
        True,
    ),
    ("logic changed", [("edit", "scratchpkg/a.py", "if total < 0:", "if total <= 0:")], "loss", False),
    ("constant used changed", [("edit", "scratchpkg/a.py", "(0.3, 0.7)", "(0.4, 0.6)")], "loss", False),
    ("default argument changed", [("edit", "scratchpkg/a.py", "scale=2.0", "scale=3.0")], "loss", False),
    ("helper changed", [("edit", "scratchpkg/b.py", "return x * 2", "return x * 3")], "loss", False),
    (
        "decorator added",
        [
            ("edit", "scratchpkg/b.py", "def helper(x):", "@functools.lru_cache\ndef helper(x):"),
            ("edit", "scratchpkg/b.py", '"""Helpers."""', '"""Helpers."""\nimport functools'),
        ],
        "loss",
        False,
    ),
    ("constant two hops away changed", [("edit", "scratchpkg/sub/c.py", "OFFSET = 10", "OFFSET = 11")], "loss", False),
    (
        "None constant two hops away changed",
        [("edit", "scratchpkg/sub/c.py", "LIMIT = None", "LIMIT = 3")],
        "loss",
        False,
    ),
    ("literal two hops away changed", [("edit", "scratchpkg/sub/c.py", "t * 1.5", "t * 1.25")], "loss", False),
    (
        "method changed",
        [("edit", "scratchpkg/sub/c.py", "self.factor * self.size", "self.factor + self.size")],
        "loss",
        False,
    ),
    ("dataclass field default changed", [("edit", "scratchpkg/sub/c.py", "= 0.5", "= 0.25")], "loss", False),
    ("base class attribute changed", [("edit", "scratchpkg/sub/c.py", "scale = 1.0", "scale = 2.0")], "loss", False),
    ("parameter renamed", [("edit", "scratchpkg/misc.py", "items", "elements")], "tricky", False),
    ("global changed", [("edit", "scratchpkg/misc.py", "COUNTER = 0", "COUNTER = 1")], "tricky", False),
    ("dispatch target changed", [("edit", "scratchpkg/b.py", "return 3 * x", "return 4 * x")], "run", False),
    (
        "opaque dispatch: other target changed",
        [("edit", "scratchpkg/b.py", "return 3 * x", "return 4 * x")],
        "run, dispatch opaque",
        True,
    ),
    (
        "opaque dispatch: its body changed",
        [("edit", "scratchpkg/b.py", "ROUTES[name](x)", "ROUTES.get(name)(x)")],
        "run, dispatch opaque",
        True,
    ),
    (
        "opaque dispatch: root target changed",
        [("edit", "scratchpkg/b.py", "return 2 * x", "return 5 * x")],
        "run, dispatch opaque",
        False,
    ),
    ("module root: docstring", [("edit", "scratchpkg/sub/c.py", "Deep code.", "Deeper code.")], "module c", True),
    ("module root: function changed", [("edit", "scratchpkg/sub/c.py", "t * 1.5", "t * 2.5")], "module c", False),
    ("f-string: other quotes", [("edit", "scratchpkg/misc.py", FSTRING, FSTRING_QUOTED)], "label", True),
    ("f-string: format spec", [("edit", "scratchpkg/misc.py", ":.3f}", ":.4f}")], "label", False),
    ("f-string: conversion", [("edit", "scratchpkg/misc.py", "!r:", "!s:")], "label", False),
    ("f-string: text", [("edit", "scratchpkg/misc.py", "} = {", "} : {")], "label", False),
]


def _load_module():
    spec = importlib.util.spec_from_file_location("fingerprint_in_tests", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fingerprint = _load_module()


def _write(root: Path) -> None:
    for name, text in PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip("\n"))


def _apply(root: Path, edits: list[tuple[str, ...]]) -> None:
    for op, path, *args in edits:
        if op == "move":
            (root / args[0]).parent.mkdir(parents=True, exist_ok=True)
            (root / path).rename(root / args[0])
        elif op == "write":
            (root / path).write_text(args[0])
        else:
            old, new = args
            text = (root / path).read_text()
            assert old in text, f"edit does not apply: {old!r} not in {path}"
            (root / path).write_text(text.replace(old, new))


def _fingerprints(root: Path, names: list[str], python: str = sys.executable) -> dict[str, dict]:
    request = json.dumps({name: ROOTS[name] for name in names})
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [python, "-c", SCRIPT, str(MODULE_PATH), request],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("baseline")
    _write(root)
    return _fingerprints(root, list(ROOTS))


@pytest.mark.parametrize(("edits", "roots", "same"), [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_edit(tmp_path: Path, baseline: dict[str, dict], edits: list, roots: str, same: bool) -> None:
    _write(tmp_path)
    _apply(tmp_path, edits)
    edited = _fingerprints(tmp_path, [roots])[roots]
    before = baseline[roots]
    difference = fingerprint.explain_difference(before["closure"], edited["closure"])
    assert (edited["fingerprint"] == before["fingerprint"]) is same, difference
    assert (difference == []) is same


def test_closure_lists_what_is_reached(baseline: dict[str, dict]) -> None:
    closure = baseline["loss"]["closure"]
    assert set(closure) == {"loss", "WEIGHTS", "helper", "report", "finish", "deep", "OFFSET", "LIMIT", "Model", "Base"}
    assert closure["report"] == "# bookkeeping: report"
    assert closure["WEIGHTS"] == "WEIGHTS = (0.3, 0.7)"
    assert "deep(_l0)" not in closure["finish"] and "deep(t)" in closure["finish"]  # parameters keep their names
    assert "c.deep" not in closure["finish"] and "import" not in closure["finish"]
    assert "Weighted" not in closure["loss"] and "no inputs" not in closure["loss"]
    assert "raise ValueError\n" in closure["loss"] and "_l0 = 0.0" in closure["loss"]
    assert "finish(_l0)" in closure["loss"]  # b.finish(total)
    assert set(baseline["run"]["closure"]) == {"run", "dispatch", "ROUTES", "double", "triple"}
    assert set(baseline["run, dispatch opaque"]["closure"]) == {"run", "dispatch", "double"}
    assert set(baseline["module c"]["closure"]) == {"OFFSET", "LIMIT", "deep", "Base", "Model"}


def test_tricky_locals_are_renamed_and_globals_kept(baseline: dict[str, dict]) -> None:
    source = baseline["tricky"]["closure"]["tricky"]
    for name in ("handle", "text", "data", "err", "size", "found", "k"):
        assert not re.search(rf"\b{name}\b", source), (name, source)
    assert "global COUNTER" in source and "COUNTER += 1" in source and "def bump" in source
    assert "lambda q: q + 1" in source  # parameters keep their names, a lambda's too
    assert set(baseline["tricky"]["closure"]) == {"tricky", "COUNTER"}


def test_explain_difference_names_the_changed_entry(tmp_path: Path, baseline: dict[str, dict]) -> None:
    _write(tmp_path)
    _apply(tmp_path, [("edit", "scratchpkg/sub/c.py", "OFFSET = 10", "OFFSET = 12")])
    edited = _fingerprints(tmp_path, ["loss"])["loss"]
    assert fingerprint.explain_difference(baseline["loss"]["closure"], edited["closure"]) == ["changed OFFSET"]
    assert fingerprint.explain_difference({"a": "1", "b": "2"}, {"b": "3", "c": "4"}) == [
        "removed a",
        "changed b",
        "added c",
    ]


def test_every_python_writes_the_same_closure(tmp_path: Path, baseline: dict[str, dict]) -> None:
    """f-strings are quoted otherwise by ``ast.unparse`` from Python 3.12 on; the fingerprint must not see it."""
    found = {_interpreter(f"python{v}") for v in ("3.11", "3.12", "3.13")}
    others = {path for path, version in found - {None} if version != sys.version_info[:2]}
    if not others:
        pytest.skip("no other Python 3.11-3.13 on this machine")
    _write(tmp_path)
    for python in sorted(others):
        assert _fingerprints(tmp_path, list(ROOTS), python) == baseline, python


def _interpreter(name: str) -> tuple[str, tuple[int, int]] | None:
    """The real executable behind ``name`` on PATH (not a shim, which may resolve otherwise in another
    folder) and its version; None when there is none or it does not run."""
    if not (path := shutil.which(name)):
        return None
    code = "import sys; print(sys.executable, *sys.version_info[:2])"
    done = subprocess.run([path, "-c", code], capture_output=True, text=True)
    if done.returncode != 0 or len(words := done.stdout.split()) != 3:
        return None
    return words[0], (int(words[1]), int(words[2]))


def test_fingerprint_is_a_versioned_hash_of_the_sorted_sources(baseline: dict[str, dict]) -> None:
    import hashlib

    sources = sorted(baseline["loss"]["closure"].values())
    expected = hashlib.sha256("\n\n".join([fingerprint.FORMAT, *sources]).encode()).hexdigest()
    assert baseline["loss"]["fingerprint"] == expected


def test_canonical_source_writes_f_strings_as_calls_whatever_their_quotes():
    """Figure stamps use it for notebook code: ``ast.unparse`` quotes f-strings otherwise from Python 3.12 on."""
    expected = "x = __fstring__('a', __format__(d['k'], -1, None), 'b')"
    for source in ("x = f\"a{d['k']}b\"", "x = f'a{d[\"k\"]}b'"):
        tree = ast.parse(source)
        assert fingerprint.canonical_source(tree) == expected
        assert ast.unparse(tree).startswith("x = f")  # the tree itself is left as it was


def test_a_source_file_edited_after_the_process_started_is_refused():
    """Its text is no longer the running code (a shifted line would even hash the wrong lines)."""
    import time

    from earlyexit.core.fingerprint import FingerprintError, fingerprint
    from earlyexit.paper_b import calibration

    before = fingerprint(calibration.fit_isotonic)
    path = calibration.__file__
    stat = os.stat(path)
    try:
        os.utime(path, ns=(stat.st_atime_ns, time.time_ns() + 10**9))
        with pytest.raises(FingerprintError, match="changed on disk after this process started"):
            fingerprint(calibration.fit_isotonic)
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint(calibration.fit_isotonic) == before


def test_a_fingerprint_is_computed_once_per_process_for_the_same_roots_and_opaque_set():
    from earlyexit.core import fingerprint as fp
    from earlyexit.paper_b import calibration

    first = fp.fingerprint(calibration.fit_isotonic)
    key = ((id(calibration.fit_isotonic),), None, ())
    assert fp._MEMO[key][1] == first and calibration.__file__ in fp._MEMO[key][2]
    assert fp.fingerprint(calibration.fit_isotonic) == first
    assert fp.fingerprint(calibration.fit_isotonic, opaque=[calibration.fit_isotonic]) != first


def test_fingerprints_on_threads_parse_one_at_a_time():
    """CPython 3.11's parser breaks when threads parse at once, and ``pipeline --jobs`` fingerprints on threads: a
    fingerprint computed while another thread parses waits for it, then gives the same value."""
    import threading

    from earlyexit.core import fingerprint as fp
    from earlyexit.paper_b import calibration

    expected = fp.fingerprint(calibration.fit_isotonic)
    fp._MEMO.clear()
    fp._parse.cache_clear()
    got: list[str] = []
    worker = threading.Thread(target=lambda: got.append(fp.fingerprint(calibration.fit_isotonic)))
    with fp._PARSE_LOCK:
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not got
    worker.join(timeout=30)
    assert got == [expected]
