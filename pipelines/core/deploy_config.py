"""The ``<system>.deploy`` params section (conf/deploy/): how a system runs on Kubernetes, per environment.

Read by ``pipelines/deploy.py`` (``make manifests``, ``make promote``, ``make rollback``); no DVC stage depends on
it, so editing it reruns nothing. The version each environment serves is not here: it is the desired-state file
``services/k8s/<system>/<env>/release.yaml``, which only promotions and rollbacks change.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipelines.core.config import Section

Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")]  # Kubernetes quantities
UNITS = {"m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "": 1.0}


def amount(quantity: str) -> float:
    """A quantity's value in base units (cores, bytes): ``500m`` is 0.5, ``1Gi`` is 2**30."""
    number = quantity.rstrip("mKiGT")
    return float(number) * UNITS[quantity[len(number) :]]


ENVIRONMENTS = ("staging", "prod")


class Resources(Section):
    cpu: Quantity
    memory: Quantity


class Environment(Section):
    """One environment: replicas (the HorizontalPodAutoscaler's range), whether Argo CD syncs by itself, and
    whether a new image rolls out progressively (an Argo Rollouts canary judged by the analysis below)."""

    min_replicas: int = Field(ge=1, le=100)
    max_replicas: int = Field(ge=1, le=1000)
    auto_sync: bool
    progressive: bool

    @model_validator(mode="after")
    def _range(self) -> Environment:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class CanaryStep(Section):
    weight: int = Field(ge=1, le=100)  # percent of pods (and so of requests) on the new version
    pause_s: int = Field(ge=0, le=86_400)


class Analysis(Section):
    """The canary's AnalysisTemplate: the service's own Prometheus metrics over ``interval_s`` windows."""

    prometheus: str = Field(pattern=r"^https?://\S+$")
    interval_s: int = Field(ge=10, le=3600)
    count: int = Field(ge=1, le=100)
    failure_limit: int = Field(ge=0, le=100)
    min_success_rate: float = Field(gt=0.0, le=1.0)  # share of /predict answers that are not 5xx
    max_p99_latency_s: float = Field(gt=0.0, le=60.0)


class DeployConfig(Section):
    """``deploy``: image, cluster, resources and rollout of one system's service."""

    image_repository: str = Field(
        pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$"
    )  # <repo>/<system>:<sha12>
    repo_url: str = Field(pattern=r"^(https://|git@)\S+$")  # what Argo CD syncs from
    revision: str = Field(min_length=1)  # the branch Argo CD follows
    namespace_prefix: str = Field(pattern=r"^([a-z][a-z0-9-]{0,19})?$")  # namespace <prefix><system>-<env>
    container_port: int = Field(ge=1024, le=65535)  # the bento's HTTP port inside the image
    run_as_user: int = Field(ge=1000, le=2**31 - 1)  # a numeric, non-root user id
    requests: Resources
    limits: Resources
    target_cpu_utilization: int = Field(ge=10, le=100)  # percent of the CPU request
    min_available: int = Field(ge=0)  # PodDisruptionBudget
    startup_seconds: int = Field(ge=10, le=3600)  # how long a pod may take to load its models
    log_volume: Quantity  # the prediction log's volume, per pod
    environments: dict[Literal["staging", "prod"], Environment]
    canary: list[CanaryStep] = Field(min_length=1)
    analysis: Analysis

    @model_validator(mode="after")
    def _complete(self) -> DeployConfig:
        missing = [e for e in ENVIRONMENTS if e not in self.environments]
        if missing:
            raise ValueError(f"environments must name {list(ENVIRONMENTS)}; missing {missing}")
        for what in ("cpu", "memory"):
            request, limit = getattr(self.requests, what), getattr(self.limits, what)
            if amount(request) > amount(limit):
                raise ValueError(f"requests.{what} ({request}) is above limits.{what} ({limit})")
            if amount(request) <= 0:
                raise ValueError(f"requests.{what} must be above 0, got {request}")
        if amount(self.log_volume) <= 0:
            raise ValueError(f"log_volume must be above 0, got {self.log_volume}")
        for name, env in self.environments.items():
            if self.min_available >= env.min_replicas:
                raise ValueError(
                    f"min_available ({self.min_available}) must be below environments.{name}.min_replicas "
                    f"({env.min_replicas}): a PodDisruptionBudget that allows no eviction blocks node drains"
                )
        if self.canary[-1].weight == 100:
            raise ValueError("canary: the last step must stay below 100 (the rollout ends at full weight)")
        weights = [s.weight for s in self.canary]
        if weights != sorted(set(weights)):
            raise ValueError(f"canary weights must increase, got {weights}")
        return self
