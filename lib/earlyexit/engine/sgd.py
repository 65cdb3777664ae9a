"""The one SGD epoch that trains every network here: the multi-exit networks (Paper A Eq. (5),
:mod:`.training`), Paper A's Exit Predictor (Eq. (6)) and Paper B's CS-Predictor (Eq. (3)).

A caller says what differs -- the rows and their order, the loss of a batch, the learning-rate schedule,
gradient clipping -- and :func:`epoch` does the rest the same way for all three. The two image networks
share their seeding and schedule too (:func:`.training.image_epoch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    order: Tensor,
    batch_size: int,
    loss_of: Callable[[Tensor], Tensor],
    *,
    lr: Callable[[float], float] | None = None,
    clip: float | None = None,
    bar: tqdm | None = None,
) -> float:
    """One epoch of SGD over ``order`` in batches of ``batch_size``; returns the mean loss of its steps.

    ``loss_of(rows)`` is the loss of one batch of rows. ``lr(t)``, when given, sets the learning rate of
    the step that starts at fraction ``t`` of the epoch (else the optimiser keeps its own); ``clip`` clips
    the gradient norm. Losses are summed on the device, in float64, and read once at the end (no host
    synchronisation per step; the same sum as adding Python floats).
    """
    steps = math.ceil(len(order) / batch_size)
    model.train()
    total = torch.zeros((), dtype=torch.float64)
    for step in range(steps):
        rows = order[step * batch_size : (step + 1) * batch_size]
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr(step / steps)
        loss = loss_of(rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        total = total.to(loss.device) + loss.detach().double()
        if bar is not None:
            bar.update(1)
    mean = total.item() / steps
    if bar is not None:
        bar.set_postfix(loss=f"{mean:.4f}")
    return mean
