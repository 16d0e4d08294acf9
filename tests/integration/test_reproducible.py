"""Reproducible releases: the same commit and data give byte-identical artifacts, metrics and versions.

Two kinds of evidence, both with real DVC in fresh git repositories:
- two cold runs of the quick experiment in two temporary clones give the same ``dvc.lock`` (every out's hash),
  the same release versions and the same BentoML tags;
- a cold ``dvc repro`` of the full pipeline in a temporary clone reproduces the committed ``dvc.lock`` and leaves
  every tracked file (metrics, gate report, params) exactly as committed, so ``git status`` is clean.
Run-time figures (fit time, throughput, latency) go to run records under logs/runs, never into these files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_repo, run

pytestmark = pytest.mark.integration


def out_hashes(repo: Path) -> dict[str, str]:
    """Every out of every stage, as dvc.lock records it."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {f"{s}:{o['path']}": o["md5"] for s, entry in stages.items() for o in entry.get("outs", [])}


def releases(repo: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for role in ("champion", "challenger"):
        release = json.loads((repo / "artifacts/adult" / role / "release.json").read_text())
        out[role] = release.get("version")
    package = json.loads((repo / "reports/adult/package.json").read_text())
    out |= {
        "bento": package["bento"],
        "champion_tag": package["champion"],
        "challenger_tag": package["challenger"],
    }
    return out


def test_two_cold_runs_give_the_same_artifacts_and_versions(
    quick_repo: tuple[Path, str], tmp_path: Path
) -> None:
    first, _ = quick_repo
    second = copy_repo(tmp_path / "second")
    run(["dvc", "exp", "run", "-S", "experiment=quick"], second)
    a, b = out_hashes(first), out_hashes(second)
    assert any(k.endswith("artifacts/adult/candidates/tabular_nn") for k in a) and len(a) >= 30
    assert {k for k in a if a[k] != b[k]} == set()
    assert releases(first) == releases(second)
    for model in ("logreg", "hgb", "tabular_nn"):
        gate_a = json.loads((first / "reports/adult/gate.json").read_text())["models"][model]["version"]
        gate_b = json.loads((second / "reports/adult/gate.json").read_text())["models"][model]["version"]
        assert gate_a == gate_b
    assert (second / "logs/runs/train/adult/tabular_nn.json").is_file()  # timings live in run records


def test_cold_pipeline_reproduces_the_committed_lock(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "clone")
    committed = out_hashes(repo)
    run(["dvc", "repro"], repo)
    changed = {k: (committed.get(k), v) for k, v in out_hashes(repo).items() if committed.get(k) != v}
    assert changed == {}, f"outputs whose hash differs from the committed dvc.lock: {changed}"
    status = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    assert status == "", f"a cold run changed tracked files:\n{status}"
    assert "up to date" in run(["dvc", "status"], repo).stdout
