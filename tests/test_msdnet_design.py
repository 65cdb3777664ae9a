"""Paper B Fig. 14's MSDNet designs: naming, structures, branch variants and the design stage."""

import pytest
import torch
from torch import nn

from earlyexit import pipeline
from earlyexit.nets import msdnet
from earlyexit.nets.flops import part_flops
from earlyexit.paper_b import msdnet_design
from earlyexit.paper_b.msdnet_design import Variant


def test_variant_names_round_trip_and_bad_ones_are_refused():
    for v in msdnet_design.GRID + msdnet_design.BRANCHES:
        assert Variant.parse(v.name) == v
    assert Variant.parse("b21-s2-base4-c16-1conv2fc").branch == (1, 2)
    for bad in ("msdnet21", "b21-s2-base4", "b0-s1-base1-c1", "b21-s2-base4-c16-1conv0fc"):
        with pytest.raises(ValueError):
            Variant.parse(bad)


def test_the_grid_holds_paper_bs_two_msdnets():
    for variant, reference in (
        (Variant(21, 2, 4, 16), msdnet.msdnet21(100)),
        (Variant(40, 1, 4, 16), msdnet.msdnet40(100)),
    ):
        assert variant in msdnet_design.GRID
        ours = msdnet_design.build(variant, "cifar100")
        assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]


@pytest.mark.parametrize("dataset, shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
@pytest.mark.parametrize("branch", [None, (0, 1), (2, 2)])
def test_every_design_gives_one_exit_per_block_on_both_input_kinds(dataset, shape, branch):
    model = msdnet_design.build(Variant(5, 1, 2, 4, branch), dataset).eval()
    out = model(torch.zeros(2, *shape))
    assert len(out) == model.num_exits == 5 and all(o.shape == (2, 10) for o in out)


def test_branch_variants_have_their_layers_and_cost_more_with_more_layers():
    flops = {}
    for variant in msdnet_design.BRANCHES:
        model = msdnet_design.build(variant, "cifar10")
        exit_ = model.exits[3]
        assert sum(isinstance(m, nn.Conv2d) for m in exit_.modules()) == variant.branch[0]
        assert sum(isinstance(m, nn.Linear) for m in exit_.modules()) == variant.branch[1]
        flops[variant.branch] = part_flops(model)[3].exit
    assert flops[0, 1] < flops[1, 1] < flops[2, 1] and flops[1, 1] < flops[1, 2] < flops[2, 2]


def test_the_design_stage_trains_profiles_and_runs_elastic_inference(tmp_path):
    variant = Variant(4, 1, 2, 4, (1, 1))
    run = msdnet_design.train_and_profile(variant, "cifar10", "smoke", tmp_path, progress=False)
    directory = msdnet_design.run_dir(tmp_path, "smoke", variant, "cifar10")
    assert directory.name == "msdnet-b4-s1-base2-c4-1conv1fc-cifar10" and not (directory / "checkpoint.pt").exists()
    samples = 10 * msdnet_design.RECIPE["smoke"]["test_per_class"]
    assert run["test_conf"].shape == (samples, 4) and run["et_tc"].shape == run["et_tb"].shape == (samples, 4)
    assert msdnet_design.load_design(tmp_path, "smoke", variant, "cifar10").manifest == run.manifest
    row = msdnet_design.elastic_accuracy(run, tmp_path / "derived", "smoke", runs=2).iloc[0]
    assert row.variant == variant.name and row.exits == 4 and row.total_ms > row.branch_ms > 0
    assert 0 <= row["EINet hybrid m=5"] <= 100 and 0 <= row["every branch"] <= 100


def test_design_jobs_come_from_the_matrix_and_bad_entries_are_refused(tmp_path):
    toml = tmp_path / "pipeline.toml"
    head = '[[stages]]\nid = "train"\nkind = "train"\nnotebook = "a.ipynb"\n[[stages]]\nid = "design"\nkind = "design"\nnotebook = "b.ipynb"\n'
    toml.write_text(head + 'matrix.cpu = [["b21-s2-base4-c16", "cifar10"]]\n')
    assert pipeline.entries("design", "cpu", toml) == [{"variant": Variant(21, 2, 4, 16).name, "dataset": "cifar10"}]
    job = pipeline.Job(
        "design", "design", tmp_path / "05_x.ipynb", {"variant": "b21-s2-base4-c16", "dataset": "cifar10"}
    )
    assert job.name == "05_x-b21-s2-base4-c16-cifar10"
    toml.write_text(head + 'matrix.cpu = [["msdnet21", "cifar10"]]\n')
    with pytest.raises(SystemExit, match="an MSDNet design is named like"):
        pipeline.entries("design", "cpu", toml)
    toml.write_text(head + 'matrix.cpu = [["b21-s2-base4-c16", "svhn"]]\n')
    with pytest.raises(SystemExit, match=r"\[variant, dataset\]"):
        pipeline.entries("design", "cpu", toml)
