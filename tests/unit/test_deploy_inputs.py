"""Bad input to the deployment commands gets a clear error, never a shell, a traceback or a silent pass: make
variables are never parsed by the shell, config values are quoted into the manifests, checkov that crashes is an
error, and files no configured environment renders are named for deletion."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from pipelines.core import k8s_policy
from pipelines.core.errors import PipelineError
from tests.conftest import ROOT, copy_repo, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository whose make uses this checkout's virtual environment."""
    path = copy_repo(tmp_path_factory.mktemp("inputs") / "repo")
    (path / ".venv").symlink_to(ROOT / ".venv")
    return path


def test_make_variables_never_reach_the_shell(repo: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    cases = [
        (["promote", "SYSTEM=adult", "ENV=staging", f"VERSION=v1.0.0' ; touch {pwned}; echo '"], "--version"),
        (["promote", f"SYSTEM=adult$$(touch {pwned})", "ENV=staging", "VERSION=v1.0.0"], "unknown system"),
        (["rollback", "SYSTEM=adult", f'ENV=prod" ; touch {pwned}; echo "'], "--env"),
        (["pr-report", f"BASE=$$(touch {pwned})"], "is not a revision"),
        (["pr-report", f"BASE=`touch {pwned}`"], "is not a revision"),
        (["pr-report", "BASE=-n"], "'-n' is not a revision"),  # not argparse's "expected one argument"
        (["pr-comment", f"PR=1; touch {pwned}", "DRY_RUN=1"], "expected a pull-request number"),
        (["replay", f"SYSTEM=x; touch {pwned}", "SCENARIO=none"], "is not a system"),
        (["ct", f'SYSTEM=$$(touch {pwned})"'], "is not a system"),
        (["ct-matrix", f"SYSTEM=a b; touch {pwned}"], "is not a system"),
    ]
    for args, needle in cases:
        proc = run(["make", *args], repo, check=False)
        assert proc.returncode != 0 and needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not pwned.exists(), args
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""


def test_config_values_are_quoted_into_the_manifests(repo: Path, tmp_path: Path) -> None:
    run(["python", "-m", "pipelines.compose", 'adult.deploy.revision="feature: x # y"'], repo)
    try:
        run(["python", "-m", "pipelines.deploy", "manifests"], repo)
        app = yaml.safe_load((repo / "services/k8s/argocd/adult-staging.yaml").read_text())
        assert app["spec"]["source"]["targetRevision"] == "feature: x # y"
        assert k8s_policy.crd_problems(app) == []
    finally:
        run(["git", "checkout", "-q", "--", "."], repo)
    broken = repo / "services/k8s/argocd/hmda-prod.yaml"
    broken.write_text(broken.read_text().replace("targetRevision: ", "targetRevision: a: b "))
    try:
        proc = run(["python", "-m", "pipelines.deploy", "validate"], repo, check=False, CHECKOV=_checkov())
    finally:
        run(["git", "checkout", "-q", "--", "."], repo)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "services/k8s/argocd/hmda-prod.yaml is not valid YAML" in proc.stderr


def _checkov() -> str:
    found = k8s_policy.checkov_path()
    if found is None:
        pytest.skip("checkov is not installed (make policy-venv)")
    return str(found)


def fake(tmp_path: Path, name: str, body: str) -> str:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("exit 1", "did not print its JSON report (exit 1)"),  # /bin/false
        ("echo 'Traceback: boom' >&2; exit 2", "failed (exit 2): Traceback: boom"),
        ('echo \'{"results": {"failed_checks": []}}\'; exit 1', "lists no failed check"),
        ("echo '[]'; exit 0", "printed JSON that is not its report"),
        ("echo 'not json'; exit 0", "did not print its JSON report"),
    ],
)
def test_a_checkov_that_does_not_report_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, needle: str
) -> None:
    monkeypatch.setenv("CHECKOV", fake(tmp_path, "checkov", body))
    objects = k8s_policy.kustomize(ROOT / "services/k8s/adult/staging")
    with pytest.raises(PipelineError, match="checkov") as err:
        k8s_policy.policy_problems(objects)
    assert needle in str(err.value)


def test_validate_fails_when_checkov_cannot_run(repo: Path) -> None:
    proc = run(["python", "-m", "pipelines.deploy", "validate"], repo, check=False, CHECKOV="/bin/false")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "checkov (/bin/false) did not print its JSON report" in proc.stderr


def test_files_no_environment_renders_are_named_for_deletion(repo: Path) -> None:
    orphan = repo / "services/k8s/adult/dev/release.yaml"
    orphan.parent.mkdir()
    orphan.write_text((repo / "services/k8s/adult/staging/release.yaml").read_text())
    try:
        check = run(["python", "-m", "pipelines.deploy", "manifests", "--check"], repo, check=False)
        assert check.returncode == 1 and "run make manifests" not in check.stderr
        assert "git rm services/k8s/adult/dev/release.yaml" in check.stderr
        assert "hold(s) a desired state" in check.stderr
        write = run(
            ["python", "-m", "pipelines.deploy", "manifests"], repo
        )  # never deletes, says what to delete
        assert "git rm services/k8s/adult/dev/release.yaml" in write.stderr and orphan.is_file()
        stale = repo / "services/k8s/adult/base/hpa.yaml"
        stale.unlink()
        both = run(["python", "-m", "pipelines.deploy", "manifests", "--check"], repo, check=False)
        assert "stale (run make manifests and commit):\n  services/k8s/adult/base/hpa.yaml" in both.stderr
        assert "git rm services/k8s/adult/dev/release.yaml" in both.stderr
    finally:
        orphan.unlink()
        orphan.parent.rmdir()
        run(["git", "checkout", "-q", "--", "."], repo)


def test_a_folder_where_a_manifest_goes_is_named(repo: Path) -> None:
    target = repo / "services/k8s/hmda/base/pdb.yaml"
    target.unlink()
    target.mkdir()
    try:
        proc = run(["python", "-m", "pipelines.deploy", "manifests"], repo, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "found folders (remove them): services/k8s/hmda/base/pdb.yaml" in proc.stderr
        assert os.listdir(target) == []
    finally:
        target.rmdir()
        run(["git", "checkout", "-q", "--", "."], repo)
