"""Deployment as desired state in git: each system's Kubernetes manifests, promotions and rollbacks.

``services/k8s/<system>/<env>/release.yaml`` is the desired state of one system in one environment (staging, prod):
the registered version, its commit, image, champion and challenger, and the routing between them. It is the only
input of deployment that changes: the overlay beside it copies its fields into the manifests, and Argo CD syncs the
overlay. Commands (the Makefile's targets call them):

- ``manifests [--check]``: render every system's base, progressive-delivery component, overlays and Argo CD
  Applications from ``<system>.deploy`` (conf/deploy/) and the templates in services/k8s/templates; ``--check``
  fails when a committed file differs from what the config renders. A file no configured system or environment
  renders is never deleted: both name it for deletion.
- ``promote --system S --env E --version V [--base B]``: point E at the registered version V (a GTO registration
  ``S@V``, not a plain git tag). Refused unless V is registered; for prod, unless its release passed every blocking
  gate and staging serves V as committed on the main line B (default ``origin/main``, else ``main``).
- ``rollback --system S --env E [--version V] [--base B]``: back to a version E served before (or V).
- ``status``: what every system serves in every environment.
- ``register [--push]``: CD, after the pipeline on main: register a new version (GTO tag, next patch) of every
  system whose champion changed since its latest registered version; the list goes to
  ``var/deploy/registered.json``. ``--push`` publishes the registrations at HEAD, each only once ``images`` pushed
  its image.
- ``registry-login``: CD: ``docker login`` to the image registries, the token from ``$GH_TOKEN`` on standard input.
- ``images [--dry-run]``: CD: build each newly registered version's image from its bento and push it.
- ``release-prs [--dry-run] [--base B]``: CD: for each newly registered version, a branch
  ``deploy/<system>/<version>`` that promotes it to staging, pushed with a pull request (``--dry-run``: shows the
  commit, pushes nothing and leaves no branch).
- ``sync-registry [--push]``: CD, after a merge: the registry's stages follow the committed desired state.

``previous`` in a desired state lists the versions the environment served (as merged on the main line), latest
first, each once: a proposal that was never merged was never served. A promotion or rollback changes the
desired-state file, nothing else: it is committed and reviewed like any other change, and after the merge CD
records the registry's stage (a GTO tag). Errors name the system, environment, version and what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
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


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last,
    kustomize may take another: the file would mean two things)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """``text`` parsed as one YAML document, duplicate keys refused; errors name ``where`` and the line."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        raise PipelineError(f"{where} is not valid YAML: {err}") from None


def read_text(path: Path) -> str:
    """A file's UTF-8 text; an error names the file and what is wrong with it (missing, a folder, not UTF-8)."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise PipelineError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise PipelineError(f"{path} cannot be read: {err.strerror}") from None


def read_release(path: Path) -> Release:
    """The desired state in ``path`` (``services/k8s/<system>/<env>/release.yaml``); errors name the file and key."""
    if not path.exists():
        raise PipelineError(f"{path}: no desired state (run make manifests)")
    return parse_release(read_text(path), str(path), path.parent.parent.name, path.parent.name)


def parse_release(text: str, path: str, system: str, env: str) -> Release:
    """A desired state's ``spec``, checked: its system and environment are those of its folder, a canary or shadow
    needs a challenger, and the versions it served before are versions."""
    doc = load_yaml(text, path)
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


def manifests(params: dict[str, Any], repo: Path, check: bool) -> tuple[list[str], list[str]]:
    """Write (or, with ``check``, compare) the generated files. Returns the stale paths and the orphans: files under
    services/k8s that no configured system or environment renders (never deleted here: a release.yaml among them may
    hold a desired state; the caller names them)."""
    files = rendered(params)
    releases = {release_path(s, e) for s in systems_of(params) for e in ENVIRONMENTS}
    blocked = [str(p) for p in [*files, *releases] if (repo / p).exists() and not (repo / p).is_file()]
    if blocked:
        raise PipelineError(f"expected files, found folders (remove them): {', '.join(blocked)}")
    stale = [
        str(p)
        for p, text in files.items()
        if not (repo / p).is_file() or (repo / p).read_bytes() != text.encode()
    ]
    missing = sorted(str(p) for p in releases if not (repo / p).is_file())
    expected = {str(p) for p in files} | {str(p) for p in releases}
    orphans = [
        str(p.relative_to(repo))
        for p in sorted((repo / K8S).rglob("*.yaml"))
        if TEMPLATES not in p.parents and str(p.relative_to(repo)) not in expected
    ]
    if not check:
        for release in missing:
            system, env = Path(release).parts[-3:-1]
            write_text_atomic(repo / release, render_release(initial_release(params, system, env)))
        for path, text in files.items():
            if str(path) in stale:
                write_text_atomic(repo / path, text)
    return stale + missing, orphans


def orphan_note(orphans: list[str]) -> str:
    """What to do with files no configured system or environment renders: delete them (named), by hand."""
    held = [o for o in orphans if o.endswith("/release.yaml")]
    note = (
        f"{len(orphans)} file(s) under {K8S} are rendered by no configured system or environment; make manifests "
        "never deletes files, so remove them if they are not meant to be there:\n  git rm "
        + " ".join(orphans)
    )
    if held:
        note += (
            f"\n  {', '.join(held)} hold(s) a desired state: if that environment still runs, configure it in "
            "conf/deploy (environments) instead of deleting it"
        )
    return note


# -- registry (GTO tags in git) ----------------------------------------------------------------------------------

SEMVER = r"v\d+\.\d+\.\d+"


class Partial(PipelineError):
    """A failure after some registry tags were created: ``created`` names them (the caller reports them)."""

    def __init__(self, message: str, created: list[str]) -> None:
        super().__init__(message)
        self.created = created


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def tags(repo: Path) -> set[str]:
    return set(git(repo, "tag", "--list").split())


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.lstrip("v").split("."))


def registry(repo: Path, system: str) -> dict[str, str]:
    """``{version: commit}`` of the versions GTO counts as registered: an annotated registration tag, not
    deregistered or deprecated. A plain ``git tag system@v1.0.0`` is not a registration, and is not here."""
    from gto.api import show
    from gto.exceptions import ArtifactNotFound

    try:
        versions = show(str(repo), system, registered_only=True)
    except ArtifactNotFound:
        return {}
    except Exception as err:  # gto's own exception types; the message says what went wrong
        raise PipelineError(f"gto show {system}: {err}") from None
    return {
        v["version"]: v["commit_hexsha"]
        for v in versions
        if isinstance(v, dict) and re.fullmatch(SEMVER, str(v.get("version")))
    }


def registered(repo: Path, system: str) -> list[str]:
    """The registered versions of ``system``, oldest first."""
    return sorted(registry(repo, system), key=semver)


def registered_commit(repo: Path, system: str, version: str) -> str:
    """The commit ``system@version`` was registered at; an error lists the versions that are registered."""
    known = registry(repo, system)
    if version not in known:
        raise PipelineError(
            f"{system} {version} is not registered (GTO has no registration {system}@{version}; a plain git tag "
            f"is not one); registered versions: {', '.join(sorted(known, key=semver)) or 'none'} (CD registers "
            "one when the champion changes: make register)"
        )
    return known[version]


def committed_json(repo: Path, commit: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(git(repo, "show", f"{commit}:{path}"))
    except PipelineError:
        raise PipelineError(
            f"commit {commit[:12]} has no {path}: it is not a release of this system"
        ) from None
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path} at {commit[:12]} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} at {commit[:12]} is not a JSON object")
    return data


def blocking_failures(gate: dict[str, Any]) -> list[str]:
    """Why the release's champion may not go to prod (an empty list: it passed every blocking gate)."""
    champion = gate.get("champion")
    if not champion or not isinstance(champion, str):
        return ["no champion: no candidate passed the gates"]
    models = gate.get("models")
    model = models.get(champion) if isinstance(models, dict) else None
    if not isinstance(model, dict):
        return [f"{champion} has no entry under 'models'"]
    failed = model.get("failed", [])
    failed = [f"gate {g} failed" for g in failed] if isinstance(failed, list) else [f"'failed' is {failed!r}"]
    if model.get("eligible") is not True and not failed:
        failed.append(f"{champion} is not eligible")
    return failed


def packaged(package: dict[str, Any]) -> dict[str, Any]:
    """What a version's package report says its desired state serves: champion, challenger, routing, weight."""
    challenger = package.get("challenger") or ""
    return {
        "champion": package.get("champion"),
        "challenger": challenger,
        "routing": package.get("routing", "champion_only") if challenger else "champion_only",
        "weight": str(package.get("challenger_weight", 0.0)) if challenger else "0",
    }


def release_for(repo: Path, deploy: DeployConfig, system: str, env: str, version: str) -> Release:
    commit = registered_commit(repo, system, version)
    package = committed_json(repo, commit, f"reports/{system}/package.json")
    fields = {
        "system": system,
        "environment": env,
        "version": version,
        "commit": commit,
        "image": f"{deploy.image_repository}/{system}:{commit[:12]}",
        **packaged(package),
        "previous": [],
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


def base_revision(repo: Path, base: str | None) -> tuple[str, str]:
    """The main line (``base``, default ``origin/main`` when it exists, else ``main``): its name and commit."""
    for rev in [base] if base else ["origin/main", "main"]:
        sha = resolve_commit(repo, rev)
        if sha is not None:
            return rev, sha
    if base:
        raise PipelineError(f"--base {base!r} is not a revision of this repository")
    raise PipelineError(
        "neither origin/main nor main exists here: name the main line with --base (make BASE=<rev>)"
    )


def committed_release(
    repo: Path, system: str, env: str, rev: str = "HEAD", label: str | None = None
) -> Release:
    """The desired state of ``env`` as committed at ``rev`` (what is merged there, not what the working tree says)."""
    path, where = release_path(system, env), f"{label or rev}"
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"{path} is not committed at {where} (run make manifests and commit)")
    try:
        text = proc.stdout.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PipelineError(
            f"{path} at {where} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    return parse_release(text, f"{path} at {where}", system, env)


def served(repo: Path, system: str, env: str, base: tuple[str, str]) -> Release | None:
    """What ``env`` serves: its desired state as committed on the main line; None when it never had one there."""
    name, sha = base
    if subprocess.run(
        ["git", "cat-file", "-e", f"{sha}:{release_path(system, env)}"],
        cwd=repo,
        capture_output=True,
        check=False,
    ).returncode:
        return None
    return committed_release(repo, system, env, sha, f"{name} ({sha[:12]})")


def history(now: Release | None, target: str) -> list[str]:
    """``previous`` of a desired state that moves to ``target``: the version served now (as merged on the main line)
    and those it served before, latest first, each once, never ``target`` itself (a proposal never merged was never
    served, so it is not recorded)."""
    out: list[str] = []
    for v in [now.version, *now.previous] if now else []:
        if v not in (UNRELEASED, target, *out):
            out.append(v)
    return out[:20]


def registry_stages(repo: Path) -> dict[str, dict[str, str]]:
    """``{system: {stage: version}}`` as the registry's tags say (``gto show --json``)."""
    gto = str(Path(sys.executable).parent / "gto")
    proc = subprocess.run([gto, "show", "--json"], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"gto show: {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout or "{}")
    return {k: dict(v.get("stage") or {}) for k, v in data.items() if isinstance(v, dict)}


def push_tags(repo: Path, created: list[str]) -> None:
    """Push exactly ``created`` (never every local tag)."""
    if created:
        execute(["git", "push", "origin", *[f"refs/tags/{t}" for t in created]], False, repo)


def sync_registry(repo: Path, params: dict[str, Any], push: bool) -> list[str]:
    """The registry's stages (GTO tags ``system#env#N``) made to match the committed desired state: CD runs it after
    a merge, so the registry records what was merged, never a promotion still under review. Everything is checked
    before the first tag is created; a failure after that names the tags it created."""
    stages = registry_stages(repo)
    plan = []
    for system in systems_of(params):
        for env in ENVIRONMENTS:
            wanted = committed_release(repo, system, env).version
            if wanted == UNRELEASED or stages.get(system, {}).get(env) == wanted:
                continue
            registered_commit(repo, system, wanted)  # a stage names a registered version
            plan.append((system, env, wanted))
    before = tags(repo)
    try:
        for system, env, version in plan:
            assign_stage(repo, system, version, env)
            print(f"[deploy] registry: {system} {env} is {version}")
        created = sorted(tags(repo) - before)
        if push:
            push_tags(repo, created)
    except PipelineError as err:
        raise Partial(str(err), sorted(tags(repo) - before)) from None
    return [f"{s} {e} -> {v}" for s, e, v in plan]


def assign_stage(repo: Path, system: str, version: str, env: str) -> None:
    """The registry's stage (a GTO tag ``system#env#N`` on the version's commit)."""
    from gto.api import assign  # imported here: a second or two, and only promotions need it

    try:
        assign(str(repo), system, env, version=version, force=True)
    except Exception as err:  # gto raises its own exception types; the message says what went wrong
        raise PipelineError(f"gto assign {system} {version} {env}: {err}") from None


def promote(
    repo: Path, params: dict[str, Any], system: str, env: str, version: str, base: str | None = None
) -> Release:
    """Point ``env`` at ``version``. Prod takes only a version that staging serves as committed on the main line
    (``base``) and whose champion passed every blocking gate."""
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    path = repo / release_path(system, env)
    old = read_release(path)
    if old.version == version:
        raise PipelineError(f"{system} {env} already serves {version} ({release_path(system, env)})")
    new = release_for(repo, deploy, system, env, version)
    line = base_revision(repo, base)
    if env == "prod":
        check_prod(repo, system, version, new.commit)
        staging = served(repo, system, "staging", line)
        now = staging.version if staging else "nothing"
        if now != version:
            raise PipelineError(
                f"refused: {system} {version} is not what staging serves on {line[0]} ({line[1][:12]}), which "
                f"names {now}: promote it to staging and merge that into {line[0]} first"
            )
    new = new.model_copy(update={"previous": history(served(repo, system, env, line), version)})
    write_text_atomic(path, render_release(new))
    return new


def rollback(
    repo: Path, params: dict[str, Any], system: str, env: str, version: str | None, base: str | None = None
) -> Release:
    """Back to a version ``env`` served before (``previous`` of its desired state as merged on the main line)."""
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    path = repo / release_path(system, env)
    read_release(path)  # the working file must be a valid desired state before it is replaced
    line = base_revision(repo, base)
    now = served(repo, system, env, line)
    where = f"on {line[0]} ({line[1][:12]})"
    if now is None:
        raise PipelineError(f"{release_path(system, env)} is not committed {where}: nothing to roll back")
    target = version or (now.previous[0] if now.previous else None)
    if target is None:
        raise PipelineError(
            f"{system} {env} has no earlier version to roll back to (serves {now.version} {where})"
        )
    if target == now.version:
        raise PipelineError(f"{system} {env} already serves {target} {where}")
    if target not in now.previous:
        raise PipelineError(
            f"{system} {env} never served {target} (before {now.version} {where}: {', '.join(now.previous) or 'none'}): "
            "a rollback returns to an earlier version; use make promote for any other"
        )
    new = release_for(repo, deploy, system, env, target)
    if env == "prod":
        check_prod(repo, system, target, new.commit)
    new = new.model_copy(update={"previous": history(now, target)})
    write_text_atomic(path, render_release(new))
    return new


def release_problems(repo: Path, params: dict[str, Any]) -> list[str]:
    """Each desired state against the registry: its version is registered (GTO), its commit is that version's, its
    image is that commit's, and its champion, challenger, routing and weight are what that commit packaged (a hand
    edit, or one that mixes two releases, is caught)."""
    problems = []
    for system in systems_of(params):
        deploy = section(system_params(params, system), "deploy", DeployConfig)
        known = registry(repo, system)
        for env in ENVIRONMENTS:
            path = release_path(system, env)
            r = read_release(repo / path)
            if r.version == UNRELEASED:
                continue
            if r.version not in known:
                problems.append(
                    f"{path}: {r.version} is not registered (GTO has no registration {system}@{r.version})"
                )
                continue
            tagged = known[r.version]
            wanted = {
                "commit": tagged,
                "image": f"{deploy.image_repository}/{system}:{tagged[:12]}",
                **packaged(committed_json(repo, tagged, f"reports/{system}/package.json")),
            }
            for key, value in wanted.items():
                have = getattr(r, key)
                same = _same_weight(have, value) if key == "weight" else have == value
                if not same:
                    problems.append(f"{path}: spec.{key} is {have!r}, but {r.version} has {value!r}")
    return problems


def _same_weight(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


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
        where = str(app.relative_to(repo))
        obj = load_yaml(read_text(app), where)
        found = k8s_policy.crd_problems(obj) if isinstance(obj, dict) else ["not a YAML mapping"]
        problems += [f"{where}: {p}" for p in found]
    if problems:
        raise PipelineError("the manifests do not pass:\n  " + "\n  ".join(problems))


REGISTERED = Path("var/deploy/registered.json")
PUSHED = Path(
    "var/deploy/images.json"
)  # the image references `make images` pushed (register --push needs them)


def latest_registered(repo: Path, system: str) -> str | None:
    versions = registered(repo, system)
    return versions[-1] if versions else None


def next_version(latest: str | None) -> str:
    if latest is None:
        return "v1.0.0"
    major, minor, patch = (int(x) for x in latest.lstrip("v").split("."))
    return f"v{major}.{minor}.{patch + 1}"


def champion_of(package: dict[str, Any], where: str) -> str:
    """The champion a package report names; refused when it names none (``"champion"`` missing, null or empty)."""
    champion = package.get("champion")
    if not isinstance(champion, str) or not champion:
        state = "missing" if "champion" not in package else f"{champion!r}"
        raise PipelineError(
            f"{where}: key 'champion' is {state}: no model passed the blocking gates, so there is no version to "
            "register; no tag was created"
        )
    return champion


def image_ref(params: dict[str, Any], system: str, commit: str) -> str:
    deploy = section(system_params(params, system), "deploy", DeployConfig)
    return f"{deploy.image_repository}/{system}:{commit[:12]}"


def pushed_images(repo: Path) -> list[str]:
    try:
        data = json.loads((repo / PUSHED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(x) for x in data] if isinstance(data, list) else []


def register_changed(repo: Path, params: dict[str, Any], push: bool = False) -> list[dict[str, str]]:
    """Register HEAD as a new version of every system whose packaged champion differs from its latest version's.
    Every system is checked before the first tag is created. ``push``: push the registrations at HEAD, each only
    once its image was pushed (``make images``), so a published version always has its image."""
    from gto.api import register

    head = git(repo, "rev-parse", "HEAD").strip()
    plan = []
    for system in systems_of(params):
        where = f"reports/{system}/package.json at {head[:12]}"
        champion = champion_of(committed_json(repo, head, f"reports/{system}/package.json"), where)
        latest = latest_registered(repo, system)
        if latest is not None:
            before = committed_json(
                repo, registered_commit(repo, system, latest), f"reports/{system}/package.json"
            )
            if before.get("champion") == champion:
                print(f"[deploy] {system}: champion {champion} unchanged since {latest}")
                continue
        plan.append((system, next_version(latest), champion))
    created = tags(repo)
    out = []
    try:
        for system, version, champion in plan:
            try:
                register(str(repo), system, "HEAD", version=version, message=f"champion {champion}")
            except Exception as err:  # gto's own exception types
                raise PipelineError(f"gto register {system} {version}: {err}") from None
            out.append({"system": system, "version": version, "commit": head, "champion": champion})
            print(f"[deploy] {system}: registered {version} (champion {champion})")
    except PipelineError as err:
        raise Partial(str(err), sorted(tags(repo) - created)) from None
    entries = newly_registered(repo, params)
    write_text_atomic(repo / REGISTERED, json.dumps(entries, indent=2) + "\n")
    if push:
        images = pushed_images(repo)
        missing = [e for e in entries if image_ref(params, e["system"], e["commit"]) not in images]
        if missing:
            names = ", ".join(f"{e['system']}@{e['version']}" for e in missing)
            raise PipelineError(
                f"refused to push {names}: its image was not pushed ({PUSHED} does not list it); run make images "
                "first: a version is published only once its image is (the registration stays local)"
            )
        push_tags(repo, [f"{e['system']}@{e['version']}" for e in entries])
    return out


def newly_registered(repo: Path, params: dict[str, Any]) -> list[dict[str, str]]:
    """The versions registered at HEAD (GTO registrations of HEAD): the same answer however often register ran."""
    head = git(repo, "rev-parse", "HEAD").strip()
    out = []
    for system in systems_of(params):
        for version, commit in registry(repo, system).items():
            if commit == head:
                package = committed_json(repo, head, f"reports/{system}/package.json")
                champion = str(package.get("champion") or "")
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


def registry_login(params: dict[str, Any]) -> list[str]:
    """``docker login`` to every image registry the systems push to, as ``$GITHUB_ACTOR`` with the token in
    ``$GH_TOKEN``, given on standard input: never an argument, never printed."""
    token, actor = os.environ.get("GH_TOKEN", ""), os.environ.get("GITHUB_ACTOR", "")
    if not token or not actor:
        unset = " and ".join(n for n, v in (("GH_TOKEN", token), ("GITHUB_ACTOR", actor)) if not v)
        raise PipelineError(
            f"{unset} not set: docker login reads the user from GITHUB_ACTOR and the token from GH_TOKEN"
        )
    hosts = sorted(
        {
            section(system_params(params, s), "deploy", DeployConfig).image_repository.split("/")[0]
            for s in systems_of(params)
        }
    )
    for host in hosts:
        command = ["docker", "login", host, "--username", actor, "--password-stdin"]
        print(f"[deploy] {' '.join(command)} (the token from GH_TOKEN, on standard input)")
        try:
            proc = subprocess.run(command, input=token, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise PipelineError("docker is not installed (needed for: docker login)") from None
        if proc.returncode != 0:
            why = (proc.stderr.strip() or proc.stdout.strip()).replace(token, "***")[-500:]
            raise PipelineError(f"docker login {host} failed (exit {proc.returncode}): {why}")
    return hosts


def build_images(repo: Path, params: dict[str, Any], dry_run: bool) -> None:
    """Each newly registered version's image, from the system's bento, tagged as the desired state names it; each
    pushed reference is recorded in var/deploy/images.json (register --push publishes only those versions)."""
    bentoml = str(Path(sys.executable).parent / "bentoml")
    for entry in newly_registered(repo, params):
        system = entry["system"]
        ref = image_ref(params, system, entry["commit"])
        bento = committed_json(repo, entry["commit"], f"reports/{system}/package.json").get("bento")
        if not isinstance(bento, str) or not bento:
            raise PipelineError(
                f"reports/{system}/package.json at {entry['commit'][:12]}: key 'bento' is {bento!r}"
            )
        home = f"BENTOML_HOME={repo / 'artifacts' / system / 'bentoml'}"
        execute(["env", home, bentoml, "containerize", bento, "-t", ref], dry_run, repo)
        execute(["docker", "push", ref], dry_run, repo)
        if not dry_run:
            write_text_atomic(repo / PUSHED, json.dumps(sorted({*pushed_images(repo), ref}), indent=2) + "\n")


def branch_exists(repo: Path, branch: str) -> bool:
    return any(resolve_commit(repo, f"refs/{r}/{branch}") for r in ("heads", "remotes/origin"))


def release_prs(repo: Path, params: dict[str, Any], dry_run: bool, base: str | None = None) -> list[str]:
    """A branch per newly registered version that promotes it to staging; pushed with a pull request. A version
    whose branch exists (here or on origin) is skipped: its pull request is open or merged. HEAD is always put back
    as it was (a branch or a detached commit); ``dry_run`` shows the commit and leaves no branch."""
    branch_now = subprocess.run(
        ["git", "symbolic-ref", "-q", "--short", "HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    start = (
        ["checkout", "-q", branch_now]
        if branch_now
        else ["checkout", "-q", "--detach", git(repo, "rev-parse", "HEAD").strip()]
    )
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", "--", str(K8S)).strip()
    if dirty:
        raise PipelineError(f"services/k8s has uncommitted changes; commit or stash them first:\n{dirty}")
    branches = []
    for entry in newly_registered(repo, params):
        system, version = entry["system"], entry["version"]
        branch = f"deploy/{system}/{version}"
        if branch_exists(repo, branch):
            print(f"[deploy] branch {branch} exists already (its pull request is open or merged): skipped")
            continue
        git(repo, "checkout", "-q", "-b", branch)
        try:
            promote(repo, params, system, "staging", version, base)
            git(repo, "add", str(release_path(system, "staging")))
            git(repo, "commit", "-q", "-m", f"Deploy {system} {version} to staging ({entry['champion']})")
        except PipelineError:
            git(repo, "checkout", "-q", "HEAD", "--", str(release_path(system, "staging")))
            git(repo, *start)
            git(repo, "branch", "-q", "-D", branch)
            raise
        git(repo, *start)
        if dry_run:
            print(git(repo, "show", "--format=%s", branch).rstrip())
            git(repo, "branch", "-q", "-D", branch)  # a dry run leaves nothing behind
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
    base = "the main line whose committed desired state counts as served (default origin/main, else main)"
    for name in ("promote", "rollback"):
        p = sub.add_parser(name)
        p.add_argument("--system", required=True)
        p.add_argument("--env", required=True, choices=ENVIRONMENTS)
        p.add_argument("--version", required=name == "promote", default=None)
        p.add_argument("--base", default=None, help=base)
    sub.add_parser("status", help="what every system serves in every environment")
    sub.add_parser(
        "sync-registry", help="CD: the registry's stages follow the committed desired state"
    ).add_argument("--push", action="store_true", help="push the stage tags it created to origin")
    sub.add_parser("register", help="CD: register every system whose champion changed").add_argument(
        "--push",
        action="store_true",
        help="push the registrations at HEAD (each only once its image was pushed)",
    )
    sub.add_parser("registry-login", help="CD: docker login to the image registries with $GH_TOKEN (stdin)")
    sub.add_parser(
        "validate", help="every overlay: kustomize, schemas, checkov, consistency; the Applications"
    )
    sub.add_parser("images").add_argument("--dry-run", action="store_true")
    prs = sub.add_parser("release-prs")
    prs.add_argument("--dry-run", action="store_true")
    prs.add_argument("--base", default=None, help=base)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        run(args)
    except Partial as err:
        print(f"ERROR [deploy] {err}", file=sys.stderr)
        made = ", ".join(err.created) or "none"
        print(f"[deploy] tags it created before it stopped: {made}; nothing else changed", file=sys.stderr)
        raise SystemExit(1) from None


def run(args: argparse.Namespace) -> None:
    repo = Path.cwd()
    prepare_runner(repo)  # on a runner: the bot's identity, and pushes with GH_TOKEN
    params = load_params(args.params)
    if args.command in ("promote", "rollback"):
        systems_of(params)
        system_params(params, args.system)  # an unknown system names the ones that exist
        if args.version is not None and not re.fullmatch(SEMVER, args.version):
            raise PipelineError(f"--version {args.version!r}: expected a registered version such as v1.0.3")
    if args.command == "manifests":
        stale, orphans = manifests(params, repo, args.check)
        if args.check and (stale or orphans):
            problems = []
            if stale:
                problems.append("stale (run make manifests and commit):\n  " + "\n  ".join(stale))
            if orphans:
                problems.append(orphan_note(orphans))
            raise PipelineError(f"services/k8s is not what conf/ renders: {chr(10).join(problems)}")
        print(f"[deploy] manifests: {len(stale)} file(s) {'stale' if args.check else 'written'}")
        if orphans:
            print(f"WARNING [deploy] {orphan_note(orphans)}", file=sys.stderr)
    elif args.command == "promote":
        new = promote(repo, params, args.system, args.env, args.version, args.base)
        print(f"[deploy] {args.system} {args.env}: {new.version} ({new.champion}, image {new.image})")
        print(f"[deploy] changed {release_path(args.system, args.env)}: commit it and open a pull request")
    elif args.command == "rollback":
        new = rollback(repo, params, args.system, args.env, args.version, args.base)
        print(f"[deploy] {args.system} {args.env} rolled back to {new.version} ({new.champion})")
        print(f"[deploy] changed {release_path(args.system, args.env)}: commit it and open a pull request")
    elif args.command == "register":
        register_changed(repo, params, args.push)
    elif args.command == "registry-login":
        print(f"[deploy] logged in to {', '.join(registry_login(params))}")
    elif args.command == "sync-registry":
        if not sync_registry(repo, params, args.push):
            print("[deploy] registry: every stage already names what the desired state names")
    elif args.command == "validate":
        validate(repo, params)
    elif args.command == "images":
        build_images(repo, params, args.dry_run)
    elif args.command == "release-prs":
        for branch in release_prs(repo, params, args.dry_run, args.base):
            print(f"[deploy] branch {branch}")
    else:
        for system in systems_of(params):
            for env in ENVIRONMENTS:
                r = read_release(repo / release_path(system, env))
                challenger = f", challenger {r.challenger} ({r.routing} {r.weight})" if r.challenger else ""
                print(f"{system:<12} {env:<8} {r.version:<12} {r.champion or '-'}{challenger}")


if __name__ == "__main__":
    main(sys.argv[1:])
