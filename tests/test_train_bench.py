"""The saved training benchmarks read back as the book's throughput tables."""

from pathlib import Path

import pandas as pd
import pytest

from earlyexit.core import hardware
from earlyexit.engine import train_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("training-*.txt")), ids=lambda p: p.name)
def test_every_saved_benchmark_reads_as_one_row_per_model(path):
    machine, rates = train_bench.read_rates(path)
    assert "native bf16" in machine and set(rates.precision) <= {"fp32", "bf16"}
    table = train_bench.rates_markdown(path).splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) == rates.model.nunique()
    first = rates[rates.model == rates.model.iloc[0]].set_index("precision").train_img_s
    if {"fp32", "bf16"} <= set(first.index):
        assert f"{first['bf16'] / first['fp32']:.2f}x" in rows[0]


def test_a_file_without_a_rates_table_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("AMD EPYC: native bf16 no\nnothing measured\n")
    with pytest.raises(ValueError, match="holds no rates table"):
        train_bench.read_rates(tmp_path / "x.txt")


@pytest.mark.parametrize(
    "kind, fast",
    [
        ("amd-epyc-avx512bf16-2core", True),
        ("intel-xeon-amx-2core", True),
        ("intel-xeon-avx512bf16-no-amx-2core", False),
        ("amd-epyc-2core", False),
        ("arm-neoverse-v2-bf16-64core", True),
    ],
)
def test_auto_precision_per_cpu_kind_follows_the_machine_rule(kind, fast):
    assert hardware.fast_bf16_kind(kind) is fast
    assert train_bench.auto_precision(kind) == ("bf16" if fast else "fp32")


def test_the_cpu_kind_of_a_saved_benchmark_is_read_from_its_name(tmp_path):
    assert train_bench.kind_of(Path("training-zoo-amd-epyc-avx512bf16-2core.txt")) == "amd-epyc-avx512bf16-2core"
    assert train_bench.kind_of(Path("training-resnet50-stems-amd-epyc-2core.txt")) == "amd-epyc-2core"
    assert train_bench.kind_of(Path("training-intel-xeon-amx-2core.txt")) == "intel-xeon-amx-2core"
    with pytest.raises(ValueError, match="named training-"):
        train_bench.kind_of(Path("training-results.txt"))


def test_the_intel_kind_without_amx_reads_its_epochs_in_fp32():
    path = RESULTS / "training-zoo-intel-xeon-avx512bf16-no-amx-2core.txt"
    _, rates = train_bench.read_rates(path)
    fp32 = rates[(rates.model == "msdnet21") & (rates.precision == "fp32")].epoch_min.item()
    row = next(line for line in train_bench.rates_markdown(path).splitlines() if line.startswith("| msdnet21 "))
    assert row.split(" | ")[5] == str(fp32)


def test_the_shipped_tier_plan_reads_and_every_job_is_priced_on_the_kind_that_timed_every_model():
    tiers = train_bench.read_tiers(ROOT / "tiers.toml")
    by_kind = train_bench.rates_by_kind(sorted(RESULTS.glob("training-*.txt")))
    table = train_bench.tier_markdown(tiers, by_kind).splitlines()
    jobs = [job for tier in tiers for job in tier["jobs"]]
    assert len(table) == 2 + len(jobs) + len(tiers) + 1
    column = 6 + sorted(by_kind).index("amd-epyc-avx512bf16-2core")
    cells = [line.split("|")[column].strip() for line in table[2:]]
    job_hours = [float(c) for c, line in zip(cells, table[2:]) if "**" not in line]
    assert len(job_hours) == len(jobs) and all(h > 0 for h in job_hours)
    assert float(cells[-1].strip("*")) == pytest.approx(sum(job_hours), abs=0.05 * len(jobs))


def test_a_tier_job_is_checked_as_a_training_job(tmp_path):
    plan = tmp_path / "tiers.toml"
    plan.write_text('[[tiers]]\njobs = [{ model = "vgg16bn", dataset = "cifar10", recipe = { epoks = 3 } }]\n')
    with pytest.raises(ValueError, match="tier 1.*epoks"):
        train_bench.read_tiers(plan)
    plan.write_text('[[tiers]]\njobs = [{ model = "vgg17", dataset = "cifar10" }]\n')
    with pytest.raises(ValueError, match="tier 1.*vgg17"):
        train_bench.read_tiers(plan)


def test_a_tier_is_priced_only_on_the_kinds_that_timed_its_models():
    rates = train_bench.rates_by_kind([RESULTS / "training-zoo-intel-xeon-avx512bf16-no-amx-2core.txt"])
    target = train_bench.Target(85)
    tier = {"title": "t", "jobs": [{"model": "alexnet", "dataset": "cifar10", "overrides": {}, "target": target}]}
    table = train_bench.tier_markdown([tier], rates).splitlines()
    assert "not measured" in table[2] and table[3].endswith("| not measured |")


def _history(curve):
    return [{"epoch": i, "loss": 1.0, "test_accuracy": [10.0, acc]} for i, acc in enumerate(curve, 1)]


def test_the_stopping_rule_reads_the_last_exit_of_the_learning_curve():
    sixty = train_bench.Target(60)
    assert train_bench.learning_verdict(_history([40, 55, 61, 60.5]), sixty).startswith("target 60 % reached")
    assert "first at epoch 3" in train_bench.learning_verdict(_history([40, 55, 61, 60.5]), sixty)
    assert train_bench.learning_verdict(_history([50, 58, 58.1, 58.2, 58.25]), sixty).startswith("plateau: +0.25 pp")
    assert train_bench.learning_verdict(_history([50, 52, 54, 56, 58]), sixty).startswith("still gaining: +6.00 pp")
    assert train_bench.learning_verdict(_history([50, 52]), None).startswith("too few epochs")
    assert train_bench.learning_verdict([{"epoch": 1, "loss": 1.0}]).startswith("no learning curve")


def test_a_target_that_asks_the_last_exit_to_lead_is_not_met_while_an_earlier_exit_is_ahead():
    """VGG16-BN / CIFAR-100 (tiers.toml): past 60 % at its last exit, but exit 2 ahead, is not its target."""
    curve = [[20.0, 50.0, 40.0], [30.0, 64.0, 63.3], [30.0, 65.0, 63.4], [30.0, 65.3, 63.4], [30.0, 65.3, 63.5]]
    history = [{"epoch": i, "loss": 1.0, "test_accuracy": exits} for i, exits in enumerate(curve, 1)]
    lead = train_bench.Target(60, lead=True)
    assert train_bench.learning_verdict(history, train_bench.Target(60)).startswith("target 60 % reached")
    verdict = train_bench.learning_verdict(history, lead)
    assert verdict.startswith("plateau: +0.20 pp") and "63.50 % after 5 epochs, behind exit 2's 65.30 %" in verdict
    ahead = [*history, {"epoch": 6, "loss": 1.0, "test_accuracy": [30.0, 65.3, 65.4]}]
    assert train_bench.learning_verdict(ahead, lead) == (
        "target 60 % and the most accurate exit reached (last exit 65.40 % after 6 epochs; first at epoch 6)"
    )


def test_a_tier_target_is_checked(tmp_path):
    plan = tmp_path / "tiers.toml"
    entry = '[[tiers]]\njobs = [{{ model = "vgg16bn", dataset = "cifar100", {} }}]\n'
    plan.write_text(entry.format("target = 60, lead = true"))
    assert train_bench.read_tiers(plan)[0]["jobs"][0]["target"] == train_bench.Target(60.0, lead=True)
    bad_entries = [
        ("lead = true", "needs a target"),
        ("target = 60, lead = 1", "lead must"),
        ('target = "60"', "target must"),
    ]
    for bad, says in bad_entries:
        plan.write_text(entry.format(bad))
        with pytest.raises(ValueError, match=f"tier 1.*{says}"):
            train_bench.read_tiers(plan)


def test_a_job_on_the_host_loop_is_priced_with_its_learning_curve():
    """The host loop predicts the test split after every epoch (the learning curve, in fp32); the GPU loop does not."""
    rates = pd.DataFrame(
        [{"model": "alexnet", "precision": "fp32", "train_img_s": 500.0, "predict_img_s": 1000.0, "single_ms": 1.0}]
    )
    cpu, paper = (
        train_bench.job_plan(rates, [("alexnet", "cifar10", {"epochs": 3})], profile, "fp32").iloc[0]
        for profile in ("cpu", "paper")
    )
    assert cpu.train_min == pytest.approx(3 * 50_000 / 500 / 60)
    assert cpu.observe_min == pytest.approx(3 * 10_000 / 1000 / 60) and paper.observe_min == 0
    assert cpu.total_h * 60 == pytest.approx(cpu.train_min + cpu.observe_min + cpu.predict_min)


def _times(*runs: tuple) -> pd.DataFrame:
    columns = ["model", "dataset", "kind", "precision", "epochs", "train_s", "curve_s"]
    return pd.DataFrame([dict(zip(columns, run)) for run in runs], columns=columns)


def test_a_shipped_epoch_is_set_beside_the_benchmark_of_the_kind_it_trained_on():
    rates = {
        "amd-epyc-avx512bf16-2core": pd.DataFrame(
            [
                {"model": "alexnet", "precision": "bf16", "train_img_s": 500.0, "predict_img_s": 1000.0},
                {"model": "alexnet", "precision": "fp32", "train_img_s": 250.0, "predict_img_s": 1000.0},
            ]
        )
    }
    times = _times(
        ("alexnet", "cifar10", "amd-epyc-avx512bf16-2core", "bf16", 40, 120.0, 12.0),  # 100 s predicted
        ("alexnet", "mnist", "amd-epyc-avx512bf16-2core", "fp32", 8, 180.0, float("nan")),  # 240 s predicted
        ("alexnet", "cifar10", "intel-xeon-amx-2core", "bf16", 40, 60.0, 6.0),  # a kind not timed
        ("vgg16bn", "cifar10", "amd-epyc-avx512bf16-2core", "bf16", 40, 60.0, 6.0),  # a model not timed
    )
    check = train_bench.epoch_check(times, rates)
    assert list(check.dataset) == ["cifar10", "mnist"] and list(check.precision) == ["bf16", "fp32"]
    assert check.predicted_min.tolist() == pytest.approx([100 / 60, 240 / 60])
    assert check.ratio.tolist() == pytest.approx([1.2, 0.75])
    assert check.curve_predicted_min.tolist() == pytest.approx([10 / 60, 10 / 60])
    text = train_bench.epoch_check_markdown(check)
    assert "| alexnet | cifar10 | amd-epyc-avx512bf16-2core | bf16 | 40 | 2.0 | 1.7 | 1.20x | 0.2 | 0.2 |" in text
    assert "| 0.75x |  | 0.2 |" in text  # no learning curve recorded: its cell is empty
    assert "amd-epyc-avx512bf16-2core: median 0.97x over 2 runs (range 0.75x-1.20x)" in text
    assert "nothing to compare" in train_bench.epoch_check_markdown(train_bench.epoch_check(times[2:], rates))
