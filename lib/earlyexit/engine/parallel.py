"""Independent jobs at once: a pool of ``jobs`` slots, each with its own GPU (round robin) or share of the cores.

Used by ``python -m earlyexit.pipeline --jobs N`` (training notebooks) and the GPU bundle (training
processes). Small networks leave a GPU mostly idle, so several jobs share one; each job is its own process
with its own checkpoint, and the environment of a slot (:func:`slot_env`) says which GPU it sees and how
many CPU threads it may use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (none without CUDA)."""
    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [n.strip() for n in listed.split(",") if n.strip()] if listed else []
    return names or [str(i) for i in range(torch.cuda.device_count())]


def slot_env(slot: int, jobs: int, gpus: Sequence[str] = (), cores: int | None = None) -> dict[str, str]:
    """The environment of pool slot ``slot`` of ``jobs``: GPU ``gpus[slot % len(gpus)]`` alone, and
    ``cores // jobs`` CPU threads (at least 1), so that concurrent jobs do not oversubscribe the CPU."""
    threads = max(1, (cores or os.cpu_count() or 1) // jobs)
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def run_pool(tasks: Sequence[T], jobs: int, work: Callable[[T, dict[str, str]], R]) -> list[R]:
    """``work(task, env)`` for every task, ``jobs`` at a time, in order of ``tasks``; results in that order.

    A slot is taken by the next task as soon as its previous one ends; ``env`` is that slot's
    (:func:`slot_env`). The first exception is raised after the running tasks end.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    gpus, free = visible_gpus(), list(range(min(jobs, len(tasks))))[::-1]

    def in_slot(task: T) -> R:
        slot = free.pop()
        try:
            return work(task, slot_env(slot, jobs, gpus))
        finally:
            free.append(slot)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
        return list(pool.map(in_slot, tasks))
