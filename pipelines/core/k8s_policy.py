"""Offline checks of rendered Kubernetes manifests: schemas, a policy scan and the platform's consistency rules.

Three layers, each a maintained tool where one exists:

- **schemas**: core objects against the Kubernetes 1.33 OpenAPI schemas, strict (an unknown field is an error), with
  ``kubernetes-validate``; Argo objects (Rollout, AnalysisTemplate, Application) against the vendored CRD schemas in
  ``services/k8s/schemas`` with ``check-jsonschema``;
- **policy**: ``checkov`` (its own virtual environment, ``make policy-venv``: its pins clash with this project's)
  with ``--skip-download``, every Kubernetes check except those listed in :data:`CHECKOV_SKIPS` with the reason;
- **consistency** (:func:`consistency`): what no schema or generic policy knows, because it spans fields or
  objects: probes and Services name a port the container declares, selectors select the pods, the autoscaler and
  the Rollout point at the workload, the replica range is a range, requests stay within limits, liveness and
  readiness probe the service's ``/livez`` and ``/readyz``, Prometheus scrapes the pods on a declared port, and
  the prediction log directory the service is given is a mounted volume.

Every problem is one line naming the object (``Kind/name``) and the field.
"""

from __future__ import annotations

import json
import os
import re
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
    if not objects:
        return []
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

    # checkov exits 0 when every check passed and 1 when some failed, printing its JSON report either way; anything
    # else (a crash, no report, a report that is not checkov's) is an error, never "no problems".
    def broken(why: str) -> PipelineError:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-500:]
        return PipelineError(f"checkov ({checkov}) {why} (exit {proc.returncode}): {tail or 'no output'}")

    if proc.returncode not in (0, 1):
        raise broken("failed")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise broken("did not print its JSON report") from None
    reports = report if isinstance(report, list) else [report]
    if not reports or not all(isinstance(r, dict) and isinstance(r.get("results"), dict) for r in reports):
        raise broken("printed JSON that is not its report")
    problems = []
    for rep in reports:
        for failed in rep["results"].get("failed_checks") or []:
            problems.append(
                f"{failed.get('resource', '?')}: {failed.get('check_id', '?')} {failed.get('check_name', '')}"
            )
    if proc.returncode == 1 and not problems:
        raise broken("exited 1 (checks failed) but its report lists no failed check")
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


QUANTITY = re.compile(
    r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)
SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
SUFFIX |= {f"{k}i": 2.0 ** (10 * (i + 1)) for i, k in enumerate("KMGTPE")}
PROBE_PATHS = {"livenessProbe": "/livez", "readinessProbe": "/readyz"}  # the service's own endpoints
LOG_DIR_ENV = (
    "_PREDICTION_LOG_DIR"  # <SYSTEM>_PREDICTION_LOG_DIR: where the service writes its prediction log
)


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``500m``, ``2``, ``1Gi``, ``1e3``) in base units; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    found = QUANTITY.match(str(value))
    if found is None:
        return None
    number, exponent, suffix = found.groups()
    return float(number) * 10.0 ** int(exponent or 0) * SUFFIX.get(suffix or "", 1.0)


def container_problems(where: str, pod: dict[str, Any], c: dict[str, Any]) -> list[str]:
    """One container against the platform's rules: requests within limits, probes on the service's endpoints,
    the prediction log on a volume mounted where the service writes it."""
    problems = []
    name = f"{where}: container {c.get('name')}"
    resources = _d(c.get("resources"))
    requests, limits = _d(resources.get("requests")), _d(resources.get("limits"))
    for what in ("cpu", "memory"):
        low, high = quantity(requests.get(what)), quantity(limits.get(what))
        if low is not None and high is not None and low > high:
            problems.append(
                f"{name}: resources.requests.{what} {requests.get(what)!r} is above limits.{what} "
                f"{limits.get(what)!r}"
            )
    for probe, path in PROBE_PATHS.items():
        http = _d(_d(c.get(probe)).get("httpGet"))
        if http.get("path") != path:
            problems.append(f"{name}: {probe} must be an httpGet on {path}, got {http.get('path')!r}")
    mounts = {
        m["mountPath"]: m["name"]
        for m in map(_d, _l(c.get("volumeMounts")))
        if isinstance(m.get("mountPath"), str) and isinstance(m.get("name"), str)
    }
    volumes = {v.get("name") for v in map(_d, _l(pod.get("volumes"))) if isinstance(v.get("name"), str)}
    for env in map(_d, _l(c.get("env"))):
        if str(env.get("name", "")).endswith(LOG_DIR_ENV) and "value" in env:
            log_dir = env.get("value")
            if not isinstance(log_dir, str) or mounts.get(log_dir) not in volumes:
                problems.append(
                    f"{name}: {env.get('name')} is {log_dir!r}, but no pod volume is mounted there (the "
                    "prediction log would be lost with the pod, or fill its /tmp)"
                )
    return problems


def scrape_problems(where: str, template: dict[str, Any], ports: set[Any]) -> list[str]:
    """Prometheus scrapes the pods (the canary analysis and monitoring read those metrics) on a declared port."""
    notes = _d(_d(template.get("metadata")).get("annotations"))
    problems = []
    if notes.get("prometheus.io/scrape") != "true":
        problems.append(
            f"{where}: annotation prometheus.io/scrape is {notes.get('prometheus.io/scrape')!r}, not 'true'"
        )
    port = notes.get("prometheus.io/port")
    if not isinstance(port, str) or not port.isdigit() or int(port) not in ports:
        problems.append(f"{where}: annotation prometheus.io/port {port!r} is not a declared containerPort")
    return problems


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
            template = _d(_d(dep.get("spec")).get("template"))
            problems += container_problems(name_of(dep), _d(template.get("spec")), c)
        problems += scrape_problems(name_of(dep), _d(_d(dep.get("spec")).get("template")), ports)
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
