"""Suite ``pipeline``: the inner loop of a pull-request author under real DVC: a no-op ``dvc status`` and
``dvc repro`` on the full build of every system (and with one more system added), and each system's cold data
stages against their own commands.

1. **Data stages.** For each system and each repeat: a fresh copy of the repository (no DVC cache, no outputs), a
   cold ``dvc repro profile@<system>`` (ingest, validate, split, profile; check_params is up to date, its outputs
   are committed), then each of those stages' commands from dvc.yaml run directly in the same copy: DVC's share is
   the cold run less their sum.
2. **No-op on the full build.** One fresh copy, a cold ``dvc repro`` of every system, then ``repeats`` times a
   ``dvc status`` and a ``dvc repro`` that have nothing to do (checked: no stage runs), beside the stage count.
3. **One system more.** In the same copy, a synthetic system is added by config, data and text only
   (``tests/synthetic_system.py``, as ``tests/integration/test_add_a_system.py`` adds it), composed and built;
   then the no-op figures again. The difference is the cost of an added system.

Peak memory is the largest resident set in the process tree, read by a small launcher (``benchmarks/measure.py``).
Medians over the repeats are reported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import Sample, median, run_measured, summarize
from pipelines.core.workspace import ROOT, copy_worktree

# check_params' outputs are committed: it does not run
DATA_STAGES = ["ingest", "validate", "split", "profile"]


def stage_command(stages: dict[str, Any], stage: str, system: str) -> str:
    spec = stages[stage]
    return (spec["do"]["cmd"] if "do" in spec else spec["cmd"]).replace("${item}", system)


def data_stages(system: str, repeats: int, stages: dict[str, Any]) -> dict[str, Any]:
    cold: list[Sample] = []
    per_stage: dict[str, list[Sample]] = {s: [] for s in DATA_STAGES}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
            first = run_measured(["dvc", "repro", f"profile@{system}"], repo)
            ran = [s for s in DATA_STAGES if f"Running stage '{s}@{system}'" in first.output]
            if ran != DATA_STAGES:
                raise RuntimeError(f"cold run ran {ran}, expected {DATA_STAGES}:\n{first.output}")
            cold.append(first)
            for stage in DATA_STAGES:
                per_stage[stage].append(
                    run_measured(["bash", "-c", stage_command(stages, stage, system)], repo)
                )
    sums = [sum(per_stage[s][i].seconds for s in DATA_STAGES) for i in range(repeats)]
    return {
        "cold_repro": summarize(cold),
        "stages": {stage: summarize(samples) for stage, samples in per_stage.items()},
        "stages_sum": median(sums),
        # each repeat's cold run over its own stages' sum, measured back to back
        "ratio": median([c.seconds / s for c, s in zip(cold, sums, strict=True)]),
    }


def noop(repo: Path, repeats: int) -> dict[str, Any]:
    """No-op ``dvc status`` and ``dvc repro`` in a full build, with the stage count."""
    listed = run_measured(["dvc", "stage", "list", "--name-only"], repo).output.split()
    status, repro = [], []
    for _ in range(repeats):
        status.append(run_measured(["dvc", "status"], repo))
        again = run_measured(["dvc", "repro"], repo)
        if "Running stage" in again.output:
            raise RuntimeError(f"a no-op repro ran a stage:\n{again.output}")
        repro.append(again)
    lock = (repo / "dvc.lock").read_text(encoding="utf-8")
    return {
        "stages": len(listed),
        "status": summarize(status),
        "repro": summarize(repro),
        "lock_lines": len(lock.splitlines()),
    }


def full_build(repeats: int) -> dict[str, Any]:
    from tests.synthetic_system import NAME, write_system

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
        cold = run_measured(["dvc", "repro"], repo)
        before = noop(repo, repeats)
        write_system(repo)
        run_measured(["python", "-m", "pipelines.compose"], repo)
        added = run_measured(["dvc", "repro"], repo)
        after = noop(repo, repeats)
    return {
        "cold": summarize([cold]),
        "noop": before,
        "added_system": NAME,
        "added_build": summarize([added]),
        "noop_added": after,
        "per_system": {
            "status": after["status"]["seconds"] - before["status"]["seconds"],
            "repro": after["repro"]["seconds"] - before["repro"]["seconds"],
            "stages": after["stages"] - before["stages"],
            "lock_lines": after["lock_lines"] - before["lock_lines"],
        },
    }


def run(repeats: int) -> dict[str, Any]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    systems = yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]
    return {
        "repeats": repeats,
        "build": full_build(repeats),
        "systems": {s: data_stages(s, repeats, stages) for s in systems},
    }
