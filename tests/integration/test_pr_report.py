"""The pull-request report from a real comparison: two commits of a built repository (the quick experiment), the
second retraining one model of one system. `make pr-report BASE=<rev>` names the changed params, the metrics with
deltas and intervals, every model's gate verdict, whether the champion changes, the contract and monitoring
verdicts and the plots, for the system the change touches and no other."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, copy_repo, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, _ = quick_repo
    dest = Path(shutil.copytree(src, tmp_path_factory.mktemp("pr") / "repo", symlinks=True))
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "--allow-empty", "-m", "base: the quick build"], dest)
    run(
        ["python", "-m", "pipelines.compose", "experiment=quick", "hmda.models.logreg.estimator.C=0.01"], dest
    )
    run(["dvc", "repro", "report@hmda"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "hmda: a stronger L2 penalty for logreg"], dest)
    return dest


def test_the_report_compares_two_commits(repo: Path) -> None:
    proc = run(["make", "pr-report", "BASE=HEAD~1"], repo)
    text = (repo / "var/pr-report.md").read_text()
    assert text.strip() in proc.stdout
    assert "### hmda" in text and "### adult" not in text  # only the system the change touches
    assert "| `hmda.models.logreg.estimator.C` | `1.0` | `0.01` |" in text
    hmda = text.split("### hmda", 1)[1]
    gate = json.loads((repo / "reports/hmda/gate.json").read_text())
    base = json.loads(run(["git", "show", "HEAD~1:reports/hmda/gate.json"], repo).stdout)
    for name, model in gate["models"].items():  # every model's verdict, before and after
        row = next(line for line in hmda.splitlines() if line.startswith(f"| {name}"))
        assert f"{base['models'][name]['status']} → {model['status']}" in row
    logreg = next(line for line in hmda.splitlines() if line.startswith("| logreg"))
    old, new = base["models"]["logreg"]["primary"], gate["models"]["logreg"]["primary"]
    assert f"{new - old:+.4f}" in logreg
    if gate["champion"] != base["champion"]:
        assert f"the champion changes ({base['champion']} → {gate['champion']})" in text
    else:
        assert "the champion changes" not in text
    champion = gate["champion"]
    metrics = json.loads((repo / f"reports/hmda/eval/{champion}/metrics.json").read_text())
    auc = metrics["roc_auc"]
    assert f"{auc['value']:.4f} [{auc['ci_low']:.4f}, {auc['ci_high']:.4f}]" in hmda  # with its interval
    assert "**Data contract**: passed" in hmda and "**Monitoring**: `ok`" in hmda
    sha = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert f"/blob/{sha}/reports/hmda/eval/{champion}/plots/roc.json" not in text  # the head is the work tree
    head = run(["python", "-m", "pipelines.pr_report", "--base", "HEAD~1", "--head", "HEAD"], repo).stdout
    assert f"/blob/{sha}/reports/hmda/eval/{champion}/plots/roc.json" in head  # a commit: links to its files


def test_no_change_and_bad_revisions(repo: Path) -> None:
    same = run(["python", "-m", "pipelines.pr_report", "--base", "HEAD", "--head", "HEAD"], repo).stdout
    assert "No system changed" in same
    bad = run(["make", "pr-report", "BASE=nosuch"], repo, check=False)
    assert (
        bad.returncode != 0 and "'nosuch' is not a revision" in bad.stderr and "Traceback" not in bad.stderr
    )
    usage = run(["make", "pr-report"], repo, check=False)
    assert usage.returncode == 2 and "usage: make pr-report BASE=<rev>" in usage.stderr
    dry = run(["make", "pr-comment", "PR=12", "DRY_RUN=1"], repo)
    assert (
        "would run: gh pr comment 12 --body-file var/pr-report.md --edit-last --create-if-none" in dry.stdout
    )
    not_a_number = run(["make", "pr-comment", "PR=abc", "DRY_RUN=1"], repo, check=False)
    assert not_a_number.returncode != 0 and "expected a pull-request number" in not_a_number.stderr


# -- malformed reports: a part says it is unreadable, the report is still made -----------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository as committed (its reports included), nothing rebuilt."""
    repo = copy_repo(tmp_path_factory.mktemp("pr-plain") / "repo")
    (repo / ".venv").symlink_to(ROOT / ".venv")  # make finds this checkout's environment
    return repo


def edit(repo: Path, path: str, change: Callable[[dict[str, Any]], None]) -> None:
    file = repo / path
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def test_a_malformed_file_makes_its_part_unreadable(plain: Path) -> None:
    gate = json.loads((plain / "reports/adult/gate.json").read_text())
    champion = gate["champion"]
    cases: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
        ("reports/adult/gate.json", lambda d: d.update(models=[]), "models is a list, expected a mapping"),
        (
            "reports/adult/gate.json",
            lambda d: d["models"][champion].update(primary="high"),
            f"models.{champion}.primary is 'high', expected a number",
        ),
        (
            f"reports/adult/eval/{champion}/metrics.json",
            lambda d: d["roc_auc"].update(ci_low="x"),
            "roc_auc.ci_low is 'x', expected a number",
        ),
        ("reports/adult/monitor/decision.json", lambda d: d.update(reasons="many"), "reasons is 'many'"),
    ]
    for path, change, needle in cases:
        try:
            edit(plain, path, change)
            proc = run(["make", "pr-report", "BASE=HEAD"], plain, check=False)
        finally:
            run(["git", "checkout", "-q", "--", "."], plain)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert f"(unreadable: {path}" in proc.stdout and needle in proc.stdout, (path, proc.stdout)
        assert "### hmda" not in proc.stdout  # the other system is untouched
    (plain / "params.yaml").write_text("systems: [adult\n")
    try:
        proc = run(["python", "-m", "pipelines.pr_report", "--base", "HEAD"], plain, check=False)
    finally:
        run(["git", "checkout", "-q", "--", "."], plain)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "**Params**: (unreadable: params.yaml at working tree: not valid YAML" in proc.stdout


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [path] + [p for k, v in children for p in _paths(v, (*path, k))]


@given(st.data())
@settings(max_examples=15, deadline=None)
def test_the_report_never_crashes_on_malformed_reports(plain: Path, data: st.DataObject) -> None:
    """Any value of any report the pull-request report reads replaced by other JSON: a report, never a traceback."""
    from pipelines.pr_report import report

    gate = json.loads((plain / "reports/hmda/gate.json").read_text())
    files = [
        "reports/hmda/gate.json",
        f"reports/hmda/eval/{gate['champion']}/metrics.json",
        "reports/hmda/data/validation.json",
        "reports/hmda/monitor/decision.json",
    ]
    try:
        for _ in range(data.draw(st.integers(1, 3))):
            path = plain / data.draw(st.sampled_from(files))
            doc = json.loads(path.read_text())
            where = data.draw(st.sampled_from(_paths(doc)))
            value = data.draw(JSON)
            if not where:
                doc = value
            else:
                parent = doc
                for key in where[:-1]:
                    parent = parent[key]
                parent[where[-1]] = value
            path.write_text(json.dumps(doc))
        text = report(plain, "HEAD", None)
    finally:
        run(["git", "checkout", "-q", "--", "."], plain)
    assert text.startswith("## Pipeline report")
