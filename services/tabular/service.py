"""The BentoML service of every tabular system, driven by the system's serving spec: the champion answers, the challenger takes a canary share or
a shadow copy, every answer names the model version, and bad input is a 400 with field-level errors.

Endpoints: POST /predict (one record), POST /predict_batch (a list of records; with serving.batching.adaptive,
BentoML merges concurrent requests), GET /livez, /readyz (ready only when every model loaded and matched its sha256),
/metrics (Prometheus). Configuration: the serving spec written by the `package` stage (services/tabular/spec.py); metric and
environment variable names start with the spec's system (``<system>_predictions_total``, ``<SYSTEM>_PREDICTION_LOG_DIR``).

Models are scored through their fast paths (models/fastpath.py: numpy and treelite, 0.03 to 0.3 ms a row), so the
endpoints are async and score on the event loop: a hop to a worker thread cost more than the model. The challenger
alone runs in a thread pool, under its timeout; each request's predictions are logged in one write. With
``serving.http.direct`` (the default) the request guard answers both endpoints itself through the same code
(services/tabular/endpoints.py); the ``@api`` methods document them and serve them when it is off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import ServiceUnavailable

from models.checksums import sha256_file
from models.fastpath import FastPathError, FastScorer
from services.tabular import runtime, schema
from services.tabular.endpoints import DirectEndpoints
from services.tabular.guard import RequestGuard
from services.tabular.predlog import PredictionLogger
from services.tabular.routing import Role, Router
from services.tabular.spec import ModelRef, apply_deployment_env, load_spec

logger = logging.getLogger("bentoml.service")
SPEC, DEPLOYMENT_PROBLEMS = apply_deployment_env(load_spec(), dict(os.environ))
runtime.cache_response_media_types()
runtime.lean_timeout()
if not SPEC.http.tracing:
    runtime.untraced()
runtime.bound_metric_paths(
    {"/predict", "/predict_batch", "/", "/docs.json", "/livez", "/readyz", "/healthz", "/metrics"},
    prefixes=("/static_content/",),
)
Record, BatchRecord, PredictInput, BatchInput = schema.request_models(SPEC.input)

PREDICTIONS = bentoml.metrics.Counter(
    name=SPEC.metric("predictions"),
    documentation="Rows scored, by the model version that answered and its decision",
    labelnames=["model", "version", "role", "decision"],
)
MODEL_REQUESTS = bentoml.metrics.Counter(
    name=SPEC.metric("model_requests"),
    documentation="Calls to a model version (a call scores one or more rows)",
    labelnames=["model", "version", "role"],
)
MODEL_LATENCY = bentoml.metrics.Histogram(
    name=SPEC.metric("model_latency_seconds"),
    documentation="Time inside a model version's predict call",
    labelnames=["model", "version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FALLBACKS = bentoml.metrics.Counter(
    name=SPEC.metric("fallbacks"),
    documentation="Rows the champion answered because the challenger failed or was slow",
    labelnames=["reason"],
)
SHADOW = bentoml.metrics.Counter(
    name=SPEC.metric("shadow_predictions"),
    documentation="Shadow copies scored by the challenger, by outcome",
    labelnames=["model", "version", "outcome"],
)
UNKNOWN = bentoml.metrics.Counter(
    name=SPEC.metric("unknown_categories"),
    documentation="Unknown categories mapped to missing (policy: unknown)",
    labelnames=["field"],
)
READY = bentoml.metrics.Gauge(
    name=SPEC.metric("model_ready"),
    documentation="1 when the model version loaded and matched its checksums in every live worker",
    labelnames=["model", "version", "role"],
    multiprocess_mode="livemin",  # a dead worker's value goes with it (services/tabular/runtime.py)
)
SHED = bentoml.metrics.Counter(
    name=SPEC.metric("shed_requests"),
    documentation="Requests answered 503/429 with Retry-After: admission (over max_in_flight), unavailable, rate",
    labelnames=["reason"],
)
REJECTED = bentoml.metrics.Counter(
    name=SPEC.metric("rejected_requests"),
    documentation="Requests refused for their form: 400 body or schema, 404 path, 405 method, 408 slow body, "
    "413 size, 415 type",
    labelnames=["status"],
)
LOG_WRITES = bentoml.metrics.Counter(
    name=SPEC.metric("prediction_log_writes"),
    documentation="Prediction-log lines, by outcome (ok or failed)",
    labelnames=["outcome"],
)
LOG_HEALTHY = bentoml.metrics.Gauge(
    name=SPEC.metric("prediction_log_healthy"),
    documentation="1 while the prediction log can be written in every live worker",
    multiprocess_mode="livemin",
)


class ChallengerFault(RuntimeError):
    """Raised by fault injection (routing.fault_injection) to exercise the fallback."""


def verify(ref: ModelRef, folder: Path) -> None:
    """Every file the release recorded (the reference model's and the fast path's) is present with its sha256."""
    for name, expected in ref.files.items():
        path = folder / name
        if not path.is_file():
            raise FastPathError(f"{ref.tag}: {name} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise FastPathError(f"{ref.tag}: {name} sha256 {actual} does not match the release's {expected}")


@bentoml.service(
    name=SPEC.service_name,
    workers=SPEC.workers,
    threads=SPEC.threads,
    traffic={"timeout": 30},
    logging={"access": {"enabled": SPEC.http.access_log}},
    tracing={} if SPEC.http.tracing else {"excluded_urls": [".*"]},  # excluded: the middleware passes through
)
class ModelService:
    champion_model = bentoml.models.BentoModel(SPEC.champion.tag)
    challenger_model = bentoml.models.BentoModel(SPEC.challenger.tag) if SPEC.challenger else None

    def __init__(self) -> None:
        self.models: dict[Role, FastScorer] = {}  # the fast paths: numpy (and treelite), no pandas or torch
        self.refs: dict[Role, ModelRef] = {"champion": SPEC.champion}
        if SPEC.challenger is not None:
            self.refs["challenger"] = SPEC.challenger
        self.problems: list[str] = list(DEPLOYMENT_PROBLEMS)
        runtime.forget_dead_workers()
        stores = {"champion": self.champion_model, "challenger": self.challenger_model}
        for role, ref in self.refs.items():
            try:
                folder = Path(stores[role].path)
                verify(ref, folder)
                self.models[role] = FastScorer.load(folder, nthread=SPEC.native_threads)
                READY.labels(model=ref.name, version=ref.version, role=role).set(1)
                logger.info("loaded %s %s (%s), checksums verified", role, ref.tag, ref.version)
            except Exception as err:  # any load failure means "not ready", never a crash
                READY.labels(model=ref.name, version=ref.version, role=role).set(0)
                self.problems.append(f"{role} {ref.tag}: {err}")
                logger.error("NOT READY: %s model %s failed to load or verify: %s", role, ref.tag, err)
        self.pools = runtime.limit_threads(SPEC.native_threads)  # after loading: torch's pool exists now
        self.router = Router(SPEC.routing, "challenger" in self.refs)
        self.pool = ThreadPoolExecutor(max_workers=max(2, SPEC.threads), thread_name_prefix="challenger")
        self.rng = random.Random()
        self.fault = SPEC.routing.fault_injection
        worker = str(getattr(bentoml.server_context, "worker_index", None) or os.getpid())
        log_cfg = SPEC.prediction_log
        if os.environ.get(
            SPEC.env("PREDICTION_LOG_DIR")
        ):  # e.g. a mounted volume; relative paths follow the cwd
            log_cfg = log_cfg.model_copy(update={"dir": os.environ[SPEC.env("PREDICTION_LOG_DIR")]})
        instance = os.environ.get(SPEC.env("SERVICE_INSTANCE")) or socket.gethostname()
        self.log = PredictionLogger(log_cfg, worker, runtime.safe_name(instance))
        LOG_HEALTHY.set(1 if self.log.healthy else 0)
        self._log_ok = self.log.healthy
        if not self.log.healthy:
            logger.error("prediction log %s cannot be written: %s", self.log.path, self.log.last_error)
        logger.info("native thread pools: %s", self.pools)
        self.labels = {int(k): v for k, v in SPEC.labels.items()}
        self.display = {int(k): v for k, v in SPEC.display.items()}
        INSTANCE.append(self)  # the request guard asks it why a 503 happened
        self._unknown_seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        """Why this worker answers 503, in words for the client (None: overload)."""
        if self.problems or "champion" not in self.models:
            return "model not ready: " + "; ".join(self.problems)
        if SPEC.prediction_log.on_failure == "fail_closed" and not self.log.healthy:
            return f"prediction log cannot be written ({self.log.last_error}); policy fail_closed"
        return None

    def __is_ready__(self) -> bool:
        if self.problems or "champion" not in self.models:
            return False
        if SPEC.prediction_log.on_failure == "fail_closed" and not self.log.healthy:
            self._log_result(self.log.write_probe())  # recovers as soon as the folder is writable again
            return self.log.healthy
        return True

    def _log_result(self, ok: bool, lines: int = 1) -> None:
        runtime.labelled(LOG_WRITES, "ok" if ok else "failed").inc(lines)
        if ok != self._log_ok:  # the gauge moves on a change only: one metric write less per request
            self._log_ok = ok
            LOG_HEALTHY.set(1 if ok else 0)

    # -- scoring ---------------------------------------------------------------------------------------------

    def _call(self, role: Role, rows: list[dict[str, Any]]) -> np.ndarray:
        ref = self.refs[role]
        start = time.perf_counter()
        scores = self.models[role].score_records(rows)
        runtime.labelled(MODEL_LATENCY, ref.name, ref.version).observe(time.perf_counter() - start)
        runtime.labelled(MODEL_REQUESTS, ref.name, ref.version, role).inc()
        return scores

    def _challenger(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if self.fault.challenger_delay_ms:
            time.sleep(self.fault.challenger_delay_ms / 1000)
        if self.fault.challenger_error_rate and self.rng.random() < self.fault.challenger_error_rate:
            raise ChallengerFault("injected challenger fault (routing.fault_injection)")
        return self._call("challenger", rows)

    async def _score(
        self, records: list[dict[str, Any]], roles: list[Role]
    ) -> tuple[np.ndarray, list[Role], list[str | None]]:
        """Scores per row, the role that answered and the fallback reason (None when the routed model answered)."""
        roles = list(roles)
        fallback: list[str | None] = [None] * len(roles)
        if "challenger" not in roles:  # the common case, without the bookkeeping below
            return self._call("champion", records), roles, fallback
        scores = np.empty(len(roles))
        wanted = np.array([r == "challenger" for r in roles])
        if wanted.any():
            rows = np.flatnonzero(wanted)
            try:
                future = asyncio.wrap_future(self.pool.submit(self._challenger, [records[i] for i in rows]))
                scores[rows] = await asyncio.wait_for(future, SPEC.routing.challenger_timeout_ms / 1000)
            except Exception as err:  # any challenger failure falls back to the champion
                reason = "timeout" if isinstance(err, TimeoutError) else "error"
                FALLBACKS.labels(reason=reason).inc(len(rows))
                logger.warning(
                    "challenger %s failed (%s: %s); the champion answers %d row(s)",
                    self.refs["challenger"].tag,
                    reason,
                    err,
                    len(rows),
                )
                for i in rows:
                    roles[i], fallback[i] = "champion", reason
        champion_rows = np.flatnonzero([r == "champion" for r in roles])
        if champion_rows.size:
            scores[champion_rows] = self._call("champion", [records[i] for i in champion_rows])
        return scores, roles, fallback

    def _shadow(self, request_ids: list[str], features: list[dict[str, Any]]) -> None:
        ref = self.refs["challenger"]

        def run() -> None:
            start = time.perf_counter()
            try:
                scores = self._challenger(features)
            except Exception as err:  # a failing shadow must never affect the answer
                SHADOW.labels(model=ref.name, version=ref.version, outcome="error").inc(len(features))
                logger.warning("shadow challenger %s failed: %s", ref.tag, err)
                return
            ms = (time.perf_counter() - start) * 1000
            SHADOW.labels(model=ref.name, version=ref.version, outcome="ok").inc(len(features))
            n = len(features)
            self._answer(request_ids, ["challenger"] * n, scores, ms, [None] * n, features, shadow=True)

        self.pool.submit(run)

    def _answer(
        self,
        ids: list[str],
        roles: list[Role],
        scores: np.ndarray,
        ms: float,
        fallback: list[str | None],
        features: list[dict[str, Any]],
        shadow: bool = False,
    ) -> list[dict[str, Any]]:
        """Log the request's predictions (one write), count them, and build the answers: one dict per row with
        the fields of :class:`~services.tabular.schema.Prediction`, in its order."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        threshold = SPEC.decision_threshold
        latency = round(ms, 3)
        answers, entries = [], []
        for rid, role, score, fb, feats in zip(ids, roles, scores.tolist(), fallback, features, strict=True):
            ref, decision = self.refs[role], int(score >= threshold)
            answers.append(
                {
                    "request_id": rid,
                    "score": score,
                    "decision": decision,
                    "label": self.labels[decision],
                    "display": self.display[decision],
                    "threshold": threshold,
                    "model": ref.name,
                    "version": ref.version,
                    "role": role,
                    "fallback": fb,
                }
            )
            entries.append(
                {
                    "request_id": rid,
                    "time": now,
                    "model": ref.name,
                    "version": ref.version,
                    "role": role,
                    "shadow": shadow,
                    "score": round(score, 6),
                    "decision": decision,
                    "latency_ms": latency,
                    "fallback": fb,
                    "features": feats,
                }
            )
        logged = self.log.write_many(entries)
        if self.log.cfg.enabled:
            self._log_result(logged, len(entries))
        if not logged and SPEC.prediction_log.on_failure == "fail_closed" and not shadow:
            raise ServiceUnavailable(
                f"prediction log cannot be written ({self.log.last_error}); policy fail_closed"
            )
        if shadow:
            return []
        counts = Counter((a["role"], a["decision"]) for a in answers)
        for (role, decision), n in counts.items():  # counted once the answers are certain (fail_closed above)
            ref = self.refs[role]
            runtime.labelled(PREDICTIONS, ref.name, ref.version, role, str(decision)).inc(n)
        return answers

    async def _predict(
        self, rows: list[dict[str, Any]], keys: list[str | None], ids: list[str]
    ) -> list[dict[str, Any]]:
        """The answers to ``rows`` (see :meth:`_answer`); raises ServiceUnavailable when this worker cannot."""
        if not self.__is_ready__():
            raise ServiceUnavailable("model not ready: " + "; ".join(self.problems))
        self._count_unknown()
        start = time.perf_counter()
        roles = [self.router.choose(k) for k in keys]
        scores, answered, fallback = await self._score(rows, roles)
        ms = (time.perf_counter() - start) * 1000
        out = self._answer(ids, answered, scores, ms, fallback, rows)
        if self.router.shadow:
            self._shadow(ids, rows)
        return out

    def _count_unknown(self) -> None:
        with self._lock:
            for field, total in schema.UNKNOWN_SEEN.items():
                new = total - self._unknown_seen.get(field, 0)
                if new > 0:
                    UNKNOWN.labels(field=field).inc(new)
                    self._unknown_seen[field] = total

    # -- endpoints -------------------------------------------------------------------------------------------

    @bentoml.api(input_spec=PredictInput)
    async def predict(
        self,
        record: Record,  # type: ignore[valid-type]
        ctx: bentoml.Context,
        key: str | None = None,
    ) -> schema.Prediction:
        """Score one record. `key` makes routing sticky; the response names the model version that answered."""
        rid = runtime.request_id(ctx.request.headers.get("x-request-id"))
        [answer] = await self._predict([record.model_dump()], [key], [rid])  # type: ignore[attr-defined]
        ctx.response.headers["X-Model-Version"] = answer["version"]
        ctx.response.headers["X-Request-ID"] = rid
        return schema.Prediction.model_construct(**answer)  # built from checked values: no second validation

    @bentoml.api(
        input_spec=BatchInput,
        batchable=SPEC.batching.adaptive,  # serving.batching.adaptive: BentoML merges concurrent requests
        max_batch_size=SPEC.batching.max_batch_size,
        max_latency_ms=SPEC.batching.max_latency_ms,
    )
    async def predict_batch(self, records: list[BatchRecord]) -> list[schema.Prediction]:  # type: ignore[valid-type]
        """Score a list of records (at most input.max_batch_records per request); each may carry a routing_key."""
        rows = [r.model_dump() for r in records]  # type: ignore[attr-defined]
        keys = [row.pop("routing_key") for row in rows]
        answers = await self._predict(rows, keys, runtime.new_request_ids(len(rows)))
        return [schema.Prediction.model_construct(**a) for a in answers]


INSTANCE: list[ModelService] = []


def _explain_503() -> str | None:
    return INSTANCE[-1].unavailable_reason() if INSTANCE else None


def _shed(reason: str) -> None:
    SHED.labels(reason=reason).inc()


def _rejected(status: int) -> None:
    REJECTED.labels(status=str(status)).inc()


def _scoring() -> Any:
    if not INSTANCE:
        raise ServiceUnavailable("the service is starting")
    return INSTANCE[-1]._predict


DIRECT = DirectEndpoints(  # serving.http.direct: the guard answers these paths itself (endpoints.py)
    PredictInput,
    BatchInput,
    _scoring,
    runtime.request_id,
    runtime.new_request_ids,
    server=f"BentoML Service/{SPEC.service_name}",
    batch=not SPEC.batching.adaptive,  # adaptive batching needs BentoML's dispatcher
    native=schema.native_request_validators(SPEC.input),
)

GUARD: dict[str, Any] = {  # the request guard's settings (services/tabular/guard.py)
    "paths": frozenset({"/predict", "/predict_batch"}),
    "max_in_flight": SPEC.overload.max_in_flight,
    "retry_after_s": SPEC.overload.retry_after_s,
    "max_body_bytes": SPEC.overload.max_body_bytes,
    "on_shed": _shed,
    "on_reject": _rejected,
    "explain_503": _explain_503,
    "body_timeout_s": SPEC.overload.body_timeout_s,
    "direct": DIRECT if SPEC.http.direct else None,
    "direct_paths": DIRECT.paths,
    "unavailable": (ServiceUnavailable,),
}
ModelService.add_asgi_middleware(RequestGuard, **GUARD)  # type: ignore[attr-defined]
