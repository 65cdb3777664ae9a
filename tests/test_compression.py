"""Paper A §IV feature compression: shapes, the ratio of 64, the quantiser, and what each step trains."""

import numpy as np
import pytest
import torch

from earlyexit.nets.models import build_model
from earlyexit.paper_a import compression, latency


def test_the_codec_keeps_the_feature_shape_and_sends_64_times_fewer_bits():
    c = compression.Codec(128).eval()
    x = torch.rand(2, 128, 16, 16)
    z = c.encoder(x)
    assert tuple(z.shape) == (2, 32, 8, 8) and tuple(c(x).shape) == tuple(x.shape)
    assert x[0].numel() * 32 / (z[0].numel() * c.quantiser.bits) == 64
    assert z[0].numel() * c.quantiser.bits == latency.feature_bits((128, 16, 16))


def test_the_quantiser_round_trips_within_half_a_step():
    x = torch.rand(4, 32, 8, 8) * torch.tensor([1.0, 3.0, 0.01, 100.0]).reshape(4, 1, 1, 1)
    q = compression.Quantiser(8)(x)
    step = x.flatten(1).amax(1) / 255
    assert torch.all((q - x).abs().flatten(1).amax(1) <= step / 2 + 1e-6)
    assert all(len(torch.unique(q[i])) <= 256 for i in range(4))


def test_a_pruned_codec_sends_fewer_channels_and_equals_the_codec_with_those_channels_zeroed():
    torch.manual_seed(0)
    c = compression.Codec(64).eval()
    for m in (c.encoder[1], c.decoder[1]):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, 64, 8, 8)
    with torch.no_grad():
        assert torch.equal(compression.pruned_codec(c, 0.0)(x), c(x))
        c.quantise = False
        half = compression.pruned_codec(c, 0.5)
        assert half.encoder[0].out_channels == 8 and half.decoder[0].in_channels == 8
        kept = c.encoder[0].weight.flatten(1).norm(dim=1).argsort(descending=True)[:8]
        mask = torch.zeros(16, 1, 1)
        mask[kept] = 1
        assert torch.allclose(half(x), c.decoder(c.encoder(x) * mask), atol=1e-5)
    assert compression.sent_bits(half, (64, 8, 8)) * 2 == compression.sent_bits(c, (64, 8, 8))
    with pytest.raises(ValueError, match="at least one"):
        compression.pruned_codec(c, 1.0)


def test_step2_trains_codec_and_server_only_and_keeps_the_early_exits():
    torch.manual_seed(0)
    net = compression.compressed(build_model("vgg16bn", "cifar100", seed=0), channels=128)
    x = torch.rand(8, 3, 32, 32)
    before = [p.clone() for p in net.stages[0].parameters()]
    bn = net.stages[0][1]
    stats = bn.running_mean.clone()
    compression.step2_trainable(net)
    net.train()
    assert not bn.training and not compression.codec(net).quantise
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    loss = sum(z.logsumexp(1).mean() for z in net(x))
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.stages[0].parameters()))
    assert torch.equal(stats, bn.running_mean)  # the frozen BatchNorm did not learn from the batch
    assert compression.codec(net).encoder[0].weight.grad is not None
    compression.step3_trainable(net)
    net.train()
    assert not compression.codec(net).encoder[0].weight.requires_grad and compression.codec(net).quantise
    assert compression.codec(net).decoder[0].weight.requires_grad


def test_the_compression_stage_trains_steps_2_and_3_and_keeps_the_early_exits(load_dataset, tmp_path):
    from earlyexit.engine import provenance, training

    load_dataset("cifar100")
    tiny = {"epochs": 1, "anneal_epochs": 1, "train_per_class": 1, "test_per_class": 1, "precision": "fp32"}
    run = training.train_and_profile("vgg16bn", "cifar100", "cpu", tmp_path, progress=False, **tiny)
    out = compression.compress_and_profile("vgg16bn", "cifar100", "cpu", tmp_path, progress=False, **tiny)
    assert out.manifest["params"]["stage"] == "compress" and out.manifest["epochs"] == sum(compression.STEPS["cpu"])
    assert (out["test_conf"][:, :2] == run["test_conf"][:, :2]).all()  # the on-device exits did not change
    assert int(out["feature_bits"]) == latency.feature_bits((128, 16, 16)) and int(out["encoder_flops"]) > 0
    assert {"compress_and_profile", "Codec"} <= provenance.code_digests(out.manifest["params"]).keys()
    ratios = out.manifest["params"]["encoder_prune_ratios"]
    assert out["encoder_prune_correct"].shape == (len(ratios), len(out["test_label"]))
    assert (out["encoder_prune_correct"][0] == out["test_correct"][:, -1]).all()  # ratio 0: the codec as trained
    assert (
        int(out["encoder_prune_bits"][0]) == int(out["feature_bits"]) and (np.diff(out["encoder_prune_bits"]) < 0).all()
    )
    again = compression.compress_and_profile("vgg16bn", "cifar100", "cpu", tmp_path, progress=False, **tiny)
    assert again.manifest["created"] == out.manifest["created"]


def _manifests(backbone: float, step2: list[float], step3: float) -> tuple[dict, dict]:
    """A training and a compression manifest whose histories end at these training losses."""
    trained = {"history": [{"loss": 2.0}, {"loss": backbone}]}
    recipe = {"step2": {"epochs": len(step2), "lr": 0.01}, "step3": {"epochs": 1, "lr": 0.001}}
    return trained, {"params": recipe, "history": [{"loss": v} for v in [*step2, step3]]}


def test_the_codec_fit_compares_each_step_s_last_loss_with_the_backbone_s():
    why = compression.codec_fit(*_manifests(0.70, [1.4, 0.9, 0.84], 0.78))
    assert "0.840 after step 2 (3 epochs from lr 0.01) and 0.780 after step 3 (1 epoch from lr 0.001)" in why
    assert "against the backbone's 0.700" in why and "step 2's loss fell 0.060 in its last epoch" in why
    assert compression.codec_fit(*_manifests(0.70, [1.4, 0.69], 0.68)) == ""  # both steps fit as well: no reason
