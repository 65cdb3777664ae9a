"""Paper B's real mode against its simulator (notebook ``29_B_fig1_fig2_real_mode``, Figs. 1 and 2).

The same samples run twice per policy: on this CPU against one wall-clock deadline each (:func:`.elastic.run_real`:
conv parts and branches timed as they run, re-plans on the same clock), and in the simulator of Figs. 8-13
(:func:`.elastic.simulate`: the ET-profile's mean times, search and prediction costing no time, several preemption
draws per sample). Differences are paired over the samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..nets.multiexit import MultiExitNet
from . import elastic


def compare(
    model: MultiExitNet,
    x_uint8: torch.Tensor,
    labels: np.ndarray,
    dataset_name: str,
    profiles: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    policies: dict[str, object],
    deadline_s: np.ndarray,
    runs: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Every policy of ``policies`` in real mode (deadline ``deadline_s`` per sample) and simulated (``runs``
    uniform draws per sample) on the samples ``x_uint8`` / ``labels``, whose ``profiles`` are (``tc``, ``tb``, conf,
    correct): per policy the share of samples with a result, their accuracy in real mode and simulated, and two
    paired differences with their standard errors (pp): *more results*, the policy's results returned against the
    first policy's (Fig. 1: the classic network), and *real minus simulated* accuracy."""
    tc, tb, conf, correct = profiles
    rows, reference = [], None
    for name, policy in policies.items():
        real = elastic.run_real(model, x_uint8, dataset_name, tc, tb, policy, deadline_s)
        sim = elastic.simulate(tc, tb, conf, correct, policy, runs=runs, seed=seed, progress=False)
        returned = real["exit"] >= 0
        right = returned & (real["pred"] == labels)
        reference = returned if reference is None else reference
        more, more_se = elastic.paired(returned, reference)
        gap, gap_se = elastic.paired(right, sim.sample_accuracy)
        rows.append({
            "policy": name, "result returned (%)": 100 * float(returned.mean()), "more results (pp)": more,
            "more results se (pp)": more_se, "accuracy, real (%)": 100 * float(right.mean()),
            "accuracy, simulated (%)": 100 * sim.accuracy, "real minus simulated (pp)": gap,
            "real minus simulated se (pp)": gap_se, "branches run": float(real["branches"].mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)
