"""What a benchmark ran on: machine, library versions and the source commit."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_count", "git_commit", "machine_info"]


def cpu_count() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        pass
    return None


def git_commit() -> str:
    """``git rev-parse --short HEAD`` of the checkout holding unblur, with ``-dirty`` when it has
    uncommitted changes other than to BENCHMARKS.md, which the runs themselves write (``unknown``
    outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)BENCHMARKS.md"], cwd=here, capture_output=True, text=True, timeout=30, check=False)
        dirty = status.returncode == 0 and bool(status.stdout.strip())
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(device: str = "cpu", threads: int | None = None) -> dict:
    """A dict describing the machine: CPU model, cores, RAM, OS, Python, torch, device, threads."""
    import numpy
    import torch

    try:
        import skimage

        skv = skimage.__version__
    except ImportError:  # pragma: no cover
        skv = "absent"
    from unblur import __version__

    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    ram = _ram_gb()
    return {
        "cpu": _cpu_model(),
        "cores": cpu_count(),
        "ram": f"{ram:.1f} GB" if ram else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-image": skv,
        "unblur": __version__,
        "device": dev,
        "torch threads": threads if threads is not None else torch.get_num_threads(),
    }
