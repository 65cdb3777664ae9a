"""Architecture diagrams drawn from the model definitions (Paper A Figs. 2 and 6, Paper B Fig. 3).

A network is read, never described by hand: :func:`layer_rows` runs a module's children one after
the other on a zero input, merging each convolution with the BatchNorm and ReLU that follow it, and
reports for every row its label, output shape and ptflops MFLOPs. :func:`draw_multiexit` lays the
stages of a :class:`MultiExitNet` left to right with their exits below and the device / edge-server
partition (after the last early exit) as a dashed line; :func:`draw_chain` draws a plain stack of
layers (the Exit Predictor); :func:`draw_compact` fits networks with many exits (Paper B Fig. 3),
:func:`expectation_steps` splits Paper B's accuracy expectation into the intervals of its Fig. 7, and
:func:`draw_trace` / :func:`draw_plans` lay out a real-mode run of the elastic runtime (Paper B Figs. 1, 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn

from ..nets.flops import module_flops
from ..nets.multiexit import MultiExitNet
from .elastic import Trace

_FOLLOWERS = (nn.BatchNorm2d, nn.ReLU)


@dataclass(frozen=True)
class Row:
    """One drawn layer (or merged conv + BN + ReLU): its label, output shape and MFLOPs."""

    label: str
    shape: tuple[int, ...]
    mflops: float


def describe(module: nn.Module) -> str:
    """A short label of a layer: ``conv 3x3 64 /2``, ``dw-conv 3x3 /2``, ``FC 4096``, ``max-pool 2`` ..."""
    if isinstance(module, nn.Conv2d):
        kind = "dw-conv" if module.groups > 1 and module.groups == module.in_channels else "conv"
        k = "x".join(map(str, module.kernel_size))
        stride = f" /{module.stride[0]}" if module.stride[0] > 1 else ""
        return f"{kind} {k}, {module.out_channels}{stride}"
    if isinstance(module, nn.ConvTranspose2d):
        return f"deconv {module.kernel_size[0]}x{module.kernel_size[1]}, {module.out_channels}"
    if isinstance(module, nn.Linear):
        return f"FC {module.out_features}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        return f"{kind}-pool {module.kernel_size}"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global avg-pool" if module.output_size in (1, (1, 1)) else f"avg-pool to {module.output_size}"
    names = {"BasicBlock": "residual block", "Bottleneck": "bottleneck unit", "SeparableBlock": "DS block + Cat. + SE"}
    name = type(module).__name__
    if name == "SeparableBlock" and module.pool is None:
        return "DS block"
    return names.get(name, name.lower())


def _flat(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module``, nested ``nn.Sequential`` containers opened."""
    if not isinstance(module, nn.Sequential):
        return [module]
    return [layer for child in module.children() for layer in _flat(child)]


def _groups(module: nn.Module) -> list[list[nn.Module]]:
    """Children of ``module`` grouped: a conv with the BN/ReLU after it; flatten, dropout and bare
    activations joined to the row before them (they change nothing a reader needs)."""
    groups: list[list[nn.Module]] = []
    children = _flat(module)
    for child in children:
        quiet = isinstance(child, (nn.Flatten, nn.Dropout, nn.Identity)) or isinstance(child, _FOLLOWERS)
        if groups and quiet:
            groups[-1].append(child)
        else:
            groups.append([child])
    return groups


def _label(group: list[nn.Module]) -> str:
    extra = [n for m, n in ((nn.BatchNorm2d, "BN"), (nn.ReLU, "ReLU")) if any(isinstance(g, m) for g in group[1:])]
    return describe(group[0]) + (" + " + " + ".join(extra) if extra else "")


@torch.no_grad()
def layer_rows(module: nn.Module, x: torch.Tensor) -> tuple[list[Row], torch.Tensor]:
    """The rows of ``module`` on input ``x`` (batch 1) and its output."""
    rows = []
    for group in _groups(module):
        part = nn.Sequential(*group).eval()
        flops = module_flops(part, x)
        shown = x
        for layer in group:  # the shape a reader expects: before a trailing flatten or dropout
            x = layer(x)
            if not isinstance(layer, (nn.Flatten, nn.Dropout, nn.Identity)):
                shown = x
        rows.append(Row(_label(group), tuple(shown.shape[1:]), flops / 1e6))
    return rows, x


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _box(ax, x: float, y: float, width: float, rows: list[Row], title: str, color: str) -> float:
    """Draw a box of ``rows`` with its top-left corner at (x, y); returns its height."""
    height = 0.34 * (len(rows) + 1) + 0.1
    ax.add_patch(FancyBboxPatch((x, y - height), width, height, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=0.8))
    total = sum(r.mflops for r in rows)
    ax.text(x + 0.08, y - 0.26, f"{title}  ({total:.2f} MFLOPs)", fontsize=6.5, weight="bold", va="center")
    for i, r in enumerate(rows):
        ax.text(x + 0.08, y - 0.26 - 0.34 * (i + 1), f"{r.label}", fontsize=5.6, va="center")
        ax.text(
            x + width - 0.08,
            y - 0.26 - 0.34 * (i + 1),
            f"{_shape(r.shape)} | {r.mflops:.2f}",
            fontsize=5.6,
            va="center",
            ha="right",
            color="0.25",
        )
    return height


def draw_multiexit(
    model: MultiExitNet, input_shape: tuple[int, ...] = (3, 32, 32), title: str = "", box_width: float = 3.6
) -> plt.Figure:
    """Stages left to right, each exit under its stage, the partition after the last early exit.

    Every row reads ``layer | output shape | MFLOPs``; box titles carry the part's total (Paper A's
    :math:`O_{l_n}` and :math:`O_{e_n}`, Table V).
    """
    n = model.num_exits
    stage_rows, exit_rows = [], []
    h = torch.zeros(1, *input_shape)
    for k in range(n):
        rows, h = layer_rows(model.stages[k], h)
        stage_rows.append(rows)
        exit_rows.append(layer_rows(model.exits[k], h)[0])
    gap = 0.5
    top_height = max(0.34 * (len(r) + 1) + 0.1 for r in stage_rows)
    bottom_height = max(0.34 * (len(r) + 1) + 0.1 for r in exit_rows)
    fig_w = n * (box_width + gap) + gap
    fig_h = top_height + bottom_height + 1.4
    fig, ax = plt.subplots(figsize=(fig_w * 0.95, fig_h * 0.95))
    for k in range(n):
        x = gap + k * (box_width + gap)
        server = k == n - 1
        _box(
            ax,
            x,
            fig_h - 0.5,
            box_width,
            stage_rows[k],
            f"stage {k + 1}" + (" (server)" if server else ""),
            "#dde8f5" if not server else "#f1e3d3",
        )
        y_exit = fig_h - 0.5 - top_height - 0.5
        _box(
            ax,
            x,
            y_exit,
            box_width,
            exit_rows[k],
            f"exit {k + 1}" + (" (final)" if server else ""),
            "#e3f1dd" if not server else "#f1e3d3",
        )
        ax.annotate(
            "",
            xy=(x + box_width / 2, y_exit),
            xytext=(x + box_width / 2, fig_h - 0.5 - top_height),
            arrowprops={"arrowstyle": "->", "lw": 0.8},
        )
        if k:
            ax.annotate(
                "", xy=(x, fig_h - 0.7), xytext=(x - gap, fig_h - 0.7), arrowprops={"arrowstyle": "->", "lw": 0.8}
            )
    cut = gap + (n - 1) * (box_width + gap) - gap / 2
    ax.axvline(cut, color="C3", ls="--", lw=1)
    ax.text(cut - 0.05, 0.15, "device", ha="right", fontsize=7, color="C3")
    ax.text(cut + 0.05, 0.15, "edge server", ha="left", fontsize=7, color="C3")
    ax.set_xlim(0, fig_w)
    ax.set_ylim(0, fig_h)
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    return fig


def draw_chain(
    module: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32), title: str = "", width: float = 4.6
) -> plt.Figure:
    """One box of a module's rows (``layer | output shape | MFLOPs``), e.g. the Exit Predictor of Fig. 6."""
    rows, _ = layer_rows(module, torch.zeros(1, *input_shape))
    height = 0.34 * (len(rows) + 1) + 0.6
    fig, ax = plt.subplots(figsize=(width * 0.95, height * 0.95))
    _box(ax, 0.1, height - 0.25, width - 0.2, rows, title or type(module).__name__, "#dde8f5")
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig


def _short(rows: list[Row]) -> str:
    """The label of a part's first computing row, shortened for a compact box (``conv 3x3, 64``)."""
    return rows[0].label.split(" + ")[0] if rows else "(no layers)"


def draw_compact(
    model: nn.Module,
    input_shape: tuple[int, ...] = (3, 32, 32),
    title: str = "",
    box: float = 1.25,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """One small box per part, left to right: for a :class:`MultiExitNet` every stage with its branch
    beneath (``exit k`` and its MFLOPs), for a plain ``nn.Sequential`` every layer (a single-exit network).

    Meant for networks with many exits (Paper B Fig. 3), where :func:`draw_multiexit` would be too wide.
    """
    h = torch.zeros(1, *input_shape)
    parts: list[tuple[list[Row], list[Row] | None]] = []
    if isinstance(model, MultiExitNet):
        for k in range(model.num_exits):
            rows, h = layer_rows(model.stages[k], h)
            parts.append((rows, layer_rows(model.exits[k], h)[0]))
    else:
        parts = [([row], None) for row in layer_rows(model, h)[0]]
    gap = 0.25
    width = len(parts) * (box + gap) + gap
    if ax is None:
        _, ax = plt.subplots(figsize=(width * 0.55, 2.3))
    for k, (rows, exit_rows) in enumerate(parts):
        x = gap + k * (box + gap)
        mflops = sum(r.mflops for r in rows)
        shape = _shape(rows[-1].shape) if rows else "-"
        ax.add_patch(FancyBboxPatch((x, 1.3), box, 0.8, boxstyle="round,pad=0.02", fc="#dde8f5", ec="0.3", lw=0.6))
        ax.text(x + box / 2, 1.7, f"{_short(rows)}\n{shape}\n{mflops:.2f} MF", ha="center", va="center", fontsize=4.6)
        if k:
            ax.annotate("", xy=(x, 1.7), xytext=(x - gap, 1.7), arrowprops={"arrowstyle": "->", "lw": 0.5})
        if exit_rows is not None:
            color = "#e3f1dd" if k < len(parts) - 1 else "#f1e3d3"
            ax.add_patch(FancyBboxPatch((x, 0.1), box, 0.7, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=0.6))
            ax.text(
                x + box / 2,
                0.45,
                f"exit {k + 1}\n{sum(r.mflops for r in exit_rows):.2f} MF",
                ha="center",
                va="center",
                fontsize=4.6,
            )
            ax.annotate(
                "", xy=(x + box / 2, 0.8), xytext=(x + box / 2, 1.3), arrowprops={"arrowstyle": "->", "lw": 0.5}
            )
    ax.set_xlim(0, width)
    ax.set_ylim(0, 2.3)
    ax.axis("off")
    ax.set_title(title, fontsize=7)
    return ax


@dataclass(frozen=True)
class Step:
    """One interval of Paper B's Fig. 7: from ``start`` to ``end`` the latest output has confidence
    ``conf``; ``mass`` is the preemption probability of the interval, ``share`` its part of the
    expectation (``conf * mass`` over Algorithm 1's value)."""

    start: float
    end: float
    conf: float
    mass: float
    share: float


def expectation_steps(tc, tb, conf, plan, cdf=None, c0: float = 0.0) -> list[Step]:
    """The intervals Algorithm 1 sums for ``plan`` (Paper B Eq. (5), Fig. 7): a new interval starts when
    an executed branch outputs; the last one holds until ``T = sum(tc) + sum(tb)``.

    ``cdf`` maps a time in ``[0, T]`` to the preemption CDF (None: uniform). The sum of ``conf * mass``
    is :func:`earlyexit.paper_b.search.expectation` (``expectation_cdf`` for another law; tested).
    """
    tc, tb, conf = (np.asarray(a, dtype=np.float64) for a in (tc, tb, conf))
    total = tc.sum() + tb.sum()
    cdf = cdf or (lambda t: t / total)
    bounds, levels, t, c = [0.0], [c0], 0.0, c0
    for k, run in enumerate(np.asarray(plan, dtype=bool)):
        t += tc[k] + (tb[k] if run else 0.0)
        if run:
            bounds.append(t)
            c = conf[k]
            levels.append(c)
    bounds.append(total)
    masses = [cdf(b) - cdf(a) for a, b in zip(bounds, bounds[1:])]
    value = sum(c * m for c, m in zip(levels, masses))
    return [Step(a, b, c, m, c * m / value if value else 0.0) for a, b, c, m in zip(bounds, bounds[1:], levels, masses)]


#: Colours of a real-mode trace: conv part, branch counted, branch too late, re-plan (CS-Predictor + search).
TRACE_COLORS = {"part": "0.72", "branch": "C0", "late": "C3", "plan": "C1"}


def draw_trace(ax, trace: Trace, y: float, name: str, label: int | None = None) -> None:
    """One real-mode run as a row of bars at height ``y`` (ms on the x axis): conv parts, branches (red
    when they finished after the deadline, exit number above), re-plans, the deadline as a black tick,
    and the result returned at the deadline written after it (checked against the true ``label``)."""
    for e in trace.events:
        color = TRACE_COLORS["late" if e.kind == "branch" and not e.counted else e.kind]
        height = 0.6 if e.kind == "part" else 0.35
        ax.broken_barh(
            [(1e3 * e.start, max(1e3 * (e.end - e.start), 1e-3))], (y - height / 2, height), color=color, lw=0
        )
        if e.kind == "branch":
            ax.text(1e3 * (e.start + e.end) / 2, y + 0.36, f"{e.exit + 1}", ha="center", va="bottom", fontsize=6)
    deadline = 1e3 * trace.deadline
    ax.plot([deadline, deadline], [y - 0.45, y + 0.45], color="k", lw=1.6)
    if trace.exit < 0:
        result = "no result"
    else:
        conf = next(e.conf for e in trace.events if e.kind == "branch" and e.exit == trace.exit)
        verdict = "" if label is None else (", right" if trace.pred == label else ", wrong")
        result = f"exit {trace.exit + 1}: class {trace.pred}{verdict} (confidence {conf:.2f})"
    ax.text(deadline + 0.15, y, result, va="center", fontsize=7, fontweight="bold")
    ax.text(-0.2, y, name, ha="right", va="center", fontsize=7)


def draw_plans(ax, trace: Trace, exits: int) -> None:
    """The plan in force after each of the run's decisions (rows, top to bottom, at the time it was
    made) over the exits (columns): run, skip, or already behind."""
    grid = np.zeros((len(trace.plans), exits))
    passed = [-1] + [e.exit for e in trace.events if e.kind == "plan"]
    for r, ((_, plan), done) in enumerate(zip(trace.plans, passed)):
        grid[r] = np.where(np.arange(exits) <= done, 0.1, np.where(plan, 0.9, 0.4))
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        text, color = {0.9: ("run", "white"), 0.4: ("skip", "black")}.get(v, ("done", "0.5"))
        ax.text(c, r, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(exits), [f"exit {k + 1}" for k in range(exits)], fontsize=6)
    ax.set_yticks(range(len(trace.plans)), [f"{1e3 * t:.2f} ms" for t, _ in trace.plans], fontsize=6)
    ax.grid(False)
