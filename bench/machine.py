"""What every benchmark records about the machine and the code it measured."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _proc_field(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_head() -> str:
    return git("rev-parse", "--short", "HEAD")


def machine_info(packages: Sequence[str]) -> dict[str, Any]:
    """Cores, CPU model, RAM, Python and ``packages``' versions, the commit (and whether dispatch/ had
    uncommitted changes), and the load average when the benchmark started."""
    mem = _proc_field("/proc/meminfo", "MemTotal").split()
    return {
        "nproc": os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "ram_gb": round(int(mem[0]) / 2**20, 1) if mem else 0.0,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in packages},
        "git_head": git_head(),
        "dispatch_uncommitted": git("status", "--porcelain", "--", "dispatch"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
