"""The saved training benchmarks read back as the book's throughput tables."""

from pathlib import Path

import pytest

from earlyexit.engine import train_bench

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


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
