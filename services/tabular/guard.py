"""An ASGI middleware in front of the prediction endpoints: bad requests get a 4xx, overload a deliberate 503.

BentoML parses the body itself, and some malformed requests reach it as a 500 (a multipart content type without a
boundary, measured). Before a request reaches BentoML the guard checks what BentoML would choke on:

- content type: JSON (``application/json``, ``application/*+json``) or none; anything else is 415;
- size: a body over ``max_body_bytes`` is 413, refused before it is read whole; a body that does not arrive
  within ``body_timeout_s`` is 408;
- encoding and syntax: the body must be UTF-8 JSON whose top level is an object (400 otherwise; deep nesting too);
- admission, once the body is in: each worker admits ``max_in_flight`` requests at a time (queued or running);
  the next is shed with 503 and ``Retry-After`` (a bounded queue), counted by ``on_shed("admission")``.

Every 503 or 429 leaving the endpoints (BentoML's adaptive batching sheds with 503 when its queue cannot meet the
latency budget, and a worker that is not ready answers 503) gets a ``Retry-After`` header and is counted
(``on_shed("unavailable")``). Error bodies have BentoML's
shape: ``{"error": "..."}``.

With a ``direct`` handler (services/tabular/endpoints.py) the guard answers the paths that handler serves itself,
from the body it has already read, instead of passing them on: a handler's ``RequestRejected`` is answered as the
guard's own, an exception of the ``unavailable`` types is the 503 above, and any other is BentoML's 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
logger = logging.getLogger("bentoml.service")
MAX_DEPTH = 32  # a record is one level deep, a batch two; 32 leaves room and stops pathological nesting


class DirectAnswer(Protocol):
    status: int
    body: bytes
    headers: Any  # a sequence of (name, value) byte pairs


Direct = Callable[[str, bytes, dict[str, str]], Awaitable[DirectAnswer]]
UNEXPECTED = b'{"error":"An unexpected error has occurred, please check the server log."}'  # BentoML's 500


class RequestRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for an error message, cut at ``limit`` characters: an answer never echoes a client's
    megabyte back."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of parsed JSON, stopping at ``limit``."""
    stack, deepest = [(value, 1)], 1
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level >= limit:
            return level
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_body(body: bytes) -> None:
    """Raise RequestRejected(400) unless ``body`` is UTF-8 JSON with an object at the top."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestRejected(
            400, f"the body is not UTF-8 (byte {err.start}): send JSON encoded as UTF-8"
        ) from None
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise RequestRejected(400, f"the JSON nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise RequestRejected(400, f"the body is not valid JSON: {err}") from None
    except ValueError:  # the only other: an integer of more digits than Python converts (sys.int_info)
        raise RequestRejected(
            400,
            f"the body holds an integer of more than {sys.get_int_max_str_digits()} digits; no field takes one",
        ) from None
    if not isinstance(parsed, dict):
        raise RequestRejected(400, f"the body must be a JSON object, not {type(parsed).__name__}")
    if depth(parsed) >= MAX_DEPTH:
        raise RequestRejected(400, f"the JSON nests deeper than {MAX_DEPTH} levels")


class RequestGuard:
    """See the module docstring. ``paths`` are the endpoints it guards; other paths pass through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        paths: frozenset[str],
        max_in_flight: int,
        retry_after_s: int,
        max_body_bytes: int,
        on_shed: Callable[[str], None] = lambda reason: None,
        on_reject: Callable[[int], None] = lambda status: None,
        explain_503: Callable[[], str | None] = lambda: None,
        body_timeout_s: float = 10.0,
        direct: Direct | None = None,
        direct_paths: frozenset[str] = frozenset(),
        unavailable: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_s).encode()
        self.max_body_bytes = max_body_bytes
        self.on_shed = on_shed
        self.on_reject = on_reject
        self.explain_503 = explain_503
        self.body_timeout_s = body_timeout_s
        self.in_flight = 0
        self.direct = direct
        self.direct_paths = direct_paths if direct is not None else frozenset()
        self.unavailable = unavailable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] not in self.paths:
            await self.app(scope, receive, self.passthrough(send))
            return
        path = scope["path"]
        try:
            headers, body = await self.admit(scope, receive, check=path not in self.direct_paths)
        except RequestRejected as rejected:
            self.on_reject(rejected.status)
            await self.respond(send, rejected.status, rejected.message)
            return
        # admission comes after the body is in: a slow client never holds a slot while it trickles bytes
        if self.in_flight >= self.max_in_flight:
            self.on_shed("admission")
            await self.respond(send, 503, f"overloaded: {self.in_flight} requests in flight; retry later")
            return
        self.in_flight += 1
        try:
            if path in self.direct_paths:
                # The direct handler never pauses, so without this yield each request would run to its end
                # before the next one was even counted: requests waiting on the event loop must hold their slots
                # (queued or running), or a flood of large batches queues without bound and is never shed.
                await asyncio.sleep(0)
                await self.answer(path, headers, body, send)
            else:
                await self.app(scope, self.replay(body, receive), self.explained(send))
        finally:
            self.in_flight -= 1

    async def answer(self, path: str, headers: dict[str, str], body: bytes, send: Send) -> None:
        """The direct handler's answer to an admitted request (see the module docstring)."""
        assert self.direct is not None
        try:
            answer = await self.direct(path, body, headers)
        except RequestRejected as rejected:
            self.on_reject(rejected.status)
            await self.respond(send, rejected.status, rejected.message)
            return
        except self.unavailable:
            self.on_shed("unavailable")
            reason = self.explain_503() or "unavailable"
            await self.respond(send, 503, f"{reason}; retry later")
            return
        except Exception:
            # a fault of the service, not of the request: BentoML's 500, logged with its traceback
            logger.exception("%s failed", path)
            await self.send_json(send, 500, UNEXPECTED)
            return
        if answer.status == 400:
            self.on_reject(400)
        await self.send_json(send, answer.status, answer.body, answer.headers)

    async def admit(self, scope: Scope, receive: Receive, check: bool = True) -> tuple[dict[str, str], bytes]:
        """The request's headers and body, after its form: method, content type, declared size, then the body
        itself, read within ``body_timeout_s`` (a client that stops sending gets 408 instead of holding the
        connection), and, with ``check``, the body as JSON (:func:`check_body`; a direct handler checks it only
        when its own parse fails, which costs nothing on a good request)."""
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            # a repeated header counts by its first value, as Starlette reads it
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        if scope.get("method") != "POST":
            raise RequestRejected(
                405, f"{scope.get('method')} is not allowed here: use POST with a JSON body"
            )
        if not json_type(headers.get("content-type")):
            raise RequestRejected(
                415, f"content type {shown(headers['content-type'])}: send application/json"
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestRejected(413, f"the body has {declared} bytes; the limit is {self.max_body_bytes}")
        try:
            async with asyncio.timeout(self.body_timeout_s):  # a timer, not a task as wait_for makes one
                body = await self.read(receive)
        except TimeoutError:
            raise RequestRejected(408, f"the body did not arrive within {self.body_timeout_s:g} s") from None
        if check:
            check_body(body)
        return headers, body

    @staticmethod
    def replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replayed() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replayed

    def passthrough(self, send: Send) -> Send:
        """Other paths: a 503 (readiness) gets Retry-After; a 404 is counted (unknown paths are not labelled)."""

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 503:
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"retry-after", self.retry_after)],
                    }
                elif message["status"] == 404:
                    self.on_reject(404)
            await send(message)

        return sending

    def explained(self, send: Send) -> Send:
        """The endpoints' answers: every 503/429 gets Retry-After and a reason (BentoML words every 5xx as "an
        unexpected error"), and the schema's 400s are counted with the guard's own."""
        shedding, replacement = False, b""

        async def sending(message: Message) -> None:
            nonlocal shedding, replacement
            if message["type"] == "http.response.start" and message["status"] == 400:
                self.on_reject(400)
            if message["type"] == "http.response.start" and message["status"] in (429, 503):
                shedding = True
                self.on_shed("unavailable" if message["status"] == 503 else "rate")
                reason = self.explain_503() or "overloaded: the batching queue cannot meet its latency budget"
                replacement = json.dumps({"error": f"{reason}; retry later"}).encode()
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-length", b"retry-after")
                ]
                headers += [
                    (b"content-length", str(len(replacement)).encode()),
                    (b"retry-after", self.retry_after),
                ]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and shedding:
                if message.get("more_body", False):
                    return  # the original body is replaced as a whole
                message = {**message, "body": replacement}
            await send(message)

        return sending

    async def read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestRejected(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestRejected(413, f"the body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def send_json(send: Send, status: int, body: bytes, extra: Any = ()) -> None:
        """Headers in the order BentoML's responses carry them."""
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def respond(self, send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status in (429, 503):
            headers.append((b"retry-after", self.retry_after))
        if status == 405:  # RFC 9110 15.5.6: a 405 names the methods the resource allows
            headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
