"""Paper B §VI-B3 (Fig. 10): the single-exit networks EINet is compared with under unpredictable preemption.

Fig. 10 sets EINet against a *classic* network (one exit, at the end), a *compressed* one (also one
exit) and a multi-exit network without planner (every branch), all "MSDNet adaptations of the same
total execution time". The paper does not say how the equal time is built; we read it as: every
contender is adapted from the *same* trained multi-exit network and faces the *same* preemption law,
that of the multi-exit network (uniform on ``[0, T]``, ``T`` its total time with every branch, §VI-A):

* **classic** (:func:`single_exit`): the multi-exit network without its intermediate branches, its
  backbone and final classifier unchanged (so its accuracy is the last exit's);
* **compressed** (:func:`compress`): the classic network filter-pruned as Li et al. (the filters of
  lowest l2-norm, every convolution the same fraction, channels removed physically with
  ``torch-pruning``, the final FC layer kept) to ``flops_fraction`` of its FLOPs -- the uniform
  pruning ratio is found by bisection until the FLOPs are within :data:`FLOPS_TOLERANCE` of the
  target -- then fine-tuned on its one exit with the pruning stage's recipe (``pruning.FINETUNE``);
* a single-exit network produces its result at its own total time ``t`` if the preemption ``tau``
  comes later (``tau >= t``), else nothing, which counts as wrong (:func:`preempted_accuracy`).

The stage (:func:`adapt_and_profile`) measures, in one run on one machine, the per-sample time of
the multi-exit network part by part (its ET-profile), of the classic and of the compressed network
(batch 1, as :func:`et_profile.measure_et_profile`), so that the three are comparable: Fig. 10's
notebook plans and scores every contender on these times.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import data
from ..core.fingerprint import fingerprint
from ..engine import artifacts, derived, provenance, pruning
from ..engine.stage import Stage, training_source
from ..engine.training import ET_SAMPLES, RECORDED, predict, train, write_artifact
from ..nets import et_profile
from ..nets.flops import module_flops
from ..nets.models import BUILDERS, ZOO
from ..nets.multiexit import MultiExitNet
from . import baselines, elastic, search

#: Relative tolerance of the compressed network's FLOPs around ``flops_fraction`` of the classic's.
FLOPS_TOLERANCE = 0.02


def single_exit(model: MultiExitNet) -> MultiExitNet:
    """The classic network of ``model``: its whole backbone as one stage and its final classifier as the
    one exit (the modules are shared with ``model``, not copied)."""
    return MultiExitNet([nn.Sequential(*model.stages)], [model.exits[-1]], (1.0,))


def final_fc(model: MultiExitNet) -> nn.Linear:
    """The last fully-connected layer of the last exit: what filter pruning keeps whole."""
    return [m for m in model.exits[-1].modules() if isinstance(m, nn.Linear)][-1]


def prune_all(model: MultiExitNet, ratio: float, input_shape: tuple[int, ...]) -> MultiExitNet:
    """:func:`pruning.prune_by_magnitude` of every convolution of ``model``: nothing is kept whole but the final
    FC layer (in place)."""
    return pruning.prune_by_magnitude(model, ratio, input_shape, [final_fc(model)])


def flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (ptflops MACs) of one forward pass of ``model`` on one input of ``input_shape``."""
    return module_flops(model.cpu().eval(), torch.zeros(1, *input_shape))


@dataclass(frozen=True)
class Compressed:
    """A network pruned to a FLOPs target: the network, the uniform pruning ratio that got there and
    the FLOPs before and after."""

    model: MultiExitNet
    ratio: float
    flops_before: int
    flops_after: int

    @property
    def fraction(self) -> float:
        return self.flops_after / self.flops_before


def compress(
    classic: MultiExitNet,
    flops_fraction: float,
    input_shape: tuple[int, ...],
    tolerance: float = FLOPS_TOLERANCE,
    steps: int = 30,
) -> Compressed:
    """A pruned copy of ``classic`` whose FLOPs are ``flops_fraction`` of its own within ``tolerance``
    (relative), by bisection on the uniform pruning ratio (FLOPs fall as the ratio grows).

    A ValueError names the nearest fraction reached when channel rounding makes the target unreachable.
    """
    if not 0.0 < flops_fraction < 1.0:  # False for NaN
        raise ValueError(
            f"flops_fraction is the share of the classic network's FLOPs the compressed one keeps, "
            f"in (0, 1); got {flops_fraction}"
        )
    before = flops(classic, input_shape)
    lo, hi, best = 0.0, 0.99, None
    for _ in range(steps):
        ratio = (lo + hi) / 2
        pruned = prune_all(copy.deepcopy(classic), ratio, input_shape)
        candidate = Compressed(pruned, ratio, before, flops(pruned, input_shape))
        if best is None or abs(candidate.fraction - flops_fraction) < abs(best.fraction - flops_fraction):
            best = candidate
        if abs(candidate.fraction - flops_fraction) <= tolerance * flops_fraction:
            return candidate
        lo, hi = (ratio, hi) if candidate.fraction > flops_fraction else (lo, ratio)
    raise ValueError(
        f"no uniform pruning ratio brings this network to {flops_fraction:.3f} of its FLOPs within "
        f"{tolerance:.0%} (nearest: {best.fraction:.3f} at ratio {best.ratio:.3f}); choose another "
        "flops_fraction or a wider tolerance"
    )


def preempted_accuracy(
    time_s: float,
    correct: np.ndarray,
    total: float,
    preemption: elastic.Preemption = elastic.Preemption(),
    runs: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Accuracy per run of a single-exit network that answers at ``time_s`` under preemption on ``[0, total]``.

    A sample is right when its preemption time is at least ``time_s`` and its one exit is correct; a
    sample preempted earlier has no result. The draws are :func:`elastic.simulate`'s for the same
    ``seed``, ``runs`` and number of samples, so the contenders of Fig. 10 meet the same preemptions.
    """
    correct = np.asarray(correct)
    if (
        correct.ndim != 1
        or correct.size == 0
        or (correct.dtype != np.bool_ and not np.all((correct == 0) | (correct == 1)))
    ):
        raise ValueError("correct is the single exit's correctness per sample: a non-empty boolean (or 0/1) vector")
    if not (np.isfinite(time_s) and np.isfinite(total) and 0.0 <= time_s and total > 0.0):
        raise ValueError(f"need a finite answer time >= 0 and a positive horizon total; got {time_s}, {total}")
    rng = np.random.default_rng(seed)
    hits = correct.astype(bool)
    return np.array([(hits & (time_s <= preemption.sample(rng, total, hits.size))).mean() for _ in range(runs)])


# ---------------------------------------------------------------------------------- the stage


def check_fraction(flops_fraction: float) -> float:
    """``flops_fraction`` if it is a share of FLOPs in (0, 1), else a ValueError saying so."""
    if (
        isinstance(flops_fraction, bool)
        or not isinstance(flops_fraction, (int, float))
        or not 0.0 < flops_fraction < 1.0
    ):
        raise ValueError(
            f"flops_fraction must be a number in (0, 1), the share of the classic network's FLOPs the "
            f"compressed network keeps; got {flops_fraction!r}"
        )
    return float(flops_fraction)


def adapt_params(
    model_name: str, dataset: str, profile: str, flops_fraction: float, source_npz_sha256: str, **overrides
) -> dict:
    """The parameters a single-exit artifact records and must match to be current."""
    return {
        "stage": "single_exit",
        "model": model_name,
        "dataset": dataset,
        "profile": profile,
        "flops_fraction": check_fraction(flops_fraction),
        "flops_tolerance": FLOPS_TOLERANCE,
        "source_npz_sha256": source_npz_sha256,
        "et_samples": ET_SAMPLES[profile],
        "finetune": asdict(pruning.finetune_config(profile, model_name, **overrides)),
    }


def run_dir(artifact_root: str | Path, profile: str, model_name: str, dataset: str, flops_fraction: float) -> Path:
    """The folder of a single-exit artifact, beside its training artifact: e.g. ``flexvgg16-cifar100-single50``."""
    return artifacts.run_dir(artifact_root, profile, model_name, dataset).with_name(
        f"{model_name}-{dataset}-single{round(100 * check_fraction(flops_fraction)):02d}"
    )


def _per_sample_time(model: MultiExitNet, x: torch.Tensor, dataset: str, samples: int) -> dict:
    """Per-sample time of every part of ``model`` (batch 1, fp32), as the ET-profile is measured."""
    return et_profile.measure_et_profile(model.cpu().float().eval(), x, dataset, samples=samples)


def _total_time(model: MultiExitNet, x: torch.Tensor, dataset: str, samples: int) -> np.ndarray:
    """Per-sample time of a single-exit ``model``, its one stage and its exit (seconds)."""
    et = _per_sample_time(model, x, dataset, samples)
    return et["tc"].sum(1) + et["tb"].sum(1)


def code_roots(params: dict) -> tuple[tuple, tuple]:
    """What computes a single-exit job's artifact (:mod:`earlyexit.engine.provenance`):
    :func:`adapt_and_profile` and the builder of its network (the zoo's other builders are opaque)."""
    return (adapt_and_profile, BUILDERS[params["model"]]), ZOO + RECORDED


def adapt_and_profile(
    model_name: str,
    dataset: str,
    profile: str,
    flops_fraction: float,
    artifact_root: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    force: bool = False,
    **overrides,
) -> artifacts.Artifact:
    """The single-exit stage: classic and compressed networks from a trained job's weights, profiled.

    The artifact holds the compressed network's test CS-profile (``test_conf``, ``test_correct``, one
    exit; the classic's is the training artifact's last exit), the pruning ratio and FLOPs of both, and
    the per-sample times of one measuring run: ``me_tc``/``me_tb`` (the multi-exit network's conv parts
    and branches), ``classic_t`` and ``compressed_t``. Skipped while current; ``force`` redoes it.
    """
    source = pruning.load_artifact(artifact_root, profile, model_name, dataset, **overrides)
    params = adapt_params(model_name, dataset, profile, flops_fraction, source.manifest["npz_sha256"], **overrides)
    ds = data.load(dataset, data_dir)
    directory = run_dir(artifact_root, profile, model_name, dataset, flops_fraction)
    if not force:
        with contextlib.suppress(artifacts.ArtifactError):
            return artifacts.read(directory, params, ds.sha256)
    shape = tuple(ds.x_test.shape[1:])
    multi = pruning.trained_model(artifact_root, profile, model_name, dataset, **overrides)
    classic = single_exit(copy.deepcopy(multi))
    compressed = compress(classic, params["flops_fraction"], shape)
    cfg = pruning.finetune_config(profile, model_name, **overrides)
    history = train(
        compressed.model,
        ds,
        cfg,
        directory / "checkpoint.pt",
        progress,
        code_sha256=provenance.code_fingerprint(params),
        fresh=force,
    )
    idx = data.stratified_indices(ds.y_test, cfg.test_per_class, cfg.seed)
    x = ds.x_test[idx]
    arrays = artifacts.cs_profile(predict(compressed.model, x, ds.name, progress=progress), ds.y_test[idx], "test")
    samples = params["et_samples"]
    me = _per_sample_time(multi, x, ds.name, samples)
    arrays |= {
        "me_tc": me["tc"],
        "me_tb": me["tb"],
        "classic_t": _total_time(classic, x, ds.name, samples),
        "compressed_t": _total_time(compressed.model, x, ds.name, samples),
        "pruning_ratio": np.array(compressed.ratio),
        "classic_flops": np.array(compressed.flops_before),
        "compressed_flops": np.array(compressed.flops_after),
    }
    run = write_artifact(directory, arrays, params, ds, history)
    if profile == "smoke":
        (directory / "checkpoint.pt").unlink(missing_ok=True)
    return run


def load_single_exit(
    artifact_root: str | Path, profile: str, model_name: str, dataset: str, flops_fraction: float, **overrides
) -> artifacts.Artifact:
    """A current single-exit artifact (of the current training artifact), refused if missing, corrupt or stale."""
    source = artifacts.read_manifest(artifacts.run_dir(artifact_root, profile, model_name, dataset))
    params = adapt_params(model_name, dataset, profile, flops_fraction, source["npz_sha256"], **overrides)
    return artifacts.read(run_dir(artifact_root, profile, model_name, dataset, flops_fraction), params)


# ---------------------------------------------------------------------------------- Fig. 10


def contenders(n: int, cs, m: int = 5) -> dict[str, tuple[str, object]]:
    """Fig. 10's multi-exit contenders by name, (family, policy for :func:`elastic.simulate`): the network
    without planner (every branch), EINet (hybrid search) and the diagnosis rows (exact planner on the
    predicted and on the true scores), for a network of ``n`` exits."""
    return {
        "ME-NN (every branch)": ("ME-NN", np.ones(n, dtype=bool)),
        f"EINet hybrid m={m}": ("EINet", elastic.Dynamic(cs, "hybrid", m=m)),
        "EINet exact": ("diagnosis", elastic.Dynamic(cs, "exact")),
        "oracle + exact": ("diagnosis", elastic.Dynamic(elastic.Oracle(), "exact")),
    }


def compare(
    run: artifacts.Artifact,
    single: artifacts.Artifact,
    derived_dir: str | Path,
    profile: str,
    m: int = 5,
    runs: int = 10,
    seed: int = 0,
    preemption: elastic.Preemption = elastic.Preemption(),
) -> pd.DataFrame:
    """Fig. 10 on one trained network: accuracy (%, mean and spread over ``runs``) and total time (ms) of
    the classic, compressed, plannerless and EINet contenders, every one on the times the single-exit
    stage measured and scored on the scored half of the test set (:func:`baselines.halves`, the
    CS-Predictor of Figs. 8, 9 fitted on the other half); kept in ``derived_dir``."""
    params = run.manifest["params"]
    tc, tb = single["me_tc"].mean(0), single["me_tb"].mean(0)
    total = search.total_time(tc, tb)
    _, scored = baselines.halves(len(run["test_conf"]))
    conf, correct = run["test_conf"][scored], run["test_correct"][scored]
    if single["test_correct"].shape[0] != scored.size:
        raise ValueError(
            f"the single-exit artifact has {single['test_correct'].shape[0]} test samples, the training "
            f"artifact {scored.size}: rebuild it (pipeline --stages single-exit)"
        )

    def compute() -> pd.DataFrame:
        cs, _ = baselines.cs_predictor(run, derived_dir, profile, seed)
        rows = []
        for family, t, hits in (
            ("classic", single["classic_t"].mean(), correct[:, -1]),
            ("compressed", single["compressed_t"].mean(), single["test_correct"][scored, 0]),
        ):
            acc = preempted_accuracy(t, hits, total, preemption, runs, seed)
            rows.append(
                {
                    "family": family,
                    "method": family,
                    "accuracy": 100 * acc.mean(),
                    "spread": 100 * acc.std(),
                    "time_ms": 1e3 * t,
                }
            )
        for method, (family, policy) in contenders(single["me_tc"].shape[1], cs, m).items():
            result = elastic.simulate(tc, tb, conf, correct, policy, preemption, runs=runs, seed=seed, progress=False)
            rows.append(
                {
                    "family": family,
                    "method": method,
                    "accuracy": 100 * result.accuracy,
                    "spread": 100 * result.run_accuracy.std(),
                    "time_ms": 1e3 * total,
                }
            )
        return pd.DataFrame(rows).assign(model=params["model"], dataset=params["dataset"])

    key = {
        "artifact": derived.artifact_key(run),
        "single_exit": derived.artifact_key(single),
        "m": m,
        "runs": runs,
        "seed": seed,
        "preemption": asdict(preemption),
        "code": fingerprint(compare),
    }
    fraction = round(100 * single.manifest["params"]["flops_fraction"])
    return derived.frame(
        Path(derived_dir) / f"common-networks-single{fraction:02d}-{preemption.kind}.csv", key, compute
    )


#: The single-exit stage (:class:`earlyexit.engine.stage.Stage`): one job per ``[model, dataset, flops_fraction]``.
STAGE = Stage(
    kind="single_exit",
    fields=("model", "dataset", "flops_fraction"),
    on_training=True,
    check=lambda profile, job: {**job, "flops_fraction": check_fraction(job["flops_fraction"])},
    params=lambda profile, job, root: adapt_params(
        job["model"],
        job["dataset"],
        profile,
        job["flops_fraction"],
        training_source(root, profile, job),
        **job["overrides"],
    ),
    directory=lambda root, profile, job: run_dir(root, profile, job["model"], job["dataset"], job["flops_fraction"]),
    suffix=lambda job: f"-{job['model']}-{job['dataset']}-single{round(100 * job['flops_fraction']):02d}",
    label=lambda job: (
        f"{job['model']}, single exit pruned to {100 * job['flops_fraction']:.0f} % of its FLOPs, "
        "fine-tuned (Paper B Fig. 10)"
    ),
    code_roots=code_roots,
)
