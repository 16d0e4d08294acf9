"""Measuring helpers: wall time and peak RSS of a child process tree, medians, machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.workspace import tool_env


@dataclass
class Sample:
    seconds: float
    peak_rss_mib: float
    output: str


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd`` to completion; return its wall time and the peak RSS over it and its waited-for children."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env or tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return Sample(seconds, usage.ru_maxrss / 1024, output)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(samples: list[Sample], digits: int = 3) -> dict[str, Any]:
    """Median seconds and peak RSS over repeated samples, with every run's time."""
    return {
        "seconds": median([s.seconds for s in samples]),
        "peak_rss_mib": median([s.peak_rss_mib for s in samples]),
        "runs": [round(s.seconds, digits) for s in samples],
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
