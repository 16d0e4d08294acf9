"""Hardened workflows: zizmor (offline) finds nothing, actions are pinned by commit, permissions are per job and
least privilege, no checkout keeps its credentials, no expression is expanded inside a script, and every run step
calls a make target that exists (or a script in the repository)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
MAKEFILE = (ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE, flags=re.M))
SHA = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # "on" stays a string key
    assert isinstance(data, dict)
    return data


def steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in load(path)["jobs"].items() for step in spec.get("steps", [])]


def test_zizmor_offline_finds_nothing() -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    proc = subprocess.run(
        [str(zizmor), "--offline", "--no-progress", "--format", "plain", ".github/workflows"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_commit_with_the_version_beside(workflow: Path) -> None:
    lines = [ln for ln in workflow.read_text().splitlines() if re.match(r"\s*(- )?uses:", ln)]
    assert lines
    for line in lines:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        assert SHA.match(ref.strip()), line
        assert re.match(r"\s*v\d+\.\d+\.\d+", comment), f"no version comment: {line}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_per_job_and_least_privilege(workflow: Path) -> None:
    data = load(workflow)
    assert data.get("permissions") in ({}, "{}", {"contents": "read"}), (
        "workflow-wide permissions: none or read"
    )
    assert "pull_request_target" not in data["on"]
    for name, job in data["jobs"].items():
        perms = job.get("permissions")
        assert perms is not None, f"{name}: no permissions of its own"
        if isinstance(perms, dict):
            assert "write-all" not in perms.values()
            assert set(perms.values()) <= {"read", "write", "none"}
        else:
            assert perms in ("{}", "read-all"), f"{name}: {perms}"
    assert "concurrency" in data


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_no_checkout_keeps_its_credentials(workflow: Path) -> None:
    for job, step in steps(workflow):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert (step.get("with") or {}).get("persist-credentials") == "false", job


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_a_make_target_or_a_script_without_expressions(workflow: Path) -> None:
    for job, step in steps(workflow):
        script = step.get("run")
        if script is None:
            continue
        assert "${{" not in script, f"{job}: an expression inside run: (pass it through env:)"
        command = script.strip()
        assert "\n" not in command, f"{job}: one command per step, got {command!r}"
        # make expands $(...) in a variable given on its command line: values go through the environment
        assert not re.search(r"\b[A-Z_]+=\"?\$", command), f"{job}: pass {command!r}'s values through env:"
        if command.startswith("make "):
            words = [w for w in command.split()[1:] if not w.startswith("-") and "=" not in w]
            assert words and all(w in TARGETS for w in words[:1]), f"{job}: {command}"
        else:
            assert (ROOT / command.split()[0]).is_file(), (
                f"{job}: {command} is neither make nor a script here"
            )


def test_the_pipeline_and_cd_steps_cover_the_gitops_loop() -> None:
    ci = " ".join(str(s.get("run", "")) for _, s in steps(ROOT / ".github/workflows/ci.yml"))
    cd = " ".join(str(s.get("run", "")) for _, s in steps(ROOT / ".github/workflows/cd.yml"))
    for target in (
        "make params-check",
        "make manifests-check",
        "make pipeline",
        "make pr-report",
        "make pr-comment",
    ):
        assert target in ci, target
    for target in ("make pipeline", "make register", "make registry-sync", "make images", "make release-prs"):
        assert target in cd, target


def test_cd_publishes_a_version_only_with_its_image() -> None:
    """Register (local), log in, build and push the images, then push the registrations: a failure before the last
    publishes nothing. The token reaches docker login through the environment; only the release job may write
    packages."""
    cd = steps(ROOT / ".github/workflows/cd.yml")
    runs = [str(s.get("run", "")) for _, s in cd]
    order = [
        "make register",
        "make registry-login",
        "make images",
        "make register PUSH=1",
        "make release-prs",
    ]
    assert [runs.index(r) for r in order] == sorted(runs.index(r) for r in order), runs
    login = next(s for _, s in cd if s.get("run") == "make registry-login")
    assert login["env"]["GH_TOKEN"] == "${{ github.token }}"
    jobs = load(ROOT / ".github/workflows/cd.yml")["jobs"]
    assert [n for n, j in jobs.items() if (j.get("permissions") or {}).get("packages") == "write"] == [
        "release"
    ]
    assert "registry-login:" in MAKEFILE and "--password-stdin" in (ROOT / "pipelines/deploy.py").read_text()


def test_only_pull_requests_cancel_their_running_checks() -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert load(ROOT / ".github/workflows/cd.yml")["concurrency"]["cancel-in-progress"] == "false"


def test_caches_for_pip_and_dvc() -> None:
    for name in ("ci.yml", "cd.yml"):
        text = (ROOT / ".github/workflows" / name).read_text()
        assert "cache: pip" in text and "path: .dvc/cache" in text, name
