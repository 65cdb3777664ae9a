"""Machine-aware precision: bf16 only where the hardware computes it natively and faster than fp32,
recorded with every result."""

import os

import pytest
import torch

from earlyexit.core import hardware

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
XEON_WITHOUT_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512_bf16
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512_bf16
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma f16c
"""
GRAVITON = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
CPU part\t: 0xd4f
"""


@pytest.mark.parametrize(
    "text, model, native, auto",
    [
        (XEON, "Intel(R) Xeon(R) Platinum 8488C", True, "bf16"),
        (ZEN4, "AMD EPYC 9R14", True, "bf16"),
        (XEON_WITHOUT_AMX, "Intel(R) Xeon(R) Processor", True, "fp32"),
        (EPYC, "AMD EPYC", False, "fp32"),
        (GRAVITON, "0xd4f", True, "bf16"),
    ],
)
def test_cpu_description_decides_the_automatic_precision(tmp_path, text, model, native, auto):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    cpu = hardware.cpu_info(path)
    assert cpu.model == model and cpu.native_bf16 is native
    cpu_dev = torch.device("cpu")
    assert hardware.resolve_precision("auto", cpu_dev, cpu) == auto
    assert hardware.resolve_precision("fp32", cpu_dev, cpu) == "fp32"
    assert hardware.resolve_precision("bf16", cpu_dev, cpu) == "bf16"


@pytest.mark.parametrize(
    "text, kind",
    [
        (XEON, "intel-xeon-platinum-8488c-amx"),
        (XEON_WITHOUT_AMX, "intel-xeon-avx512bf16-no-amx"),
        (ZEN4, "amd-epyc-9r14-avx512bf16"),
        (EPYC, "amd-epyc"),
    ],
)
def test_the_cpu_kind_names_the_model_and_its_bf16_instructions(tmp_path, monkeypatch, text, kind):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 2)
    assert hardware.cpu_kind(hardware.cpu_info(path)) == f"{kind}-2core"


@pytest.mark.parametrize("text", [XEON, XEON_WITHOUT_AMX, ZEN4, EPYC, GRAVITON])
def test_the_cpu_kind_of_an_older_record_is_inferred_from_the_precision_auto_chose(tmp_path, monkeypatch, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    cpu = hardware.cpu_info(path)
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hardware, "cpu_info", lambda: cpu)
    record = hardware.machine_record(hardware.resolve_precision("auto", torch.device("cpu"), cpu))
    assert hardware.recorded_kind(record, auto=True) == hardware.cpu_kind(cpu)  # recorded since this change
    del record["kind"]
    assert hardware.recorded_kind(record, auto=True) == hardware.cpu_kind(cpu)
    intel = cpu.vendor == "GenuineIntel"
    # a precision that was forced says nothing of Intel's AMX; a GPU run's CPU is not what trained it
    assert hardware.recorded_kind(record, auto=False) == (None if intel else hardware.cpu_kind(cpu))
    assert hardware.recorded_kind({**record, "precision": "bf16+fp32"}, auto=True) is None
    assert hardware.recorded_kind({**record, "device": "cuda", "kind": "x"}, auto=True) is None


def test_unreadable_cpu_description_means_no_native_bf16(tmp_path):
    cpu = hardware.cpu_info(tmp_path / "missing")
    assert not cpu.native_bf16 and cpu.model
    assert hardware.resolve_precision("auto", torch.device("cpu"), cpu) == "fp32"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        hardware.resolve_precision("fp16", torch.device("cpu"))


def test_machine_record_names_cpu_and_precision():
    record = hardware.machine_record("fp32")
    assert record["cpu"] == hardware.cpu_info().model and record["precision"] == "fp32"
    assert {"platform", "cores", "torch", "threads", "device"} <= set(record)
    assert record["native_bf16"] is hardware.cpu_info().native_bf16


def test_others_share_is_the_machine_s_busy_time_less_this_process_s_over_all_cpus():
    start = hardware.CpuUse(wall=10.0, machine=100.0, own=5.0)
    # 2 s on 4 CPUs = 8 CPU-s; the machine spent 6, this process 2 of them: others kept 4 of 8 busy.
    assert hardware.others_share(start, hardware.CpuUse(12.0, 106.0, 7.0), cpus=4) == pytest.approx(0.5)
    # Only this process worked: nobody else shared the machine (tick rounding below zero counts as none).
    assert hardware.others_share(start, hardware.CpuUse(12.0, 101.9, 7.0), cpus=4) == 0.0
    assert hardware.others_share(start, start, cpus=4) == 0.0  # no time passed


def test_cpu_use_reads_proc_stat_in_seconds(tmp_path):
    stat = tmp_path / "stat"
    ticks = os.sysconf("SC_CLK_TCK")
    stat.write_text(f"cpu  {ticks} 0 {ticks} 999999 7 0 {ticks} 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    use = hardware.cpu_use(stat)
    assert use.machine == pytest.approx(3.0) and use.own >= 0  # user + system + softirq; idle and iowait excluded
    assert hardware.cpu_use(tmp_path / "missing") is None
