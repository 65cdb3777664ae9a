"""Machine-aware precision: bf16 only where the hardware computes it natively and faster than fp32,
recorded with every result."""

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
