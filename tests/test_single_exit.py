"""Paper B Fig. 10's single-exit networks: the classic and compressed adaptations and how preemption scores them."""

import numpy as np
import pytest
import torch

from earlyexit import pipeline
from earlyexit.engine import artifacts, provenance, training
from earlyexit.nets.models import build_model
from earlyexit.paper_b import elastic, single_exit


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_classic_network_is_the_backbone_with_its_final_exit_only(dataset):
    multi = build_model("flexvgg16", dataset, seed=0).eval()
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    x = torch.randn(2, *shape)
    classic = single_exit.single_exit(multi)
    assert classic.num_exits == 1
    torch.testing.assert_close(classic(x)[0], multi(x)[-1])


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_compression_hits_its_flops_target_within_the_tolerance_and_keeps_the_classes(fraction):
    multi = build_model("flexvgg16", "cifar100", seed=0)
    classic = single_exit.single_exit(multi)
    before = single_exit.flops(classic, (3, 32, 32))
    out = single_exit.compress(classic, fraction, (3, 32, 32))
    assert abs(out.fraction - fraction) <= single_exit.FLOPS_TOLERANCE * fraction
    assert out.flops_before == before == single_exit.flops(classic, (3, 32, 32))  # the classic is left whole
    assert out.flops_after == single_exit.flops(out.model, (3, 32, 32)) and 0 < out.ratio < 1
    assert out.model(torch.zeros(2, 3, 32, 32))[0].shape == (2, 100)
    assert single_exit.final_fc(out.model).out_features == 100


def test_an_unreachable_flops_target_and_bad_fractions_are_refused():
    classic = single_exit.single_exit(build_model("b_alexnet", "cifar10", seed=0))
    with pytest.raises(ValueError, match="nearest"):
        single_exit.compress(classic, 0.5, (3, 32, 32), tolerance=1e-9, steps=3)
    for bad in (0.0, 1.0, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="flops_fraction"):
            single_exit.check_fraction(bad)


def test_a_single_exit_network_preempted_before_its_exit_scores_zero():
    correct = np.array([True, True, False, True])
    early = elastic.Preemption.fixed(0.3)
    assert np.all(single_exit.preempted_accuracy(0.5, correct, 1.0, early, runs=3) == 0.0)
    assert np.all(single_exit.preempted_accuracy(0.2, correct, 1.0, early, runs=3) == 0.75)
    uniform = single_exit.preempted_accuracy(0.25, np.ones(20000, bool), 1.0, runs=2)
    np.testing.assert_allclose(uniform, 0.75, atol=0.01)  # P(tau >= t) = 1 - t / T
    with pytest.raises(ValueError, match="correctness"):
        single_exit.preempted_accuracy(0.2, np.array([0.3, 0.9]), 1.0)


def test_the_classic_network_scores_as_the_multi_exit_plan_running_only_its_last_branch():
    rng = np.random.default_rng(3)
    tc, tb = rng.uniform(0.1, 1.0, 6), rng.uniform(0.05, 0.5, 6)
    conf = rng.uniform(0, 1, (300, 6))
    correct = rng.uniform(0, 1, (300, 6)) < conf
    last_only = np.arange(6) == 5
    for preemption in (elastic.Preemption(), elastic.Preemption.gaussian(0.5)):
        sim = elastic.simulate(tc, tb, conf, correct, last_only, preemption, runs=4, seed=7, progress=False)
        ours = single_exit.preempted_accuracy(
            tc.sum() + tb[-1], correct[:, -1], tc.sum() + tb.sum(), preemption, runs=4, seed=7
        )
        np.testing.assert_array_equal(ours, sim.run_accuracy)


TINY = {"epochs": 1, "anneal_epochs": 1, "train_per_class": 2, "test_per_class": 2, "precision": "fp32"}


def test_the_single_exit_stage_profiles_classic_and_compressed_networks_and_fig10_compares_them(tmp_path):
    run = training.train_and_profile("flexvgg16", "cifar10", "cpu", tmp_path, progress=False, **TINY)
    out = single_exit.adapt_and_profile("flexvgg16", "cifar10", "cpu", 0.5, tmp_path, progress=False, **TINY)
    assert single_exit.run_dir(tmp_path, "cpu", "flexvgg16", "cifar10", 0.5).name == "flexvgg16-cifar10-single50"
    samples = run["test_conf"].shape[0]
    assert out["test_correct"].shape == (samples, 1) and out["me_tc"].shape == (samples, 5)
    assert out["classic_t"].shape == out["compressed_t"].shape == (samples,) and np.all(out["classic_t"] > 0)
    assert abs(out["compressed_flops"] / out["classic_flops"] - 0.5) <= 0.5 * single_exit.FLOPS_TOLERANCE
    assert out.manifest["code_sha256"] == provenance.code_fingerprint(out.manifest["params"])
    again = single_exit.load_single_exit(tmp_path, "cpu", "flexvgg16", "cifar10", 0.5, **TINY)
    assert again.manifest == out.manifest
    table = single_exit.compare(run, out, tmp_path / "derived", "smoke", runs=2).set_index("method")
    assert set(table.family) == {"classic", "compressed", "ME-NN", "EINet", "diagnosis"}
    assert table.time_ms["classic"] == pytest.approx(1e3 * out["classic_t"].mean())
    training.train_and_profile("flexvgg16", "cifar10", "cpu", tmp_path, progress=False, seed=1, **TINY)  # retrained
    with pytest.raises(artifacts.StaleArtifactError, match="source_npz_sha256"):
        single_exit.load_single_exit(tmp_path, "cpu", "flexvgg16", "cifar10", 0.5, seed=1, **TINY)


def test_single_exit_jobs_follow_their_training_job_and_bad_entries_are_refused(tmp_path):
    toml = tmp_path / "pipeline.toml"
    toml.write_text(
        '[[stages]]\nid = "train"\nkind = "train"\nnotebook = "a.ipynb"\n'
        'matrix.cpu = [["flexvgg16", "cifar100"]]\n'
        '[[stages]]\nid = "single-exit"\nkind = "single_exit"\nnotebook = "b.ipynb"\n'
        'matrix.cpu = [["flexvgg16", "cifar100", 0.5]]\n'
    )
    assert pipeline.entries("single_exit", "cpu", toml) == [
        {"model": "flexvgg16", "dataset": "cifar100", "flops_fraction": 0.5, "overrides": {}}
    ]
    job = pipeline.Job(
        "single-exit", "single_exit", tmp_path / "04_x.ipynb", {"model": "m", "dataset": "d", "flops_fraction": 0.5}
    )
    assert job.name == "04_x-m-d-single50"
    toml.write_text(toml.read_text().replace("0.5]]", "1.5]]"))
    with pytest.raises(SystemExit, match="flops_fraction must be a number in"):
        pipeline.entries("single_exit", "cpu", toml)
    toml.write_text(toml.read_text().replace('["flexvgg16", "cifar100", 1.5]', '["msdnet40", "cifar100", 0.5]'))
    with pytest.raises(SystemExit, match="training job"):
        pipeline.entries("single_exit", "cpu", toml)
