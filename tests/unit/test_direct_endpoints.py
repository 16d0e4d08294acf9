"""The prediction endpoints answered in the request guard (services/tabular/endpoints.py) decide every body as the
path through BentoML does: the guard's body check, then the input model's ``model_validate_json`` with BentoML's
400 body. Checked here in process against that reference procedure, over bodies hypothesis draws (bytes, JSON of
any shape, records with wrong, missing and extra fields); the same comparison over HTTP, against a real BentoML
server with ``serving.http.direct`` off, is ``tests/service/test_hardening.py``. The scoring is a stand-in: these
tests are about the request handling around it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.tabular import schema
from services.tabular.endpoints import DirectEndpoints, validation_error
from services.tabular.guard import RequestGuard, RequestRejected, check_body
from services.tabular.spec import InputPolicy

POLICY = InputPolicy.model_validate(
    {
        "unknown_category": "reject",
        "max_batch_records": 5,
        "fields": [
            {"name": "age", "type": "int", "min": 17, "max": 90},
            {"name": "hours", "type": "float", "min": 0, "max": 99, "nullable": True},
            {"name": "job", "type": "category", "categories": ["a", "b"], "nullable": True},
        ],
    }
)
_, _, PREDICT_INPUT, BATCH_INPUT = schema.request_models(POLICY)
NATIVE = schema.native_request_validators(POLICY)


class Contract(NamedTuple):
    predict_input: Any
    batch_input: Any
    native: Any


def contract(policy: dict[str, Any]) -> Contract:
    checked = InputPolicy.model_validate(policy)
    _, _, predict_input, batch_input = schema.request_models(checked)
    return Contract(predict_input, batch_input, schema.native_request_validators(checked))


CONTRACTS = {  # the first is POLICY; the others: no ranges and a free category; the unknown-category policy
    "bounded": Contract(PREDICT_INPUT, BATCH_INPUT, NATIVE),
    "open": contract(
        {
            "unknown_category": "reject",
            "max_batch_records": 5,
            "fields": [
                {"name": "age", "type": "int"},
                {"name": "hours", "type": "float"},
                {"name": "job", "type": "category", "nullable": True},
            ],
        }
    ),
    "unknown": contract(
        {
            "unknown_category": "unknown",
            "max_batch_records": 5,
            "fields": [
                {"name": "age", "type": "int", "min": 17, "max": 90},
                {"name": "hours", "type": "float", "min": 0, "max": 99, "nullable": True},
                {"name": "job", "type": "category", "categories": ["a", "b"]},
            ],
        }
    ),
}
GOOD = {"age": 40, "hours": 38.5, "job": "a"}


class Unavailable(Exception):
    pass


def answers(rows: list[dict[str, Any]], keys: list[str | None], ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "request_id": rid,
            "score": row["age"] / 100,
            "decision": int(row["age"] >= 50),
            "label": "high" if row["age"] >= 50 else "low",
            "display": "old" if row["age"] >= 50 else "young",
            "threshold": 0.5,
            "model": "m",
            "version": "v1",
            "role": "champion",
            "fallback": None,
        }
        for row, rid in zip(rows, ids, strict=True)
    ]


def endpoints(
    predict: Any = None, native: bool = True, rules: Contract = CONTRACTS["bounded"]
) -> tuple[DirectEndpoints, list[Any]]:
    calls: list[Any] = []

    async def scoring(
        rows: list[dict[str, Any]], keys: list[str | None], ids: list[str]
    ) -> list[dict[str, Any]]:
        calls.append((rows, keys, ids))
        if predict is not None:
            predict()
        return answers(rows, keys, ids)

    ids = iter(range(10**9))
    direct = DirectEndpoints(
        rules.predict_input,
        rules.batch_input,
        lambda: scoring,
        lambda header: header or "generated",
        lambda n: [f"id{next(ids)}" for _ in range(n)],
        server="BentoML Service/test",
        native=rules.native if native else None,
    )
    return direct, calls


Outcome = tuple[
    int, bytes | str, Any
]  # status, error body or message, what was scored (rows and keys in order)


def exactly(row: dict[str, Any]) -> list[tuple[str, str]]:
    """A record's fields in order with each value's repr: 40 and 40.0, 0.0 and -0.0 differ."""
    return [(k, repr(v)) for k, v in row.items()]


def reference(path: str, body: bytes, rules: Contract = CONTRACTS["bounded"]) -> Outcome:
    """What the path through BentoML answers: the guard's check, then BentoML's JSON serde and 400 body; for an
    accepted body, the records the service method is given (``model_dump()``, as ``predict`` calls it)."""
    try:
        check_body(body)
    except RequestRejected as rejected:
        return rejected.status, rejected.message, None
    try:
        if path == "/predict":
            request: Any = rules.predict_input.model_validate_json(body)
            scored = ([exactly(request.record.model_dump())], [request.key])
        else:
            rows = [r.model_dump() for r in rules.batch_input.model_validate_json(body).records]
            keys = [row.pop("routing_key") for row in rows]
            scored = ([exactly(row) for row in rows], keys)
    except ValidationError as exc:
        return 400, validation_error(exc), None
    return 200, b"", scored


def direct_outcome(
    path: str, body: bytes, native: bool = True, rules: Contract = CONTRACTS["bounded"]
) -> Outcome:
    direct, calls = endpoints(native=native, rules=rules)
    try:
        answer = asyncio.run(direct(path, body, {}))
    except RequestRejected as rejected:
        return rejected.status, rejected.message, None
    if answer.status != 200:
        return answer.status, answer.body, None
    [(rows, keys, _)] = calls
    return 200, b"", ([exactly(row) for row in rows], keys)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
field_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.sampled_from(["a", "b"]),
)
near_values = {  # mostly what the contract accepts, in every JSON form it may come in, and its edges
    "age": st.integers(17, 90)
    | st.integers(17, 90).map(float)
    | st.floats(10, 100)
    | st.sampled_from([40.0, 17, 90, 16, 91, -0.0, 2**63, -(2**63) - 1, 10**30, 1e308, True, "40"]),
    "hours": st.floats(0, 99)
    | st.integers(0, 99)
    | st.none()
    | st.floats(-5, 120)
    | st.sampled_from(
        [-0.0, 1e-320, 99.0000001, 2**64, 10**400, float("nan"), float("inf"), -float("inf"), 1e308]
    ),
    "job": st.sampled_from(["a", "b", None]) | st.sampled_from(["A", "a ", "", 1, "\u00e9", "x" * 300]),
}
near_records = st.fixed_dictionaries(near_values)
keyed_records = st.fixed_dictionaries(
    near_values, optional={"routing_key": st.text(max_size=3) | st.none() | json_values}
)
records = st.fixed_dictionaries(
    {},
    optional={"age": field_values, "hours": field_values, "job": field_values, "other": field_values},
)
near_bodies = st.one_of(
    near_records.map(lambda r: json.dumps({"record": r}).encode()),
    st.builds(lambda r, k: json.dumps({"record": r, "key": k}).encode(), near_records, st.text(max_size=3)),
    st.lists(keyed_records, min_size=1, max_size=6).map(lambda rs: json.dumps({"records": rs}).encode()),
)
bodies = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda v: json.dumps(v).encode()),
    records.map(lambda r: json.dumps({"record": r}).encode()),
    st.builds(lambda r, k: json.dumps({"record": r, "key": k}).encode(), records, json_values),
    st.lists(records, max_size=7).map(lambda rs: json.dumps({"records": rs}).encode()),
    st.just(json.dumps({"record": GOOD}).encode()),
    near_bodies,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["/predict", "/predict_batch"]), body=bodies, rules=st.sampled_from(list(CONTRACTS))
)
def test_every_body_is_decided_as_bentoml_decides_it(path: str, body: bytes, rules: str) -> None:
    """The same decision, the same error body, and for an accepted body the same records (values, types and field
    order) and keys, whether the native validators accept the body first or the input models decide alone."""
    expected = reference(path, body, CONTRACTS[rules])
    assert direct_outcome(path, body, rules=CONTRACTS[rules]) == expected
    assert direct_outcome(path, body, native=False, rules=CONTRACTS[rules]) == expected


@settings(max_examples=300, deadline=None)
@given(single=st.booleans(), body=near_bodies, rules=st.sampled_from(list(CONTRACTS)))
def test_the_native_validators_accept_nothing_the_input_models_reject(
    single: bool, body: bytes, rules: str
) -> None:
    """What pydantic-core accepts alone, the input models accept too, and give the same values: never a record
    scored that BentoML's path would have refused, and never one scored differently."""
    native = CONTRACTS[rules].native[0 if single else 1]
    predict_input, batch_input = CONTRACTS[rules].predict_input, CONTRACTS[rules].batch_input
    try:
        fast = native.validate_json(body)
    except ValidationError:
        return
    if single:
        slow = predict_input.model_validate_json(body)
        assert exactly(fast["record"]) == exactly(slow.record.model_dump())
        assert fast.get("key") == slow.key
    else:
        rows = [r.model_dump() for r in batch_input.model_validate_json(body).records]
        assert [exactly({**r, "routing_key": r.get("routing_key")}) for r in fast["records"]] == [
            exactly(r) for r in rows
        ]


@pytest.mark.parametrize(
    "record",
    [GOOD, {**GOOD, "hours": 38}, {**GOOD, "hours": None, "job": None}, {"age": 17, "hours": 0, "job": "b"}],
)
def test_the_native_validators_take_the_records_a_client_sends(record: dict[str, Any]) -> None:
    """The common bodies never need the Python validators (the point of the native ones): a float field given a
    JSON integer, nulls where allowed, the range's ends."""
    assert NATIVE[0].validate_json(json.dumps({"record": record, "key": "k"}))["record"] == record
    batch = NATIVE[1].validate_json(json.dumps({"records": [record, {**record, "routing_key": "u1"}]}))
    assert batch["records"] == [record, {**record, "routing_key": "u1"}]
    assert type(NATIVE[0].validate_json(json.dumps({"record": record}))["record"]["hours"]) in (
        float,
        type(None),
    )


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"\xff{}", 400, "not UTF-8"),
        (b"{", 400, "not valid JSON"),
        (b"[1]", 400, "must be a JSON object"),
        (b'{"record": ' + b"[" * 40 + b"]" * 40 + b"}", 400, "nests deeper"),
        (
            json.dumps({"record": {**GOOD, "age": "40"}}).encode(),
            400,
            "a string is not a number: send 40 without quotes, not '40'",
        ),
        (json.dumps({"record": {**GOOD, "age": "24"}}).encode(), 400, "send 24 without quotes, not '24'"),
        (
            json.dumps({"record": {**GOOD, "age": "forty"}}).encode(),
            400,
            "a string is not a number: got 'forty'",
        ),
        (
            json.dumps({"record": {**GOOD, "age": "1e999"}}).encode(),
            400,
            "a string is not a number: got '1e999'",
        ),
        (json.dumps({"record": {**GOOD, "age": "9" * 5000}}).encode(), 400, "(5000 characters)"),
        (json.dumps({"record": {**GOOD, "job": "z"}}).encode(), 400, "unknown category"),
        (json.dumps({"record": {**GOOD, "x": 1}}).encode(), 400, "Extra inputs are not permitted"),
        (b'{"record": {"age": 1' + b"0" * 4400 + b"}}", 400, "an integer of more than 4300 digits"),
        (json.dumps({"record": {**GOOD, "hours": 10**400}}).encode(), 400, "beyond what a float holds"),
        (json.dumps({"record": {**GOOD, "hours": 10**19}}).encode(), 400, "less than or equal to 99"),
    ],
)
def test_bad_bodies_keep_their_messages(body: bytes, status: int, says: str) -> None:
    got_status, got, _ = direct_outcome("/predict", body)
    assert got_status == status
    assert says in (got if isinstance(got, str) else got.decode())


def test_answers_are_the_prediction_model_serialized() -> None:
    direct, calls = endpoints()
    answer = asyncio.run(
        direct("/predict", json.dumps({"record": GOOD, "key": "k"}).encode(), {"x-request-id": "r1"})
    )
    expected = schema.Prediction(**answers([GOOD], ["k"], ["r1"])[0]).model_dump_json().encode()
    assert (answer.status, answer.body) == (200, expected)
    assert dict(answer.headers) == {
        b"server": b"BentoML Service/test",
        b"x-model-version": b"v1",
        b"x-request-id": b"r1",
    }
    assert calls == [([GOOD], ["k"], ["r1"])]
    batch = [{**GOOD, "routing_key": "a"}, {**GOOD, "age": 60}]
    answer = asyncio.run(direct("/predict_batch", json.dumps({"records": batch}).encode(), {}))
    rows, keys, ids = calls[-1]
    assert keys == ["a", None] and rows == [GOOD, {**GOOD, "age": 60}] and ids == ["id0", "id1"]
    expected_list = [schema.Prediction(**a).model_dump() for a in answers(rows, keys, ids)]
    assert json.loads(answer.body) == expected_list


# -- the guard answering directly -------------------------------------------------------------------------------


def call(
    guard: RequestGuard, path: str, body: bytes, method: str = "POST"
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(b"content-type", b"application/json")],
    }
    asyncio.run(guard(scope, receive, send))
    start, *rest = sent
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in rest)


def guarded(predict: Any = None, batch: bool = True) -> tuple[RequestGuard, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {"shed": [], "rejected": [], "passed": []}
    direct, _ = endpoints(predict)
    if not batch:
        direct.paths = frozenset({"/predict"})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["passed"].append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"from the app"})

    guard = RequestGuard(
        app,
        paths=frozenset({"/predict", "/predict_batch"}),
        max_in_flight=4,
        retry_after_s=3,
        max_body_bytes=10_000,
        on_shed=seen["shed"].append,
        on_reject=seen["rejected"].append,
        explain_503=lambda: "model not ready: test",
        direct=direct,
        direct_paths=direct.paths,
        unavailable=(Unavailable,),
    )
    return guard, seen


def test_the_guard_answers_direct_paths_and_passes_the_rest() -> None:
    guard, seen = guarded()
    status, headers, body = call(guard, "/predict", json.dumps({"record": GOOD}).encode())
    assert (
        status == 200 and json.loads(body)["score"] == 0.4 and headers[b"content-type"] == b"application/json"
    )
    assert headers[b"content-length"] == str(len(body)).encode()
    assert call(guard, "/livez", b"")[2] == b"from the app" and seen["passed"] == ["/livez"]
    status, _, body = call(guard, "/predict", b'{"record": {}}')
    assert (
        status == 400 and json.loads(body)["error"] == "3 validation error for PredictInput"
    )  # BentoML 1.4 words it so
    assert seen["rejected"] == [400]
    assert call(guard, "/predict", b"", method="GET")[0] == 405


def test_adaptive_batching_leaves_predict_batch_to_bentoml() -> None:
    guard, seen = guarded(batch=False)
    assert call(guard, "/predict_batch", json.dumps({"records": [GOOD]}).encode())[2] == b"from the app"
    status, _, body = call(guard, "/predict_batch", b"{")  # still checked by the guard before BentoML
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    assert seen["passed"] == ["/predict_batch"]


def test_unavailable_is_503_with_reason_and_retry_after() -> None:
    def refuse() -> None:
        raise Unavailable("log cannot be written")

    guard, seen = guarded(refuse)
    status, headers, body = call(guard, "/predict", json.dumps({"record": GOOD}).encode())
    assert (status, headers[b"retry-after"]) == (503, b"3")
    assert json.loads(body) == {"error": "model not ready: test; retry later"}
    assert seen["shed"] == ["unavailable"]


def test_a_fault_of_the_service_is_bentomls_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def crash() -> None:
        raise RuntimeError("boom")

    guard, _ = guarded(crash)
    status, _, body = call(guard, "/predict_batch", json.dumps({"records": [GOOD]}).encode())
    assert status == 500
    assert json.loads(body) == {"error": "An unexpected error has occurred, please check the server log."}
    assert "boom" in caplog.text and "/predict_batch failed" in caplog.text


def test_requests_waiting_on_the_event_loop_hold_their_slots() -> None:
    """The direct handler never pauses (scoring runs on the event loop), so a burst of requests used to run one
    after another, each counted alone: 150 clients with 1,000-record batches were all admitted and waited up to
    16 s. Every request waiting on the loop now holds a slot, and the ones beyond max_in_flight are shed at once."""
    import time

    guard, seen = guarded(lambda: time.sleep(0.01))  # scoring that blocks the loop, as the real one does
    body = json.dumps({"record": GOOD}).encode()
    sent: list[list[dict[str, Any]]] = []

    async def one() -> None:
        messages: list[dict[str, Any]] = []
        sent.append(messages)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}
        await guard(scope, receive, send)

    async def burst() -> None:
        await asyncio.gather(*(one() for _ in range(10)))

    asyncio.run(burst())
    statuses = sorted(m[0]["status"] for m in sent)
    assert statuses == [200] * 4 + [503] * 6  # max_in_flight is 4
    assert seen["shed"] == ["admission"] * 6 and guard.in_flight == 0
    shed = next(m for m in sent if m[0]["status"] == 503)
    assert dict(shed[0]["headers"])[b"retry-after"] == b"3"


@pytest.mark.parametrize(
    "body",
    [
        {"record": GOOD, **{f"k{i}": 0 for i in range(20_000)}},
        {"record": {**GOOD, **{f"k{i}": 0 for i in range(20_000)}}},
        {"records": [{**GOOD, **{f"k{i}": 0 for i in range(20_000)}}]},
        {"record": {**GOOD, "x" * 100_000: 1}},
        {"records": [{"x" * 100_000: 1, "y" * 100_000: 2}] * 5},
    ],
    ids=["top-level", "record", "batch-record", "long-name", "long-names-in-a-batch"],
)
@pytest.mark.parametrize("path", ["/predict", "/predict_batch"])
def test_an_error_answer_is_never_larger_than_the_fields_it_can_name(path: str, body: dict[str, Any]) -> None:
    """One error per extra field made 1.9 MB of extras a 25.7 MB answer. At most five extra fields are named per
    object, each name cut at 80 characters, so a 400 is bounded by the contract (fields and batch size), not by
    the body; the same on BentoML's path (the input models do it) as on the direct one."""
    raw = json.dumps(body).encode()
    status, answer, _ = direct_outcome(path, raw)
    assert (status, answer) == reference(path, raw)[:2]
    assert status == 400 and isinstance(answer, bytes)
    records = len(body.get("records", [None]))
    assert len(answer) < 1_000 * records, len(answer)
    detail = json.loads(answer)["detail"]
    assert len(detail) <= (3 + schema.MAX_EXTRA_NAMED) * records + 2
    assert all(len(str(part)) <= 120 for error in detail for part in error["loc"])  # 80 and a note


def test_a_few_short_extra_fields_are_each_named_as_before() -> None:
    body = json.dumps({"record": {**GOOD, "x": 1, "y": 2}}).encode()
    status, answer, _ = direct_outcome("/predict", body)
    assert status == 400 and isinstance(answer, bytes)
    assert [e["loc"] for e in json.loads(answer)["detail"]] == [["record", "x"], ["record", "y"]]
