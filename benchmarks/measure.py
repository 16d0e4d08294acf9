"""Measuring helpers: wall time and peak RSS of a child process tree, medians, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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


# A tiny launcher (python -S, no site packages): it times the command and reads the peak RSS of its process tree.
# Measuring from the benchmark process directly would count that (large) process's pages: a forked child's peak
# RSS includes what it inherited before exec.
LAUNCHER = (
    "import json,resource,subprocess,sys,time\n"
    "t=time.perf_counter();rc=subprocess.call(sys.argv[2:]);s=time.perf_counter()-t\n"
    "open(sys.argv[1],'w').write(json.dumps({'rc':rc,'seconds':s,"
    "'maxrss_kib':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    "sys.exit(rc)"
)


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd`` to completion; return its wall time and the peak RSS of it and its waited-for children."""
    with tempfile.NamedTemporaryFile(suffix=".json") as stats:
        proc = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, stats.name, *cmd],
            cwd=cwd,
            env=env or tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        measured = json.loads(Path(stats.name).read_text() or "{}")
    if proc.returncode != 0 or not measured:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return Sample(measured["seconds"], measured["maxrss_kib"] / 1024, proc.stdout)


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
