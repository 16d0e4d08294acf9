"""Deployment as desired state in git: each system's Kubernetes manifests, promotions and rollbacks.

``services/k8s/<system>/<env>/release.yaml`` is the desired state of one system in one environment (staging, prod):
the registered version, its commit, image, champion and challenger, and the routing between them. It is the only
input of deployment that changes: the overlay beside it copies its fields into the manifests, and Argo CD syncs the
overlay. Commands (the Makefile's targets call them):

- ``manifests [--check]``: render every system's base, progressive-delivery component, overlays and Argo CD
  Applications from ``<system>.deploy`` (conf/deploy/) and the templates in services/k8s/templates; ``--check``
  fails when a committed file differs from what the config renders.
- ``promote --system S --env E --version V``: point E at the registered version V (its GTO tag ``S@V``). Refused
  unless V is registered; for prod, unless its release passed every blocking gate and staging serves V now.
- ``rollback --system S --env E [--version V]``: back to the version served before (or V).
- ``status``: what every system serves in every environment.
- ``register``: CD, after the pipeline on main: register a new version (GTO tag, next patch) of every system whose
  champion changed since its latest registered version; the list goes to ``var/deploy/registered.json``.
- ``images [--dry-run]``: CD: build each newly registered version's image from its bento and push it.
- ``release-prs [--dry-run]``: CD: for each newly registered version, a branch ``deploy/<system>/<version>`` that
  promotes it to staging, pushed with a pull request (``--dry-run``: the branch only, nothing pushed).

A promotion or rollback changes the desired-state file and the registry's stage (a GTO tag), nothing else: it is
committed and reviewed like any other change. Errors name the system, environment, version and what is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.core import k8s_policy
from pipelines.core.config import describe_errors, load_params, section, system_params, systems_of
from pipelines.core.deploy_config import ENVIRONMENTS, DeployConfig
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.gitops import prepare_runner, resolve_commit
from pipelines.core.io import write_text_atomic
from pipelines.core.render import environment as jinja

ROOT = Path(__file__).resolve().parents[1]
K8S = Path("services/k8s")
TEMPLATES = ROOT / K8S / "templates"
UNRELEASED = "unreleased"
Env = Literal["staging", "prod"]
VERSION = r"^(unreleased|v\d+\.\d+\.\d+)$"  # GTO's semantic versions


class Release(BaseModel):
    """The ``spec`` of a desired-state file (``release.yaml``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    system: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    environment: Env
    version: str = Field(pattern=VERSION)
    commit: str = Field(pattern=r"^([0-9a-f]{40})?$")
    image: str = Field(min_length=1)
    champion: str
    challenger: str
    routing: Literal["canary", "shadow", "champion_only"]
    weight: str = Field(pattern=r"^(0(\.\d+)?|1(\.0+)?)$")
    previous: list[str] = Field(max_length=20)


def release_path(system: str, env: str) -> Path:
    return K8S / system / env / "release.yaml"


def read_release(path: Path) -> Release:
    """The desired state in ``path`` (``services/k8s/<system>/<env>/release.yaml``); errors name the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no desired state (run make manifests)") from None
    return parse_release(text, str(path), path.parent.parent.name, path.parent.name)


def parse_release(text: str, path: str, system: str, env: str) -> Release:
    """A desired state's ``spec``, checked: its system and environment are those of its folder, a canary or shadow
    needs a challenger, and the versions it served before are versions."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PipelineError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        raise PipelineError(f"{path}: expected a ModelRelease with a 'spec' mapping")
    try:
        release = Release.model_validate(doc["spec"])
    except ValidationError as err:
        raise PipelineError(
            f"{path}: invalid desired state:\n" + "\n".join(describe_errors("spec", err))
        ) from None
    problems = []
    if (release.system, release.environment) != (system, env):
        problems.append(
            f"spec.system and spec.environment say {release.system} {release.environment}, but the file is "
            f"{system}'s {env}"
        )
    if release.routing != "champion_only" and not release.challenger:
        problems.append(f"spec.routing {release.routing!r} needs a challenger, and spec.challenger is empty")
    bad = [v for v in release.previous if not re.fullmatch(r"v\d+\.\d+\.\d+", v)]
    if bad:
        problems.append(f"spec.previous holds {bad}: expected registered versions such as v1.0.3")
    if problems:
        raise PipelineError(f"{path}: invalid desired state:\n  " + "\n  ".join(problems))
    return release


def render_release(release: Release) -> str:
    return jinja(TEMPLATES).get_template("release.yaml.j2").render(release=release)


# -- manifests ---------------------------------------------------------------------------------------------------

REPLACED = {  # desired-state field -> what it sets in the Deployment's container (<P>: the system's env prefix)
    "spec.image": ["spec.template.spec.containers.[name=service].image"],
    "spec.version": [
        "spec.template.spec.containers.[name=service].env.[name=<P>_RELEASE].value",
        "spec.template.metadata.labels.[app.kubernetes.io/version]",
    ],
    "spec.champion": ["spec.template.spec.containers.[name=service].env.[name=<P>_EXPECTED_CHAMPION].value"],
    "spec.routing": ["spec.template.spec.containers.[name=service].env.[name=<P>_ROUTING_MODE].value"],
    "spec.weight": ["spec.template.spec.containers.[name=service].env.[name=<P>_CHALLENGER_WEIGHT].value"],
}


def labels(system: str) -> str:
    return (
        f"{{ app.kubernetes.io/name: {system}, app.kubernetes.io/component: model-service, "
        "app.kubernetes.io/part-of: ai-systems, app.kubernetes.io/managed-by: kustomize }"
    )


def namespace(deploy: DeployConfig, system: str, env: str) -> str:
    return f"{deploy.namespace_prefix}{system.replace('_', '-')}-{env}"


def rendered(params: dict[str, Any]) -> dict[Path, str]:
    """Every generated file (path relative to the repository) and its text, for every system."""
    env = jinja(TEMPLATES)
    out: dict[Path, str] = {}
    for system in systems_of(params):
        deploy = section(system_params(params, system), "deploy", DeployConfig)
        data: dict[str, Any] = {
            "system": system,
            "deploy": deploy,
            "labels": labels(system),
            "pod_labels": labels(system)[:-2] + f", app.kubernetes.io/version: {UNRELEASED} }}",
            "selector": f"{{ app.kubernetes.io/name: {system} }}",
            "env_prefix": system.upper(),
        }
        folder = K8S / system
        for name in ("serviceaccount", "deployment", "service", "hpa", "pdb", "networkpolicy"):
            out[folder / "base" / f"{name}.yaml"] = env.get_template(f"{name}.yaml.j2").render(**data)
        out[folder / "base/kustomization.yaml"] = env.get_template("base.kustomization.yaml.j2").render(
            **data
        )
        for name in ("rollout", "analysistemplate"):
            out[folder / "progressive" / f"{name}.yaml"] = env.get_template(f"{name}.yaml.j2").render(**data)
        out[folder / "progressive/kustomization.yaml"] = env.get_template(
            "progressive.kustomization.yaml.j2"
        ).render(**data)
        replacements = [
            (field, [("Deployment", [p.replace("<P>", system.upper()) for p in paths])])
            for field, paths in REPLACED.items()
        ]
        for name in ENVIRONMENTS:
            more = data | {
                "env": name,
                "environment": deploy.environments[name],  # type: ignore[index]
                "namespace": namespace(deploy, system, name),
                "replacements": replacements,
            }
            out[folder / name / "kustomization.yaml"] = env.get_template(
                "overlay.kustomization.yaml.j2"
            ).render(**more)
            out[K8S / "argocd" / f"{system}-{name}.yaml"] = env.get_template("application.yaml.j2").render(
                **more
            )
    return out


def initial_release(params: dict[str, Any], system: str, env: str) -> Release:
    """The desired state of an environment nothing was promoted to yet."""
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    return Release(
        system=system,
        environment=env,  # type: ignore[arg-type]
        version=UNRELEASED,
        commit="",
        image=f"{deploy.image_repository}/{system}:{UNRELEASED}",
        champion="",
        challenger="",
        routing="champion_only",
        weight="0",
        previous=[],
    )


def manifests(params: dict[str, Any], repo: Path, check: bool) -> list[str]:
    """Write (or, with ``check``, compare) the generated files; returns the stale paths."""
    files = rendered(params)
    stale = [
        str(p) for p, text in files.items() if not (repo / p).is_file() or (repo / p).read_text() != text
    ]
    for system in systems_of(params):
        for env in ENVIRONMENTS:
            path = repo / release_path(system, env)
            if not path.is_file():
                stale.append(str(release_path(system, env)))
                if not check:
                    write_text_atomic(path, render_release(initial_release(params, system, env)))
    expected = {str(p) for p in files} | {
        str(release_path(s, e)) for s in systems_of(params) for e in ENVIRONMENTS
    }
    orphans = [
        str(p.relative_to(repo))
        for p in sorted((repo / K8S).rglob("*.yaml"))
        if TEMPLATES not in p.parents and str(p.relative_to(repo)) not in expected
    ]
    if check:
        return stale + [f"{o} (no configured system or environment renders it)" for o in orphans]
    for path, text in files.items():
        if str(path) in stale:
            write_text_atomic(repo / path, text)
    return stale


# -- registry (GTO tags in git) ----------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.lstrip("v").split("."))


def registered(repo: Path, system: str) -> list[str]:
    """The registered versions of ``system`` (tags ``system@vX.Y.Z``), oldest first."""
    tags = [t.split("@", 1)[1] for t in git(repo, "tag", "--list", f"{system}@v*").split()]
    return sorted((v for v in tags if re.fullmatch(r"v\d+\.\d+\.\d+", v)), key=semver)


def registered_commit(repo: Path, system: str, version: str) -> str:
    """The commit ``system@version`` was registered at; an error lists the versions that are registered."""
    commit = resolve_commit(repo, f"refs/tags/{system}@{version}")
    if commit is None:
        known = registered(repo, system)
        raise PipelineError(
            f"{system} {version} is not registered (no tag {system}@{version}); registered versions: "
            f"{', '.join(known) or 'none'} (CD registers one when the champion changes: gto register)"
        )
    return commit


def committed_json(repo: Path, commit: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(git(repo, "show", f"{commit}:{path}"))
    except PipelineError:
        raise PipelineError(
            f"commit {commit[:12]} has no {path}: it is not a release of this system"
        ) from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} at {commit[:12]} is not a JSON object")
    return data


def blocking_failures(gate: dict[str, Any]) -> list[str]:
    """Why the release's champion may not go to prod (an empty list: it passed every blocking gate)."""
    champion = gate.get("champion")
    if not champion:
        return ["no champion: no candidate passed the gates"]
    model = gate.get("models", {}).get(champion, {})
    failed = [f"gate {g} failed" for g in model.get("failed", [])]
    if not model.get("eligible", False) and not failed:
        failed.append(f"{champion} is not eligible")
    return failed


def release_for(
    repo: Path, deploy: DeployConfig, system: str, env: str, version: str, old: Release
) -> Release:
    commit = registered_commit(repo, system, version)
    package = committed_json(repo, commit, f"reports/{system}/package.json")
    challenger = package.get("challenger") or ""
    routing = package.get("routing", "champion_only") if challenger else "champion_only"
    fields = {
        "system": system,
        "environment": env,
        "version": version,
        "commit": commit,
        "image": f"{deploy.image_repository}/{system}:{commit[:12]}",
        "champion": package.get("champion"),
        "challenger": challenger,
        "routing": routing,
        "weight": str(package.get("challenger_weight", 0.0)) if challenger else "0",
        "previous": old.previous,
    }
    try:
        return Release.model_validate(fields)
    except ValidationError as err:
        problems = "\n".join(describe_errors(f"reports/{system}/package.json at {commit[:12]}", err))
        raise PipelineError(f"{system} {version} cannot be deployed:\n{problems}") from None


def check_prod(repo: Path, system: str, version: str, commit: str) -> None:
    failures = blocking_failures(committed_json(repo, commit, f"reports/{system}/gate.json"))
    if failures:
        raise PipelineError(
            f"refused: {system} {version} may not go to prod: {'; '.join(failures)} "
            f"(reports/{system}/gate.json at {commit[:12]})"
        )


def committed_release(repo: Path, system: str, env: str) -> Release:
    """The desired state of ``env`` as committed at HEAD (what is merged, not what the working tree says)."""
    path = release_path(system, env)
    proc = subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise PipelineError(f"{path} is not committed at HEAD (run make manifests and commit)")
    return parse_release(proc.stdout, f"{path} at HEAD", system, env)


def registry_stages(repo: Path) -> dict[str, dict[str, str]]:
    """``{system: {stage: version}}`` as the registry's tags say (``gto show --json``)."""
    gto = str(Path(sys.executable).parent / "gto")
    proc = subprocess.run([gto, "show", "--json"], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"gto show: {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout or "{}")
    return {k: dict(v.get("stage") or {}) for k, v in data.items() if isinstance(v, dict)}


def sync_registry(repo: Path, params: dict[str, Any], push: bool) -> list[str]:
    """The registry's stages (GTO tags ``system#env#N``) made to match the committed desired state: CD runs it after
    a merge, so the registry records what was merged, never a promotion still under review."""
    changed = []
    for system in systems_of(params):
        stages = registry_stages(repo).get(system, {})
        for env in ENVIRONMENTS:
            wanted = committed_release(repo, system, env).version
            if wanted == UNRELEASED or stages.get(env) == wanted:
                continue
            assign_stage(repo, system, wanted, env)
            changed.append(f"{system} {env} -> {wanted}")
            print(f"[deploy] registry: {system} {env} is {wanted}")
    if push and changed:
        execute(["git", "push", "origin", "--tags"], False, repo)
    return changed


def assign_stage(repo: Path, system: str, version: str, env: str) -> None:
    """The registry's stage (a GTO tag ``system#env#N`` on the version's commit)."""
    from gto.api import assign  # imported here: a second or two, and only promotions need it

    try:
        assign(str(repo), system, env, version=version, force=True)
    except Exception as err:  # gto raises its own exception types; the message says what went wrong
        raise PipelineError(f"gto assign {system} {version} {env}: {err}") from None


def promote(repo: Path, params: dict[str, Any], system: str, env: str, version: str) -> Release:
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    path = repo / release_path(system, env)
    old = read_release(path)
    new = release_for(repo, deploy, system, env, version, old)
    if env == "prod":
        check_prod(repo, system, version, new.commit)
        staging = committed_release(repo, system, "staging")
        if staging.version != version:
            raise PipelineError(
                f"refused: {system} {version} is not what staging serves on {git(repo, 'rev-parse', '--short', 'HEAD').strip()} "
                f"({staging.version}, committed); promote it to staging and merge that first"
            )
    if old.version == version:
        raise PipelineError(f"{system} {env} already serves {version}")
    if old.version != UNRELEASED:
        new = new.model_copy(
            update={"previous": [old.version, *[v for v in old.previous if v != old.version]][:20]}
        )
    write_text_atomic(path, render_release(new))
    return new


def rollback(repo: Path, params: dict[str, Any], system: str, env: str, version: str | None) -> Release:
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    path = repo / release_path(system, env)
    old = read_release(path)
    target = version or (old.previous[0] if old.previous else None)
    if target is None:
        raise PipelineError(f"{system} {env} has no earlier version to roll back to (serves {old.version})")
    if target not in old.previous:
        raise PipelineError(
            f"{system} {env} never served {target} (before: {', '.join(old.previous) or 'none'}): a rollback returns "
            "to an earlier version; use make promote for any other"
        )
    if target == old.version:
        raise PipelineError(f"{system} {env} already serves {target}")
    new = release_for(repo, deploy, system, env, target, old)
    if env == "prod":
        check_prod(repo, system, target, new.commit)
    rest = [old.version, *[v for v in old.previous if v not in (target, old.version)]][:20]
    write_text_atomic(path, render_release(new.model_copy(update={"previous": rest})))
    return new


def release_problems(repo: Path, params: dict[str, Any]) -> list[str]:
    """Each desired state against the registry: its commit is its version's tag, its image is that commit's, and
    its champion and challenger are what that commit packaged (a hand edit that mixes two releases is caught)."""
    problems = []
    for system in systems_of(params):
        deploy = section(system_params(params, system), "deploy", DeployConfig)
        for env in ENVIRONMENTS:
            path = release_path(system, env)
            r = read_release(repo / path)
            if r.version == UNRELEASED:
                continue
            tagged = resolve_commit(repo, f"refs/tags/{system}@{r.version}")
            if tagged is None:
                problems.append(f"{path}: {r.version} is not registered (no tag {system}@{r.version})")
                continue
            package = committed_json(repo, tagged, f"reports/{system}/package.json")
            wanted = {
                "commit": tagged,
                "image": f"{deploy.image_repository}/{system}:{tagged[:12]}",
                "champion": package.get("champion"),
                "challenger": package.get("challenger") or "",
            }
            for key, value in wanted.items():
                if getattr(r, key) != value:
                    problems.append(
                        f"{path}: spec.{key} is {getattr(r, key)!r}, but {r.version} has {value!r}"
                    )
    return problems


def validate(repo: Path, params: dict[str, Any]) -> None:
    """Every desired state against the registry, every overlay of every system through
    :func:`k8s_policy.check_overlay`, and every Argo CD Application."""
    problems: list[str] = release_problems(repo, params)
    for system in systems_of(params):
        for env in ENVIRONMENTS:
            folder = repo / K8S / system / env
            found = k8s_policy.check_overlay(folder)
            problems += [f"{folder.relative_to(repo)}: {p}" for p in found]
            print(f"[deploy] {system} {env}: {len(found)} problem(s)")
    for app in sorted((repo / K8S / "argocd").glob("*.yaml")):
        problems += [
            f"{app.relative_to(repo)}: {p}" for p in k8s_policy.crd_problems(yaml.safe_load(app.read_text()))
        ]
    if problems:
        raise PipelineError("the manifests do not pass:\n  " + "\n  ".join(problems))


REGISTERED = Path("var/deploy/registered.json")


def latest_registered(repo: Path, system: str) -> str | None:
    versions = registered(repo, system)
    return versions[-1] if versions else None


def next_version(latest: str | None) -> str:
    if latest is None:
        return "v1.0.0"
    major, minor, patch = (int(x) for x in latest.lstrip("v").split("."))
    return f"v{major}.{minor}.{patch + 1}"


def register_changed(repo: Path, params: dict[str, Any], push: bool = False) -> list[dict[str, str]]:
    """Register HEAD as a new version of every system whose packaged champion differs from its latest version's."""
    from gto.api import register

    head = git(repo, "rev-parse", "HEAD").strip()
    out = []
    for system in systems_of(params):
        package = committed_json(repo, head, f"reports/{system}/package.json")
        latest = latest_registered(repo, system)
        if latest is not None:
            before = committed_json(
                repo, registered_commit(repo, system, latest), f"reports/{system}/package.json"
            )
            if before.get("champion") == package.get("champion"):
                print(f"[deploy] {system}: champion {package.get('champion')} unchanged since {latest}")
                continue
        version = next_version(latest)
        try:
            register(str(repo), system, "HEAD", version=version, message=f"champion {package['champion']}")
        except Exception as err:  # gto's own exception types
            raise PipelineError(f"gto register {system} {version}: {err}") from None
        out.append({"system": system, "version": version, "commit": head, "champion": package["champion"]})
        if push:
            execute(["git", "push", "origin", f"refs/tags/{system}@{version}"], False, repo)
        print(f"[deploy] {system}: registered {version} (champion {package['champion']})")
    write_text_atomic(repo / REGISTERED, json.dumps(newly_registered(repo), indent=2) + "\n")
    return out


def newly_registered(repo: Path) -> list[dict[str, str]]:
    """The versions registered at HEAD (their tags point at it): the same answer however often register ran."""
    head = git(repo, "rev-parse", "HEAD").strip()
    out = []
    for tag in git(repo, "tag", "--points-at", head).split():
        system, _, version = tag.partition("@")
        if version and re.fullmatch(r"v\d+\.\d+\.\d+", version) and (repo / K8S / system).is_dir():
            champion = committed_json(repo, head, f"reports/{system}/package.json").get("champion", "")
            out.append({"system": system, "version": version, "commit": head, "champion": champion})
    if not out:
        print(
            "[deploy] no version is registered at HEAD (make register registers one when a champion changed)"
        )
    return sorted(out, key=lambda e: e["system"])


def execute(command: list[str], dry_run: bool, repo: Path) -> None:
    print("[deploy] " + ("would run: " if dry_run else "") + " ".join(command))
    if not dry_run:
        try:
            proc = subprocess.run(command, cwd=repo, check=False)
        except FileNotFoundError:
            raise PipelineError(f"{command[0]} is not installed (needed for: {' '.join(command)})") from None
        if proc.returncode != 0:
            tool = next(
                (Path(c).name for c in command if not c.startswith(("env", "BENTOML_HOME="))), command[0]
            )
            raise PipelineError(f"{tool} failed (exit {proc.returncode}): {' '.join(command)}")


def build_images(repo: Path, params: dict[str, Any], dry_run: bool) -> None:
    """Each newly registered version's image, from the system's bento, tagged as the desired state names it."""
    bentoml = str(Path(sys.executable).parent / "bentoml")
    for entry in newly_registered(repo):
        system = entry["system"]
        deploy = section(system_params(params, system), "deploy", DeployConfig)
        ref = f"{deploy.image_repository}/{system}:{entry['commit'][:12]}"
        bento = committed_json(repo, entry["commit"], f"reports/{system}/package.json")["bento"]
        home = f"BENTOML_HOME={repo / 'artifacts' / system / 'bentoml'}"
        execute(["env", home, bentoml, "containerize", bento, "-t", ref], dry_run, repo)
        execute(["docker", "push", ref], dry_run, repo)


def release_prs(repo: Path, params: dict[str, Any], dry_run: bool) -> list[str]:
    """A branch per newly registered version that promotes it to staging; pushed with a pull request."""
    start = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", "--", str(K8S)).strip()
    if dirty:
        raise PipelineError(f"services/k8s has uncommitted changes; commit or stash them first:\n{dirty}")
    branches = []
    for entry in newly_registered(repo):
        system, version = entry["system"], entry["version"]
        branch = f"deploy/{system}/{version}"
        if resolve_commit(repo, f"refs/heads/{branch}") is not None:
            raise PipelineError(
                f"branch {branch} exists already (its pull request is open or merged); nothing was done"
            )
        git(repo, "checkout", "-q", "-b", branch)
        try:
            promote(repo, params, system, "staging", version)
            git(repo, "add", str(release_path(system, "staging")))
            git(repo, "commit", "-q", "-m", f"Deploy {system} {version} to staging ({entry['champion']})")
        finally:
            git(repo, "checkout", "-q", start)
        execute(["git", "push", "origin", branch], dry_run, repo)
        execute(
            ["gh", "pr", "create", "--head", branch, "--title", f"Deploy {system} {version} to staging",
             "--body", f"Promotes {system} {version} (champion {entry['champion']}) to staging. "
             f"Generated by make release-prs; prod follows with make promote ENV=prod once staging is healthy."],
            dry_run, repo,
        )  # fmt: skip
        branches.append(branch)
    return branches


@stage_main("deploy")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    man = sub.add_parser(
        "manifests", help="render every system's manifests from conf/deploy and the templates"
    )
    man.add_argument("--check", action="store_true", help="fail when a committed file is stale")
    for name in ("promote", "rollback"):
        p = sub.add_parser(name)
        p.add_argument("--system", required=True)
        p.add_argument("--env", required=True, choices=ENVIRONMENTS)
        p.add_argument("--version", required=name == "promote", default=None)
    sub.add_parser("status", help="what every system serves in every environment")
    sub.add_parser(
        "sync-registry", help="CD: the registry's stages follow the committed desired state"
    ).add_argument("--push", action="store_true", help="push the stage tags to origin")
    sub.add_parser("register", help="CD: register every system whose champion changed").add_argument(
        "--push", action="store_true", help="push the new version tags to origin"
    )
    sub.add_parser(
        "validate", help="every overlay: kustomize, schemas, checkov, consistency; the Applications"
    )
    for name in ("images", "release-prs"):
        sub.add_parser(name).add_argument("--dry-run", action="store_true")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    prepare_runner(repo)  # on a runner: the bot's identity, and pushes with GH_TOKEN
    params = load_params(args.params)
    if args.command in ("promote", "rollback"):
        systems_of(params)
        system_params(params, args.system)  # an unknown system names the ones that exist
        if args.version is not None and not re.fullmatch(r"v\d+\.\d+\.\d+", args.version):
            raise PipelineError(f"--version {args.version!r}: expected a registered version such as v1.0.3")
    if args.command == "manifests":
        stale = manifests(params, repo, args.check)
        if args.check and stale:
            raise PipelineError(
                "services/k8s is not what conf/ renders (run make manifests and commit):\n  "
                + "\n  ".join(stale)
            )
        print(f"[deploy] manifests: {len(stale)} file(s) {'stale' if args.check else 'written'}")
    elif args.command == "promote":
        new = promote(repo, params, args.system, args.env, args.version)
        print(f"[deploy] {args.system} {args.env}: {new.version} ({new.champion}, image {new.image})")
        print(f"[deploy] changed {release_path(args.system, args.env)}: commit it and open a pull request")
    elif args.command == "rollback":
        new = rollback(repo, params, args.system, args.env, args.version)
        print(f"[deploy] {args.system} {args.env} rolled back to {new.version} ({new.champion})")
        print(f"[deploy] changed {release_path(args.system, args.env)}: commit it and open a pull request")
    elif args.command == "register":
        register_changed(repo, params, args.push)
    elif args.command == "sync-registry":
        if not sync_registry(repo, params, args.push):
            print("[deploy] registry: every stage already names what the desired state names")
    elif args.command == "validate":
        validate(repo, params)
    elif args.command == "images":
        build_images(repo, params, args.dry_run)
    elif args.command == "release-prs":
        for branch in release_prs(repo, params, args.dry_run):
            print(f"[deploy] branch {branch}")
    else:
        for system in systems_of(params):
            for env in ENVIRONMENTS:
                r = read_release(repo / release_path(system, env))
                challenger = f", challenger {r.challenger} ({r.routing} {r.weight})" if r.challenger else ""
                print(f"{system:<12} {env:<8} {r.version:<12} {r.champion or '-'}{challenger}")


if __name__ == "__main__":
    main(sys.argv[1:])
