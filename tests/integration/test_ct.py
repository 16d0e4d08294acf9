"""Continuous training in a real git repository: a retrain window becomes a candidate on a branch that the same
gates judged; rows the contract refuses are never trained on, and nothing is promoted (the repository is left as
it was). The rule that keeps a worse candidate out is tested on gate reports in tests/unit/test_ct_steps.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run

SYSTEM = "hmda"  # small: a full retrain of every model takes minutes, not tens of minutes


@pytest.fixture(scope="module")
def repo(quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the quick pipeline's repository, its state committed (CT needs a clean tree)."""
    src, _ = quick_repo
    dest = Path(shutil.copytree(src, tmp_path_factory.mktemp("ct") / "repo", symlinks=True))
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "the quick build"], dest)
    return dest


def replay(repo: Path, scenario: str) -> None:
    for folder in ("logs/predictions", "logs/labels", "logs/metrics"):
        shutil.rmtree(repo / folder / SYSTEM, ignore_errors=True)
    run(["python", "-m", "pipelines.replay", "--system", SYSTEM, "--scenario", scenario, "--simulate"], repo)


def ct(repo: Path) -> dict[str, Any]:
    proc = run(["python", "-m", "pipelines.ct", "--system", SYSTEM, "--override", "experiment=quick"], repo)
    assert f"[ct] {SYSTEM}: decision" in proc.stdout
    return json.loads((repo / "var/ct" / SYSTEM / "result.json").read_text())


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout.strip()


def test_ct_refuses_a_dirty_tree(repo: Path) -> None:
    (repo / "conf/hmda/system.yaml").write_text((repo / "conf/hmda/system.yaml").read_text() + "\n# edit\n")
    try:
        proc = run(["python", "-m", "pipelines.ct", "--system", SYSTEM], repo, check=False)
        assert (
            proc.returncode != 0 and "conf/hmda/system.yaml" in proc.stderr and "Traceback" not in proc.stderr
        )
    finally:
        run(["git", "checkout", "--", "conf/hmda/system.yaml"], repo)


def invert_labels(repo: Path) -> None:
    """The label feed reports every outcome inverted."""
    for labels in (repo / "logs/labels" / SYSTEM).glob("*.jsonl"):
        lines = [json.loads(x) for x in labels.read_text().splitlines()]
        labels.write_text("".join(json.dumps({**x, "label": 1 - x["label"]}) + "\n" for x in lines))


def assert_nothing_promoted(repo: Path, head: str) -> None:
    """Same commit, no branch, config and lock as committed; only the collected window is new."""
    assert git(repo, "rev-parse", "HEAD") == head and "ct/" not in git(repo, "branch", "--list")
    changed = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert changed and all(line[3:].startswith(f"data/{SYSTEM}/production/") for line in changed), changed
    assert not list((repo / "data" / SYSTEM / "raw").glob("production-*.csv"))


def test_rows_that_break_the_contract_are_not_trained_on(repo: Path) -> None:
    replay(repo, "covariate")
    invert_labels(repo)  # a denial rate of ~88%: outside the contract's class balance
    head = git(repo, "rev-parse", "HEAD")
    result = ct(repo)
    assert result["decision"] == "retrain" and result["outcome"] == "rejected", result
    assert "positive rate" in result["why"], result["why"]
    assert_nothing_promoted(repo, head)


def test_a_retrain_window_becomes_a_gated_candidate_on_a_branch(repo: Path) -> None:
    before = json.loads((repo / "reports/hmda/gate.json").read_text())
    replay(repo, "covariate")
    result = ct(repo)
    assert result["decision"] == "retrain" and result["outcome"] == "candidate", result
    assert any("lvrat" in r for r in result["reasons"])
    branch = result["branch"]
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == branch and branch.startswith(f"ct/{SYSTEM}/")
    files = git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    for expected in ("conf/hmda/system.yaml", "params.yaml", "dvc.lock", "reports/hmda/gate.json"):
        assert expected in files, files
    data = [f for f in files if f.startswith("data/hmda/raw/production-")]
    assert len(data) == 1 and any(f.startswith("data/hmda/production/") for f in files)
    # declared in config, pinned by its hash, and only in the training split
    conf = yaml.safe_load((repo / "conf/hmda/system.yaml").read_text())
    key = conf["split"]["extra_train"][0]
    assert conf["dataset"]["files"][key]["path"] == Path(data[0]).name
    split = json.loads((repo / "reports/hmda/data/split.json").read_text())["splits"]
    old_split = json.loads(git(repo, "show", "HEAD~1:reports/hmda/data/split.json"))["splits"]
    assert split["train"]["rows"] == old_split["train"]["rows"] + result["rows"]
    for name in ("valid", "test"):  # the same rows (their share of all rows changes, not they)
        assert [split[name][k] for k in ("rows", "positives")] == [
            old_split[name][k] for k in ("rows", "positives")
        ]
    # the same gates judged every candidate again; the new champion is not worse beyond the tolerance
    gate = json.loads((repo / "reports/hmda/gate.json").read_text())
    assert set(gate["models"]) == set(before["models"]) and set(result["gates"]) == set(gate["models"])
    assert gate["models"][gate["champion"]]["failed"] == []
    assert result["after"]["primary"] >= result["before"]["primary"] - 0.005
    assert result["after"]["version"] != result["before"]["version"]  # retrained, so a new version
    body = (repo / result["pr_body"]).read_text()
    assert "| current |" in body and "| retrained |" in body and "nearly duplicate" in body  # replayed rows
    # the branch is consistent: DVC has nothing left to run and git nothing left to commit
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert git(repo, "status", "--porcelain") == ""
