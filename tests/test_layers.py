"""The package's layers: imports run one way, from a layer to the layers below it, never up or across."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "earlyexit"
#: Layer of each subpackage; modules at the top of the package (the pipeline, the training command, the GPU
#: bundle, the tier plan) form layer 4, and the claims,
#: which read what the pipeline made, sit above it.
LAYERS = {"core": 0, "nets": 1, "engine": 2, "paper_a": 3, "paper_b": 3, "claims": 5}
TOP = 4


def _module(path: Path) -> str:
    return ".".join(("earlyexit", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    group = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "top"
    return LAYERS.get(group, TOP), group


def _imports(path: Path) -> list[str]:
    """The earlyexit modules (or objects) ``path`` imports, absolute, wherever the import statement is."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found += [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m.split(".")[0] == "earlyexit"]


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_later_layer_or_across_the_papers(path):
    layer, group = _layer(_module(path))
    for target in _imports(path):
        target_layer, target_group = _layer(target)
        assert target_layer <= layer, f"{_module(path)} (layer {group}) imports {target} (layer {target_group})"
        if layer == target_layer == LAYERS["paper_a"]:
            assert group == target_group, f"{_module(path)} imports {target}: Paper A and Paper B are independent"


def test_the_layers_are_the_subpackages():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(LAYERS)
    assert {p.stem for p in PACKAGE.glob("*.py")} == {"__init__", "pipeline", "train", "bundle", "tiers"}
