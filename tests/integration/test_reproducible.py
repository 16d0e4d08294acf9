"""Reproducible releases: the same commit and data give byte-identical artifacts, metrics and versions.

A cold ``dvc repro`` of the full pipeline in a temporary clone, with real DVC, reproduces the committed
``dvc.lock`` (every out's hash: the models, their release records and versions, the bentos) and leaves every
tracked file (metrics, gate reports with the models' versions, the package reports with the BentoML tags, params)
exactly as committed, so ``git status`` is clean: two runs, on this machine and on the one that built the
committed outputs, from nothing to the same bytes. (A second cold run of the quick experiment in another clone
was dropped: it proved the same with 6 minutes more of the suite.)
Run-time figures (fit time, throughput, latency) go to run records under logs/runs, never into these files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_repo, run

pytestmark = pytest.mark.integration


def out_hashes(repo: Path) -> dict[str, str]:
    """Every out of every stage, as dvc.lock records it."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {f"{s}:{o['path']}": o["md5"] for s, entry in stages.items() for o in entry.get("outs", [])}


def test_cold_pipeline_reproduces_the_committed_lock(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "clone")
    committed = out_hashes(repo)
    run(["dvc", "repro"], repo)
    changed = {k: (committed.get(k), v) for k, v in out_hashes(repo).items() if committed.get(k) != v}
    assert changed == {}, f"outputs whose hash differs from the committed dvc.lock: {changed}"
    status = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    assert status == "", f"a cold run changed tracked files:\n{status}"
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert (repo / "logs/runs/train").is_dir()  # timings live in run records, outside every output
