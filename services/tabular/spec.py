"""The serving spec: what the `package` stage wrote to serving.json (models, routing, input schema, log)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ENV = "SERVING_CONFIG"  # the one platform-wide name: the spec names the system, which names everything else
HERE = Path(__file__).resolve().parent
DEFAULT_PATHS = (HERE / "serving.json",)  # inside a bento, the package stage puts the system's spec here


class Strict(BaseModel):
    """Unknown keys are errors and types are strict (a string is not a number, a boolean not an integer)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Parity(Strict):
    """What the package stage checked of a fast path against its reference pipeline (pipelines/core/parity.py)."""

    tolerance: float  # absolute, on P(target = 1)
    rows: int  # rows compared
    max_abs_diff_at_most: float  # max |fast - reference|, as a power of ten at or above it
    batch_invariant: bool  # every row scores the same alone and in batches, bit for bit


class FastPathRef(Strict):
    """The model's serving fast path (models/fastpath.py), compiled and checked by the package stage."""

    files: dict[str, str]  # file name -> sha256
    info: dict[str, str | None]  # what it was compiled from
    parity: Parity


class ModelRef(Strict):
    tag: str  # BentoML model tag, name:version
    name: str
    version: str
    files: dict[str, str]  # file name -> sha256: the release's files and the fast path's
    fast_path: FastPathRef


class FaultInjection(Strict):
    challenger_error_rate: float = Field(0.0, ge=0.0, le=1.0)
    challenger_delay_ms: int = Field(0, ge=0)


class Routing(Strict):
    mode: Literal["canary", "shadow", "champion_only"]
    challenger_weight: float = Field(ge=0.0, le=1.0)
    salt: str = Field(min_length=1)
    challenger_timeout_ms: int = Field(gt=0, le=60_000)
    fault_injection: FaultInjection = FaultInjection()


class Field_(Strict):
    name: str
    type: Literal["int", "float", "category"]
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    nullable: bool = False


class InputPolicy(Strict):
    unknown_category: Literal["reject", "unknown"]
    max_batch_records: int = Field(ge=1)
    fields: list[Field_]


class Batching(Strict):
    adaptive: bool = False  # BentoML merges concurrent /predict_batch requests (waits up to max_latency_ms)
    max_batch_size: int = Field(ge=1)
    max_latency_ms: int = Field(ge=1)


LOG_FIELDS = (
    "request_id",
    "time",
    "model",
    "version",
    "role",
    "shadow",
    "score",
    "decision",
    "latency_ms",
    "fallback",
    "features",
)


class Retention(Strict):
    max_bytes: int = Field(ge=1024)  # a file is rotated when it would grow past this
    backup_count: int = Field(ge=0)  # rotated files kept per worker
    max_age_days: float = Field(gt=0)  # rotated files older than this are deleted


class PredictionLog(Strict):
    enabled: bool
    dir: str = Field(min_length=1)
    fields: list[Literal[LOG_FIELDS]]  # type: ignore[valid-type]
    feature_fields: list[str]  # the input fields kept in `features` (an allowlist)
    retention: Retention
    on_failure: Literal["degrade", "fail_closed"]  # fail_closed: not ready while the log cannot be written


class Overload(Strict):
    max_in_flight: int = Field(ge=1)  # requests admitted per worker (queued or running); more get 503
    retry_after_s: int = Field(ge=1, le=3600)  # the Retry-After of every 503 the service sends
    max_body_bytes: int = Field(ge=1024)  # a larger request body gets 413
    body_timeout_s: float = Field(10.0, gt=0, le=300)  # a body that takes longer to arrive gets 408


class Http(Strict):
    access_log: bool = False  # BentoML's access log (the prediction log already keeps every answer)
    tracing: bool = False  # BentoML's OpenTelemetry span per request
    direct: bool = True  # the guard answers the prediction endpoints itself (services/tabular/endpoints.py)


class ServingSpec(Strict):
    system: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")  # prefixes metric and environment variable names
    service_name: str
    champion: ModelRef
    challenger: ModelRef | None
    routing: Routing
    input: InputPolicy
    decision_threshold: float = Field(gt=0.0, lt=1.0)
    labels: dict[str, str]  # "0"/"1" -> the raw label
    display: dict[
        str, str
    ]  # "0"/"1" -> how pages name the class (dataset.target.display; default the raw label)
    batching: Batching
    workers: int = Field(ge=1)
    threads: int = Field(ge=1)
    native_threads: int = Field(ge=1)  # OpenMP, BLAS and torch threads per worker
    overload: Overload
    prediction_log: PredictionLog
    http: Http = Http()
    port: int

    def env(self, name: str) -> str:
        """The system's environment variable ``<SYSTEM>_<name>`` (``<SYSTEM>_PREDICTION_LOG_DIR``)."""
        return f"{self.system.upper()}_{name}"

    def metric(self, name: str) -> str:
        """The system's Prometheus metric name ``<system>_<name>`` (``<system>_predictions``)."""
        return f"{self.system}_{name}"


def spec_path() -> Path:
    """$SERVING_CONFIG, else serving.json beside this module (in a bento)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for path in DEFAULT_PATHS:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no serving spec: set {ENV} (make serve SYSTEM=<name> does) or run the package stage"
    )


def load_spec(path: Path | None = None) -> ServingSpec:
    data: dict[str, Any] = json.loads((path or spec_path()).read_text(encoding="utf-8"))
    return ServingSpec.model_validate(data)


# Set by the Kubernetes manifests from the desired state (services/k8s/<system>/<env>/release.yaml), per system:
# <SYSTEM>_ROUTING_MODE, <SYSTEM>_CHALLENGER_WEIGHT and <SYSTEM>_EXPECTED_CHAMPION.
DEPLOYMENT_ENV = ("ROUTING_MODE", "CHALLENGER_WEIGHT", "EXPECTED_CHAMPION")


def apply_deployment_env(spec: ServingSpec, environ: dict[str, str]) -> tuple[ServingSpec, list[str]]:
    """The spec with the deployment's routing applied, and the problems that keep the service from being ready.

    ``<SYSTEM>_ROUTING_MODE`` (canary, shadow, champion_only) and ``<SYSTEM>_CHALLENGER_WEIGHT`` (0 to 1) replace the
    packaged routing; ``<SYSTEM>_EXPECTED_CHAMPION`` names the champion tag the desired state promoted, and an image
    holding another champion is never ready (its pods fail the rollout instead of serving the wrong model). An
    unset or empty variable changes nothing; an invalid one is a problem naming the variable, not a crash."""
    problems: list[str] = []
    routing = spec.routing.model_dump()
    mode = environ.get(spec.env("ROUTING_MODE"), "")
    if mode:
        if mode in ("canary", "shadow", "champion_only"):
            routing["mode"] = mode
        else:
            problems.append(f"{spec.env('ROUTING_MODE')}={mode!r}: expected canary, shadow or champion_only")
    weight = environ.get(spec.env("CHALLENGER_WEIGHT"), "")
    if weight:
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if 0.0 <= value <= 1.0:
            routing["challenger_weight"] = value
        else:
            problems.append(f"{spec.env('CHALLENGER_WEIGHT')}={weight!r}: expected a number from 0 to 1")
    expected = environ.get(spec.env("EXPECTED_CHAMPION"), "")
    if expected and expected != spec.champion.tag:
        problems.append(
            f"{spec.env('EXPECTED_CHAMPION')}={expected!r}, but this image serves {spec.champion.tag!r}: "
            "the desired state and the image disagree"
        )
    if routing["mode"] != "champion_only" and spec.challenger is None and (mode or weight):
        problems.append(f"{spec.env('ROUTING_MODE')}={routing['mode']!r}, but this image has no challenger")
    return spec.model_copy(update={"routing": Routing.model_validate(routing)}), problems
