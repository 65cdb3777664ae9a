"""Measured reasons why a claim does not hold on our networks, computed from their artifacts.

Each function returns one short sentence, or "" when the artifact is not there (a profile that did not
train the network) or shows nothing to report.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..core import paper
from ..engine.training import TrainConfig, recipe
from .registry import Tables

#: The papers' training epochs (Paper A §V-A: 220; Paper B §VI-A: 300).
PAPER_EPOCHS = {"A": 220, "B": 300}
NAMES = {"alexnet": "AlexNet", "vgg16bn": "VGG16-BN", "vgg16bn_light": "VGG16-BN (light exits)", "resnet44": "ResNet44"}
NAMES |= {"resnet44_3exit": "ResNet44 (3 early exits)", **paper.B_MODEL_NAMES}
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}
#: Paper B's display names -> our model names.
B_MODELS = {name: model for model, name in paper.B_MODEL_NAMES.items()}


def _exits(tables: Tables, model: str, dataset: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
    try:
        run = tables.artifact(model, dataset)
    except Exception:  # not trained in this profile, or stale: nothing to diagnose from
        return None
    return run.manifest, np.asarray(run["test_conf"], dtype=np.float64), np.asarray(run["test_correct"], dtype=bool)


def network(model: str, dataset: str) -> str:
    return f"{NAMES.get(model, model)} / {DATASETS.get(dataset, dataset)}"


def training(tables: Tables, model: str, dataset: str) -> str:
    """Epochs trained against the paper's, and the last exit's accuracy against the paper's backbone."""
    found = _exits(tables, model, dataset)
    if found is None:
        return ""
    manifest, _, correct = found
    printed = paper.A_TABLE1.get((dataset, model), (None,))[0]
    against = f" (paper {printed:.2f} %)" if printed else ""
    return (
        f"{network(model, dataset)} trained {manifest['params']['epochs']} of the paper's "
        f"{PAPER_EPOCHS[recipe(model)]} epochs: last exit {100 * correct[:, -1].mean():.1f} %{against}"
    )


#: The training parameters that make two runs one recipe: every field of TrainConfig but the seed, the precision and
#: the test slice.
RECIPE = tuple(f.name for f in fields(TrainConfig) if f.name not in {"seed", "precision", "test_per_class"})


def unequal_training(tables: Tables, models: tuple[str, str], dataset: str) -> str:
    """Why two networks compared on one dataset are not like for like: the recipe parameters they were trained
    with that differ ("" when they agree, or when either is not trained in this profile)."""
    found = [_exits(tables, model, dataset) for model in models]
    if None in found:
        return ""
    first, second = (run[0]["params"] for run in found)
    differ = [
        f"{key} {first.get(key)} against {second.get(key)}" for key in RECIPE if first.get(key) != second.get(key)
    ]
    if not differ:
        return ""
    names = " and ".join(NAMES.get(model, model) for model in models)
    return f"{names} on {DATASETS.get(dataset, dataset)} were trained differently ({', '.join(differ)}): not counted"


def overconfidence(tables: Tables, model: str, dataset: str) -> str:
    """Mean confidence minus accuracy of the exits, in pp (the confidences Algorithm 1 relies on)."""
    found = _exits(tables, model, dataset)
    if found is None:
        return ""
    _, conf, correct = found
    gap = 100 * (conf.mean(0) - correct.mean(0))
    return f"{network(model, dataset)}'s exits are over-confident by {gap.mean():+.1f} pp on average (max {gap.max():+.1f})"


def degenerate(tables: Tables, model: str, dataset: str) -> str:
    """A last exit less accurate than an earlier one (a network far from converged, or overthinking)."""
    found = _exits(tables, model, dataset)
    if found is None:
        return ""
    _, _, correct = found
    accuracy = 100 * correct.mean(0)
    best = int(np.argmax(accuracy[:-1]))
    if accuracy[-1] >= accuracy[best]:
        return ""
    return (
        f"{network(model, dataset)}'s last exit ({accuracy[-1]:.1f} %) is below exit {best + 1} "
        f"({accuracy[best]:.1f} %)"
    )


def timing() -> str:
    """Where our times come from, against the paper's machine."""
    return "our times are measured on this project's CPU, the paper's on an RTX-3090 server with a Core i7-10400"
