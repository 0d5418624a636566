"""What every benchmark result records about where and how it was measured."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime

import torch
import transformers


def machine_info() -> dict:
    """Cores, CPU model, memory and library versions: numbers only compare on the same machine.

    `cpu_capability` is the vector instruction set torch's CPU kernels use. Two 2-core machines that
    both call themselves "AMD EPYC" trained the built-in models at speeds 2.2x apart (the slower one
    had AVX2 only), so a result records it.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def run_info() -> dict:
    """The command that produced a result, and when."""
    return {
        "command": " ".join(shlex.quote(arg) for arg in ["python", *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
