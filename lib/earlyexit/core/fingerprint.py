"""Fingerprints of code by meaning, not bytes.

An artifact, derived result or figure records ``fingerprint(*roots)``: a sha256 over the normalised source of the
*code closure* of its roots (functions, classes, modules, ``functools.partial`` objects or module-level constants)
inside one package. Two versions of the code are "the same" when their closures normalise to the same text.

The closure starts at the roots and follows every package object the reached code names: functions and classes
(the whole class, with its bases and decorators), module-level constants (the module statements binding them: an
assignment, or the whole top-level ``for``/``if``/``try`` that binds them) and imports inside function bodies. A module
named bare (not as ``module.attribute``) stands for everything defined in it. Objects outside the package (torch,
numpy, builtins) are the environment: their names are written as they are and not followed. Code marked with
``@bookkeeping`` (or passed as ``opaque=``) reads, writes, checks or reports but never shapes a result: it is
reached by name only, its body is neither included nor followed. A statement that does nothing but call a function
marked ``@input_check`` (one that inspects its arguments and raises on bad ones) is dropped, so that validating a
public function's input changes no fingerprint; a check whose value is used (``x = check(x)``) counts as code.

Normalisation makes these edits invisible:

- docstrings and every other bare string statement, comments, formatting and line wrapping;
- renaming a local variable (a name bound in a function, lambda or comprehension body, not a parameter, not one
  declared ``global``/``nonlocal``): locals become ``_l0, _l1, ...`` in order of first appearance;
- the message of a ``raise X(...)`` (written ``raise X``, without ``from ...``) or of an ``assert``;
- where an object lives in the package: a reference to a package object (``mod.func``, ``pkg.sub.mod.func``,
  ``func`` or an alias of an import) is written by the object's own name (a constant's binding name); imports of
  package objects inside function bodies are dropped after being followed; code the roots do not reach.

Anything else in reached code changes the fingerprint: logic, numbers and strings, default values, constants,
class attributes, bases, decorators, code reached through any number of calls. Two different reached objects with
the same name appear in ``closure()`` as ``name`` and ``name#2`` (in discovery order); the hash does not use keys.

A process fingerprints the code it runs, read back from its source files: a file of this package edited after the
process started is refused (:class:`FingerprintError`), as its text would no longer be the running code (a
shifted line number would even hash the wrong lines). Restart the process, or the notebook's kernel.

Not seen: what code reaches only dynamically (``getattr`` by string, objects passed in as arguments, methods of
instances whose class the reached code never names) and module-level statements that bind no name (registrations).
Names in annotations are followed like any other. A package module imported lazily inside a reached function is
imported to be followed.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import importlib
import importlib.util
import inspect
import linecache
import os
import sys
import textwrap
import threading
import time
import types
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

FORMAT = "earlyexit-fingerprint/2"  # 2: f-strings written as calls, the same on every Python

_T = TypeVar("_T")
_Site = tuple[types.ModuleType, tuple[int, ...], str]  # defining module, its binding statements, bound name
_Located = tuple[ast.stmt, Sequence[str]]  # a statement and the source lines it was parsed from
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_BINDERS = (
    *_DEFS,
    ast.ClassDef,
    ast.ExceptHandler,
    ast.Global,
    ast.Nonlocal,
    ast.Import,
    ast.ImportFrom,
    ast.MatchAs,
    ast.MatchStar,
    ast.MatchMapping,
)
_DROPPED = object()


class FingerprintError(ValueError):
    """A root that cannot be fingerprinted: no source, not a function, class, module, partial or constant, or source
    edited since the process started."""


_STARTED_NS = time.time_ns()
"""When this process imported the package: a source file of it modified later is not the code that runs."""
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: The source files read by the fingerprint being computed (:func:`fingerprint` checks them again on a cache hit).
_READ: list[set[str]] = []


#: CPython 3.11's parser is not safe when threads parse at once ("AST constructor recursion depth mismatch"), and the
#: pipeline's ``--jobs`` runs stages on threads: every parse here takes this lock.
_PARSE_LOCK = threading.Lock()


def _as_running(filename: str) -> str:
    """``filename``, refused if it is a source file of this package modified after this process started."""
    path = os.path.abspath(filename)
    for read in _READ:
        read.add(filename)
    if path.startswith(_PACKAGE_DIR + os.sep) and os.stat(path).st_mtime_ns > _STARTED_NS:
        raise FingerprintError(
            f"{path} changed on disk after this process started: its text is no longer the code that runs here, so "
            "its fingerprint would be wrong. Restart the process (in Jupyter: restart the kernel)."
        )
    return filename


def bookkeeping(obj: _T) -> _T:
    """Mark a function or class as code that never shapes a result: closures include its name, not its body."""
    obj.__fingerprint_opaque__ = True  # type: ignore[attr-defined]
    return obj


bookkeeping(bookkeeping)


@bookkeeping
def parse(source: str) -> ast.Module:
    """``ast.parse(source)``, one thread at a time (use it wherever the pipeline's threads may parse)."""
    with _PARSE_LOCK:
        return ast.parse(source)


@bookkeeping
def input_check(func: _T) -> _T:
    """Mark a function that only inspects its arguments and raises on bad ones: a statement that only calls it
    (its value unused) is dropped from normalised source, so adding or editing such a check changes no fingerprint.
    Its arguments must have no side effects."""
    func.__fingerprint_check__ = True  # type: ignore[attr-defined]
    return func


#: Fingerprints computed in this process: (roots, package, opaque) -> (the fingerprint, the source files it read).
#: The running code cannot change, so each is computed once; the entry keeps its roots, so no id is reused.
_MEMO: dict[tuple, tuple[tuple, str, frozenset[str]]] = {}


@bookkeeping
def fingerprint(*roots: object, package: str | None = None, opaque: Iterable[object] = ()) -> str:
    """sha256 hex of the format version and the sorted normalised sources of the roots' closure.

    Computed once per process for the same roots (a notebook asks for one many times); a repeat still refuses a
    source file edited since the process started, as the first computation does."""
    opaque = tuple(opaque)
    key = (tuple(map(id, roots)), package, tuple(map(id, opaque)))
    if key in _MEMO:
        kept, digest, read = _MEMO[key]
        for filename in read:
            _as_running(filename)
        return digest
    _READ.append(set())
    try:
        sources = sorted(closure(*roots, package=package, opaque=opaque).values())
    finally:
        read = frozenset(_READ.pop())
    digest = hashlib.sha256("\n\n".join([FORMAT, *sources]).encode()).hexdigest()
    _MEMO[key] = ((roots, opaque), digest, read)
    return digest


@bookkeeping
def closure(*roots: object, package: str | None = None, opaque: Iterable[object] = ()) -> dict[str, str]:
    """Canonical name -> normalised source of everything the roots reach in `package` (default: the roots' own)."""
    return _Walker(package or _package_of(roots), opaque).closure(roots)


@bookkeeping
def explain_difference(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The entries added, removed or changed from closure `a` to closure `b`."""
    lines = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            lines.append(f"removed {key}")
        elif key not in a:
            lines.append(f"added {key}")
        elif a[key] != b[key]:
            lines.append(f"changed {key}")
    return lines


@dataclass(frozen=True)
class _Node:
    """One closure entry: a function or class ("code"), module statements ("const"), a "module" or a "partial"."""

    kind: str
    key: tuple[Any, ...]
    name: str = field(compare=False)
    label: str = field(compare=False)
    target: Any = field(compare=False, repr=False)
    definition: _Located | None = field(default=None, compare=False, repr=False)
    opaque: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class _ModuleInfo:
    """A parsed module and, per module-level name, how it is bound."""

    tree: ast.Module
    lines: tuple[str, ...]
    defs: dict[int, ast.FunctionDef | ast.AsyncFunctionDef]  # first line, decorators included -> def
    assigned: dict[str, tuple[int, ...]]  # name -> top-level statements binding it other than by import
    imported: dict[str, tuple[str, str]]  # name -> (absolute module, name there) of `from module import name`
    starred: tuple[str, ...]  # absolute modules of `from module import *`


@dataclass
class _Scope:
    """What one scope binds: locals (renamed), kept names, package imports, names declared global."""

    kind: str
    local: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)
    imported: dict[str, _Node] = field(default_factory=dict)
    global_names: set[str] = field(default_factory=set)
    nonlocal_names: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)


class _Walker:
    """One closure computation: the package, the opaque objects, and caches for this call."""

    def __init__(self, package: str, opaque: Iterable[object]) -> None:
        self.package = package
        self.opaque = {id(obj) for obj in opaque}
        self.infos: dict[str, _ModuleInfo] = {}
        self.references: dict[tuple[str, str], _Node | None] = {}

    def closure(self, roots: Iterable[object]) -> dict[str, str]:
        queue = deque(node for root in roots for node in self.roots(root))
        seen: set[tuple[Any, ...]] = set()
        entries: dict[str, str] = {}
        while queue:
            node = queue.popleft()
            if node.key in seen:
                continue
            seen.add(node.key)
            if node.kind == "module":
                queue.extend(self.members(node.target))
                continue
            source, refs = self.normalise(node)
            entries[_unused_key(entries, node.label)] = source
            queue.extend(refs)
        return dict(sorted(entries.items()))

    def roots(self, root: object) -> list[_Node]:
        nodes = []
        for obj in _underlying(root):
            if isinstance(obj, types.ModuleType):
                nodes += self.members(obj)
            elif isinstance(obj, functools.partial):
                label = f"partial({getattr(obj.func, '__qualname__', obj.func)!s})"
                nodes.append(_Node("partial", ("partial", id(obj)), label, label, obj, None, self.marked(obj)))
            elif inspect.isfunction(code := _unwrap(obj)) or inspect.isclass(code):
                nodes.append(self.code_node(code, self.located(code) or _parsed_source(code), obj))
            elif constants := self.constant_nodes(obj):
                nodes += constants
            else:
                raise FingerprintError(f"{root!r}: no function, class, module, partial or constant of the package")
        return nodes

    def code_node(self, code: Any, definition: _Located, *wrappers: object) -> _Node:
        key = ("code", id(code))
        return _Node("code", key, code.__name__, code.__qualname__, code, definition, self.marked(code, *wrappers))

    def module_node(self, module: types.ModuleType) -> _Node:
        name = module.__name__
        return _Node("module", ("module", name), name.rpartition(".")[2], name, module)

    def inside(self, name: object) -> bool:
        return isinstance(name, str) and (name == self.package or name.startswith(self.package + "."))

    def marked(self, *objects: object) -> bool:
        return any(
            id(obj) in self.opaque or getattr(obj, "__dict__", {}).get("__fingerprint_opaque__", False)
            for obj in objects
        )

    def info(self, module: types.ModuleType) -> _ModuleInfo:
        if module.__name__ not in self.infos:
            self.infos[module.__name__] = _parse(_module_source(module), module.__package__ or "")
        return self.infos[module.__name__]

    def module_named(self, name: str) -> _Node | None:
        """The package module `name`, imported if need be; None outside the package or when it does not exist."""
        if not self.inside(name):
            return None
        try:
            return self.module_node(sys.modules.get(name) or importlib.import_module(name))
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            return None

    def reference(self, module: types.ModuleType, name: str) -> _Node | None:
        """The package object that `name` denotes in `module` (a global, or a submodule), if any."""
        key = (module.__name__, name)
        if key not in self.references:
            namespace = vars(module)
            submodule = sys.modules.get(f"{module.__name__}.{name}")
            found = name in namespace or submodule is not None
            self.references[key] = self.classify(module, name, namespace.get(name, submodule)) if found else None
        return self.references[key]

    def classify(self, module: types.ModuleType, name: str, value: object) -> _Node | None:
        if isinstance(value, types.ModuleType):
            return self.module_node(value) if self.inside(value.__name__) else None
        code = _unwrap(value)
        if _is_definition(code) and self.inside(code.__module__) and (definition := self.located(code)) is not None:
            return self.code_node(code, definition, value)
        site = self.site(module, name)
        if site is None:
            return None
        where, indices, bound = site
        return _Node("const", ("const", where.__name__, indices), bound, bound, where, None, self.marked(value))

    def located(self, code: Any) -> _Located | None:
        """The def or class statement of `code` in its module's source."""
        module = sys.modules.get(code.__module__)
        if module is None:
            return None
        info = self.info(module)
        if inspect.isclass(code):
            found = _find_class(info.tree.body, code.__qualname__)
        else:
            found = info.defs.get(code.__code__.co_firstlineno)
            same_file = code.__code__.co_filename == getattr(module, "__file__", None)
            found = found if same_file and found is not None and found.name == code.__name__ else None
        return None if found is None else (found, info.lines)

    def site(self, module: types.ModuleType, name: str, depth: int = 0) -> _Site | None:
        """Where module-level `name` of `module` is bound by assignment, following `from ... import` chains."""
        info = self.info(module)
        if name in info.assigned:
            return module, info.assigned[name], name
        origin, original = info.imported.get(name, ("", name))
        for source_name in [origin] if origin else info.starred:
            source = sys.modules.get(source_name)
            usable = source is not None and self.inside(source_name) and depth < 32 and hasattr(source, original)
            if usable and (found := self.site(source, original, depth + 1)) is not None:
                return found
        return None

    def constant_nodes(self, value: object) -> list[_Node]:
        """The module-level constants of the package bound to `value` itself."""
        found: dict[tuple[Any, ...], _Node] = {}
        for module_name, module in list(sys.modules.items()):
            if module is None or not self.inside(module_name):
                continue
            for name, bound in list(vars(module).items()):
                node = self.classify(module, name, value) if bound is value and not name.startswith("__") else None
                if node is not None and node.kind == "const":
                    found[node.key] = node
        return list(found.values())

    def members(self, module: types.ModuleType) -> list[_Node]:
        """Everything defined (not imported) in `module`."""
        nodes = [self.reference(module, name) for name in list(vars(module)) if not name.startswith("__")]
        return [node for node in nodes if node is not None and _defined_in(node, module)]

    def normalise(self, node: _Node) -> tuple[str, list[_Node]]:
        """The normal source of `node` and the package objects it references."""
        if node.opaque:
            return f"# bookkeeping: {node.name}", []
        if node.kind == "partial":
            return self.partial(node.target)
        module = node.target if node.kind == "const" else sys.modules.get(node.target.__module__)
        if module is None:
            raise FingerprintError(f"module {node.target.__module__} of {node.label} is not imported")
        info = self.info(module)
        statements = [node.definition] if node.definition else [(info.tree.body[i], info.lines) for i in node.key[2]]
        normaliser = _Normaliser(self, module)
        return "\n".join(normaliser.source(*statement) for statement in statements), normaliser.refs

    def partial(self, partial: functools.partial[Any]) -> tuple[str, list[_Node]]:
        func = _unwrap(partial.func)
        refs = self.roots(partial.func) if self.inside(getattr(func, "__module__", None)) else []
        keywords = dict(sorted(partial.keywords.items()))
        return f"partial({getattr(func, '__name__', func)!s}, *{partial.args!r}, **{keywords!r})", refs


class _Normaliser(ast.NodeTransformer):
    """Rewrites the statements of one entry to normal form, collecting the package objects they reference."""

    def __init__(self, walker: _Walker, module: types.ModuleType) -> None:
        self.walker = walker
        self.module = module
        self.scopes = [_Scope("module")]
        self.count = 0
        self.refs: list[_Node] = []

    def source(self, statement: ast.stmt, lines: Sequence[str]) -> str:
        return ast.unparse(_FStrings().visit(self.visit(_fresh(statement, lines)) or ast.Pass()))

    def generic_visit(self, node: ast.AST) -> ast.AST:
        return _without_strings(super().generic_visit(node))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        self._visit_fields(node, "decorator_list", "args", "returns")
        return self._visit_scope(node, self._function_scope(node.args, node.body), "body")

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self._visit_fields(node, "args")
        return self._visit_scope(node, self._function_scope(node.args, [node.body]), "body")

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self._visit_fields(node, "decorator_list", "bases", "keywords")
        scope = self._declared(_Scope("class"), node.body)
        scope.kept |= scope.local | scope.imported.keys()
        scope.local, scope.imported = set(), {}
        return self._visit_scope(node, scope, "body")

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> ast.AST:
        first = node.generators[0]
        first.iter = self.visit(first.iter)  # evaluated in the enclosing scope
        targets = {name.id for gen in node.generators for name in ast.walk(gen.target) if isinstance(name, ast.Name)}
        self._enter(_Scope("function", local=targets))
        for index, generator in enumerate(node.generators):
            self._visit_fields(generator, "target", *(["iter"] if index else []), "ifs")
        self._visit_fields(node, *(name for name in node._fields if name != "generators"))
        self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Name(self, node: ast.Name) -> ast.AST:
        found = self._lookup(node.id)
        if isinstance(found, str):
            node.id = found
        elif found is not None and not isinstance(node.ctx, ast.Store):
            node.id = self._follow(found)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        target = self._package_attribute(node) if isinstance(node.ctx, ast.Load) else None
        if target is None:
            return self.generic_visit(node)
        name = target if isinstance(target, str) else self._follow(target)
        return ast.copy_location(ast.Name(name, ast.Load()), node)

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if isinstance(node.value, ast.Call) and self._is_input_check(node.value.func):
            return None  # a statement only calling an @input_check raises or does nothing
        return self.generic_visit(node)

    def _is_input_check(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            target = self._lookup(func.id)
        elif isinstance(func, ast.Attribute):
            target = self._package_attribute(func)
        else:
            return False
        return (
            isinstance(target, _Node)
            and target.kind == "code"
            and getattr(target.target, "__dict__", {}).get("__fingerprint_check__", False) is True
        )

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if isinstance(node.exc, ast.Call):
            node.exc = node.exc.func
        node.cause = None
        return self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        node.msg = None
        return self.generic_visit(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST | None:
        targets = self._import_targets(node)
        self.refs += [target for target in targets if target is not None and target.kind != "module"]
        node.names = [alias for alias, target in zip(node.names, targets, strict=True) if target is None]
        return node if node.names else None

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name and isinstance(label := self._lookup(node.name), str):
            node.name = label
        return self.generic_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [label if isinstance(label := self._lookup(name), str) else name for name in node.names]
        return node

    def _visit_fields(self, node: ast.AST, *names: str) -> None:
        for name in names:
            value = getattr(node, name)
            if isinstance(value, list):
                setattr(node, name, [item for item in map(self._visit_item, value) if item is not _DROPPED])
            elif isinstance(value, ast.AST):
                setattr(node, name, self.visit(value))

    def _visit_item(self, item: object) -> object:
        """A list item visited (`_DROPPED` when the visit removes it); non-nodes (None in kw_defaults) as they are."""
        if not isinstance(item, ast.AST):
            return item
        visited = self.visit(item)
        return _DROPPED if visited is None else visited

    def _visit_scope(self, node: ast.AST, scope: _Scope, *names: str) -> ast.AST:
        self._enter(scope)
        self._visit_fields(node, *names)
        self.scopes.pop()
        return _without_strings(node)

    def _enter(self, scope: _Scope) -> None:
        if scope.kind == "function" and all(outer.kind != "function" for outer in self.scopes):
            self.count = 0  # labels count from _l0 in each outermost function, lambda or comprehension
        self.scopes.append(scope)

    def _function_scope(self, args: ast.arguments, body: list[ast.expr] | list[ast.stmt]) -> _Scope:
        parameters = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        scope = self._declared(_Scope("function", kept={arg.arg for arg in parameters if arg is not None}), body)
        scope.local -= scope.kept | scope.global_names | scope.nonlocal_names
        return scope

    def _declared(self, scope: _Scope, body: Iterable[ast.AST]) -> _Scope:
        """`scope` with the names bound by `body`, a scope's own code."""
        for node in _binders(body):
            if isinstance(node, ast.Name):
                scope.local.add(node.id)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                scope.local.add(node.name)
            elif isinstance(node, ast.Global):
                scope.global_names.update(node.names)
            elif isinstance(node, ast.Nonlocal):
                scope.nonlocal_names.update(node.names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias, target in zip(node.names, self._import_targets(node), strict=True):
                    if target is None:
                        scope.kept.add(_alias_binding(alias, node))
                    else:
                        scope.imported[_alias_binding(alias, node)] = target
            elif isinstance(node, (*_DEFS, ast.ClassDef, ast.MatchAs, ast.MatchStar)) and node.name:
                scope.kept.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                scope.kept.add(node.rest)
        return scope

    def _lookup(self, name: str) -> str | _Node | None:
        """The label of local `name`, the package object it denotes, or None to keep it as written."""
        for depth, scope in enumerate(reversed(self.scopes)):
            if scope.kind == "class" and depth:
                continue  # class bodies are invisible to the scopes nested in them
            if name in scope.global_names:
                break
            if name in scope.local:
                return scope.labels.get(name) or scope.labels.setdefault(name, self._next_label())
            if name in scope.imported:
                return scope.imported[name]
            if name in scope.kept:
                return None
        return self.walker.reference(self.module, name)

    def _next_label(self) -> str:
        self.count += 1
        return f"_l{self.count - 1}"

    def _follow(self, node: _Node) -> str:
        self.refs.append(node)
        return node.name

    def _package_attribute(self, node: ast.Attribute) -> _Node | str | None:
        """What `m.attr` denotes when `m` is a package module: a package object, else just the name `attr`."""
        base = node.value
        if isinstance(base, ast.Name):
            owner = self._lookup(base.id)
        else:
            owner = self._package_attribute(base) if isinstance(base, ast.Attribute) else None
        if not (isinstance(owner, _Node) and owner.kind == "module"):
            return None
        return self.walker.reference(owner.target, node.attr) or node.attr

    def _import_targets(self, node: ast.Import | ast.ImportFrom) -> list[_Node | None]:
        """Per name the statement imports, the package object it is, or None."""
        if isinstance(node, ast.Import):
            return [
                self.walker.module_named(alias.name if alias.asname else alias.name.partition(".")[0])
                for alias in node.names
            ]
        owner = self.walker.module_named(_absolute(node, self.module.__package__ or ""))
        if owner is None:
            return [None] * len(node.names)
        return [
            None
            if alias.name == "*"
            else self.walker.reference(owner.target, alias.name)
            or self.walker.module_named(f"{owner.target.__name__}.{alias.name}")
            for alias in node.names
        ]


@functools.lru_cache(maxsize=512)
def _parse(source: str, package: str) -> _ModuleInfo:
    tree = parse(source)
    lines = tuple(source.splitlines(keepends=True))
    defs = {_first_line(node): node for node in ast.walk(tree) if isinstance(node, _DEFS)}
    assigned: dict[str, dict[int, None]] = {}
    imported: dict[str, tuple[str, str]] = {}
    starred: list[str] = []
    for index, statement in enumerate(tree.body):
        for node in _module_level(statement):
            if isinstance(node, ast.ImportFrom):
                origin = _absolute(node, package)
                starred += [origin for alias in node.names if alias.name == "*"]
                imported.update({alias.asname or alias.name: (origin, alias.name) for alias in node.names})
            elif (name := _bound_name(node)) is not None:
                assigned.setdefault(name, {})[index] = None
    found = {name: tuple(indices) for name, indices in assigned.items()}
    return _ModuleInfo(tree, lines, defs, found, imported, tuple(starred))


def _module_source(module: types.ModuleType) -> str:
    filename = getattr(module, "__file__", None)
    if not filename:
        return ""
    linecache.checkcache(_as_running(filename))
    return "".join(linecache.getlines(filename, vars(module)))


def _parsed_source(code: Any) -> _Located:
    try:
        if filename := inspect.getsourcefile(code):
            _as_running(filename)
        source = textwrap.dedent(inspect.getsource(code))
        return parse(source).body[0], source.splitlines(keepends=True)
    except (OSError, TypeError, SyntaxError) as err:
        raise FingerprintError(f"no source for {code!r}") from err


def _package_of(roots: Iterable[object]) -> str:
    for obj in (obj for root in roots for obj in _underlying(root)):
        if isinstance(obj, types.ModuleType):
            return obj.__name__.partition(".")[0]
        target = _unwrap(obj.func if isinstance(obj, functools.partial) else obj)
        if inspect.isfunction(target) or inspect.isclass(target):
            return target.__module__.partition(".")[0]
    raise FingerprintError("no root names its module: give package=")


def _underlying(root: object) -> list[object]:
    """The functions behind methods, static and class methods and properties; other roots themselves."""
    if isinstance(root, (staticmethod, classmethod, types.MethodType)):
        return _underlying(root.__func__)
    if isinstance(root, property):
        return [obj for func in (root.fget, root.fset, root.fdel) if func is not None for obj in _underlying(func)]
    return [root]


def _unwrap(value: object) -> Any:
    try:
        return inspect.unwrap(value)  # type: ignore[arg-type]
    except ValueError:  # a cycle of __wrapped__
        return value


def _is_definition(obj: object) -> bool:
    """A function or class defined by name at module or class level (not a lambda, not made inside a function)."""
    return (inspect.isfunction(obj) or inspect.isclass(obj)) and "<" not in obj.__qualname__


def _defined_in(node: _Node, module: types.ModuleType) -> bool:
    if node.kind == "const":
        return node.target is module
    return node.kind == "code" and node.target.__module__ == module.__name__


def _unused_key(entries: dict[str, str], label: str) -> str:
    key, count = label, 1
    while key in entries:
        count += 1
        key = f"{label}#{count}"
    return key


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", ()))])


def _fresh(statement: ast.stmt, lines: Sequence[str]) -> ast.stmt:
    """A new parse of `statement` from its source lines (faster than a deep copy), free to rewrite."""
    text = "".join(lines[_first_line(statement) - 1 : statement.end_lineno])
    indent = len(text) - len(text.lstrip(" \t"))
    if indent != statement.col_offset:  # it shares its first line with an earlier statement
        return copy.deepcopy(statement)
    return parse("if 1:\n" + text).body[0].body[0] if indent else parse(text).body[0]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    try:
        return importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    except (ImportError, ValueError):  # a relative import beyond the top-level package
        return ""


def _alias_binding(alias: ast.alias, node: ast.Import | ast.ImportFrom) -> str:
    if alias.asname:
        return alias.asname
    return alias.name.partition(".")[0] if isinstance(node, ast.Import) else alias.name


def _bound_name(node: ast.AST) -> str | None:
    """The module-level name a node binds other than by import."""
    if isinstance(node, ast.Name):
        return node.id if isinstance(node.ctx, ast.Store) else None
    if isinstance(node, (*_DEFS, ast.ClassDef, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return node.name
    return None


def _module_level(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what in it runs at module level: not function or class bodies, lambdas, comprehension targets."""
    yield node
    if isinstance(node, _SCOPES):
        return
    children = [node.iter, *node.ifs] if isinstance(node, ast.comprehension) else ast.iter_child_nodes(node)
    for child in children:
        yield from _module_level(child)


def _binders(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """The nodes binding names in one scope's own code, in no particular order: nested definitions (not their
    bodies), walrus targets in comprehensions (not comprehension variables)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            if not isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]
                yield node
            continue
        if kind in _BINDERS:
            yield node
        if kind in _COMPREHENSIONS:
            yield from (child.target for child in ast.walk(node) if isinstance(child, ast.NamedExpr))
        elif kind not in _SCOPES:
            stack.extend(ast.iter_child_nodes(node))


def _find_class(body: list[ast.stmt], qualname: str) -> ast.ClassDef | None:
    node: ast.stmt | None = None
    for part in qualname.split("."):
        matches = [stmt for stmt in _flat(body) if isinstance(stmt, (*_DEFS, ast.ClassDef)) and stmt.name == part]
        if not matches:
            return None
        node = matches[-1]
        body = node.body
    return node if isinstance(node, ast.ClassDef) else None


def _flat(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements and those nested in their if/for/while/with/try blocks, not in definitions."""
    for statement in statements:
        yield statement
        if isinstance(statement, _SCOPES):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _flat(getattr(statement, name, []))
        for handler in getattr(statement, "handlers", []):
            yield from _flat(handler.body)


class _FStrings(ast.NodeTransformer):
    """Writes each f-string as calls, ``f"a{x!r:>{w}}"`` as ``__fstring__('a', __format__(x, 114,
    __fstring__(__format__(w, -1, None))))``: ``ast.unparse`` quotes f-strings differently from Python 3.12 on
    (PEP 701 lets an f-string reuse its quotes inside), and the same code must have one fingerprint on every Python."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        parts: list[ast.expr] = []  # adjacent text merged, empty text dropped: Pythons split it differently
        for value in node.values:
            if isinstance(value, ast.Constant) and parts and isinstance(parts[-1], ast.Constant):
                parts[-1] = ast.Constant(parts[-1].value + value.value)
            elif not (isinstance(value, ast.Constant) and value.value == ""):
                parts.append(self.visit(value))
        return ast.Call(ast.Name("__fstring__", ast.Load()), parts, [])

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        spec = self.visit(node.format_spec) if node.format_spec is not None else ast.Constant(None)
        return ast.Call(
            ast.Name("__format__", ast.Load()), [self.visit(node.value), ast.Constant(node.conversion), spec], []
        )


@bookkeeping
def canonical_source(tree: ast.AST) -> str:
    """``ast.unparse`` of ``tree`` (left as it is) with its f-strings written as calls (:class:`_FStrings`): the
    same text on every Python from 3.11 to 3.13, where ``ast.unparse`` quotes f-strings differently."""
    return ast.unparse(_FStrings().visit(copy.deepcopy(tree)))


def _without_strings(node: ast.AST) -> ast.AST:
    """`node` without bare string statements (docstrings) in its blocks; a body left empty gets `pass`."""
    for name in ("body", "orelse", "finalbody"):
        statements = getattr(node, name, None)
        if isinstance(statements, list):
            kept = [statement for statement in statements if not _is_string(statement)]
            setattr(node, name, kept or ([ast.Pass()] if name == "body" else []))
    return node


def _is_string(statement: ast.AST) -> bool:
    value = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)
