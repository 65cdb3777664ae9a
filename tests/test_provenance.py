"""Provenance by meaning: in a scratch copy of the repository, edits that change nothing computed leave every
artifact current, and a change of what training computes stales exactly the artifacts that depend on it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from earlyexit.engine import artifacts

REPO = artifacts.REPO


def _scratch(tmp_path: Path, edits: list[tuple[str, str, str]]) -> Path:
    """A copy of ``lib`` with ``edits`` (file below lib/earlyexit, old, new), beside the shipped artifacts,
    notebooks and pipeline.toml (linked, never written)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "lib", root / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("artifacts", "notebooks", "figures", "pipeline.toml"):
        (root / name).symlink_to(REPO / name)
    for module, old, new in edits:
        source = root / "lib" / "earlyexit" / module
        text = source.read_text()
        assert old in text, (module, old)
        source.write_text(text.replace(old, new, 1))
    return root


def _list(root: Path) -> dict[str, str]:
    """``pipeline --list`` of the cpu profile run on the code in ``root``: job name -> state."""
    env = {**os.environ, "PYTHONPATH": str(root / "lib")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "earlyexit.pipeline",
            "--profile",
            "cpu",
            "--list",
            "--stages",
            "train,prune,compress,single-exit,design",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split()[1]: line.split(None, 2)[2] for line in run.stdout.splitlines()}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, str]:
    states = _list(_scratch(tmp_path_factory.mktemp("unchanged"), []))
    assert states and all(state == "current" for state in states.values()), states
    return states


def test_docstrings_comments_formatting_locals_and_moves_leave_every_artifact_current(tmp_path, shipped):
    root = _scratch(
        tmp_path,
        [
            ("engine/training.py", '"""One training loop', '"""(Reworded.) One training loop'),
            (
                "engine/training.py",
                "    progress = min(epoch / cfg.anneal_epochs, 1.0)",
                "    # how far the annealing is\n    fraction = min(epoch / cfg.anneal_epochs,\n                   1.0)",
            ),
            ("engine/training.py", "(1.0 + math.cos(math.pi * progress))", "(1.0 + math.cos(math.pi * fraction))"),
            (
                "engine/training.py",
                "raise ValueError(f\"training parameter 'lr' must be positive",
                "raise ValueError(f\"(reworded) training parameter 'lr' must be positive",
            ),
        ],
    )
    assert _list(root) == shipped


def test_a_moved_function_leaves_every_artifact_current(tmp_path, shipped):
    moved = (
        "def multi_exit_loss(logits: list[Tensor], target: Tensor, weights: tuple[float, ...]) -> Tensor:\n"
        '    """Weighted sum of the exits\' cross-entropies, Paper A Eq. (5)."""\n'
        "    return sum(w * F.cross_entropy(z.float(), target) for w, z in zip(weights, logits))\n"
    )
    root = _scratch(
        tmp_path,
        [
            ("engine/training.py", moved, ""),
            (
                "engine/training.py",
                "from ..core import data,",
                "from ..nets.multiexit import multi_exit_loss\nfrom ..core import data,",
            ),
        ],
    )
    target = root / "lib" / "earlyexit" / "nets" / "multiexit.py"
    text = target.read_text().replace(
        "from torch import Tensor, nn\n", "import torch.nn.functional as F\nfrom torch import Tensor, nn\n"
    )
    target.write_text(text + "\n\n" + moved)
    assert _list(root) == shipped


def test_a_changed_loss_constant_stales_every_training_artifact_and_names_the_function(tmp_path, shipped):
    root = _scratch(
        tmp_path,
        [
            (
                "engine/training.py",
                "return sum(w * F.cross_entropy(z.float(), target)",
                "return sum(w * F.cross_entropy(z.float(), target, label_smoothing=0.1)",
            )
        ],
    )
    states = _list(root)
    assert states.keys() == shipped.keys()
    assert all("stale: made by other code" in s and "multi_exit_loss" in s for s in states.values()), states


def test_editing_one_network_stales_its_own_artifacts_only(tmp_path, shipped):
    root = _scratch(tmp_path, [("nets/msdnet.py", "def msdnet40(", "def _unused():\n    return 1\n\n\ndef msdnet40(")])
    assert _list(root) == shipped  # code no artifact reaches
    root = _scratch(
        tmp_path / "b",
        [
            (
                "nets/models.py",
                "def alexnet(num_classes: int) -> MultiExitNet:\n",
                "def alexnet(num_classes: int) -> MultiExitNet:\n    num_classes = num_classes + 0\n",
            )
        ],
    )
    states = _list(root)
    stale = {name for name, state in states.items() if state != "current"}
    assert stale and all("alexnet-" in name for name in stale), stale
    assert {name for name in states if "-alexnet-" in name and "b_alexnet" not in name} == stale
