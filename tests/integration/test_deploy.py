"""GitOps deployment in a real git repository: CD registers versions when the champion changes, promotions and a
rollback change only the desired-state file (and the registry's stage), and after each step the rendered
manifests and the serving spec name the right version. Prod takes only a version that passed its gates and
that staging serves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.tabular.spec import apply_deployment_env
from tests.conftest import copy_repo, run, serving_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("kubectl") is None, reason="kubectl (with kustomize) renders the overlays"
    ),
]
SYSTEM = "adult"


def deploy(repo: Path, *args: str, check: bool = True) -> Any:
    return run(["python", "-m", "pipelines.deploy", *args], repo, check=check)


def commit_all(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def rendered(repo: Path, env: str) -> dict[str, Any]:
    """The container of the Deployment that `kubectl kustomize` renders for the overlay."""
    out = run(["kubectl", "kustomize", f"services/k8s/{SYSTEM}/{env}"], repo).stdout
    objects = [d for d in yaml.safe_load_all(out) if d]
    assert not any(o["kind"] == "ModelRelease" for o in objects)  # local config: never applied
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    return {
        "image": container["image"],
        "env": {e["name"]: e.get("value") for e in container["env"]},
        "version_label": pod["metadata"]["labels"]["app.kubernetes.io/version"],
    }


def changed(repo: Path) -> list[str]:
    return sorted(line[3:] for line in run(["git", "status", "--porcelain"], repo).stdout.splitlines())


def stage_of(repo: Path, env: str) -> str | None:
    shown = json.loads(run(["gto", "show", "--json"], repo).stdout)
    return shown.get(SYSTEM, {}).get("stage", {}).get(env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """v1.0.0 registered at the repository as it is; v1.0.1 after a commit whose champion changed."""
    repo = copy_repo(tmp_path_factory.mktemp("deploy") / "repo")
    deploy(repo, "manifests")
    v1 = commit_all(repo, "desired state")
    out = deploy(repo, "register").stdout
    assert f"{SYSTEM}: registered v1.0.0" in out and "hmda: registered v1.0.0" in out
    package_path = repo / f"reports/{SYSTEM}/package.json"
    package = json.loads(package_path.read_text())
    first_champion = package["champion"]
    package["champion"] = first_champion.split(":")[0] + ":0123456789ab"  # a retrained champion
    package_path.write_text(json.dumps(package, indent=2))
    v2 = commit_all(repo, "a new champion")
    out = deploy(repo, "register").stdout
    assert f"{SYSTEM}: registered v1.0.1" in out
    assert "hmda: champion" in out and "unchanged since v1.0.0" in out  # nothing new for hmda: no version
    assert json.loads((repo / "var/deploy/registered.json").read_text()) == [
        {"system": SYSTEM, "version": "v1.0.1", "commit": v2, "champion": package["champion"]}
    ]
    return {"path": repo, "v1": v1, "v2": v2, "champions": [first_champion, package["champion"]]}


def image(repo: Path, commit: str) -> Any:
    """The serving spec inside the image built at ``commit``: its package report's champion and challenger."""
    package = json.loads(run(["git", "show", f"{commit}:reports/{SYSTEM}/package.json"], repo).stdout)
    return serving_spec(SYSTEM, package["champion"], package["challenger"])


def expect(repo: Path, env: str, version: str, commit: str, champion: str, other: str) -> None:
    """After a step: the rendered overlay of ``env`` names ``version`` at ``commit`` and its ``champion``; the pod
    of that image is ready with the desired routing, and a pod of the ``other`` version's image never is."""
    got = rendered(repo, env)
    assert got["image"].endswith(f"/{SYSTEM}:{commit[:12]}")
    assert got["version_label"] == version
    assert got["env"]["ADULT_RELEASE"] == version
    assert got["env"]["ADULT_EXPECTED_CHAMPION"] == champion
    spec, problems = apply_deployment_env(image(repo, commit), got["env"])
    assert problems == [] and spec.champion.tag == champion
    assert spec.routing.mode == got["env"]["ADULT_ROUTING_MODE"] != ""
    assert spec.routing.challenger_weight == float(got["env"]["ADULT_CHALLENGER_WEIGHT"])
    _, stale = apply_deployment_env(image(repo, other), got["env"])
    assert len(stale) == 1 and "the desired state and the image disagree" in stale[0]


def propose(repo: Path, message: str) -> str:
    """The working tree's change committed on a branch of its own (a pull request, not merged yet)."""
    branch = "pr/" + re.sub(r"[^a-z0-9]+", "-", message.lower()).strip("-")
    run(["git", "checkout", "-q", "-b", branch], repo)
    commit_all(repo, message)
    return branch


def merge(repo: Path, branch: str, stages: dict[str, str]) -> None:
    """The pull request merged into main, then CD's registry sync: the registry's stages follow what was merged."""
    run(["git", "checkout", "-q", "main"], repo)
    run(["git", "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch], repo)
    deploy(repo, "sync-registry")
    for env, version in stages.items():
        assert stage_of(repo, env) == version


def merged(repo: Path, message: str, stages: dict[str, str]) -> None:
    merge(repo, propose(repo, message), stages)


def previous(repo: Path, env: str) -> list[str]:
    return yaml.safe_load((repo / f"services/k8s/{SYSTEM}/{env}/release.yaml").read_text())["spec"][
        "previous"
    ]


def test_promote_to_staging_then_prod_and_roll_back(repo: dict[str, Any]) -> None:
    path, (c1, c2) = repo["path"], repo["champions"]
    assert rendered(path, "prod")["image"].endswith(":unreleased")
    deploy(path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v1.0.0")
    assert changed(path) == [f"services/k8s/{SYSTEM}/staging/release.yaml"]  # the file, nothing else
    assert stage_of(path, "staging") is None  # the registry follows merges, not proposals
    expect(path, "staging", "v1.0.0", repo["v1"], c1, repo["v2"])
    early = deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.0", check=False)
    assert early.returncode == 1 and "which names unreleased" in early.stderr  # staging not even committed
    branch = propose(path, "adult v1.0.0 to staging")
    same = deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.0", check=False)
    assert same.returncode == 1 and "Traceback" not in same.stderr  # one branch cannot carry staging and prod
    assert "not what staging serves on main (" in same.stderr and "which names unreleased" in same.stderr
    assert changed(path) == []
    merge(path, branch, {"staging": "v1.0.0"})
    deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.0")
    expect(path, "prod", "v1.0.0", repo["v1"], c1, repo["v2"])
    merged(path, "adult v1.0.0 to prod", {"staging": "v1.0.0", "prod": "v1.0.0"})

    refused = deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.1", check=False)
    assert refused.returncode == 1 and "which names v1.0.0" in refused.stderr
    assert changed(path) == []  # a refusal changes nothing
    deploy(path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v1.0.1")
    expect(path, "staging", "v1.0.1", repo["v2"], c2, repo["v1"])
    merged(path, "adult v1.0.1 to staging", {"staging": "v1.0.1", "prod": "v1.0.0"})
    again = deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.0", check=False)
    assert again.returncode == 1 and "adult prod already serves v1.0.0" in again.stderr  # staging moved on
    deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.1")
    expect(path, "prod", "v1.0.1", repo["v2"], c2, repo["v1"])
    merged(path, "adult v1.0.1 to prod", {"staging": "v1.0.1", "prod": "v1.0.1"})
    report = run(["python", "-m", "pipelines.pr_report", "--base", "HEAD~1", "--head", "HEAD"], path).stdout
    assert (
        f"**Deployment** (the desired state in `services/k8s/{SYSTEM}/`): prod v1.0.0 ({c1}) → v1.0.1 ({c2})"
        in report
    )
    assert "### hmda" not in report  # the pull request of a promotion names what it deploys, and nothing else
    status = deploy(path, "status").stdout
    assert f"{SYSTEM:<12} prod     v1.0.1" in status and "hmda         prod     unreleased" in status

    never = deploy(path, "rollback", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.2", check=False)
    assert never.returncode == 1 and "never served v1.0.2" in never.stderr  # not a promotion in disguise
    deploy(path, "rollback", "--system", SYSTEM, "--env", "prod")
    assert changed(path) == [f"services/k8s/{SYSTEM}/prod/release.yaml"]
    expect(path, "prod", "v1.0.0", repo["v1"], c1, repo["v2"])
    expect(path, "staging", "v1.0.1", repo["v2"], c2, repo["v1"])  # staging keeps what it tests
    merged(path, "roll back adult prod", {"staging": "v1.0.1", "prod": "v1.0.0"})
    assert previous(path, "prod") == ["v1.0.1"]  # the rollback itself can be undone
    assert release_problems(path) == []  # every desired state agrees with the registry
    deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.1")
    assert previous(path, "prod") == ["v1.0.0"]  # a version is listed once, never the one served
    run(["git", "checkout", "-q", "--", "."], path)


def release_problems(repo: Path) -> list[str]:
    from pipelines.core.config import load_params
    from pipelines.deploy import release_problems as check

    return check(repo, load_params(repo / "params.yaml"))


def test_a_desired_state_that_mixes_two_releases_is_caught(repo: dict[str, Any], tmp_path: Path) -> None:
    path = Path(shutil.copytree(repo["path"], tmp_path / "repo", symlinks=True))
    target = path / f"services/k8s/{SYSTEM}/prod/release.yaml"
    doc = yaml.safe_load(target.read_text())
    assert doc["spec"]["version"] != "unreleased" and release_problems(path) == []
    other = repo["v2"] if doc["spec"]["commit"] == repo["v1"] else repo["v1"]
    assert doc["spec"]["routing"] == "canary"  # what the package report says
    for key, value in [
        ("commit", other),
        ("image", "docker.io/evil/x:" + other[:12]),
        ("champion", "adult-hgb:0"),
        ("routing", "shadow"),  # a hand edit of the routing
        ("weight", "0.9"),  # or of the challenger's share
    ]:
        target.write_text(yaml.safe_dump({**doc, "spec": {**doc["spec"], key: value}}))
        found = release_problems(path)
        assert len(found) == 1 and f"spec.{key} is {value!r}, but {doc['spec']['version']} has" in found[0], (
            found
        )


def test_a_desired_state_must_be_of_its_folder(repo: dict[str, Any], tmp_path: Path) -> None:
    path = Path(shutil.copytree(repo["path"], tmp_path / "repo", symlinks=True))
    target = path / f"services/k8s/{SYSTEM}/staging/release.yaml"
    original = yaml.safe_load(target.read_text())
    for change, needle in [
        ({"environment": "prod"}, f"but the file is {SYSTEM}'s staging"),
        ({"system": "hmda"}, f"but the file is {SYSTEM}'s staging"),
        ({"routing": "canary", "challenger": ""}, "needs a challenger"),
        ({"previous": ["foo"]}, "spec.previous holds ['foo']"),
    ]:
        doc = {**original, "spec": {**original["spec"], **change}}
        target.write_text(yaml.safe_dump(doc))
        proc = deploy(path, "status", check=False)
        assert proc.returncode == 1 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    text = yaml.safe_dump(original)
    for content, needle in [
        (b"\xff\xfe", "is not UTF-8 text"),
        (text.replace("  weight:", "  weight: '0.5'\n  weight:").encode(), "duplicate key 'weight'"),
        (None, "cannot be read"),  # a folder where the file goes
    ]:
        target.unlink() if target.is_file() else target.rmdir()
        target.mkdir() if content is None else target.write_bytes(content)
        proc = deploy(path, "status", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"services/k8s/{SYSTEM}/staging/release.yaml" in proc.stderr and needle in proc.stderr, (
            proc.stderr
        )


def test_prod_refuses_unregistered_and_gate_failing_versions(repo: dict[str, Any], tmp_path: Path) -> None:
    path = Path(shutil.copytree(repo["path"], tmp_path / "repo", symlinks=True))
    unknown = deploy(
        path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v9.9.9", check=False
    )
    assert unknown.returncode == 1
    assert "v9.9.9 is not registered" in unknown.stderr and "v1.0.0, v1.0.1" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    gate_path = path / f"reports/{SYSTEM}/gate.json"
    gate = json.loads(gate_path.read_text())
    gate["models"][gate["champion"]]["failed"] = ["min_roc_auc"]
    gate_path.write_text(json.dumps(gate))
    package_path = path / f"reports/{SYSTEM}/package.json"
    package = json.loads(package_path.read_text())
    package["champion"] = package["champion"].split(":")[0] + ":ffffffffffff"
    package_path.write_text(json.dumps(package))
    commit_all(path, "a champion that failed a blocking gate")
    deploy(path, "register")
    deploy(
        path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v1.0.2"
    )  # staging may test it
    assert previous(path, "staging") == ["v1.0.1", "v1.0.0"]
    deploy(path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v1.0.0")  # a change of mind
    assert previous(path, "staging") == ["v1.0.1"]  # v1.0.2 was only proposed, never served: not recorded
    deploy(path, "promote", "--system", SYSTEM, "--env", "staging", "--version", "v1.0.2")
    commit_all(path, "v1.0.2 to staging")
    before = (path / f"services/k8s/{SYSTEM}/prod/release.yaml").read_text()
    refused = deploy(path, "promote", "--system", SYSTEM, "--env", "prod", "--version", "v1.0.2", check=False)
    assert refused.returncode == 1 and "gate min_roc_auc failed" in refused.stderr
    assert (path / f"services/k8s/{SYSTEM}/prod/release.yaml").read_text() == before
    bad = deploy(path, "promote", "--system", "nosuch", "--env", "prod", "--version", "v1.0.0", check=False)
    assert bad.returncode != 0 and "unknown system 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr


def test_cd_opens_one_branch_per_new_version(repo: dict[str, Any], tmp_path: Path) -> None:
    path = Path(shutil.copytree(repo["path"], tmp_path / "repo", symlinks=True))
    v2 = repo["v2"]
    tags = run(["git", "tag", "--list"], path).stdout
    for start in ("--detach", "main-copy"):  # CD checks out a commit; a person runs it on a branch
        run(
            ["git", "checkout", "-q", *(["--detach", v2] if start == "--detach" else ["-b", start, v2])], path
        )
        out = deploy(path, "release-prs", "--dry-run").stdout
        assert (
            f"would run: git push origin deploy/{SYSTEM}/v1.0.1" in out and "would run: gh pr create" in out
        )
        assert out.count("diff --git") == 1 and f"b/services/k8s/{SYSTEM}/staging/release.yaml" in out
        assert "+  version: v1.0.1" in out  # the commit it would push, shown
        assert run(["git", "rev-parse", "HEAD"], path).stdout.strip() == v2  # HEAD put back as it was
        branch = run(["git", "symbolic-ref", "-q", "--short", "HEAD"], path, check=False).stdout.strip()
        assert branch == ("" if start == "--detach" else start)
        assert run(["git", "branch", "--list", "deploy/*"], path).stdout == ""  # a dry run leaves no branch
        assert run(["git", "status", "--porcelain", "--untracked-files=no"], path).stdout == ""
    assert run(["git", "tag", "--list"], path).stdout == tags  # a promotion assigns no stage: merges do
    run(["git", "branch", f"deploy/{SYSTEM}/v1.0.1", v2], path)  # its pull request was opened before
    again = deploy(path, "release-prs", "--dry-run")
    assert (
        f"deploy/{SYSTEM}/v1.0.1 exists already" in again.stdout and "would run: git push" not in again.stdout
    )
    images = deploy(path, "images", "--dry-run").stdout
    assert "containerize adult:" in images and f"/{SYSTEM}:{v2[:12]}" in images
    assert not (path / "var/deploy/images.json").exists()  # nothing was pushed
