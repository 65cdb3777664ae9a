"""Paper A §IV: Eq. (11), Problem (10) and the bandwidth-to-threshold regressors."""

import numpy as np
import pytest
import torch

from earlyexit.nets.flops import PartFlops
from earlyexit.paper_a import ep_inference, latency


def test_the_compressed_feature_of_vgg16bn_is_64_times_smaller():
    bits = latency.feature_bits((128, 16, 16))  # VGG16-BN after conv 3, the partition point (Table III)
    assert bits == 32 * 8 * 8 * 8 and 128 * 16 * 16 * 32 / bits == 64
    with pytest.raises(ValueError, match="not divisible"):
        latency.feature_bits((6, 16, 16))


def test_mean_latency_is_eq_11_by_hand():
    # 10 MFLOPs at 3.62 GFLOPS, half the samples send 16384 bits at 1 Mbit/s: 2.762 ms + 8.192 ms.
    got = latency.mean_latency(np.array([10e6]), np.array([0.5]), 16384, 3.62e9, np.array([1e6]))
    assert got[0, 0] == pytest.approx(10e6 / 3.62e9 + 0.5 * 16384 / 1e6)


def test_solve_finds_the_known_optimum_of_a_constructed_case():
    cands = latency.Candidates(
        lam=np.zeros((3, 1)),
        gamma=np.zeros((3, 1)),
        accuracy=np.array([0.9, 0.8, 0.7]),
        device_flops=np.array([36.2e6, 36.2e6, 3.62e6]),
        offload_share=np.array([1.0, 0.1, 0.0]),
    )
    # latency (ms) at 1 Mbit/s with 10,000 bits: 10 + 10 = 20, 10 + 1 = 11, 1; at 0.1 Mbit/s: 110, 20, 1.
    choice = latency.solve(cands, [1e6, 1e5, 1e3], bits=10_000, r_comp=3.62e9, tau=0.015)
    assert choice.index.tolist() == [1, 2, 2]
    assert choice.feasible.tolist() == [True, True, True]
    strict = latency.solve(cands, [1e6], bits=10_000, r_comp=3.62e9, tau=0.0005)
    assert strict.index.tolist() == [2] and not strict.feasible[0]  # nothing meets tau: the fastest, flagged


def test_candidates_agree_with_the_evaluator_and_the_solver_with_enumeration():
    rng = np.random.default_rng(0)
    conf, correct = rng.uniform(size=(200, 3)), rng.uniform(size=(200, 3)) < 0.6
    scores = rng.uniform(size=(200, 2))
    parts = [PartFlops(1_000_000, 500_000, ()), PartFlops(2_000_000, 300_000, ()), PartFlops(5_000_000, 100_000, ())]
    cands = latency.candidates(conf, correct, parts, [0.3, 0.6, 0.9], [0.0, 0.5], scores, ep_flops=100_000)
    assert len(cands.accuracy) == 3**2 * 2**2
    for k in range(len(cands.accuracy)):  # the array form of Algorithm 1 equals the evaluator row by row
        direct = ep_inference.evaluate(conf, parts, cands.lam[k], cands.gamma[k], scores, 100_000)
        assert cands.accuracy[k] == pytest.approx(direct.summary(correct)["accuracy"])
        assert cands.device_flops[k] == pytest.approx(direct.device_flops.mean())
        assert cands.offload_share[k] == pytest.approx(direct.summary(correct)["exit_share"][-1])
    sent = latency.candidates(conf, correct, parts, [0.3, 0.6, 0.9], [0.0, 0.5], scores, 100_000, offload_flops=7e5)
    assert np.allclose(sent.device_flops, cands.device_flops + 7e5 * cands.offload_share)
    plain = latency.candidates(conf, correct, parts, [0.3, 0.9])
    ideal = latency.candidates(conf, correct, parts, [0.3, 0.9], oracle=True)
    assert np.array_equal(plain.accuracy, ideal.accuracy) and (ideal.device_flops <= plain.device_flops).all()
    assert ideal.device_flops[1] == pytest.approx(ep_inference.oracle(conf, parts, ideal.lam[1]).device_flops.mean())
    bandwidths = np.array([1e5, 1e6, 1e7])
    choice = latency.solve(cands, bandwidths, bits=5_000, r_comp=1e9, tau=0.004)
    lat = latency.mean_latency(cands.device_flops, cands.offload_share, 5_000, 1e9, bandwidths)
    for b in range(3):  # the most accurate of the candidates within tau, found by enumeration
        ok = np.flatnonzero(lat[:, b] <= 0.004)
        assert choice.feasible[b] == (ok.size > 0)
        assert cands.accuracy[choice.index[b]] == (
            cands.accuracy[ok].max() if ok.size else cands.accuracy[lat[:, b].argmin()]
        )
    assert choice.feasible.sum() >= 2


def test_regressors_reproduce_their_training_optima():
    bandwidths = np.array([0.1, 0.3, 0.5, 0.7, 1.0])
    targets = np.array(
        [[0.5, 0.6, 0.1, 0.2], [0.6, 0.7, 0.1, 0.2], [0.7, 0.8, 0.2, 0.2], [0.8, 0.9, 0.2, 0.3], [0.9, 0.95, 0.3, 0.3]]
    )
    model = latency.fit_regressor(bandwidths, targets, (0.1, 1.0))
    with torch.no_grad():
        fitted = model(torch.tensor(bandwidths)).numpy()
    assert np.abs(fitted - targets).max() < 0.02
    with pytest.raises(ValueError, match="one row of thresholds per bandwidth"):
        latency.fit_regressor(bandwidths, targets[:3], (0.1, 1.0))


def test_a_stored_regressor_answers_as_the_fitted_one_and_other_targets_refit(tmp_path):
    bandwidths = np.array([0.1, 0.3, 1.0])
    targets = np.array([[0.5, 0.1], [0.7, 0.2], [0.9, 0.3]])
    path = tmp_path / "regressor-ee-0.1-1mbps.npz"
    fresh = latency.fit_regressor(bandwidths, targets, (0.1, 1.0), steps=3000)
    stored = latency.fit_or_load_regressor(bandwidths, targets, (0.1, 1.0), path)
    again = latency.fit_or_load_regressor(bandwidths, targets, (0.1, 1.0), path)
    probe = torch.tensor([0.05, 0.2, 0.6, 3.0])
    with torch.no_grad():
        assert torch.equal(fresh(probe), stored(probe)) and torch.equal(stored(probe), again(probe))
    first = path.stat().st_mtime_ns
    moved = latency.fit_or_load_regressor(bandwidths, targets[::-1], (0.1, 1.0), path)
    assert path.stat().st_mtime_ns != first
    with torch.no_grad():
        assert not torch.equal(moved(probe), stored(probe))


def test_measured_part_times_add_up_to_a_whole_on_device_pass():
    from earlyexit.nets.models import build_model
    from earlyexit.paper_a import compression
    from earlyexit.paper_a.exit_predictor import build_exit_predictor

    torch.manual_seed(0)
    model = build_model("alexnet", "cifar10")
    threads = torch.get_num_threads()
    channels = compression.partition_channels(model, (3, 32, 32))
    times = latency.time_parts(
        model, compression.encoder(channels), build_exit_predictor("ours", 2), (3, 32, 32), repeats=15
    )
    assert times["stage"].shape == (2,) and (times["stage"] > 0).all() and times["ep"] > 0
    parts = times["stage"].sum() + times["exit"].sum() + times["encoder"]
    assert 0.5 < parts / times["whole_pass"] < 2.0  # generous: a loaded 2-core machine is noisy
    assert torch.get_num_threads() == threads  # the thread count is restored
