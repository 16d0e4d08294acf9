"""Process-level set-up of a service worker: native thread pools, per-process metric files, request ids.

- **Thread pools.** OpenMP (scikit-learn's gradient boosting), BLAS and torch size their pools to the machine by
  default; with several workers, or another busy process, the pools oversubscribe the cores (measured here: p50 of
  one-row /predict from 8 ms to 1,168 ms beside one busy process; 9.4 ms with one thread). ``limit_threads`` sets
  every pool to ``serving.native_threads`` at start-up (threadpoolctl, torch), whatever the environment says.
- **Metric files of dead workers.** With several workers Prometheus' client keeps one file per process in
  ``PROMETHEUS_MULTIPROC_DIR``. A killed worker leaves its gauges behind (ready = 1, in progress stuck at 1);
  ``forget_dead_workers`` runs when a worker starts (the arbiter restarts a killed one at once) and applies
  prometheus_client's ``mark_process_dead`` to every process that no longer exists. Counters of dead workers stay:
  they are totals.
- **Request ids.** A client's ``X-Request-ID`` is kept only when it is short and plain; otherwise the service
  assigns one, so nothing a client sends reaches the prediction log unchecked.
- **Bounded metric labels.** BentoML 1.4.40 labels its request metrics with the raw request path, so every
  unknown path a client tries adds about 20 series to ``/metrics`` (measured: 50 such requests, 266 KB).
  ``bound_metric_paths`` keeps BentoML's request metrics for the service's own paths only; other requests (all
  404s) are counted by the service as rejected (status 404) instead.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from pathlib import Path
from timeit import default_timer
from typing import Any

logger = logging.getLogger("bentoml.service.runtime")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
METRIC_FILE = re.compile(r"^(?:counter|gauge_[a-z]+|histogram|summary)_(\d+)\.db$")


def limit_threads(n: int) -> dict[str, int]:
    """Set every native thread pool of this process to ``n`` threads; return what each library now uses."""
    from threadpoolctl import threadpool_info, threadpool_limits

    for var in THREAD_VARS:
        os.environ[var] = str(n)  # for pools created later and for child processes
    threadpool_limits(limits=n)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    pools = {f"{p['internal_api']}:{Path(p['filepath']).name}": p["num_threads"] for p in threadpool_info()}
    if "torch" in sys.modules:
        pools["torch"] = sys.modules["torch"].get_num_threads()
    return pools


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: str | None = None) -> list[int]:
    """``mark_process_dead`` for every process with metric files in ``directory`` that no longer runs."""
    from prometheus_client import multiprocess

    folder = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not str(folder) or not folder.is_dir():
        return []
    pids = {int(m.group(1)) for p in folder.iterdir() if (m := METRIC_FILE.match(p.name))}
    dead = sorted(pid for pid in pids if pid != os.getpid() and not alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))  # the "live" gauge modes
        for path in folder.glob(f"gauge_*_{pid}.db"):  # the others keep one series per pid: meaningless now
            path.unlink(missing_ok=True)
    if dead:
        logger.info("forgot the live gauges of %d dead worker process(es): %s", len(dead), dead)
    return dead


def request_id(header: str | None) -> str:
    """The client's id when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``; a new one otherwise."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return new_request_ids(1)[0]


def new_request_ids(n: int) -> list[str]:
    """``n`` random version-4 UUIDs (RFC 9562) as 32 hex digits, what ``uuid.uuid4().hex`` gives, from one read of
    ``os.urandom``: 0.5 us an id in a batch of 32 and 1.9 us alone, against 2.7 us for ``uuid4`` (which builds a
    UUID object for each)."""
    raw = bytearray(os.urandom(16 * n))
    for i in range(6, 16 * n, 16):
        raw[i] = raw[i] & 0x0F | 0x40  # version 4
        raw[i + 2] = raw[i + 2] & 0x3F | 0x80  # variant 10 (RFC 9562)
    text = raw.hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


@functools.cache
def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once per label set (prometheus_client resolves it in about 2 us on
    every call; the label sets the service and BentoML's request metrics use are bounded)."""
    return metric.labels(*values)


def bound_metric_paths(paths: set[str], prefixes: tuple[str, ...] = ()) -> None:
    """Let BentoML's request metrics see only ``paths`` (and paths under ``prefixes``); see the module docstring.

    For those paths the same series are kept with the same values (request total and duration by endpoint and
    status, requests in progress, the last request's time), but each labelled series is looked up once and then
    reused: BentoML 1.4.40 resolves five label sets by keyword on every request, which py-spy put at about 10% of
    a one-record /predict served from the fast path. WebSocket scopes keep BentoML's own code.
    """
    from bentoml._internal.context import server_context as ctx
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as Metrics

    original = getattr(Metrics.__call__, "__wrapped__", Metrics.__call__)
    known = frozenset(paths)

    async def bounded(self: Any, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if not scope["type"].startswith("http"):
            await original(self, scope, receive, send)
            return
        if path == "/metrics" or (path not in known and not path.startswith(prefixes)):
            await self.app(scope, receive, send)  # not labelled by a path a client chose
            return
        if not self._is_setup:
            self._setup()
        bento, version, service = ctx.bento_name, ctx.bento_version, ctx.service_name
        if not path.startswith(tuple(self.skip_paths)):
            labelled(self.metrics_last_request_timestamp, bento, version, service).set_to_current_time()
        start, status = default_timer(), 0

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                labelled(self.metrics_request_total, path, bento, version, str(status), service).inc()
                labelled(self.metrics_request_duration, path, bento, version, str(status), service).observe(
                    max(default_timer() - start, 0)
                )
            await send(message)

        with labelled(self.metrics_request_in_progress, path, bento, version, service).track_inprogress():
            await self.app(scope, receive, sending)

    bounded.__wrapped__ = original  # type: ignore[attr-defined]
    Metrics.__call__ = bounded  # type: ignore[method-assign]


def untraced() -> None:
    """OpenTelemetry's ASGI middleware passes every request straight through (``serving.http.tracing`` false).

    BentoML always installs it; tracing off is ``excluded_urls: [".*"]``, and the middleware still rebuilds each
    request's URL to match it against that pattern before passing through (about 5% of a one-record /predict served
    from the fast path, py-spy). With tracing on, the middleware is left as it is.
    """
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as Tracing

    async def passthrough(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    passthrough.__wrapped__ = getattr(Tracing.__call__, "__wrapped__", Tracing.__call__)  # type: ignore[attr-defined]
    Tracing.__call__ = passthrough  # type: ignore[method-assign]


def lean_timeout() -> None:
    """BentoML's request timeout (``traffic.timeout``) without a task and a timer left behind per request.

    BentoML 1.4.40's ``TimeoutMiddleware`` runs each request in a task of its own and arms a timer that is never
    cancelled, so a worker answering 1,000 requests/s under a 30 s timeout keeps about 30,000 live timers. Here
    the request runs on in the task that received it, under ``asyncio.timeout``: the same 504 body when no response has started
    within the timeout, and no deadline once it has. One difference, deliberate: an error the app raises before
    answering reaches Starlette's error middleware (BentoML's 500) at once; BentoML's own middleware leaves it in
    the unawaited task and the request waits out the whole timeout (tests/unit/test_service_runtime.py).
    """
    import asyncio

    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from starlette.responses import JSONResponse

    async def within(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if not started:
                started = True
                if not deadline.expired():
                    deadline.reschedule(None)  # the answer has begun: no timeout from here on
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive, sending)
        except TimeoutError:
            if not deadline.expired() or started:
                raise
            error = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(error, status_code=504)(scope, receive, send)

    within.__wrapped__ = getattr(TimeoutMiddleware.__call__, "__wrapped__", TimeoutMiddleware.__call__)  # type: ignore[attr-defined]
    TimeoutMiddleware.__call__ = within  # type: ignore[method-assign]


def safe_name(text: str) -> str:
    """``text`` reduced to characters safe in a file name (an instance id from a host name and a port)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:64] or "instance"


def cache_response_media_types() -> None:
    """Compute each response model's media type once. BentoML 1.4.40 derives it from the model's full JSON schema
    on every response (``IOMixin.mime_type``): measured 12% of a 32-record /predict_batch. The schema of a class
    never changes while the process runs, so the answer is cached per class."""
    from _bentoml_sdk.io_models import IOMixin

    original = getattr(IOMixin.mime_type, "__wrapped__", None) or IOMixin.mime_type.__func__
    cache: dict[type, str] = {}

    def mime_type(cls: type) -> str:
        try:
            return cache[cls]
        except KeyError:
            value = cache[cls] = original(cls)
            return value

    mime_type.__wrapped__ = original  # type: ignore[attr-defined]
    IOMixin.mime_type = classmethod(mime_type)
