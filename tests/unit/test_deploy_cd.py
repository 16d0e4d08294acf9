"""CD's publishing steps in a real git repository with a real remote: what counts as registered is what GTO says,
a registration is pushed only after its image, only the tags a step created are pushed, a release without a
champion is refused, a failure names the tags it created, and docker login gets its token on standard input."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.core.config import load_params, systems_of
from tests.conftest import ROOT, copy_repo, run

pytestmark = pytest.mark.integration
SYSTEMS = sorted(systems_of(load_params(ROOT / "params.yaml")))  # CD names them in this order
FIRST, LAST = SYSTEMS[0], SYSTEMS[-1]


def deploy(repo: Path, *args: str, check: bool = True, **env: str) -> Any:
    return run(["python", "-m", "pipelines.deploy", *args], repo, check=check, **env)


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo)


def tags(repo: Path) -> set[str]:
    return set(run(["git", "tag", "--list"], repo).stdout.split())


def remote_tags(repo: Path) -> set[str]:
    out = run(["git", "ls-remote", "--tags", "origin"], repo).stdout
    return {line.split("refs/tags/", 1)[1] for line in out.splitlines() if not line.endswith("^{}")}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("cd") / "repo")
    deploy(repo, "manifests")
    commit_all(repo, "desired state")
    return repo


@pytest.fixture
def repo(base: Path, tmp_path: Path) -> Path:
    """A copy of ``base`` with a bare repository as its origin."""
    path = Path(shutil.copytree(base, tmp_path / "repo", symlinks=True))
    run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], path)
    run(["git", "push", "-q", "origin", "main"], path)
    return path


def test_a_plain_git_tag_is_not_a_registration(repo: Path) -> None:
    run(["git", "tag", f"{LAST}@v3.0.0"], repo)  # lightweight: not a GTO registration
    proc = deploy(repo, "promote", "--system", LAST, "--env", "staging", "--version", "v3.0.0", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{LAST} v3.0.0 is not registered" in proc.stderr and "a plain git tag is not one" in proc.stderr
    assert run(["git", "status", "--porcelain"], repo).stdout == ""
    assert f"{LAST}: registered v1.0.0" in deploy(repo, "register").stdout  # numbering ignores the plain tag


@pytest.mark.parametrize("champion", [None, "absent"])
def test_register_refuses_a_release_without_a_champion(repo: Path, champion: str | None) -> None:
    path = repo / f"reports/{LAST}/package.json"
    package = json.loads(path.read_text())
    if champion is None:
        package["champion"] = None
    else:
        package.pop("champion")
    path.write_text(json.dumps(package))
    commit_all(repo, "no champion")
    before = tags(repo)
    proc = deploy(repo, "register", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    state = "None" if champion is None else "missing"
    assert f"reports/{LAST}/package.json at " in proc.stderr and f"key 'champion' is {state}" in proc.stderr
    assert tags(repo) == before  # not even the systems checked first were registered


def test_a_registration_is_pushed_only_after_its_image(repo: Path) -> None:
    run(["git", "tag", "-a", "-m", "someone's", "unrelated"], repo)
    out = deploy(repo, "register").stdout
    assert all(f"{s}: registered v1.0.0" in out for s in SYSTEMS), out
    assert remote_tags(repo) == set()  # registered here only
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()[:12]
    images = repo / "var/deploy/images.json"
    registered = [f"{s}@v1.0.0" for s in SYSTEMS]
    for pushed, refused in [([], ", ".join(registered)), ([FIRST], ", ".join(registered[1:]))]:
        images.write_text(json.dumps([f"ghcr.io/example/ai-systems-gitops/{s}:{head}" for s in pushed]))
        proc = deploy(repo, "register", "--push", check=False)
        assert proc.returncode == 1 and f"refused to push {refused}: its image was not pushed" in proc.stderr
        assert remote_tags(repo) == set()
    images.write_text(json.dumps([f"ghcr.io/example/ai-systems-gitops/{s}:{head}" for s in SYSTEMS]))
    deploy(repo, "register", "--push")  # a rerun registers nothing new and pushes what HEAD registered
    assert remote_tags(repo) == set(registered)  # not the unrelated local tag

    deploy(repo, "promote", "--system", LAST, "--env", "staging", "--version", "v1.0.0")
    commit_all(repo, f"{LAST} v1.0.0 to staging")
    deploy(repo, "sync-registry", "--push")
    assert remote_tags(repo) == {*registered, f"{LAST}#staging#1"}


def test_registry_sync_checks_everything_first_and_names_what_it_created(repo: Path) -> None:
    deploy(repo, "register")
    for system in SYSTEMS:
        deploy(repo, "promote", "--system", system, "--env", "staging", "--version", "v1.0.0")
    release = repo / f"services/k8s/{LAST}/staging/release.yaml"
    good = release.read_text()
    release.write_text(good.replace("version: v1.0.0", "version: v9.9.9"))  # a hand edit
    commit_all(repo, "staging")
    before = tags(repo)
    proc = deploy(repo, "sync-registry", check=False)
    assert proc.returncode == 1 and f"{LAST} v9.9.9 is not registered" in proc.stderr
    assert tags(repo) == before and "nothing was written" in proc.stderr  # no other stage was assigned first
    release.write_text(good)
    commit_all(repo, "staging, fixed")
    run(["git", "remote", "set-url", "origin", str(repo.parent / "nowhere.git")], repo)
    proc = deploy(repo, "sync-registry", "--push", check=False)  # the push fails after the tags were created
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    created = sorted(tags(repo) - before)
    assert len(created) == len(SYSTEMS) and all("#staging#" in t for t in created)
    assert f"tags it created before it stopped: {', '.join(created)}" in proc.stderr
    assert "nothing was written" not in proc.stderr


def fake_docker(folder: Path, exit_code: int = 0) -> Path:
    """A docker that records its arguments and standard input (no daemon here), and says the token on failure."""
    folder.mkdir(exist_ok=True)
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{folder}/args"\n'
        f'cat >> "{folder}/stdin"\n'
        f'[ {exit_code} -eq 0 ] || echo "denied for $GH_TOKEN" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def test_registry_login_reads_the_token_from_the_environment_only(repo: Path, tmp_path: Path) -> None:
    bin_dir = fake_docker(tmp_path / "bin")
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    token = "s3cret-token-value"
    proc = deploy(repo, "registry-login", PATH=path, GH_TOKEN=token, GITHUB_ACTOR="bot")
    assert (bin_dir / "args").read_text().split() == [
        "login",
        "ghcr.io",
        "--username",
        "bot",
        "--password-stdin",
    ]
    assert (bin_dir / "stdin").read_text() == token
    assert token not in proc.stdout + proc.stderr
    missing = deploy(repo, "registry-login", check=False, PATH=path, GH_TOKEN="", GITHUB_ACTOR="bot")
    assert missing.returncode == 1 and "GH_TOKEN not set" in missing.stderr
    failing = fake_docker(tmp_path / "bin2", exit_code=1)
    denied = deploy(
        repo, "registry-login", check=False, PATH=path.replace(str(bin_dir), str(failing)), GH_TOKEN=token,
        GITHUB_ACTOR="bot",
    )  # fmt: skip
    assert (
        denied.returncode == 1
        and "docker login ghcr.io failed" in denied.stderr
        and "denied for ***" in denied.stderr
    )
    assert token not in denied.stdout + denied.stderr
