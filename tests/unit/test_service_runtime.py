"""Process-level helpers of a service worker (services/tabular/runtime.py) that need no server."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import prometheus_client
import pytest

from services.tabular import runtime


def test_a_labelled_series_is_looked_up_once_and_counts_as_the_plain_lookup() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("c_total", "test", ["model", "role"], registry=registry)
    first = runtime.labelled(counter, "hgb", "champion")
    assert runtime.labelled(counter, "hgb", "champion") is first is counter.labels("hgb", "champion")
    first.inc(2)
    runtime.labelled(counter, "hgb", "challenger").inc()
    assert registry.get_sample_value("c_total", {"model": "hgb", "role": "champion"}) == 2
    assert registry.get_sample_value("c_total", {"model": "hgb", "role": "challenger"}) == 1
    with pytest.raises(
        ValueError
    ):  # a wrong label count is still prometheus_client's error, not a cached miss
        runtime.labelled(counter, "hgb")


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("order-17:a.b_c", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("a b", False),
        ("", False),
        (None, False),
    ],
)
def test_a_client_request_id_is_kept_only_when_short_and_plain(header: str | None, kept: bool) -> None:
    got = runtime.request_id(header)
    assert (got == header) is kept
    if not kept:
        assert len(got) == 32 and int(got, 16) >= 0


def test_new_request_ids_are_uuid4_hex_and_distinct() -> None:
    import uuid

    for n in (1, 2, 32):
        ids = runtime.new_request_ids(n)
        assert len(ids) == n
        for rid in ids:
            parsed = uuid.UUID(hex=rid)
            assert (parsed.hex, parsed.version, parsed.variant) == (rid, 4, uuid.RFC_4122)
    assert len(set(runtime.new_request_ids(5000))) == 5000
    assert runtime.new_request_ids(0) == []


# -- BentoML's middlewares, leaner: the same answers -------------------------------------------------------------


def run_asgi(middleware: Any, scope_type: str = "http") -> tuple[list[dict[str, Any]], BaseException | None]:
    """Call one ASGI middleware instance; return what it sent and what it raised."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": scope_type, "path": "/predict", "method": "POST", "headers": [], "query_string": b""}
    try:
        asyncio.run(middleware(scope, receive, send))
    except BaseException as err:
        return sent, err
    return sent, None


def responding(delay_before: float, delay_after: float = 0.0, error: BaseException | None = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(delay_before)
        if error is not None:
            raise error
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(delay_after)
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize(
    "app",
    [
        responding(0),  # answered at once
        responding(0.3),  # nothing sent within the timeout: 504
        responding(0, delay_after=0.3),  # begun within the timeout, finished after it: no 504
    ],
    ids=["prompt", "late", "begun-in-time"],
)
def test_the_lean_timeout_answers_as_bentomls_timeout_middleware(app: Any) -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    runtime.lean_timeout()
    original = TimeoutMiddleware.__call__.__wrapped__  # type: ignore[attr-defined]
    sent, raised = run_asgi(TimeoutMiddleware(app, timeout=0.1))
    assert (sent, raised) == run_asgi(functools.partial(original, TimeoutMiddleware(app, timeout=0.1)))
    assert raised is None and sent[0]["status"] in (200, 504)
    if sent[0]["status"] == 504:
        assert sent[1]["body"] == b'{"error":"Not able to process the request in 0.1 seconds"}'


@pytest.mark.parametrize("error", [TimeoutError("the app's own"), ValueError("boom")], ids=repr)
def test_an_error_of_the_app_reaches_the_error_middleware_at_once(error: BaseException) -> None:
    """BentoML's own middleware runs the app in a task nobody awaits once it fails: the error is swallowed and the
    request waits out the whole timeout before uvicorn answers 500. The lean one raises it at once, so Starlette's
    error middleware answers BentoML's 500 without the wait."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    runtime.lean_timeout()
    sent, raised = run_asgi(TimeoutMiddleware(responding(0, error=error), timeout=30))
    assert (sent, repr(raised)) == ([], repr(error))


def test_the_lean_timeout_leaves_no_timer_behind() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    runtime.lean_timeout()
    middleware = TimeoutMiddleware(responding(0), timeout=30)

    async def many() -> int:
        for _ in range(50):
            sent: list[Any] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b""}

            async def send(message: dict[str, Any], sent: list[Any] = sent) -> None:
                sent.append(message)

            await middleware({"type": "http"}, receive, send)
            assert sent[0]["status"] == 200
        loop = asyncio.get_running_loop()
        return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]

    assert asyncio.run(many()) == 0  # BentoML's own leaves one live 30 s timer per request


def test_untraced_passes_straight_through() -> None:
    """The app gets the server's own receive and send: OpenTelemetry's middleware, unpatched, hands it wrappers
    (and opens a span) for every request."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    runtime.untraced()
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([receive, send])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [], "query_string": b"",
             "server": ("127.0.0.1", 3000), "scheme": "http", "http_version": "1.1"}  # fmt: skip
    asyncio.run(OpenTelemetryMiddleware(app)(scope, receive, send))
    assert seen == [receive, send] and sent == [{"type": "http.response.start", "status": 200, "headers": []}]
    original = OpenTelemetryMiddleware.__call__.__wrapped__  # type: ignore[attr-defined]
    seen.clear()
    asyncio.run(original(OpenTelemetryMiddleware(app), scope, receive, send))
    assert seen and seen != [receive, send]  # the unpatched middleware wraps them: the check above can fail
