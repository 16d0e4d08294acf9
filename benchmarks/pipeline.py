"""Suite ``pipeline``: each system's data stages (ingest, validate, split, profile) and its whole pipeline, under
real DVC.

For each system in params.yaml and each repeat: a fresh copy of the repository (no DVC cache, no outputs) and a
cold `dvc repro profile@<system>`; then a no-op `dvc repro profile@<system>` in that copy; then each data stage's
command from dvc.yaml run directly (so the per-stage figure excludes DVC's own overhead). Then, once per system
in a fresh copy, a cold `dvc repro report@<system>`: every stage of that system, training and evaluation
included (one run: minutes each). Peak memory is the largest resident set in the process tree, read by a small
launcher (`benchmarks/measure.py`). Medians over the repeats are reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import Sample, run_measured, summarize
from pipelines.core.workspace import ROOT, copy_worktree

STAGES = ["ingest", "validate", "split", "profile"]
TARGET = "profile@<system>"


def data_stages(system: str, repeats: int, stages: dict[str, Any]) -> dict[str, Any]:
    cold: list[Sample] = []
    noop: list[Sample] = []
    per_stage: dict[str, list[Sample]] = {s: [] for s in STAGES}
    target = f"profile@{system}"
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
            first = run_measured(["dvc", "repro", target], repo)
            ran = [s for s in STAGES if f"Running stage '{s}@{system}'" in first.output]
            if ran != STAGES:
                raise RuntimeError(f"cold run ran {ran}, expected {STAGES}:\n{first.output}")
            cold.append(first)
            again = run_measured(["dvc", "repro", target], repo)
            if "Running stage" in again.output:
                raise RuntimeError(f"no-op repro ran a stage:\n{again.output}")
            noop.append(again)
            for stage in STAGES:
                cmd = stages[stage]["do"]["cmd"].replace("${item}", system)
                per_stage[stage].append(run_measured(["bash", "-c", cmd], repo))
    return {
        "cold_repro": summarize(cold),
        "noop_repro": summarize(noop),
        "stages": {stage: summarize(samples) for stage, samples in per_stage.items()},
    }


def whole_system(system: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-system-") as tmp:
        repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
        sample = run_measured(["dvc", "repro", f"report@{system}"], repo)
        ran = sum(1 for line in sample.output.splitlines() if line.startswith("Running stage"))
    return {**summarize([sample]), "stages_run": ran}


def run(repeats: int) -> dict[str, Any]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    systems = yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]
    return {
        "repeats": repeats,
        "systems": {s: {**data_stages(s, repeats, stages), "cold_system": whole_system(s)} for s in systems},
    }
