"""Which accelerator this machine offers: CUDA, then MPS, then the CPU."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass
class DeviceInfo:
    """The compute device a run would use, as ``describe_device`` reports it.

    ``type`` is cuda, mps or cpu; ``threads`` torch's intra-op CPU threads; ``bf16``
    whether bf16 autocast is the fast path here.
    """
    type: str          # cuda | mps | cpu
    name: str
    threads: int       # torch's intra-op CPU threads
    cpu_count: int
    bf16: bool         # whether bf16 autocast is the fast path here
    torch_version: str

    def to_dict(self) -> dict:
        """The device info as a plain dict (JSON-ready)."""
        return asdict(self)

    @property
    def label(self) -> str:
        """A one-line description for the UI, e.g. ``CPU · AMD EPYC · 8 threads``."""
        return f"{self.type.upper()} · {self.name} · {self.threads} threads"


def pick_device(requested: str = "auto") -> str:
    """``requested`` unless it is ``auto``; for ``auto``, ``cuda`` if available, else ``mps``,
    else ``cpu``. Imports torch.
    """
    import torch
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """Every device a run can be placed on here: ``cpu``, each ``cuda:N``, and ``mps``."""
    import torch
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def describe_device(requested: str = "auto") -> DeviceInfo:
    """Name, thread count, bf16 support and torch version of the device ``pick_device``
    chooses for ``requested``. Imports torch.
    """
    import torch
    kind = pick_device(requested)
    if kind == "cuda":
        name = torch.cuda.get_device_name(0)
        bf16 = torch.cuda.is_bf16_supported()
    elif kind == "mps":
        name, bf16 = "Apple GPU", False
    else:
        name, bf16 = _cpu_name(), cpu_has_fast_bf16()
    return DeviceInfo(kind, name, torch.get_num_threads(), os.cpu_count() or 1, bf16,
                      torch.__version__)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 math (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "CPU"
