"""The machine a run happens on: which CPU or GPU, and the training precision it supports natively.

bf16 autocast pays only where the hardware computes bf16 natively. Measured on the 2-core CPU kinds
this project runs on: on an Intel Xeon with AMX, bf16 + channels-last trained ResNet44 about 1.7x
faster than fp32; on an AMD EPYC with AVX512_BF16 (Zen 4), 1.6x (ResNet44) to 1.9x (VGG16-BN); on an
AMD EPYC with AVX2 only, bf16 is emulated and ResNet44 trained at 8.5 img/s against 83 img/s in fp32.
Native is not enough: on an Intel Xeon with AVX512_BF16 but no AMX exposed (family 6 model 207, an
Emerald Rapids whose AMX the VM hides), bf16 trained MSDNet-21, MSDNet-40 and FlexVGG-16 at 0.77-0.82x
their fp32 throughput (ResNet-50 1.01x)
(``benchmarks/bench_training.py`` prints both on your machine).
So precision ``"auto"`` means bf16 where the CPU has AMX, AVX512_BF16 on AMD, or ``bf16`` on aarch64, or
the CUDA device supports bf16; fp32 elsewhere; ``"bf16"`` and ``"fp32"`` force one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .fingerprint import bookkeeping

PRECISIONS = ("auto", "bf16", "fp32")
#: CPU flags (``/proc/cpuinfo``) that mean native bf16 arithmetic: x86 AMX / AVX512_BF16, Arm BF16.
NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})


@dataclass(frozen=True)
class CPU:
    """What a run needs to know about its CPU: the model name and the instruction-set flags."""

    model: str
    flags: frozenset[str]
    vendor: str = ""

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & NATIVE_BF16_FLAGS)

    @property
    def fast_bf16(self) -> bool:
        """Whether bf16 training beats fp32 here: native bf16, except Intel's AVX512_BF16 without AMX."""
        return self.native_bf16 and not (self.vendor == "GenuineIntel" and "amx_bf16" not in self.flags)


def cpu_info(path: str | os.PathLike = "/proc/cpuinfo") -> CPU:
    """The CPU of this machine, from ``/proc/cpuinfo`` (Linux), else from :mod:`platform` with no flags."""
    with contextlib.suppress(OSError):
        fields: dict[str, str] = {}
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        flags = fields.get("flags") or fields.get("Features") or ""
        model = fields.get("model name") or fields.get("Model name") or fields.get("CPU part") or platform.processor()
        return CPU(model or "unknown", frozenset(flags.split()), fields.get("vendor_id", ""))
    return CPU(platform.processor() or platform.machine() or "unknown", frozenset())


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError saying which are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device, cpu: CPU | None = None) -> str:
    """The precision a run uses: ``precision`` itself if forced, else bf16 only where it is faster."""
    if check_precision(precision) != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if (cpu or cpu_info()).fast_bf16 else "fp32"


def device() -> torch.device:
    """CUDA when available (the ``paper`` profile on a GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@bookkeeping
def _kind(model: str, isa: str, cores: int | None) -> str:
    """A CPU kind slug from its model name, its bf16 instructions and its cores (:func:`cpu_kind`)."""
    name = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)|\b(processor|cpu)\b|@.*", " ", model.lower())).strip("-")
    return "-".join(p for p in (name, isa, f"{cores}core") if p)


@bookkeeping
def cpu_kind(cpu: CPU | None = None) -> str:
    """A slug of this machine's CPU kind, as benchmark results are named and figure runs record it
    (``amd-epyc-avx512bf16-2core``): the model name, the bf16 instructions it has, the cores."""
    cpu = cpu or cpu_info()
    isa = ""
    if "amx_bf16" in cpu.flags:
        isa = "amx"
    elif "avx512_bf16" in cpu.flags:
        isa = "avx512bf16" + ("-no-amx" if cpu.vendor == "GenuineIntel" else "")
    elif "bf16" in cpu.flags:
        isa = "bf16"
    return _kind(cpu.model, isa, os.cpu_count())


@bookkeeping
def recorded_kind(machine: dict, auto: bool) -> str | None:
    """The :func:`cpu_kind` an artifact's machine record (:func:`machine_record`) was made on: recorded, else
    inferred from its model name, cores, ``native_bf16`` and the precision it trained in, which ``auto`` (the
    run asked for ``"auto"``) chose: on Intel bf16 means AMX and fp32 AVX512_BF16 without it; AMD's native bf16
    is AVX512_BF16, any other's the ``bf16`` flag. None for a GPU run and where the record cannot tell."""
    if machine.get("device") != "cpu":
        return None
    if "kind" in machine:
        return machine["kind"]
    native, precision, model = machine.get("native_bf16"), machine.get("precision"), machine.get("cpu", "")
    intel = "intel" in model.lower()
    if native is None or "cores" not in machine or precision not in ("bf16", "fp32") or (native and intel and not auto):
        return None
    isa = ""
    if native and intel:
        isa = "amx" if precision == "bf16" else "avx512bf16-no-amx"
    elif native:
        isa = "avx512bf16" if "amd" in model.lower() else "bf16"
    return _kind(model, isa, machine["cores"])


def fast_bf16_kind(kind: str) -> bool:
    """Whether precision ``"auto"`` trains in bf16 on a CPU of the :func:`cpu_kind` slug ``kind``, as
    :attr:`CPU.fast_bf16` decides on the machine itself: native bf16, except Intel's AVX512_BF16 without AMX."""
    match = re.search(r"-(avx512bf16-no-amx|avx512bf16|amx|bf16)-\d+core$", kind)
    return match is not None and match.group(1) != "avx512bf16-no-amx"


@bookkeeping
def machine_record(precision: str | None = None) -> dict:
    """The machine a result was made on, as artifacts record it (``precision``: the one used;
    ``native_bf16``: whether the CPU computes bf16 natively, which tells apart CPUs of one model name)."""
    dev, cpu = device(), cpu_info()
    record = {
        "platform": platform.platform(),
        "cpu": cpu.model,
        "native_bf16": cpu.native_bf16,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": dev.type,
        "kind": cpu_kind(cpu),
    }
    if dev.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(dev)
    if precision is not None:
        record["precision"] = precision
    return record


@dataclass(frozen=True)
class CpuUse:
    """CPU-seconds spent so far by the whole machine and by this process with its reaped children."""

    wall: float  # time.perf_counter() when sampled
    machine: float  # busy CPU-seconds of all CPUs since boot (/proc/stat: user, nice, system, irq, softirq)
    own: float  # CPU-seconds of this process and of its children it has waited for (getrusage)


@bookkeeping
def cpu_use(stat: str | os.PathLike = "/proc/stat") -> CpuUse | None:
    """A :class:`CpuUse` sample now; None where ``stat`` cannot be read (not Linux)."""
    try:
        fields = Path(stat).read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    own = sum(
        r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return CpuUse(time.perf_counter(), busy, own)


@bookkeeping
def others_share(start: CpuUse, end: CpuUse, cpus: int | None = None) -> float:
    """The share (0-1) of the machine's ``cpus`` (default all) that processes other than this one and the
    children it waited for kept busy between two :func:`cpu_use` samples: what a time measured in between
    shared the machine with."""
    span = (end.wall - start.wall) * (cpus or os.cpu_count() or 1)
    others = (end.machine - start.machine) - (end.own - start.own)
    return min(max(others / span, 0.0), 1.0) if span > 0 else 0.0
