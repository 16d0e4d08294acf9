"""The prediction endpoints answered directly from the request guard, past BentoML's per-request machinery.

With ``serving.http.direct`` (the default) the guard (services/tabular/guard.py), which has already read and
admitted the body, hands ``/predict`` and ``/predict_batch`` to :class:`DirectEndpoints` instead of BentoML's
router. BentoML's context middleware, Starlette's exception middleware, its router and its IO descriptors (which
inspect the method's signature and rebuild the response on every call) are skipped: py-spy on a worker under load
put them at about half of a one-record request once the model itself took 0.1 ms. What stays outside the guard
stays in force: BentoML's request metrics (the canary analysis reads them), its timeout and its error middleware.

The answers are BentoML's, byte for byte: a body is checked first by strict schemas that pydantic-core runs
without Python (``schema.native_request_validators``); a body they do not accept goes to the same pydantic models
BentoML validates it with (``model_validate_json``, as BentoML's JSON serde does), for their decision and their
words (py-spy: validation was 12% of a 32-record request's time, 3% now). A validation error is BentoML's 400
body, one prediction is serialized by pydantic and a list by ``json.dumps`` as BentoML 1.4 does, and the headers
are the same, in the same order. The BentoML ``@api`` methods stay: they document the endpoints (``/docs.json``),
serve them when ``direct`` is off, and run the same service code. Adaptive batching
(``serving.batching.adaptive``) needs BentoML's dispatcher, so ``/predict_batch`` then goes through BentoML.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.tabular.guard import check_body


class Answer(NamedTuple):
    """An HTTP answer: status, JSON body, and the headers beyond content type and length."""

    status: int
    body: bytes
    headers: Sequence[tuple[bytes, bytes]] = ()


def validation_error(exc: ValidationError) -> bytes:
    """BentoML's 400 body for a request its input model rejects (``api_endpoint_wrapper``, bentoml 1.4)."""
    data = {
        "error": f"{exc.error_count()} validation error for {exc.title}",
        "detail": exc.errors(include_context=False, include_input=False),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


Rows = tuple[list[dict[str, Any]], list[str | None]]  # the records as dicts, and each one's routing key
Predict = Callable[[list[dict[str, Any]], list[str | None], list[str]], Awaitable[list[Any]]]


class DirectEndpoints:
    """``/predict`` and ``/predict_batch`` as plain coroutines from (path, body, headers) to an :class:`Answer`.

    ``predict()`` returns the service's scoring (routing, models, prediction log, metrics), called as
    ``(rows, keys, request_ids)``: it returns one answer per row, a dict with the fields of
    :class:`~services.tabular.schema.Prediction` in its order (serialized as that model is), and raises BentoML's
    ``ServiceUnavailable`` when the worker cannot answer (the guard turns that into a 503 with its reason).
    ``new_ids(n)`` makes ``n`` request ids; ``request_id(header)`` vets a client's ``X-Request-ID``. ``native``,
    the pair from :func:`~services.tabular.schema.native_request_validators`, checks bodies before the models do.
    """

    def __init__(
        self,
        predict_input: type[BaseModel],
        batch_input: type[BaseModel],
        predict: Callable[[], Predict],
        request_id: Callable[[str | None], str],
        new_ids: Callable[[int], list[str]],
        server: str,
        batch: bool = True,
        native: tuple[TypeAdapter[Any], TypeAdapter[Any]] | None = None,
    ) -> None:
        self.predict_input, self.batch_input, self.native = predict_input, batch_input, native
        self.predict = predict
        self.request_id, self.new_ids = request_id, new_ids
        self.server = (b"server", server.encode("latin-1"))
        self.paths = frozenset({"/predict", "/predict_batch"} if batch else {"/predict"})

    async def __call__(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """The answer to a POST of ``body`` (already read, at most the guard's size) to ``path``.

        Raises :class:`~services.tabular.guard.RequestRejected` for a body that is not a UTF-8 JSON object (the
        guard's own 400, as before it reached BentoML) and whatever ``predict`` raises beyond that.
        """
        try:
            rows, keys = self.decode(path == "/predict", body)
        except ValidationError as exc:
            check_body(body)  # malformed JSON keeps the guard's message; valid JSON gets BentoML's detail
            return Answer(400, validation_error(exc), (self.server,))
        if path == "/predict":
            rid = self.request_id(headers.get("x-request-id"))
            [answer] = await self.predict()(rows, keys, [rid])
            version = answer["version"].encode("latin-1")
            return Answer(
                200,
                pydantic_core.to_json(answer),
                ((b"x-model-version", version), (b"x-request-id", rid.encode("latin-1")), self.server),
            )
        answers = await self.predict()(rows, keys, self.new_ids(len(rows)))
        # BentoML writes a list answer with the standard library's json.dumps (IORootModel.model_dump_json)
        return Answer(200, json.dumps(answers).encode(), (self.server,))

    def decode(self, one_record: bool, body: bytes) -> Rows:
        """The records of a ``/predict`` (``one_record``) or ``/predict_batch`` body and their routing keys, as the
        input models' ``model_dump()`` gives them; raises the input model's :class:`ValidationError`."""
        if self.native is not None:
            try:
                data = self.native[0 if one_record else 1].validate_json(body)
            except ValidationError:
                pass  # the input models decide, and word the error
            else:
                if one_record:
                    return [data["record"]], [data.get("key")]
                return data["records"], [row.pop("routing_key", None) for row in data["records"]]
        if one_record:
            request = self.predict_input.model_validate_json(body)
            return [request.record.model_dump()], [request.key]  # type: ignore[attr-defined]
        rows = [r.model_dump() for r in self.batch_input.model_validate_json(body).records]  # type: ignore[attr-defined]
        return rows, [row.pop("routing_key") for row in rows]
