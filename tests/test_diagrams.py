"""Diagrams: architectures read from the model definitions (their numbers are the models' own), and
real-mode traces of the elastic runtime."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from earlyexit.core import paper
from earlyexit.nets.models import build_model
from earlyexit.paper_a.exit_predictor import build_exit_predictor
from earlyexit.paper_b import diagrams, elastic, search

matplotlib.use("Agg")


def test_rows_of_the_early_exit_vgg16bn_add_up_to_table_v():
    net = build_model("vgg16bn", "cifar10")
    h = torch.zeros(1, 3, 32, 32)
    totals = []
    for k in range(2):
        rows, out = diagrams.layer_rows(net.stages[k], h)
        totals += [sum(r.mflops for r in rows), sum(r.mflops for r in diagrams.layer_rows(net.exits[k], out)[0])]
        h = out
    assert [round(t, 2) for t in (totals[0], totals[1], totals[2], totals[3])] == list(
        paper.A_TABLE5["cifar10", "vgg16bn"]
    )


def test_the_exit_predictor_rows_show_its_blocks_shapes_and_cost():
    ep = build_exit_predictor("ours", 2)
    rows, _ = diagrams.layer_rows(nn.Sequential(*ep.features, *ep.head), torch.zeros(1, 3, 32, 32))
    assert [r.label for r in rows][:4] == ["conv 3x3, 16 /2 + BN + ReLU"] + ["DS block + Cat. + SE"] * 3
    assert [r.shape for r in rows][:4] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]
    assert sum(r.mflops for r in rows) == pytest.approx(0.3985, abs=5e-5)


def test_drawings_are_made_for_a_multi_exit_network_and_a_chain():
    fig = diagrams.draw_multiexit(build_model("alexnet", "cifar10"), title="AlexNet")
    assert any("device" in t.get_text() for t in fig.axes[0].texts)
    assert diagrams.draw_chain(build_exit_predictor("LeNet", 2)).axes


def test_expectation_steps_add_up_to_the_search_engines_expectation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 9))
        tc, tb, conf = rng.uniform(0.1, 1, n), rng.uniform(0.05, 0.5, n), rng.uniform(size=n)
        plan = rng.uniform(size=n) < 0.5
        steps = diagrams.expectation_steps(tc, tb, conf, plan)
        assert sum(s.conf * s.mass for s in steps) == pytest.approx(search.expectation(tc, tb, conf, plan))
        assert sum(s.share for s in steps) == pytest.approx(1.0) or search.expectation(tc, tb, conf, plan) == 0
        total = tc.sum() + tb.sum()
        grid = search.cdf_grid_gaussian(total, total / 4)
        cdf = lambda t: np.interp(t, np.linspace(0, total, grid.size), grid)
        steps = diagrams.expectation_steps(tc, tb, conf, plan, cdf)
        assert sum(s.conf * s.mass for s in steps) == pytest.approx(search.expectation_cdf(tc, tb, conf, plan, grid))
        assert len(steps) == plan.sum() + 1 and steps[-1].end == pytest.approx(total)


def test_a_real_mode_trace_is_drawn_with_its_result_and_its_plans():
    E = elastic.Event
    events = [
        E("part", 0, 0.0, 0.001),
        E("branch", 0, 0.001, 0.0015, True, 0.4, 3),
        E("plan", 0, 0.0015, 0.0016),
        E("part", 1, 0.0016, 0.003),
        E("branch", 1, 0.003, 0.0042, False, 0.9, 7),
    ]
    plans = [(0.0, np.array([True, True, True])), (0.0016, np.array([True, True, False]))]
    trace = elastic.Trace(events, plans, deadline=0.004, exit=0, pred=3)
    fig, (ax, grid) = plt.subplots(1, 2)
    diagrams.draw_trace(ax, trace, 0, "EINet", label=3)
    texts = [t.get_text() for t in ax.texts]
    assert "exit 1: class 3, right (confidence 0.40)" in texts and "EINet" in texts
    assert len(ax.collections) == len(events)  # one bar per step
    diagrams.draw_trace(ax, elastic.Trace([], plans[:1], 0.0, -1, -1), 1, "classic")
    assert "no result" in [t.get_text() for t in ax.texts]
    diagrams.draw_plans(grid, trace, 3)
    assert [t.get_text() for t in grid.texts] == ["run", "run", "run", "done", "run", "skip"]
    plt.close(fig)
