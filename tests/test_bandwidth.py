"""Fig. 10's methods on a constructed setting: each against a hand computation or enumeration."""

import numpy as np
import pytest

from earlyexit.nets.flops import PartFlops
from earlyexit.paper_a import bandwidth, ep_inference, latency

PARTS = [
    PartFlops(20_000_000, 1_000_000, ()),
    PartFlops(30_000_000, 1_000_000, ()),
    PartFlops(200_000_000, 500_000, ()),
]


def setting(tau: float = 0.030) -> bandwidth.Setting:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=(400, 3))
    correct = rng.uniform(size=(400, 3)) < 0.3 + 0.6 * conf  # confident exits are right more often
    ratios = np.arange(8) / 8
    prune_correct = np.stack([correct[:, -1] & (rng.uniform(size=400) > r) for r in ratios])
    return bandwidth.Setting(
        conf,
        correct,
        PARTS,
        2_000_000.0,
        4096.0,
        ratios,
        4096.0 * (1 - ratios),
        prune_correct,
        rng.uniform(size=(400, 2)),
        400_000.0,
        latency.RPI3_FLOPS,
        tau,
    )


def test_backbone_sends_every_sample_after_the_on_device_layers():
    s = setting()
    sweep = bandwidth.backbone(s, [1.0, 10.0])
    device = (20e6 + 30e6 + 2e6) / latency.RPI3_FLOPS  # both on-device stages and the encoder, no exit
    assert sweep.device_latency == pytest.approx([device, device])
    assert sweep.latency == pytest.approx([device + 4096 / 1e6, device + 4096 / 1e7])
    assert sweep.accuracy == pytest.approx([s.correct[:, -1].mean()] * 2)


def test_static_methods_equal_algorithm_1_and_the_latency_model():
    s = setting()
    ee = bandwidth.static(s, [0.5], (0.9, 0.8))
    o = ep_inference.evaluate(s.conf, s.parts, (0.9, 0.8))
    share = np.mean(o.exit == 2)
    assert ee.accuracy[0] == pytest.approx(o.summary(s.correct)["accuracy"])
    assert ee.latency[0] == pytest.approx(
        latency.mean_latency(
            np.array([o.device_flops.mean() + 2e6 * share]),
            np.array([share]),
            4096,
            latency.RPI3_FLOPS,
            np.array([0.5e6]),
        )[0, 0]
    )
    ep = bandwidth.static(s, [0.5], (0.9, 0.8), (0.3, 0.6))
    assert ep.knobs["gamma2"][0] == 0.6 and ep.method == "EE+EP (Static)"
    same = bandwidth.static(s, [0.5, 5.0], 0.9)  # one threshold for both exits
    assert same.knobs["lam2"].tolist() == [0.9, 0.9] and bandwidth.on_device(s, same) == pytest.approx(
        same.device_latency
    )
    with pytest.raises(ValueError, match="needs the Exit Predictor's scores"):
        bandwidth.static(bandwidth.Setting(**{**s.__dict__, "scores": None}), [0.5], 0.9, 0.5)


def test_encoder_pruning_takes_the_smallest_ratio_that_meets_tau():
    s = setting()
    sweep = bandwidth.encoder_pruning(s, [1000.0, 0.15, 0.08, 0.001], (0.9, 0.8))
    o = ep_inference.evaluate(s.conf, s.parts, (0.9, 0.8))
    share = np.mean(o.exit == 2)

    def by_hand(ratio: float, mbps: float) -> float:  # Eq. (11) with the pruned encoder's FLOPs and bits
        return (o.device_flops.mean() + 2e6 * (1 - ratio) * share) / latency.RPI3_FLOPS + share * 4096 * (1 - ratio) / (
            mbps * 1e6
        )

    ratios = sweep.knobs["prune_ratio"]
    assert ratios[0] == 0.0 and 0.0 < ratios[1] < ratios[2] < 1.0  # more pruning on slower links
    for b, r, lat in zip(sweep.bandwidth_mbps[:3], ratios[:3], sweep.latency[:3]):
        assert lat == pytest.approx(by_hand(r, b)) and lat <= s.tau
        assert r == 0.0 or by_hand(r - 1 / 8, b) > s.tau  # one step less pruning would violate tau
    assert not sweep.meets_tau[3] and ratios[3] == s.prune_ratio[-1]  # nothing meets tau: the most pruned, flagged
    static = bandwidth.static(s, [1000.0], (0.9, 0.8))
    assert sweep.accuracy[0] == pytest.approx(static.accuracy[0])  # ratio 0: the codec as trained
    assert sweep.accuracy[2] < sweep.accuracy[0]


def test_adaptive_methods_follow_their_regressors_to_the_training_optima():
    s = setting()
    grid = np.round(np.arange(0.3, 1.0001, 0.1), 2)
    for kind in ("ee", "oracle", "ep"):
        cands = bandwidth.candidates(s, kind, grid, (0.0, 0.5))
        regs = bandwidth.fit_regressors(s, kind, cands)
        bws = [b for bs in bandwidth.TRAINING_MBPS.values() for b in bs]
        best = bandwidth.optimum(s, bws, kind, cands)
        fitted = regs(bws)
        targets = np.stack([np.asarray(t) for t in regs.optima["thresholds"]])
        assert np.abs(fitted - targets).max() < 0.05  # the regressors reproduce their training optima
        sweep = bandwidth.adaptive(s, bws, kind, regs)
        assert sweep.method == bandwidth.ADAPTIVE[kind] and len(sweep.accuracy) == len(bws)
        choice = latency.solve(cands, np.array(bws) * 1e6, s.bits, s.r_comp, s.tau)
        assert best.accuracy == pytest.approx(cands.accuracy[choice.index]) and best.meets_tau.all()
    with pytest.raises(ValueError, match="unknown adaptive method"):
        bandwidth.candidates(s, "greedy", grid, (0.0,))


def test_on_device_re_evaluates_every_method_at_its_own_operating_points():
    s = setting()
    bws = [0.08, 0.5, 50.0]
    cands = bandwidth.candidates(s, "ep", [0.5, 0.9], (0.0, 0.5))
    sweeps = [
        bandwidth.backbone(s, bws),
        bandwidth.static(s, bws, (0.9, 0.8)),
        bandwidth.static(s, bws, (0.9, 0.8), (0.3, 0.6)),
        bandwidth.encoder_pruning(s, bws, (0.9, 0.8)),
        bandwidth.optimum(s, bws, "ep", cands),
        bandwidth.optimum(s, bws, "oracle", bandwidth.candidates(s, "oracle", [0.5, 0.9], ())),
    ]
    for sweep in sweeps:  # under the FLOPs setting itself it gives back each sweep's on-device latency
        assert bandwidth.on_device(s, sweep) == pytest.approx(sweep.device_latency), sweep.method
    timed = bandwidth.Setting(
        **{
            **s.__dict__,
            "parts": [PartFlops(2.0, 1.0, ()), PartFlops(3.0, 1.0, ()), PartFlops(0, 0, ())],
            "encoder_flops": 0.5,
            "ep_flops": 0.25,
            "r_comp": 1.0,
        }
    )
    backbone = bandwidth.on_device(timed, sweeps[0])
    assert backbone == pytest.approx([5.5] * 3)  # both stages and the encoder, in the measured unit
