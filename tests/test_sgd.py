"""The one SGD epoch (earlyexit.engine.sgd) that trains the networks, the Exit Predictor and the CS-Predictor."""

import torch
from torch import nn

from earlyexit.engine import sgd


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(50, 3, generator=gen), torch.randn(50, 1, generator=gen)
    torch.manual_seed(seed)
    return nn.Linear(3, 1), x, y


def test_an_epoch_takes_one_step_per_batch_and_returns_the_mean_loss():
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen, losses = [], []

    def loss_of(rows):
        seen.append(rows.tolist())
        loss = ((model(x[rows]) - y[rows]) ** 2).mean()
        losses.append(loss.item())
        return loss

    mean = sgd.epoch(model, opt, torch.arange(50), 16, loss_of)
    assert seen == [list(range(i, min(i + 16, 50))) for i in range(0, 50, 16)]
    assert mean == sum(losses) / 4  # float64 on the device: the same sum as Python floats


def test_the_schedule_sets_each_step_learning_rate_from_the_fraction_of_the_epoch():
    model, x, y = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    rates = []

    def loss_of(rows):
        rates.append(opt.param_groups[0]["lr"])
        return ((model(x[rows]) - y[rows]) ** 2).mean()

    sgd.epoch(model, opt, torch.arange(40), 10, loss_of, lr=lambda t: 0.1 * (1 - t))
    assert rates == [0.1 * (1 - s / 4) for s in range(4)]


def test_clipping_bounds_the_step_and_no_clip_does_not():
    def step(clip):
        model, x, y = _problem()
        before = model.weight.detach().clone()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sgd.epoch(
            model, opt, torch.arange(50), 50, lambda rows: 100 * ((model(x[rows]) - y[rows]) ** 2).mean(), clip=clip
        )
        return (model.weight.detach() - before).norm().item()

    assert step(clip=0.5) <= 0.5 + 1e-6
    assert step(clip=None) > 1.0


def test_the_model_is_put_in_training_mode():
    model, x, y = _problem()
    model.eval()
    sgd.epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.arange(8), 8, lambda r: model(x[r]).sum())
    assert model.training
