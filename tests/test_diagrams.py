"""Architecture diagrams: read from the model definitions, their numbers are the models' own."""

import matplotlib
import pytest
import torch
from torch import nn

from earlyexit import diagrams, paper
from earlyexit.exit_predictor import build_exit_predictor
from earlyexit.models import build_model

matplotlib.use("Agg")


def test_rows_of_the_early_exit_vgg16bn_add_up_to_table_v():
    net = build_model("vgg16bn", "cifar10")
    h = torch.zeros(1, 3, 32, 32)
    totals = []
    for k in range(2):
        rows, out = diagrams.layer_rows(net.stages[k], h)
        totals += [sum(r.mflops for r in rows), sum(r.mflops for r in diagrams.layer_rows(net.exits[k], out)[0])]
        h = out
    assert [round(t, 2) for t in (totals[0], totals[1], totals[2], totals[3])] == list(paper.A_TABLE5["cifar10", "vgg16bn"])


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
