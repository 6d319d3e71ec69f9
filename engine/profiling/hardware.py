"""What a benchmark or a profile ran on: recorded with every result (numbers without a machine mean
nothing)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "none"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "none"


def parse_gpu_usage(text: str) -> dict[str, float] | None:
    """nvidia-smi's `utilization.gpu,memory.used` CSV line (no header, no units) -> dict."""
    try:
        util, mem = (float(x) for x in text.strip().splitlines()[0].split(","))
    except (ValueError, IndexError):
        return None
    return {"utilization_pct": util, "memory_mib": mem}


def gpu_usage() -> dict[str, float] | None:
    """One sample of the first GPU's utilisation and memory in use, or None without an NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:  # sampled once a second: do not try to spawn it each time
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_gpu_usage(out.stdout) if out.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }
