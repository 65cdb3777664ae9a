"""Jobs at once: a pool of ``jobs`` slots, each with its own GPU (round robin) or share of the cores.

Used by ``python -m earlyexit.pipeline --jobs N`` (notebooks, each started once the jobs whose outputs it
reads are done) and the GPU bundle (training processes). Small networks leave a GPU mostly idle, so several
jobs share one; each job is its own process with its own checkpoint, and the environment of a slot
(:func:`slot_env`) says which GPU it sees and how many CPU threads it may use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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


def run_pool(
    tasks: Sequence[T],
    jobs: int,
    work: Callable[[T, dict[str, str]], R],
    after: Sequence[Collection[int]] | None = None,
) -> list[R | None]:
    """``work(task, env)`` for every task, ``jobs`` at a time; results in the order of ``tasks``.

    ``after[i]`` lists the earlier tasks (by index) that task ``i`` waits for: it starts once they all
    returned a true value, and is skipped (its result ``None``) when one of them returned a false one or
    was skipped. A free slot takes the first ready task in the order of ``tasks``; ``env`` is that slot's
    (:func:`slot_env`). After an exception no task starts; it is raised once the running tasks end.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    after = [set(a) for a in after] if after is not None else [set() for _ in tasks]
    if len(after) != len(tasks) or any(not a <= set(range(i)) for i, a in enumerate(after)):
        raise ValueError("after must list, for each task, indices of earlier tasks only")
    gpus, free = visible_gpus(), list(range(jobs))[::-1]
    done: dict[int, R | None] = {}
    pending, running, error = list(range(len(tasks))), {}, None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            for i in list(pending):  # in order, so that a skip reaches what waits for the skipped task
                if any(d in done and not done[d] for d in after[i]):
                    pending.remove(i)
                    done[i] = None  # skipped: what it waits for stopped or was skipped
            for i in [i for i in pending if error is None and after[i] <= done.keys()][: len(free)]:
                pending.remove(i)
                slot = free.pop()
                running[pool.submit(work, tasks[i], slot_env(slot, jobs, gpus))] = (i, slot)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i, slot = running.pop(future)
                free.append(slot)
                try:
                    done[i] = future.result()
                except BaseException as err:  # noqa: BLE001 -- raised below, once the running tasks end
                    done[i], error = None, error or err
    if error is not None:
        raise error
    return [done.get(i) for i in range(len(tasks))]
