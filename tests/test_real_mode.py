"""Paper B's real mode against the simulator (notebook 29): the table of :func:`earlyexit.paper_b.real_mode.compare`."""

from __future__ import annotations

import numpy as np
import pytest
from test_elastic import resnet_and_images  # noqa: F401 (a fixture)

from earlyexit.paper_b import elastic, real_mode


def test_real_mode_is_paired_with_the_simulation_on_the_same_images(resnet_and_images):  # noqa: F811
    model, x, y = resnet_and_images
    tc, tb = np.array([3.0, 6.0, 5.0]) * 1e-3, np.array([2.0, 1.0, 0.1]) * 1e-3
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=(len(x), 3))
    correct = conf > 0.5
    policies = {"classic": np.array([False, False, True]), "every branch": np.ones(3, bool)}
    deadlines = np.array([30.0, 30.0, 0.0, 0.0])  # the first two images finish, the others are preempted at once
    table = real_mode.compare(model, x, np.asarray(y), "cifar10", (tc, tb, conf, correct), policies, deadlines, runs=3)
    rows = table.set_index("policy")
    assert list(rows.index) == list(policies)
    assert (rows["result returned (%)"] == 50.0).all() and (rows["more results (pp)"] == 0.0).all()
    real = elastic.run_real(model, x, "cifar10", tc, tb, policies["every branch"], deadlines)
    right = (real["exit"] >= 0) & (real["pred"] == np.asarray(y))
    sim = elastic.simulate(tc, tb, conf, correct, policies["every branch"], runs=3, progress=False)
    expected = elastic.paired(right, sim.sample_accuracy)
    got = rows.loc["every branch", ["real minus simulated (pp)", "real minus simulated se (pp)"]]
    assert tuple(got) == pytest.approx(expected)
    assert rows.loc["every branch", "accuracy, real (%)"] == pytest.approx(100 * right.mean())
    assert rows.loc["every branch", "branches run"] == pytest.approx(1.5)  # three on two images, none on two
