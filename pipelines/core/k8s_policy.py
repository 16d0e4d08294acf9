"""Offline checks of rendered Kubernetes manifests: schemas, a policy scan and the platform's consistency rules.

Three layers, each a maintained tool where one exists:

- **schemas**: core objects against the Kubernetes 1.33 OpenAPI schemas, strict (an unknown field is an error), with
  ``kubernetes-validate``; Argo objects (Rollout, AnalysisTemplate, Application) against the vendored CRD schemas in
  ``services/k8s/schemas`` with ``check-jsonschema``;
- **policy**: ``checkov`` (its own virtual environment, ``make policy-venv``: its pins clash with this project's)
  with ``--skip-download``, every Kubernetes check except those listed in :data:`CHECKOV_SKIPS` with the reason;
- **consistency** (:func:`consistency`): what no schema or generic policy knows, because it spans fields or
  objects: probes and Services name a port the container declares, selectors select the pods, the autoscaler and
  the Rollout point at the workload, the replica range is a range.

Every problem is one line naming the object (``Kind/name``) and the field.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "services/k8s/schemas"
KUBERNETES_VERSION = "1.33.0"
POLICY_VENV = ROOT / ".venv-policy"
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are tagged by commit (12 hex) in the desired state, not by digest: CD builds the image "
    "after the manifests are rendered",
}


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` renders; a PipelineError carries kustomize's message."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise PipelineError("kubectl is not installed: it renders the kustomize overlays (kubectl kustomize)")
    proc = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipelineError(f"kubectl kustomize {folder}: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return f"{obj.get('kind', '?')}/{meta.get('name', '?') if isinstance(meta, dict) else '?'}"


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Each object against its schema (Kubernetes 1.33 strict, or the vendored Argo CRD schema)."""
    import kubernetes_validate

    problems: list[str] = []
    for obj in objects:
        if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
            problems.append(f"{name_of(obj)}: apiVersion and kind must be strings")
            continue
        group = str(obj.get("apiVersion", "")).split("/")[0]
        if group == "argoproj.io":
            problems += crd_problems(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            problems.append(f"{name_of(obj)}: {where or '(object)'}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{name_of(obj)}: no Kubernetes {KUBERNETES_VERSION} schema for {obj.get('apiVersion')}"
            )
    return problems


def crd_problems(obj: dict[str, Any]) -> list[str]:
    kind = str(obj.get("kind", "")).lower()
    version = str(obj.get("apiVersion", "")).split("/")[-1]
    schema = SCHEMAS / "argoproj.io" / f"{kind}_{version}.json"
    if not schema.is_file():
        return [f"{name_of(obj)}: no vendored schema {schema.relative_to(ROOT)}"]
    tool = shutil.which(
        "check-jsonschema", path=os.pathsep.join([str(ROOT / ".venv/bin"), os.environ["PATH"]])
    )
    if tool is None:
        raise PipelineError("check-jsonschema is not installed (make venv installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "object.json"
        instance.write_text(json.dumps(obj))
        proc = subprocess.run(
            [tool, "--schemafile", str(schema), "--output-format", "text", str(instance)],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode == 0:
        return []
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith(str(instance))]
    return [f"{name_of(obj)}: {ln.split('::', 1)[-1].strip()}" for ln in lines] or [
        f"{name_of(obj)}: {proc.stdout.strip() or proc.stderr.strip()}"
    ]


def checkov_path() -> Path | None:
    found = os.environ.get("CHECKOV") or shutil.which("checkov")
    if found:
        return Path(found)
    local = POLICY_VENV / "bin/checkov"
    return local if local.is_file() else None


def policy_problems(objects: list[dict[str, Any]]) -> list[str]:
    """checkov's failed Kubernetes checks on the objects (offline: ``--skip-download``)."""
    checkov = checkov_path()
    if checkov is None:
        raise PipelineError("checkov is not installed: make policy-venv puts it in .venv-policy")
    with tempfile.TemporaryDirectory() as tmp:
        for i, obj in enumerate(objects):
            (Path(tmp) / f"{i:03d}.yaml").write_text(yaml.safe_dump(obj))
        command = [str(checkov), "-d", tmp, "--framework", "kubernetes", "--skip-download", "--quiet"]
        command += ["--compact", "--output", "json", "--skip-check", ",".join(CHECKOV_SKIPS)]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        )
    try:
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        raise PipelineError(f"checkov did not report JSON: {proc.stderr.strip()[-500:]}") from None
    reports = report if isinstance(report, list) else [report]
    problems = []
    for rep in reports:
        for failed in (rep.get("results") or {}).get("failed_checks", []):
            problems.append(
                f"{failed.get('resource', '?')}: {failed['check_id']} {failed.get('check_name', '')}"
            )
    return sorted(set(problems))


def _d(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one: a wrong type is the schema check's to report."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [_d(c) for c in _l(_d(_d(_d(obj.get("spec")).get("template")).get("spec")).get("containers"))]


def _pod_labels(obj: dict[str, Any]) -> dict[str, Any]:
    return _d(_d(_d(_d(obj.get("spec")).get("template")).get("metadata")).get("labels"))


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _in(value: Any, known: set[Any]) -> bool:
    """``value in known`` for a port name or number; any other type (a list, a mapping) is not a port."""
    return isinstance(value, (str, int)) and value in known


def consistency(objects: list[dict[str, Any]]) -> list[str]:
    """Rules that span fields or objects (see the module docstring). Never raises on a malformed object: a field
    of the wrong type is skipped here and reported by :func:`schema_problems`."""
    problems: list[str] = []
    objects = [_d(o) for o in objects]
    workloads = {name_of(o) for o in objects if o.get("kind") in ("Deployment", "Rollout")}
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    ports: set[Any] = set()
    for dep in deployments:
        for c in _containers(dep):
            for p in map(_d, _l(c.get("ports"))):
                ports |= {v for v in (p.get("name"), p.get("containerPort")) if isinstance(v, (str, int))}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                http = _d(_d(c.get(probe)).get("httpGet"))
                if http and not _in(http.get("port"), ports):
                    problems.append(
                        f"{name_of(dep)}: container {c.get('name')}: {probe} port {http.get('port')!r} is not a "
                        f"declared containerPort ({sorted(map(str, ports))})"
                    )
        own = _d(_d(_d(dep.get("spec")).get("selector")).get("matchLabels"))
        labels = _pod_labels(dep)
        if not _selects(own, labels):
            problems.append(f"{name_of(dep)}: spec.selector {own} does not select its pods' labels {labels}")
    pods = [_pod_labels(d) for d in deployments]
    for obj in objects:
        kind, spec = obj.get("kind"), _d(obj.get("spec"))
        selector: dict[str, Any] | None = None
        if kind == "Service":
            selector = _d(spec.get("selector"))
            for p in map(_d, _l(spec.get("ports"))):
                if not _in(p.get("targetPort", p.get("port")), ports):
                    problems.append(
                        f"{name_of(obj)}: port {p.get('name')}: targetPort {p.get('targetPort')!r} is not a "
                        "declared containerPort"
                    )
        if kind in ("PodDisruptionBudget", "NetworkPolicy"):
            key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
            selector = _d(_d(spec.get(key)).get("matchLabels"))
        if selector is not None and not any(_selects(selector, p) for p in pods):
            problems.append(f"{name_of(obj)}: selector {selector} selects no pod of this overlay")
        for field, rule in (("scaleTargetRef", "HorizontalPodAutoscaler"), ("workloadRef", "Rollout")):
            if kind == rule:
                ref = _d(spec.get(field))
                if f"{ref.get('kind')}/{ref.get('name')}" not in workloads:
                    problems.append(
                        f"{name_of(obj)}: {field} {ref.get('kind')}/{ref.get('name')} is not here"
                    )
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if (
            kind == "HorizontalPodAutoscaler"
            and isinstance(low, int)
            and isinstance(high, int)
            and low > high
        ):
            problems.append(f"{name_of(obj)}: minReplicas {low} > maxReplicas {high}")
    return problems


def check_overlay(folder: Path, policy: bool = True) -> list[str]:
    """Every problem of one overlay: rendered by kustomize, then schemas, consistency and (``policy``) checkov."""
    objects = kustomize(folder)
    problems = schema_problems(objects) + consistency(objects)
    if policy:
        problems += policy_problems(objects)
    return problems
