"""The service under hostile input, overload and faults, against a real server started by `python -m services.serve`.

Field cases: booleans scored as 1 and 0; a multipart body answered 500; batching's 503 without Retry-After; an
unwritable prediction log crash-looping the workers or failing silently; a killed worker's gauges left behind; a
second instance wiping the first one's counters; client request ids copied as they came (60 KB accepted); log files
readable by anyone. Siblings of each kind, and a schema-driven fuzz of both endpoints (schemathesis).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import CHAMPION_ONLY, Server

pytestmark = pytest.mark.integration


def numeric_fields(spec: dict[str, Any]) -> list[str]:
    return [f["name"] for f in spec["input"]["fields"] if f["type"] in ("int", "float")]


# -- strict JSON types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "40", "4e1", "", None, [40], {"v": 40}])
def test_a_number_field_takes_only_a_json_number(
    plain: Server, rows: list, packaged: tuple, value: Any
) -> None:
    for field in numeric_fields(packaged[1]):
        for path, body in (
            ("/predict", {"record": {**rows[0], field: value}}),
            ("/predict_batch", {"records": [rows[0], {**rows[1], field: value}]}),
        ):
            response = plain.client.post(path, json=body)
            assert response.status_code == 400, (field, value, response.text)
            assert field in response.text


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ("NaN", "hours_per_week", "finite"),
        ("NaN", "education_num", "finite"),
        ("Infinity", "capital_gain", "finite"),
        ("-Infinity", "capital_loss", "finite"),
        ("1e400", "age", "finite"),
        ("-1e999", "age", "finite"),
        ("99999999999999999999", "capital_gain", "less than or equal"),
        ("40.5", "hours_per_week", "integer"),
    ],
)
def test_non_finite_huge_and_fractional_numbers_are_400(
    plain: Server, rows: list, raw: str, field: str, says: str
) -> None:
    """Each says what was wrong: a non-finite number is "not finite", never a range violation."""
    body = json.dumps({"record": {**rows[0], field: 0}}).replace(f'"{field}": 0', f'"{field}": {raw}')
    response = plain.client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert field in response.text and says in response.text, response.text
    if says == "finite":
        assert "greater than" not in response.text and "less than" not in response.text, response.text


@pytest.mark.parametrize("key", [7, 1.5, True, ["k"], {"k": 1}, "", "k" * 257])
def test_a_bad_routing_key_says_what_a_key_is(plain: Server, rows: list, key: Any) -> None:
    for path, body in (
        ("/predict", {"record": rows[0], "key": key}),
        ("/predict_batch", {"records": [{**rows[0], "routing_key": key}]}),
    ):
        response = plain.client.post(path, json=body)
        assert response.status_code == 400, (path, key, response.text)
        assert "routing key must be a string of 1 to 256 characters" in response.text, response.text
        assert "category" not in response.text and "at least 1" not in response.text, response.text


def test_integral_floats_are_numbers(plain: Server, rows: list) -> None:
    as_float = {**rows[0], "age": float(rows[0]["age"])}
    first = plain.client.post("/predict", json={"record": rows[0]}).json()["score"]
    assert plain.client.post("/predict", json={"record": as_float}).json()["score"] == first


@pytest.mark.parametrize("value", [1, True, ["Private"]])
def test_a_category_takes_only_a_string(plain: Server, rows: list, value: Any) -> None:
    response = plain.client.post("/predict", json={"record": {**rows[0], "workclass": value}})
    assert response.status_code == 400 and "workclass" in response.text


# -- no request makes a 5xx -------------------------------------------------------------------------------------

BODY = b'{"record": {"age": 39}}'


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"content-type": "multipart/form-data"}, BODY, 415),  # no boundary: BentoML's own parser gave 500
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\n--x--", 415),
        ({"content-type": "application/x-www-form-urlencoded"}, b"record=1", 415),
        ({"content-type": "text/plain"}, BODY, 415),
        ({"content-type": "application/octet-stream"}, b"\x00\x01", 415),
        ({"content-type": "application/json"}, b"\xff\xfe{}", 400),
        ({"content-type": "application/json; charset=utf-16"}, '{"record": {}}'.encode("utf-16"), 400),
        ({"content-type": "application/json"}, b"", 400),
        ({"content-type": "application/json"}, b"null", 400),
        ({"content-type": "application/json"}, b'"text"', 400),
        ({"content-type": "application/json"}, b"[" * 5000 + b"]" * 5000, 400),
        ({"content-type": "application/json"}, b'{"record": ' + b"[" * 100 + b"]" * 100 + b"}", 400),
        ({"content-type": "application/json"}, b'{"record": {"age": 1e999999}}', 400),
        ({"content-type": "application/json"}, b'{"record": "\\ud800"}', 400),
        ({"content-type": "application/json"}, b"{" + b'"a": 1, ' * 10 + b"}", 400),
        ({"content-type": "application/json"}, b'{"record": {}}' + b" " * 3_000_000, 413),
    ],
)
def test_malformed_requests_are_4xx(plain: Server, headers: dict, content: bytes, status: int) -> None:
    for path in ("/predict", "/predict_batch"):
        response = plain.client.post(path, content=content, headers=headers)
        assert response.status_code == status, (path, response.status_code, response.text[:300])
        assert response.json()["error"] or response.json()["detail"]


def test_other_methods_are_405_with_allow(plain: Server) -> None:
    for path in ("/predict", "/predict_batch"):
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            response = plain.client.request(method, path)
            assert response.status_code == 405 and response.headers["allow"] == "POST", (path, method)


def test_schema_fuzz_finds_no_server_error(plain: Server) -> None:
    """Both endpoints, generated from the OpenAPI schema the server publishes: valid and invalid bodies."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{plain.url}/docs.json")
    errors: list[str] = []
    for path in ("/predict", "/predict_batch"):
        operation = schema[path]["POST"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                response = case.call(base_url=plain.url, timeout=30)
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.path} {response.status_code}: {case.body!r:.300}")

            fuzz()
    assert errors == []


# -- overload is shed deliberately -----------------------------------------------------------------------------


def test_admission_sheds_with_retry_after_and_counts(serve: Any, rows: list) -> None:
    # every request takes about 300 ms (the challenger is slowed on purpose and answers everything)
    slow = {
        "routing": {"mode": "canary", "challenger_weight": 1.0, "challenger_timeout_ms": 5000,
                    "fault_injection": {"challenger_delay_ms": 300}},
        "overload": {"max_in_flight": 2, "retry_after_s": 7},
    }  # fmt: skip
    server = serve(slow)
    statuses: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            statuses.append(c.post("/predict", json={"record": rows[0]}))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shed = [r for r in statuses if r.status_code == 503]
    ok = [r for r in statuses if r.status_code == 200]
    assert len(ok) >= 2 and len(shed) >= 4 and len(ok) + len(shed) == 10, [r.status_code for r in statuses]
    assert all(r.headers["retry-after"] == "7" and "overloaded" in r.json()["error"] for r in shed)
    assert server.metric("adult_shed_requests_total", reason="admission") == len(shed)
    assert server.client.get("/readyz").status_code == 200  # health checks are never shed


def test_batching_overload_is_a_503_with_retry_after(serve: Any, rows: list) -> None:
    # a 1 ms batching window cannot hold many large batches: BentoML's dispatcher sheds with 503
    server = serve(
        {
            "batching": {"adaptive": True, "max_latency_ms": 1},
            "input": {"max_batch_records": 1000},
            "overload": {"max_in_flight": 1000},
        }
    )
    big = {"records": (rows * 5)[:1000]}
    results: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            results.append(c.post("/predict_batch", json=big))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [r.status_code for r in results]
    assert set(codes) <= {200, 503}, codes
    shed = [r for r in results if r.status_code == 503]
    assert all(r.headers.get("retry-after") == "1" for r in shed)
    assert server.metric("adult_shed_requests_total", reason="unavailable") == len(shed)


# -- the prediction log: failures are counted and visible, files are private ------------------------------------


def test_log_files_are_private_and_request_ids_bounded(plain: Server, rows: list) -> None:
    ok = plain.client.post("/predict", json={"record": rows[0]}, headers={"X-Request-ID": "order-17:a.b_c"})
    assert ok.json()["request_id"] == "order-17:a.b_c"
    for bad in ("x" * 60_000, "has space", "semi;colon", "x" * 129, "ünïcode"):
        response = plain.client.post(
            "/predict", json={"record": rows[0]}, headers={"X-Request-ID": bad.encode("utf-8")}
        )
        rid = response.json()["request_id"]
        assert (
            response.status_code == 200
            and rid != bad
            and len(rid) == 32
            and response.headers["x-request-id"] == rid
        )
    logged = plain.predictions()
    assert all(len(line["request_id"]) <= 128 for line in logged)
    assert stat.S_IMODE(plain.log_dir.stat().st_mode) == 0o700
    for path in plain.log_dir.glob("predictions-*.jsonl*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_log_unwritable_at_start_degrades_and_recovers(serve: Any, rows: list, tmp_path: Path) -> None:
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the log folder should be")
    server = serve({**CHAMPION_ONLY, "prediction_log": {"on_failure": "degrade"}}, log_dir=blocked)
    assert server.client.get("/readyz").status_code == 200  # the worker started (it used to crash-loop)
    assert server.client.post("/predict", json={"record": rows[0]}).status_code == 200
    assert server.metric("adult_prediction_log_writes_total", outcome="failed") >= 1
    assert server.metric("adult_prediction_log_healthy") == 0
    blocked.unlink()
    assert server.client.post("/predict", json={"record": rows[1]}).status_code == 200
    assert server.metric("adult_prediction_log_healthy") == 1 and len(server.predictions()) == 1


def test_log_failure_fail_closed_is_not_ready_until_fixed(serve: Any, rows: list, tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    server = serve({**CHAMPION_ONLY, "prediction_log": {"on_failure": "fail_closed"}}, log_dir=folder)
    assert server.client.post("/predict", json={"record": rows[0]}).status_code == 200
    assert server.metric("adult_predictions_total") == 1
    shutil.rmtree(folder)
    folder.write_text("the folder became a file: unwritable")  # root ignores permission bits, so not chmod
    answer = server.client.post("/predict", json={"record": rows[0]})
    assert answer.status_code == 503 and answer.headers["retry-after"] and "prediction log" in answer.text
    ready = server.client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
    assert server.metric("adult_predictions_total") == 1  # the refused answer is not counted as a prediction
    folder.unlink()
    assert server.client.get("/readyz").status_code == 200  # readiness probes the log and recovers
    assert server.client.post("/predict", json={"record": rows[1]}).status_code == 200
    assert server.metric("adult_prediction_log_writes_total", outcome="failed") >= 1
    assert server.metric("adult_predictions_total") == 2


def test_log_removed_mid_run_is_noticed_not_written_into_nothing(
    serve: Any, rows: list, tmp_path: Path
) -> None:
    folder = tmp_path / "logs"
    server = serve(CHAMPION_ONLY, log_dir=folder)
    server.client.post("/predict", json={"record": rows[0]})
    shutil.rmtree(folder)  # an open file whose folder is deleted: writes would vanish
    assert server.client.post("/predict", json={"record": rows[1]}).status_code == 200
    assert len(server.predictions()) == 1  # the logger re-created the folder and wrote the line there


# -- per-process metric state ------------------------------------------------------------------------------------


def test_a_killed_worker_leaves_no_gauges_behind(serve: Any, rows: list, packaged: tuple) -> None:
    slow = {
        "workers": 2,
        "routing": {"mode": "canary", "challenger_weight": 1.0, "challenger_timeout_ms": 20000,
                    "fault_injection": {"challenger_delay_ms": 8000}},
    }  # fmt: skip
    server = serve(slow)
    before = server.worker_pids()
    assert len(before) == 2
    threading.Thread(
        target=lambda: httpx.post(f"{server.url}/predict", json={"record": rows[0]}, timeout=30), daemon=True
    ).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.metric("bentoml_service_request_in_progress") < 1:
        time.sleep(0.1)
    assert server.metric("bentoml_service_request_in_progress") == 1
    for pid in before:
        os.kill(pid, signal.SIGKILL)  # both: whichever holds the request dies mid-request
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        after = server.worker_pids()
        if len(after) == 2 and not set(after) & set(before):
            try:
                if server.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    assert len(server.worker_pids()) == 2 and not set(server.worker_pids()) & set(before)
    time.sleep(1)
    text = server.client.get("/metrics").text
    assert server.metric("bentoml_service_request_in_progress") == 0, text
    assert server.metric("adult_model_ready", role="champion") == 1
    stale = [
        name
        for name in os.listdir(server.runtime / "bentoml/prometheus_multiproc_dir")
        if any(name.endswith(f"_{pid}.db") and name.startswith("gauge_live") for pid in before)
    ]
    assert stale == []


def test_two_instances_keep_their_own_counters_and_log_files(serve: Any, rows: list, tmp_path: Path) -> None:
    shared = tmp_path / "shared-logs"
    first = serve(CHAMPION_ONLY, log_dir=shared)
    for row in rows[:5]:
        first.client.post("/predict", json={"record": row}, headers={"X-Request-ID": "first"})
    second = serve(CHAMPION_ONLY, log_dir=shared)
    second.client.post("/predict", json={"record": rows[0]}, headers={"X-Request-ID": "second"})
    assert first.metric("adult_predictions_total") == 5 and second.metric("adult_predictions_total") == 1
    assert first.runtime != second.runtime
    files = sorted(shared.glob("predictions-*.jsonl"))
    assert len(files) == 2, files  # one per instance (host and port in the name), never shared
    owners = [{json.loads(line)["request_id"] for line in f.read_text().splitlines()} for f in files]
    assert sorted(map(sorted, owners)) == [["first"], ["second"]]
    assert any(f"-{first.port}-w" in f.name for f in files) and any(
        f"-{second.port}-w" in f.name for f in files
    )


def test_native_pools_are_sized_from_the_spec(plain: Server) -> None:
    line = next(line for line in plain.log().splitlines() if "native thread pools:" in line)
    pools = ast.literal_eval(line.split("native thread pools:", 1)[1].strip())
    assert pools and set(pools.values()) == {1}


# -- serving never modifies the build ----------------------------------------------------------------------------


def test_serving_leaves_dvc_and_git_clean(quick_repo: tuple[Path, str], tmp_path: Path, rows: list) -> None:
    """`make serve`'s command in a copy of the built repository: serve, send requests, stop; nothing changed."""
    import subprocess
    import sys

    from pipelines.core.workspace import tool_env
    from tests.conftest import run
    from tests.service.conftest import free_port

    repo = Path(shutil.copytree(quick_repo[0], tmp_path / "repo", symlinks=True))
    assert "up to date" in run(["dvc", "status"], repo).stdout
    tracked = run(["git", "status", "--porcelain"], repo).stdout  # the experiment's results, uncommitted
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.serve", "--port", str(port)],
        cwd=repo,
        env=tool_env(),
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            for row in rows[:20]:
                assert client.post("/predict", json={"record": row}).status_code == 200
            assert client.post("/predict_batch", json={"records": rows[:20]}).status_code == 200
            assert "adult_predictions_total" in client.get("/metrics").text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "up to date" in run(["dvc", "status"], repo).stdout, (tmp_path / "serve.log").read_text()[-2000:]
    assert run(["git", "status", "--porcelain"], repo).stdout == tracked  # logs/ and var/ are ignored
    assert list((repo / "var/serve" / str(port) / "bentoml/prometheus_multiproc_dir").iterdir())
    assert (repo / "logs/predictions").is_dir()


def test_unknown_paths_do_not_grow_the_metrics(plain: Server) -> None:
    before = len(plain.client.get("/metrics").text)
    for i in range(30):
        assert plain.client.get(f"/probe-{i}").status_code == 404
    after = plain.client.get("/metrics").text
    assert "/probe-" not in after and len(after) < before + 2000
    assert plain.metric("adult_rejected_requests_total", status="404") >= 30


def test_schema_400s_are_counted(plain: Server, rows: list) -> None:
    before = plain.metric("adult_rejected_requests_total", status="400")
    plain.client.post("/predict", json={"record": {**rows[0], "age": True}})
    assert plain.metric("adult_rejected_requests_total", status="400") == before + 1


def test_a_slow_body_gets_408_and_holds_no_slot(serve: Any, rows: list) -> None:
    import socket

    server = serve({**CHAMPION_ONLY, "overload": {"max_in_flight": 2, "body_timeout_s": 1}})
    body = json.dumps({"record": rows[0]}).encode()
    stalled = []
    for _ in range(6):  # more slow clients than admission slots
        s = socket.create_connection(("127.0.0.1", server.port))
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        s.sendall(head.encode() + body[:5])
        stalled.append(s)
    try:
        ok = [server.client.post("/predict", json={"record": rows[1]}).status_code for _ in range(4)]
        assert ok == [200] * 4  # slow bodies are read before admission: they take no slot
        stalled[0].settimeout(10)
        reply = ""
        while "\r\n\r\n" not in reply or len(reply.split("\r\n\r\n", 1)[1]) < int(
            reply.lower().split("content-length:", 1)[1].split("\r\n", 1)[0]
            if "content-length:" in reply.lower()
            else 1
        ):
            chunk = stalled[0].recv(4096).decode()  # the head and the body may come in separate segments
            if not chunk:
                break
            reply += chunk
        assert reply.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in reply
    finally:
        for s in stalled:
            s.close()


# -- the direct endpoints answer as BentoML's own path does -----------------------------------------------------


def comparable(response: httpx.Response) -> tuple[int, bytes, list[bytes], dict[str, str]]:
    """Status, the body's bytes (request ids the service drew itself masked), the header names in order and their
    values (the date aside) of an answer."""
    body = re.sub(rb'"request_id": ?"[0-9a-f]{32}"', b'"request_id": "*"', response.content)
    names = [k.lower() for k, _ in response.headers.raw if k.lower() != b"date"]
    values = {k: v for k, v in response.headers.items() if k != "date"}
    return response.status_code, body, names, values


def test_direct_endpoints_answer_as_bentoml_does(
    serve: Any, plain: Server, rows: list, packaged: tuple
) -> None:
    """serving.http.direct (the default) answers in the request guard; with it off, BentoML's router and IO
    descriptors answer. Both must give the same status, body and headers for every kind of request."""
    spec = packaged[1]
    through_bentoml = serve({**CHAMPION_ONLY, "http": {"direct": False}})
    number = numeric_fields(spec)[0]
    category = next(f for f in spec["input"]["fields"] if f["type"] == "category")["name"]
    nullable = next((f["name"] for f in spec["input"]["fields"] if f["nullable"]), number)
    one = rows[0]
    bodies: list[Any] = [
        {"record": one},
        {"record": one, "key": "user-1"},
        {"record": {**one, nullable: None}},
        {"record": {**one, number: 40.0}},
        {"record": {**one, number: "40"}},
        {"record": {**one, number: True}},
        {"record": {**one, number: 10**30}},
        {"record": {**one, category: "no such category"}},
        {"record": {**one, category: 7}},
        {"record": {**one, category: "x" * 5000}},  # an echoed value is cut at 80 characters
        {"record": {**one, number: 1e308}},
        {"record": {**one, "unexpected": 1}},
        {"record": {k: v for k, v in one.items() if k != number}},
        {"record": one, "key": ""},
        {"record": one, "key": 5},
        {"record": one, "extra": 1},
        {"records": rows[:3]},
        {"record": []},
        {},
    ]
    batches: list[Any] = [
        {"records": rows[:5]},
        {"records": rows[:50]},
        {"records": [{**rows[1], "routing_key": "k"}, rows[2]]},
        {"records": []},
        {"records": rows[:51]},  # over input.max_batch_records (50)
        {"records": [{**rows[1], "routing_key": "x" * 257}]},
        {"records": [rows[1], {**rows[2], number: None}]},
        {"record": one},
    ]
    raw = [b'{"record": {"age": NaN}}', b'{"record": {"age": 1e999}}', b"{", b"[]", b"\xff", b"", b'{"a": 1}']
    cases = [("/predict", json.dumps(b).encode()) for b in bodies]
    cases += [("/predict_batch", json.dumps(b).encode()) for b in batches]
    cases += [(path, body) for path in ("/predict", "/predict_batch") for body in raw]
    headers = [
        ("content-type", "application/json"),
        ("x-request-id", "same-id-for-both"),
        ("x-request-id", "a-second-one-is-ignored"),  # a repeated header counts by its first value
    ]
    counted = {
        "rejected": ("adult_rejected_requests_total", {"status": "400"}),
        "predictions": ("adult_predictions_total", {}),
        "requests 200": (
            "bentoml_service_request_total",
            {"endpoint": "/predict", "http_response_code": "200"},
        ),
        "requests 400": (
            "bentoml_service_request_total",
            {"endpoint": "/predict_batch", "http_response_code": "400"},
        ),
    }
    before = {k: (plain.metric(n, **ls), through_bentoml.metric(n, **ls)) for k, (n, ls) in counted.items()}
    for path, body in cases:
        direct = plain.client.post(path, content=body, headers=headers)
        bentoml = through_bentoml.client.post(path, content=body, headers=headers)
        assert comparable(direct) == comparable(bentoml), (
            path,
            body[:200],
            direct.text[:300],
            bentoml.text[:300],
        )
        assert direct.status_code < 500, (path, body[:200], direct.text[:300])
    for key, (name, labels) in counted.items():  # the same requests counted alike by both paths
        direct_delta = plain.metric(name, **labels) - before[key][0]
        bentoml_delta = through_bentoml.metric(name, **labels) - before[key][1]
        assert direct_delta == bentoml_delta > 0, (key, direct_delta, bentoml_delta)
