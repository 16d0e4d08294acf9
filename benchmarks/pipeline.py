"""Suite ``pipeline``: the data stages (ingest, validate, split, profile) under real DVC.

Each repeat makes a fresh copy of the repository (no DVC cache, no outputs) and times a cold
`dvc repro profile`; then a no-op `dvc repro profile` in that copy; then each stage's command from dvc.yaml run
directly (so the per-stage figure excludes DVC's own overhead). Peak memory is the largest resident set in the
process tree, read by a small launcher (`benchmarks/measure.py`). Medians over the repeats are reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import Sample, run_measured, summarize
from pipelines.core.workspace import ROOT, copy_worktree

STAGES = ["ingest", "validate", "split", "profile"]
TARGET = "profile@adult"  # the system whose data stages are measured


def run(repeats: int) -> dict[str, Any]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    cold: list[Sample] = []
    noop: list[Sample] = []
    per_stage: dict[str, list[Sample]] = {s: [] for s in STAGES}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
            first = run_measured(["dvc", "repro", TARGET], repo)
            ran = [s for s in STAGES if f"Running stage '{s}@adult'" in first.output]
            if ran != STAGES:
                raise RuntimeError(f"cold run ran {ran}, expected {STAGES}:\n{first.output}")
            cold.append(first)
            again = run_measured(["dvc", "repro", TARGET], repo)
            if "Running stage" in again.output:
                raise RuntimeError(f"no-op repro ran a stage:\n{again.output}")
            noop.append(again)
            for stage in STAGES:
                cmd = stages[stage]["do"]["cmd"].replace("${item}", "adult")
                per_stage[stage].append(run_measured(["bash", "-c", cmd], repo))
    return {
        "repeats": repeats,
        "cold_repro": summarize(cold),
        "noop_repro": summarize(noop),
        "stages": {stage: summarize(samples) for stage, samples in per_stage.items()},
    }
