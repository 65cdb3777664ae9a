"""FLOPs of every part of a multi-exit network, counted with ptflops as Paper A did (footnote 1).

ptflops reports multiply-accumulates (MACs) and Paper A calls them FLOPs; we keep the paper's word.
Pinned ptflops 0.6.9 (the papers' era) counts per forward call: a convolution as
output elements x (kernel area x input channels) (+ output elements for a bias), a linear layer as
in x out (+ out), a BatchNorm as 2 x elements, a ReLU or a pooling layer as its elements
(output for ReLU, input for pooling); functional calls (``torch.relu``, ``+``) are not counted.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import pandas as pd
import torch
from ptflops import get_model_complexity_info
from torch import nn

from ..core import paper
from .models import build_model
from .multiexit import MultiExitNet


@dataclass(frozen=True)
class PartFlops:
    """FLOPs (MACs) of one stage (:math:`O_{l_n}`) and of its exit (:math:`O_{e_n}`), with feature shapes.

    ``stage_output_shape`` is one shape, or one per scale for multi-scale features (MSDNet).
    """

    stage: int
    exit: int
    stage_output_shape: tuple


class _Call(nn.Module):
    """Wraps a part so ptflops receives its real input (a tensor or a list of them) as batch 1."""

    def __init__(self, part: nn.Module):
        super().__init__()
        self.part = part

    def forward(self, x):
        return self.part(x)


def module_flops(module: nn.Module, example: torch.Tensor | list[torch.Tensor]) -> int:
    """ptflops count of ``module`` on ``example`` (batch 1; a tensor or a list of per-scale tensors)."""
    was_training = module.training
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        macs, _ = get_model_complexity_info(
            _Call(module),
            (1,),
            as_strings=False,
            print_per_layer_stat=False,
            input_constructor=lambda _: {"x": example},
        )
    module.train(was_training)
    return int(macs)


def _shape(h: torch.Tensor | list[torch.Tensor]) -> tuple:
    return tuple(h.shape[1:]) if isinstance(h, torch.Tensor) else tuple(tuple(t.shape[1:]) for t in h)


def part_flops(model: MultiExitNet, input_shape: tuple[int, ...] = (3, 32, 32)) -> list[PartFlops]:
    """FLOPs of each stage and exit: the :math:`O_{l_n}, O_{e_n}` of Paper A Eq. (3) and Tables V/VI."""
    parts = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        h = torch.zeros(1, *input_shape)
        for n in range(model.num_exits):
            stage_flops = module_flops(model.stages[n], h)
            h = model.stages[n](h)
            parts.append(PartFlops(stage_flops, module_flops(model.exits[n], h), _shape(h)))
    model.train(was_training)
    return parts


def backbone_flops(parts: list[PartFlops]) -> int:
    """FLOPs of the backbone alone (every stage plus the final classifier), Paper A Table I."""
    return sum(p.stage for p in parts) + parts[-1].exit


def exit_feature_shapes(exit_module: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape of every convolution layer or residual block of an exit (Paper A Tables III/IV).

    A layer is reported after its BatchNorm/ReLU, i.e. at the end of each conv or residual block.
    """
    shapes: list[tuple[int, ...]] = []
    units = [m for m in exit_module.children() if isinstance(m, nn.Conv2d) or len(list(m.children())) > 0]
    hooks = [u.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for u in units]
    try:
        with torch.no_grad():
            exit_module.eval()(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _mflops(macs: int) -> float:
    return round(macs / 1e6, 2)


def _compare(rows: list[dict]) -> pd.DataFrame:
    """Add the relative difference of ours to the paper's number, in %."""
    df = pd.DataFrame(rows)
    df["diff_%"] = (100 * (df["ours"] - df["paper"]) / df["paper"]).round(2)
    return df


def table_backbone_mflops() -> pd.DataFrame:
    """Paper A Table I, MFLOPs column: backbone alone, ours beside the paper's."""
    rows = []
    for (dataset, backbone), (_, paper_mflops) in paper.A_TABLE1.items():
        ours = backbone_flops(part_flops(build_model(backbone, dataset)))
        rows.append({"dataset": dataset, "backbone": backbone, "paper": paper_mflops, "ours": _mflops(ours)})
    return _compare(rows)


def table_part_mflops(reference: dict[tuple[str, str], tuple[float, ...]]) -> pd.DataFrame:
    """Paper A Tables V/VI: O_l_n and O_e_n of every early exit, ours beside the paper's."""
    rows = []
    for (dataset, model), numbers in reference.items():
        parts = part_flops(build_model(model, dataset))
        ours = [v for p in parts[:-1] for v in (p.stage, p.exit)]
        names = [f"O_{kind}{n}" for n in range(1, len(parts)) for kind in ("l", "e")]
        rows += [
            {"dataset": dataset, "backbone": model, "part": name, "paper": ref, "ours": _mflops(v)}
            for name, ref, v in zip(names, numbers, ours)
        ]
    return _compare(rows)


def table_exit_shapes(reference: dict[str, list[list[tuple[int, int, int]]]]) -> pd.DataFrame:
    """Paper A Tables III/IV: output size of each layer/RB of each early exit, ours beside the paper's."""
    rows = []
    for model, exits in reference.items():
        net = build_model(model, "cifar10")
        for n, (expected, part) in enumerate(zip(exits, part_flops(net)), start=1):
            ours = exit_feature_shapes(net.exits[n - 1], part.stage_output_shape)
            for layer in range(max(len(expected), len(ours))):
                fmt = lambda shapes: "x".join(map(str, shapes[layer])) if layer < len(shapes) else ""
                rows.append(
                    {"backbone": model, "exit": n, "layer": layer + 1, "paper": fmt(expected), "ours": fmt(ours)}
                )
    df = pd.DataFrame(rows)
    df["match"] = df["paper"] == df["ours"]
    return df
