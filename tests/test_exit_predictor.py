"""Paper A's Exit Predictor: architectures and costs (Table II), Eq. (9) labels, Algorithm 1 staged and
on artifacts with the FLOPs of Eqs. (3)/(4), the oracle, and Fig. 7's choice of prediction thresholds."""

import itertools

import numpy as np
import pytest
import torch

from earlyexit.core import data, paper
from earlyexit.engine import training
from earlyexit.nets.flops import PartFlops, module_flops, part_flops
from earlyexit.nets.models import build_model
from earlyexit.paper_a import ep_inference as EP
from earlyexit.paper_a.exit_predictor import ARCHITECTURES, build_exit_predictor

TABLE2_MFLOPS = {"ours": 0.40, "w/o Cat. & SE": 0.29, "FCs only": 0.39, "LeNet": 0.67}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architectures_have_table2_cost_and_one_score_per_early_exit(name):
    for scores in (2, 3):
        ep = build_exit_predictor(name, scores, seed=0).eval()
        assert ep(torch.zeros(5, 3, 32, 32)).shape == (5, scores)
    mflops = module_flops(build_exit_predictor(name, 2).eval(), torch.zeros(1, 3, 32, 32)) / 1e6
    assert round(mflops, 2) == TABLE2_MFLOPS[name]  # the printed digit (within +-5 % a fortiori)


def test_unknown_architecture_and_bad_score_count_are_refused():
    with pytest.raises(ValueError, match="unknown Exit Predictor architecture 'resnet'"):
        build_exit_predictor("resnet", 2)
    with pytest.raises(ValueError, match="scores must be the number of early exits"):
        build_exit_predictor("ours", 0)


def test_labels_are_the_unit_step_of_confidence_minus_threshold():
    conf = np.array([[0.9, 0.2, 0.5], [0.5, 0.95, 0.1], [0.8, 0.8, 0.8]])
    np.testing.assert_array_equal(EP.ep_labels(conf, [0.8, 0.9]), [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(EP.ep_labels(conf, 0.5), [[1, 0], [1, 1], [1, 1]])


PARTS = [PartFlops(10, 3, ()), PartFlops(20, 5, ()), PartFlops(40, 7, ()), PartFlops(80, 9, ())]


def brute_force(conf, lam, scores=None, gamma=None, ep_flops=0.0):
    """Algorithm 1 line by line for one sample at a time, adding up the parts it runs."""
    exits, device, total = [], [], []
    n = conf.shape[1]
    for i in range(len(conf)):
        flops, answer = ep_flops, n - 1
        for k in range(n - 1):
            flops += PARTS[k].stage
            if scores is None or scores[i, k] >= gamma[k]:
                flops += PARTS[k].exit
                if conf[i, k] >= lam[k]:
                    answer = k
                    break
        exits.append(answer)
        device.append(flops)
        total.append(flops + (PARTS[-1].stage + PARTS[-1].exit if answer == n - 1 else 0))
    return np.array(exits), np.array(device), np.array(total)


@pytest.mark.parametrize("seed", range(5))
def test_eq3_and_eq4_equal_a_per_sample_count(seed):
    rng = np.random.default_rng(seed)
    conf, scores = rng.uniform(size=(300, 4)), rng.uniform(size=(300, 3))
    lam, gamma = rng.uniform(0.3, 0.9, 3), rng.uniform(0.2, 0.8, 3)
    for got, (exits, device, total) in (
        (EP.evaluate(conf, PARTS, lam), brute_force(conf, lam)),
        (
            EP.evaluate(conf, PARTS, lam, gamma, scores, ep_flops=2.5),
            brute_force(conf, lam, scores, gamma, ep_flops=2.5),
        ),
    ):
        np.testing.assert_array_equal(got.exit, exits)
        np.testing.assert_allclose(got.device_flops, device)
        np.testing.assert_allclose(got.total_flops, total)


def test_eq3_and_oracle_give_the_papers_section3_numbers():
    """§III, VGG16-BN on CIFAR-10 at lambda = 0.99: exits take 66.62 / 19.81 / 13.57 % of the samples,
    79.64 MFLOPs in all (42.44 on the device); the oracle needs 72.13 (34.93). Eq. (3) and the oracle
    on any profile with that split and Table V's part costs give these numbers to rounding."""
    parts = part_flops(build_model("vgg16bn", "cifar10"))
    counts = np.round(np.array(paper.A_SEC3["exit_share"]) * 100).astype(int)
    answer = np.repeat([0, 1, 2], counts)
    conf = np.zeros((10_000, 3))
    conf[np.arange(10_000), answer] = 1.0  # the answering exit is the first confident one
    ee, best = EP.evaluate(conf, parts, 0.99), EP.oracle(conf, parts, 0.99)
    assert ee.total_flops.mean() / 1e6 == pytest.approx(paper.A_SEC3["total_mflops"], abs=0.01)
    assert ee.device_flops.mean() / 1e6 == pytest.approx(paper.A_SEC3["device_mflops"], abs=0.01)
    assert best.total_flops.mean() / 1e6 == pytest.approx(paper.A_SEC3["oracle_total_mflops"], abs=0.01)
    assert best.device_flops.mean() / 1e6 == pytest.approx(paper.A_SEC3["oracle_device_mflops"], abs=0.01)


def test_select_gamma_on_a_hand_made_case():
    """Two early exits; sample 0 is easy at exit 0, samples 1-2 at exit 1, sample 3 at none. The EP
    scores separate them perfectly, so gamma = (0.5, 0.5) skips every useless exit at no extra
    last-exit sample; any lower gamma computes more, any higher sends samples to the server."""
    parts = [PartFlops(10, 3, ()), PartFlops(20, 5, ()), PartFlops(40, 7, ())]
    conf = np.array([[0.99, 0.1, 0.5], [0.1, 0.99, 0.5], [0.2, 0.95, 0.5], [0.1, 0.1, 0.5]])
    scores = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.1, 0.1]])
    gamma, result = EP.select_gamma(conf, scores, parts, 0.9, extra_last=0.01)
    np.testing.assert_array_equal(result.exit, [0, 1, 1, 2])
    assert result.computed.tolist() == [[True, False], [False, True], [False, True], [False, False]]
    assert result.device_flops.mean() == pytest.approx((13 + 35 + 35 + 30) / 4)
    assert 0.2 < gamma[0] <= 0.9 and 0.1 < gamma[1] <= 0.8


def test_select_gamma_is_the_first_cheapest_feasible_gamma_of_an_enumeration():
    """Three early exits, scores rounded so that many gammas tie: the compiled search picks what evaluating every
    combination in order does (Fig. 7's rule, ties to the first), with the same outcome."""
    rng = np.random.default_rng(7)
    conf = rng.uniform(size=(300, 4))
    scores = np.round(rng.uniform(size=(300, 3)), 1)
    grid = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    base = np.mean(EP.evaluate(conf, PARTS, 0.6).exit == 3)
    best, best_cost = None, np.inf
    for gamma in itertools.product(grid, repeat=3):
        result = EP.evaluate(conf, PARTS, 0.6, np.array(gamma), scores, 1234.0)
        if np.mean(result.exit == 3) - base < 0.05 and result.device_flops.mean() < best_cost:
            best, best_cost = np.array(gamma), result.device_flops.mean()
    gamma, result = EP.select_gamma(conf, scores, PARTS, 0.6, 1234.0, extra_last=0.05, candidates=grid)
    np.testing.assert_array_equal(gamma, best)
    assert result.device_flops.mean() == best_cost and gamma.tolist() != [0.0, 0.0, 0.0]


def test_oracle_bounds_the_exit_predictor():
    rng = np.random.default_rng(3)
    conf, scores = rng.uniform(size=(500, 4)), rng.uniform(size=(500, 3))
    best = EP.oracle(conf, PARTS, 0.7)
    for gamma in (0.0, 0.3, 0.6):
        with_ep = EP.evaluate(conf, PARTS, 0.7, gamma, scores)
        reaching_same = with_ep.exit == best.exit
        assert np.all(best.device_flops[reaching_same] <= with_ep.device_flops[reaching_same])


@pytest.mark.parametrize("model_name", ["resnet44", "vgg16bn"])
def test_evaluator_equals_staged_inference_sample_by_sample(load_dataset, model_name):
    torch.set_num_threads(1)
    ds = load_dataset("cifar10")
    model = build_model(model_name, "cifar10", seed=0).eval()
    x_raw = ds.x_test[:48]
    probs = training.predict(model, x_raw, "cifar10", progress=False)
    conf = probs.max(-1).values.double().numpy()
    lam = np.median(conf[:, :2], axis=0)  # about half the samples stop at each early exit
    scores = torch.from_numpy(np.random.default_rng(0).uniform(size=(48, 2)))
    x = data.normalize(x_raw, "cifar10")
    for kwargs in ({}, {"gamma": 0.4, "scores": scores}):
        real = EP.staged_inference(model, x, lam, **kwargs)
        sim = EP.evaluate(
            conf,
            part_flops(model),
            lam,
            kwargs.get("gamma"),
            None if "scores" not in kwargs else kwargs["scores"].numpy(),
        )
        np.testing.assert_array_equal(real["exit"], sim.exit)
        np.testing.assert_array_equal(real["computed"], sim.computed)
        np.testing.assert_array_equal(real["pred"], probs.argmax(-1).numpy()[np.arange(48), sim.exit])


def test_bad_thresholds_are_refused():
    conf = np.random.default_rng(0).uniform(size=(10, 3))
    with pytest.raises(ValueError, match=r"lam must be one value in \[0, 1\] or one per early exit \(2\)"):
        EP.evaluate(conf, PARTS[:3], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="scores must have shape"):
        EP.evaluate(conf, PARTS[:3], 0.5, 0.5, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="part FLOPs are for 4 exits"):
        EP.evaluate(conf, PARTS, 0.5)


def test_exit_predictor_learns_its_labels_on_real_images(load_dataset):
    """Labels that are a function of the image (here: is it an automobile or a truck?) are learnt."""
    from earlyexit.paper_a.exit_predictor import predict_scores, train_exit_predictor

    torch.set_num_threads(1)
    ds = load_dataset("cifar10")
    idx = data.stratified_indices(ds.y_train, 30, seed=0)
    x, y = ds.x_train[idx], ds.y_train[idx]
    labels = torch.stack([(y == 1) | (y == 9), y >= 5], 1).float()
    ep = build_exit_predictor("ours", 2, seed=0)
    losses = train_exit_predictor(ep, x, labels, "cifar10", epochs=6, batch_size=32, progress=False)
    assert losses[-1] < losses[0]
    scores = predict_scores(ep, x, "cifar10")
    assert scores.shape == (300, 2) and ((scores >= 0) & (scores <= 1)).all()
    with pytest.raises(ValueError, match="300 images but 2 label rows"):
        train_exit_predictor(ep, x, labels[:2], "cifar10", epochs=1)


def test_scores_of_an_artifact_are_computed_once_for_its_rows(load_dataset, tmp_path, monkeypatch):
    from earlyexit.paper_a import exit_predictor

    ds = load_dataset("cifar10")
    run = training.train_and_profile(
        "alexnet", "cifar10", "smoke", tmp_path, progress=False, train_per_class=3, test_per_class=2, precision="fp32"
    )
    path = tmp_path / "derived" / "ep.npz"
    scores, losses = exit_predictor.fit_or_load_scores(run, ds, 0.5, path, epochs=1)
    assert scores.shape == (20, 2) and len(losses) == 1
    monkeypatch.setattr(exit_predictor, "train_exit_predictor", lambda *a, **k: pytest.fail("retrained"))
    again, _ = exit_predictor.fit_or_load_scores(run, ds, 0.5, path, epochs=1)
    np.testing.assert_array_equal(again, scores)
    other = type(ds)(ds.name, ds.x_train.flip(0), ds.y_train, ds.x_test, ds.y_test, "another checksum")
    with pytest.raises(ValueError, match="made from other data than this cifar10"):
        exit_predictor.fit_or_load_scores(run, other, 0.5, tmp_path / "other.npz", epochs=1)
