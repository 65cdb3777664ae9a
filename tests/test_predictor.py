"""CS-Predictors (Paper B §IV-C): Fig. 5 rows, Eq. (1) mask, Eq. (3) loss, skipped exits, Activation Cache."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from earlyexit.paper_b import predictor as P


def small(n: int = 5, seed: int = 0) -> P.CSPredictor:
    torch.manual_seed(seed)
    return P.CSPredictor(n, hidden=(16, 8)).eval()


def test_fig5_rows_of_a_three_exit_network():
    """Fig. 5: each sample gives two rows (x = 1, 2) sharing its label list; later scores zeroed."""
    conf = np.array([[0.2, 0.5, 0.9], [0.6, 0.7, 0.8]], dtype=np.float32)
    inputs, targets, masks = P.predictor_dataset(conf)
    rows = np.array([[0.2, 0, 0], [0.2, 0.5, 0], [0.6, 0, 0], [0.6, 0.7, 0]], dtype=np.float32)
    np.testing.assert_array_equal(inputs, rows)
    np.testing.assert_array_equal(targets, conf[[0, 0, 1, 1]])
    np.testing.assert_array_equal(masks, [[0, 1, 1], [0, 0, 1]] * 2)
    with pytest.raises(ValueError):
        P.predictor_dataset(conf[:, :1])


def test_hidden_sizes_threshold():
    assert P.hidden_sizes(40) == P.hidden_sizes(P.LARGE_MIN_EXITS) == (2048, 1024)
    assert P.hidden_sizes(3) == P.hidden_sizes(P.LARGE_MIN_EXITS - 1) == (256, 128)
    layers = [m for m in P.CSPredictor(40).net if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in layers] == [(40, 2048), (2048, 1024), (1024, 40)]


def test_eq1_mask_keeps_known_scores_exactly():
    model = small()
    x = torch.tensor([[0.3, 0.8, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        out, raw = model(x, mask), model.net(x)
    assert torch.equal(out[:, :2], x[:, :2])
    assert torch.equal(out[:, 2:], raw[:, 2:])


def test_eq3_loss_ignores_known_positions():
    target = torch.tensor([[0.3, 0.8, 0.5, 0.6, 0.9]])
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    o = torch.tensor([[0.1, 0.2, 0.4, 0.4, 0.4]], requires_grad=True)
    loss = P.masked_mse(o, target, mask)
    loss.backward()
    assert loss.item() == pytest.approx(0.1**2 + 0.2**2 + 0.5**2)
    assert torch.equal(o.grad[0, :2], torch.zeros(2)) and bool(torch.all(o.grad[0, 2:] != 0))
    # Eq. (2) on O' (Eq. (1)) equals Eq. (3): the known scores are the label's first x entries
    model = small()
    x = target * (1 - mask)
    o_prime = model(x, mask)
    assert ((o_prime - target) ** 2).sum().item() == pytest.approx(P.masked_mse(o_prime, target, mask).item())


def test_known_scores_fill_skipped_exits_with_nearest_previous():
    conf = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    executed = np.array([False, True, False, True, False])
    np.testing.assert_array_equal(P.known_scores(conf, executed), [0.0, 0.4, 0.4, 0.1, 0.1])
    batch = P.known_scores(np.stack([conf, conf]), np.stack([executed, np.ones(5, bool)]))
    np.testing.assert_array_equal(batch, [[0.0, 0.4, 0.4, 0.1, 0.1], conf])


@pytest.mark.parametrize("n,hidden", [(3, None), (40, None), (6, (16, 8))])
def test_activation_cache_equals_uncached_forward(n, hidden):
    torch.manual_seed(n)
    model = P.CSPredictor(n, hidden).eval()
    rng = np.random.default_rng(n)
    conf = rng.uniform(0, 1, (4, n)).astype(np.float32)
    cache = P.CachedPredictor(model, batch=4)
    x = np.zeros((4, n), dtype=np.float32)
    for k in range(n - 1):
        x[:, k] = conf[:, k]
        cache.set(k, conf[:, k])
        if k >= 1:  # a changed value at an earlier position (a skipped exit refilled), rows 0 and 2 only
            x[[0, 2], k - 1] = 0.5
            cache.set(k - 1, np.full(2, 0.5), rows=np.array([0, 2]))
        mask = torch.from_numpy((np.arange(n) > k).astype(np.float32)).expand(4, n)
        with torch.no_grad():
            want = model(torch.from_numpy(x), mask).numpy()
        np.testing.assert_allclose(cache.predict(k + 1), want, atol=1e-5)
        np.testing.assert_allclose(cache.forward(x, k + 1), want, atol=1e-5)
        np.testing.assert_allclose(cache.predict(k + 1, rows=np.array([1])), want[[1]], atol=1e-5)
    h1 = (hidden or P.hidden_sizes(n))[0]
    assert cache.cache_nbytes == 4 * (h1 + n)


def test_train_predictor_learns_and_is_seeded():
    """Scores that repeat the first exit's score are learnable: the loss falls far below the prior's."""
    rng = np.random.default_rng(0)
    conf = np.repeat(rng.uniform(0, 1, (300, 1)), 4, axis=1).astype(np.float32)
    model, history = P.train_predictor(conf, hidden=(32, 16), epochs=30, lr=0.05, seed=3, progress=False)
    _, again = P.train_predictor(conf, hidden=(32, 16), epochs=30, lr=0.05, seed=3, progress=False)
    assert history == again and not model.training
    np.testing.assert_allclose(model.prior.numpy(), conf.mean(0), rtol=1e-6)
    inputs, targets, masks = (torch.from_numpy(a) for a in P.predictor_dataset(conf))
    with torch.no_grad():
        fitted = P.masked_mse(model(inputs, masks), targets, masks).item()
        prior = P.masked_mse(model.prior.expand_as(targets), targets, masks).item()
    assert history[-1] < history[0] and fitted < 0.1 * prior


def test_measure_activation_cache_reports_table3_fields():
    out = P.measure_activation_cache(P.CSPredictor(3).eval(), np.random.default_rng(0).uniform(0, 1, (5, 3)), pairs=4)
    assert out["cache_nbytes"] == 1036 and out["predictions"] == 10 and out["hidden"] == (256, 128)
    assert out["cached_s"] > 0 and out["uncached_s"] > 0
    low, high = out["reduced_ci"]
    assert low <= out["reduced_pct"] <= high and out["verdict"] in (
        "cache saves time",
        "cache costs time",
        "within noise",
    )


def test_fit_or_load_reuses_a_stored_predictor_only_for_the_same_inputs(tmp_path):
    conf = np.random.default_rng(0).uniform(0, 1, (50, 3)).astype(np.float32)
    path = tmp_path / "cs.npz"
    trained, losses = P.fit_or_load(conf, path, epochs=1, seed=3, progress=False)
    calls = []
    real = P.train_predictor

    @functools.wraps(real)  # a spy that fingerprints as the function it wraps
    def spy(*a, **k):
        calls.append(k)
        return real(*a, **k)

    loaded, again = P.fit_or_load(conf, path, spy, epochs=1, seed=3, progress=False)
    assert calls == [] and again == losses
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
    P.fit_or_load(conf, path, spy, epochs=1, seed=4, progress=False)
    P.fit_or_load(conf[:40], path, spy, epochs=1, seed=4, progress=False)
    assert len(calls) == 2


@functools.cache
def real_profile() -> np.ndarray:
    """A slice of a shipped CS-profile (MSDNet-21 on CIFAR-10, 21 exits)."""
    with np.load(Path(__file__).resolve().parents[1] / "artifacts/cpu/msdnet21-cifar10/profile.npz") as f:
        return f["train_conf"][:500]


PLATEAU = {"hidden": (32, 16), "check_rows": 1_000, "max_rows": 60_000, "progress": False}


def test_split_validation_holds_out_a_seeded_disjoint_share():
    fit, held = P.split_validation(100, 0.2, 0)
    assert len(held) == 20 and not set(fit) & set(held) and sorted([*fit, *held]) == list(range(100))
    np.testing.assert_array_equal(held, P.split_validation(100, 0.2, 0)[1])
    assert not np.array_equal(held, P.split_validation(100, 0.2, 1)[1])
    with pytest.raises(ValueError, match="validation fraction"):
        P.split_validation(100, 1.0, 0)


def test_train_to_plateau_returns_its_best_check_and_stops_after_its_cuts():
    conf = real_profile()
    state = torch.random.get_rng_state()
    model, history = P.train_to_plateau(conf, **PLATEAU)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's generator is untouched
    table = np.asarray(history)
    assert table.shape[1] == len(P.PLATEAU_COLUMNS)
    np.testing.assert_array_equal(table[:, 0], 1_000 * np.arange(1, len(table) + 1))
    assert P.stopped(history) == "plateau" and table[-1, 0] < PLATEAU["max_rows"]
    assert table[-1, 3] == pytest.approx(0.05 * 0.1**3)  # stopped at the third cut
    _, held = P.split_validation(len(conf), 0.2, 0)
    assert P.eq3_loss(model, conf[held]) == pytest.approx(table[:, 2].min(), rel=1e-5)
    again, _ = P.train_to_plateau(conf, **PLATEAU)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_train_to_plateau_says_when_the_row_cap_stopped_it():
    _, history = P.train_to_plateau(real_profile(), **(PLATEAU | {"max_rows": 3_000}))
    assert len(history) == 3 and P.stopped(history) == "row cap"


def test_fit_or_load_keeps_a_plateau_predictor_with_its_history(tmp_path):
    conf = real_profile()
    model, history = P.fit_or_load(conf, tmp_path / "cs.npz", P.train_to_plateau, **PLATEAU)
    again, stored = P.fit_or_load(conf, tmp_path / "cs.npz", P.train_to_plateau, **PLATEAU)
    assert stored == history and np.asarray(stored).shape[1] == len(P.PLATEAU_COLUMNS)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
