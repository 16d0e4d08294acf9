"""The steps of ct.yml that do not rebuild anything: fetching the logs, the config CT writes, the rows it exports,
and what it asks of GitHub for each outcome (``gh`` itself is faked: GitHub is not reachable from the tests)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.core.config import DatasetConfig
from pipelines.core.errors import PipelineError
from pipelines.ct import declare, export_csv, fetch, near_duplicates, publish, rejection

ROOT = Path(__file__).resolve().parents[2]


def test_fetch_copies_the_logs_where_monitor_collects_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "bucket"
    for sub, name in (("predictions", "p-1.jsonl"), ("labels", "l-1.jsonl"), ("metrics", "metrics.prom")):
        (source / "adult" / sub).mkdir(parents=True)
        (source / "adult" / sub / name).write_text(f"{sub}\n")
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    assert fetch("adult", source) == {"predictions": 1, "labels": 1, "metrics": 1}
    assert (work / "logs/predictions/adult/p-1.jsonl").read_text() == "predictions\n"
    assert (work / "logs/labels/adult/l-1.jsonl").is_file() and (
        work / "logs/metrics/adult/metrics.prom"
    ).is_file()
    with pytest.raises(PipelineError, match="hmda"):
        fetch("hmda", source)


def test_declare_adds_the_file_and_keeps_the_config_as_written(tmp_path: Path) -> None:
    original = (ROOT / "conf/hmda/system.yaml").read_text()
    path = tmp_path / "system.yaml"
    path.write_text(original)
    declare(path, "production_abc", "production-abc.csv", "a" * 64)
    declare(path, "production_abc", "production-abc.csv", "a" * 64)  # twice: listed once
    text = path.read_text()
    assert text.startswith(original.rstrip("\n"))  # comments, order and list style untouched
    data = yaml.safe_load(text)
    assert data["split"]["extra_train"] == ["production_abc"]
    entry = data["dataset"]["files"]["production_abc"]
    assert entry["path"] == "production-abc.csv" and entry["sha256"] == "a" * 64 and entry["format"]["header"]


def dataset() -> DatasetConfig:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return DatasetConfig.model_validate(params["hmda"]["dataset"])


def test_export_writes_every_file_column_with_a_header() -> None:
    ds = dataset()
    row: dict[str, Any] = {c: "1" for c in ds.file_columns}
    row["deny"] = "yes"
    row["pirat"] = None
    text = export_csv([row], ds)
    header, line = text.splitlines()
    assert header.split(",") == ds.file_columns
    assert line.split(",")[ds.file_columns.index("pirat")] == ""  # missing -> the file's missing token
    assert line.split(",")[ds.file_columns.index("deny")] == "yes"


def test_near_duplicates_of_evaluation_rows_are_counted() -> None:
    evaluation = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [1.5, 2.5, 3.5]})
    rows = [
        {"a": "1", "b": "x", "c": "1.5"},  # an exact copy
        {"a": "2", "b": "y", "c": "99"},  # one column shifted
        {"a": "9", "b": "q", "c": "2.5"},  # two columns differ
        {"a": "3.0", "b": "z", "c": "3.5"},  # 3.0 and 3 are one value
    ]
    assert near_duplicates(rows, evaluation, ["a", "b", "c"]) == 3
    assert near_duplicates([], evaluation, ["a"]) == 0


def result(tmp: Path, **fields: Any) -> None:
    folder = tmp / "var/ct/hmda"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({"system": "hmda", "reasons": ["a reason"], **fields}))


@pytest.mark.parametrize(
    ("fields", "action"),
    [
        ({"decision": "ok", "outcome": "none"}, "none"),
        ({"decision": "retrain", "outcome": "rejected", "why": "worse"}, "issue"),
        ({"decision": "retrain", "outcome": "deferred"}, "none"),
        ({"decision": "block", "outcome": "none"}, "issue"),
        ({"decision": "rollback", "outcome": "none"}, "issue"),
        (
            {
                "decision": "retrain",
                "outcome": "candidate",
                "branch": "ct/hmda/abc",
                "rows": 9,
                "pr_body": "pr.md",
            },
            "pull_request",
        ),
    ],
)
def test_publish_plans_one_action_per_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], action: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result(tmp_path, **fields)
    plan = publish("hmda", dry_run=True)
    assert plan["action"] == action
    assert json.loads((tmp_path / "var/ct/hmda/action.json").read_text()) == plan
    tools = [c[:3] for c in plan["commands"]]
    expected = {
        "none": [],
        "issue": [["gh", "issue", "create"]],
        "pull_request": [["git", "push", "--set-upstream"], ["gh", "pr", "create"]],
    }[action]
    assert tools == expected
    if action == "issue":
        text = (tmp_path / "var/ct/hmda/issue.md").read_text()
        assert fields["decision"] in text and ("worse" in text) == (fields["outcome"] == "rejected")


def test_publish_runs_gh(tmp_path: Path) -> None:
    """Not a dry run: the commands really run, with ``gh`` and ``git`` on PATH replaced by recorders."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    for tool in ("gh", "git"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "repo"
    result(work, decision="block", outcome="none")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.ct", "--system", "hmda", "--publish"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=work,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert calls.read_text().startswith("gh issue create --title Monitor: block for hmda --body-file")


def test_make_ct_publish_needs_a_system() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "ct-publish"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "usage: make ct-publish SYSTEM=<name>" in proc.stderr


def gate(champion: str | None, primary: float | None) -> dict[str, Any]:
    """A gate report as select writes it (the fields CT reads), from the committed HMDA report."""
    base = json.loads((ROOT / "reports/hmda/gate.json").read_text())
    base["champion"] = champion
    if champion is not None:
        base["models"][champion]["primary"] = primary
    return base


@pytest.mark.parametrize(
    ("before", "after", "rejected"),
    [
        (("logreg", 0.80), ("logreg", 0.81), None),  # better
        (("logreg", 0.80), ("logreg", 0.797), None),  # within the tolerance
        (("logreg", 0.80), ("logreg", 0.79), "more than 0.005 below"),  # worse
        (("logreg", 0.80), ("hgb", 0.70), "more than 0.005 below"),  # another model, worse
        (("logreg", 0.80), (None, None), "no candidate passed the gates"),  # every candidate blocked
        ((None, None), ("logreg", 0.60), None),  # no champion before: any gated one is progress
    ],
)
def test_a_worse_candidate_is_never_proposed(before: tuple, after: tuple, rejected: str | None) -> None:
    why = rejection(gate(*before), gate(*after), 0.005)
    assert (why is None) if rejected is None else (why is not None and rejected in why), why
