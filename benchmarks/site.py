"""Suite `site`: time of the report stage and of the site step (git pages, then `mkdocs build --strict`).

Runs in the repository after `dvc repro report` (so every input exists). Each repeat runs the report stage's
command into a temporary folder, then the site step (`python -m pipelines.site`) of that source into another,
each as its own process; wall time and peak RSS per process. Medians over the repeats.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.measure import Sample, run_measured, summarize
from pipelines.core.workspace import ROOT, tool_env


def run(repeats: int) -> dict[str, Any]:
    subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "repro", "report"],
        cwd=ROOT,
        env=tool_env(),
        check=True,
        capture_output=True,
    )
    report: list[Sample] = []
    build: list[Sample] = []
    pages = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
            source, out = Path(tmp) / "source", Path(tmp) / "html"
            report.append(
                run_measured([sys.executable, "-m", "pipelines.report", "--out", str(source)], ROOT)
            )
            build.append(
                run_measured(
                    [sys.executable, "-m", "pipelines.site", "--source", str(source), "--out", str(out)], ROOT
                )
            )
            pages = sum(1 for _ in out.rglob("*.html"))
    return {
        "repeats": repeats,
        "pages": pages,
        "report": summarize(report, 2),
        "build": summarize(build, 2),
    }
