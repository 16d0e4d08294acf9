"""Kubernetes manifests, validated offline: every overlay renders with kustomize, every object validates against
the Kubernetes 1.33 schemas (Argo objects against the vendored CRD schemas), the policy scan and the consistency
rules pass, the committed files are what conf/ renders, and each deliberately broken manifest is rejected."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core import k8s_policy
from tests.conftest import ROOT, SYSTEMS, copy_repo, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("kubectl") is None, reason="kubectl (with kustomize) renders the overlays"
    ),
]
OVERLAYS = sorted(p.parent for p in (ROOT / "services/k8s").glob("*/*/release.yaml"))
NEEDS_CHECKOV = pytest.mark.skipif(
    k8s_policy.checkov_path() is None, reason="checkov is not installed (make policy-venv; make test does it)"
)


def test_every_system_has_a_staging_and_a_prod_overlay() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in OVERLAYS}
    assert names == {f"{s}/{env}" for s in SYSTEMS for env in ("staging", "prod")}


@NEEDS_CHECKOV
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: f"{p.parent.name}-{p.name}")
def test_overlay_renders_and_passes_every_check(overlay: Path) -> None:
    objects = k8s_policy.kustomize(overlay)
    kinds = sorted(o["kind"] for o in objects)
    expected = ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Service"]
    expected += ["ServiceAccount"]
    if overlay.name == "prod":  # progressive delivery
        expected += ["AnalysisTemplate", "Rollout"]
    assert kinds == sorted(expected)
    assert k8s_policy.check_overlay(overlay) == []
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == f"ml-{overlay.parent.name}-{overlay.name}"


@NEEDS_CHECKOV
def test_make_manifests_check_passes_and_names_a_broken_overlay(tmp_path: Path) -> None:
    run(["make", "manifests-check"], ROOT)
    repo = copy_repo(tmp_path / "repo")
    deployment = repo / "services/k8s/hmda/base/deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    )
    # the copy has no .venv-policy of its own: point it at this checkout's checkov
    checkov = str(k8s_policy.checkov_path())
    proc = run(["python", "-m", "pipelines.deploy", "validate"], repo, check=False, CHECKOV=checkov)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "services/k8s/hmda/staging: Deployment.ml-hmda-staging.hmda: CKV_K8S_22" in proc.stderr
    assert "services/k8s/adult" not in proc.stderr


def test_argo_cd_applications_validate_and_point_at_the_overlays() -> None:
    apps = sorted((ROOT / "services/k8s/argocd").glob("*.yaml"))
    assert [a.stem for a in apps] == sorted(f"{s}-{env}" for s in SYSTEMS for env in ("prod", "staging"))
    for app in apps:
        obj = yaml.safe_load(app.read_text())
        assert k8s_policy.crd_problems(obj) == []
        assert (ROOT / obj["spec"]["source"]["path"] / "release.yaml").is_file()


def test_committed_manifests_are_what_conf_renders(tmp_path: Path) -> None:
    run(["python", "-m", "pipelines.deploy", "manifests", "--check"], ROOT)
    repo = copy_repo(tmp_path / "repo")
    run(["python", "-m", "pipelines.compose", "hmda.deploy.run_as_user=20002"], repo)
    stale = run(["python", "-m", "pipelines.deploy", "manifests", "--check"], repo, check=False)
    assert stale.returncode == 1 and "services/k8s/hmda/base/deployment.yaml" in stale.stderr
    assert "adult/base" not in stale.stderr
    run(["python", "-m", "pipelines.deploy", "manifests"], repo)
    assert "runAsUser: 20002" in (repo / "services/k8s/hmda/base/deployment.yaml").read_text()
    run(["python", "-m", "pipelines.deploy", "manifests", "--check"], repo)
    (repo / "services/k8s/hmda/base/extra.yaml").write_text("kind: ConfigMap\n")
    orphan = run(["python", "-m", "pipelines.deploy", "manifests", "--check"], repo, check=False)
    assert orphan.returncode == 1 and "git rm services/k8s/hmda/base/extra.yaml" in orphan.stderr


def test_a_bad_deploy_config_names_the_key(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    for override, needle in [
        ("adult.deploy.min_available=3", "min_available (3) must be below environments.staging.min_replicas"),
        ("adult.deploy.run_as_user=0", "adult.deploy.run_as_user"),
        ("adult.deploy.requests.cpu=lots", "adult.deploy.requests.cpu"),
        ("adult.deploy.requests.cpu='4'", "requests.cpu (4) is above limits.cpu (2)"),
        ("adult.deploy.requests.memory=8Gi", "requests.memory (8Gi) is above limits.memory (2Gi)"),
        ("adult.deploy.namespace_prefix=-x-", "adult.deploy.namespace_prefix"),
        ("adult.deploy.log_volume='0'", "log_volume must be above 0"),
    ]:
        proc = run(["python", "-m", "pipelines.compose", override], repo, check=False)
        assert proc.returncode != 0 and needle in proc.stderr, (override, proc.stderr)
        assert "Traceback" not in proc.stderr


# -- deliberately broken manifests ---------------------------------------------------------------------------------

Mutation = Callable[[list[dict[str, Any]]], None]


def first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return first(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return first(objects, "Deployment")["spec"]["template"]["spec"]


def _no_probes(o: list[dict[str, Any]]) -> None:
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container(o).pop(probe)


def _root(o: list[dict[str, Any]]) -> None:
    for ctx in (pod(o)["securityContext"], container(o)["securityContext"]):
        ctx["runAsUser"] = 0
        ctx["runAsNonRoot"] = False


def _no_limits(o: list[dict[str, Any]]) -> None:
    container(o)["resources"].pop("limits")


def _typo(o: list[dict[str, Any]]) -> None:
    container(o)["imagePullPolice"] = container(o).pop("imagePullPolicy")


def _probe_port(o: list[dict[str, Any]]) -> None:
    container(o)["readinessProbe"]["httpGet"]["port"] = 8080


def _service_port(o: list[dict[str, Any]]) -> None:
    first(o, "Service")["spec"]["ports"][0]["targetPort"] = "metrics"


def _escalation(o: list[dict[str, Any]]) -> None:
    container(o)["securityContext"]["allowPrivilegeEscalation"] = True


def _writable_root(o: list[dict[str, Any]]) -> None:
    container(o)["securityContext"]["readOnlyRootFilesystem"] = False


def _capabilities(o: list[dict[str, Any]]) -> None:
    container(o)["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}


def _wrong_type(o: list[dict[str, Any]]) -> None:
    first(o, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] = "twelve"


def _hpa_target(o: list[dict[str, Any]]) -> None:
    first(o, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "adult-old"


def _selector(o: list[dict[str, Any]]) -> None:
    first(o, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "hmda"}


def _host_network(o: list[dict[str, Any]]) -> None:
    pod(o)["hostNetwork"] = True


def _rollout_typo(o: list[dict[str, Any]]) -> None:
    first(o, "Rollout")["spec"]["strategy"]["canary"]["stepz"] = []


def _hpa_range(o: list[dict[str, Any]]) -> None:
    first(o, "HorizontalPodAutoscaler")["spec"]["minReplicas"] = 20


def _request_above_limit(o: list[dict[str, Any]]) -> None:
    container(o)["resources"]["requests"]["memory"] = "3Gi"  # the limit is 2Gi


def _scrape_off(o: list[dict[str, Any]]) -> None:
    first(o, "Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] = "false"


def _log_not_mounted(o: list[dict[str, Any]]) -> None:
    mounts = container(o)["volumeMounts"]
    container(o)["volumeMounts"] = [m for m in mounts if m["name"] != "prediction-log"]


def _readiness_on_livez(o: list[dict[str, Any]]) -> None:
    container(o)["readinessProbe"]["httpGet"]["path"] = "/livez"


def _liveness_on_readyz(o: list[dict[str, Any]]) -> None:
    container(o)["livenessProbe"]["httpGet"]["path"] = "/readyz"


BROKEN: dict[str, tuple[Mutation, str]] = {  # case: (what breaks it, what the rejection names)
    "no probes": (_no_probes, "CKV_K8S_8"),  # liveness probe
    "root user": (_root, "CKV_K8S_23"),  # admission of root containers
    "no limits": (_no_limits, "CKV_K8S_11"),  # CPU limits
    "typo in a field": (_typo, "imagePullPolice"),
    "probe on an undeclared port": (_probe_port, "readinessProbe port 8080 is not a declared containerPort"),
    "service to an undeclared port": (_service_port, "targetPort 'metrics' is not a declared containerPort"),
    "privilege escalation": (_escalation, "CKV_K8S_20"),
    "writable root filesystem": (_writable_root, "CKV_K8S_22"),
    "capabilities not dropped": (_capabilities, "CKV_K8S_28"),  # NET_RAW not dropped
    "a string where a number goes": (_wrong_type, "maxReplicas"),
    "autoscaler without its workload": (_hpa_target, "/adult-old is not here"),
    "budget that selects nothing": (_selector, "selects no pod of this overlay"),
    "host network": (_host_network, "CKV_K8S_19"),
    "typo in the canary": (_rollout_typo, "stepz"),
    "replica range upside down": (_hpa_range, "minReplicas 20 > maxReplicas"),
    "memory request above its limit": (
        _request_above_limit,
        "resources.requests.memory '3Gi' is above limits",
    ),
    "Prometheus scrape turned off": (_scrape_off, "prometheus.io/scrape is 'false', not 'true'"),
    "prediction log not on its volume": (
        _log_not_mounted,
        "ADULT_PREDICTION_LOG_DIR is '/var/log/predictions'",
    ),
    "readiness probe on /livez": (_readiness_on_livez, "readinessProbe must be an httpGet on /readyz"),
    "liveness probe on /readyz": (_liveness_on_readyz, "livenessProbe must be an httpGet on /livez"),
}


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    return k8s_policy.kustomize(ROOT / "services/k8s/adult/prod")


@pytest.fixture(scope="module")
def policy_of_broken(prod: list[dict[str, Any]]) -> dict[str, list[str]]:
    """checkov's findings per broken case, from one scan of every case (each Deployment renamed after its case)."""
    if k8s_policy.checkov_path() is None:
        pytest.skip("checkov is not installed (make policy-venv; make test does it)")
    objects = []
    names = {}
    for i, (case, (mutate, _)) in enumerate(BROKEN.items()):
        broken = copy.deepcopy(prod)
        mutate(broken)
        dep = first(broken, "Deployment")
        dep["metadata"]["name"] = names[case] = f"case-{i:02d}"
        objects.append(dep)
    found = k8s_policy.policy_problems(objects)
    return {case: [p for p in found if f".{name}:" in p or f".{name} " in p] for case, name in names.items()}


def test_at_least_ten_kinds_of_breakage() -> None:
    assert len(BROKEN) >= 10


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_manifest_is_rejected(
    case: str, prod: list[dict[str, Any]], policy_of_broken: dict[str, list[str]]
) -> None:
    mutate, needle = BROKEN[case]
    broken = copy.deepcopy(prod)
    mutate(broken)
    problems = k8s_policy.schema_problems(broken) + k8s_policy.consistency(broken) + policy_of_broken[case]
    assert any(needle in p for p in problems), (case, problems)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_the_checks_never_crash_on_a_malformed_object(
    prod: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Any field replaced by a value of another type, or removed: a list of problems, never an exception."""
    broken = copy.deepcopy(prod)
    paths = [p for p in _leaves(broken) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = broken
        try:
            for key in path[:-1]:
                parent = parent[key]
            value = data.draw(
                st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just([]), st.just({}))
            )
            if isinstance(parent, dict) and data.draw(st.booleans()):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the path
    assert isinstance(k8s_policy.consistency(broken), list)
    core = [o for o in broken if isinstance(o, dict) and o.get("apiVersion") != "argoproj.io/v1alpha1"]
    assert isinstance(k8s_policy.schema_problems(core), list)  # Argo objects: check-jsonschema, a subprocess


def test_a_canary_without_traffic_is_not_judged_failed(prod: list[dict[str, Any]]) -> None:
    """0/0 is NaN, which fails every condition: each query keeps its value only while the canary had requests
    (``> 0``) and falls back to a passing one (``or vector(...)``) in a quiet window."""
    metrics = first(prod, "AnalysisTemplate")["spec"]["metrics"]
    assert [m["name"] for m in metrics] == ["success-rate", "p99-latency"]
    for metric, fallback in zip(metrics, ("or vector(1)", "or vector(0)"), strict=True):
        query = " ".join(metric["provider"]["prometheus"]["query"].split())
        assert query.endswith(fallback) and "[2m])) > 0)" in query, query


def test_the_clean_overlay_is_clean_before_breaking(prod: list[dict[str, Any]]) -> None:
    """The cases above fail because of their breakage, not because the base fails already."""
    assert k8s_policy.schema_problems(prod) == [] and k8s_policy.consistency(prod) == []
