"""The packaged service under a real `bentoml serve` on 127.0.0.1: answers, validation, health, metrics,
canary and sticky routing, shadow, fallback and a tampered model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.predictor import load_predictor
from services.tabular.routing import Router
from services.tabular.spec import Routing
from tests.service.conftest import CHAMPION_ONLY, Server

pytestmark = pytest.mark.integration


def test_predict_matches_the_champion_in_process(plain: Server, rows: list, packaged: tuple) -> None:
    home, spec, _ = packaged
    response = plain.client.post("/predict", json={"record": rows[0]}, headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == spec["champion"]["name"] and body["version"] == spec["champion"]["version"]
    assert body["role"] == "champion" and body["fallback"] is None and body["request_id"] == "req-42"
    assert response.headers["x-model-version"] == spec["champion"]["version"]
    name, version = spec["champion"]["tag"].split(":")
    local = load_predictor(home / "models" / name / version)
    expected = local.predict_proba(pd.DataFrame([rows[0]]))[0]
    assert body["score"] == pytest.approx(expected, abs=1e-9)
    assert body["decision"] == int(expected >= spec["decision_threshold"])
    assert body["label"] == spec["labels"][str(body["decision"])]
    assert body["display"] == spec["display"][str(body["decision"])] != ""  # the class as pages name it


def test_batch_answers_every_record_in_order(plain: Server, rows: list) -> None:
    response = plain.client.post("/predict_batch", json={"records": rows[:20]})
    assert response.status_code == 200, response.text
    batch = response.json()
    single = [plain.client.post("/predict", json={"record": r}).json()["score"] for r in rows[:3]]
    assert len(batch) == 20 and [b["score"] for b in batch[:3]] == pytest.approx(single)
    assert len({b["request_id"] for b in batch}) == 20


def _expect_400(
    server: Server, path: str, payload: Any, loc: list[Any] | None, words: str, raw: bool = False
) -> None:
    kwargs = (
        {"content": payload, "headers": {"content-type": "application/json"}} if raw else {"json": payload}
    )
    response = server.client.post(path, **kwargs)
    assert response.status_code == 400, response.text
    if loc is not None:
        detail = response.json()["detail"]
        assert any(d["loc"] == loc for d in detail), detail
    assert words in response.text


@pytest.mark.parametrize(
    ("case", "change", "loc", "words"),
    [
        ("wrong type", {"age": "forty"}, ["record", "age"], "a string is not a number"),
        ("out of range", {"age": 5}, ["record", "age"], "greater than or equal to 17"),
        ("negative", {"capital_gain": -1}, ["record", "capital_gain"], "greater than or equal to 0"),
        ("fraction in int", {"hours_per_week": 40.5}, ["record", "hours_per_week"], "integer"),
        (
            "unknown category",
            {"workclass": "Space-agency"},
            ["record", "workclass"],
            "unknown category 'Space-agency'",
        ),
        ("null in non-nullable", {"sex": None}, ["record", "sex"], "null is not allowed"),
        ("unexpected field", {"favourite_colour": "blue"}, ["record", "favourite_colour"], "Extra inputs"),
        ("missing field", {"age": ...}, ["record", "age"], "Field required"),
    ],
)
def test_field_level_400s(plain: Server, rows: list, case: str, change: dict, loc: list, words: str) -> None:
    record = {**rows[0], **{k: v for k, v in change.items() if v is not ...}}
    for key in [k for k, v in change.items() if v is ...]:
        del record[key]
    _expect_400(plain, "/predict", {"record": record}, loc, words)


def test_request_shape_400s(plain: Server, rows: list) -> None:
    _expect_400(plain, "/predict", {"record": rows[0], "debug": True}, ["debug"], "Extra inputs")
    _expect_400(plain, "/predict", '{"record": {"age": 39,', None, "not valid JSON", raw=True)
    _expect_400(plain, "/predict", "[1, 2]", None, "must be a JSON object", raw=True)
    _expect_400(plain, "/predict", "", None, "not valid JSON", raw=True)
    _expect_400(plain, "/predict", "{}", ["record"], "Field required", raw=True)
    _expect_400(plain, "/predict_batch", {"records": rows[:51]}, ["records"], "at most 50 items")
    _expect_400(plain, "/predict_batch", {"records": []}, ["records"], "at least 1 item")
    bad = [rows[0], {**rows[1], "age": 300}]
    _expect_400(plain, "/predict_batch", {"records": bad}, ["records", 1, "age"], "less than or equal to 90")


def test_health_metrics_and_prediction_log(plain: Server, rows: list, packaged: tuple) -> None:
    _, spec, _ = packaged
    assert plain.client.get("/livez").status_code == 200
    assert plain.client.get("/readyz").status_code == 200
    before = plain.metric("adult_predictions_total", version=spec["champion"]["version"])
    plain.client.post("/predict_batch", json={"records": rows[:7]})
    assert plain.metric("adult_predictions_total", version=spec["champion"]["version"]) == before + 7
    assert plain.metric("adult_model_requests_total", version=spec["champion"]["version"]) >= 1
    assert plain.metric("adult_model_latency_seconds_count", version=spec["champion"]["version"]) >= 1
    assert plain.metric("adult_model_ready", role="champion") == 1
    assert (
        plain.metric("bentoml_service_request_total", endpoint="/predict_batch", http_response_code="200")
        >= 1
    )
    logged = plain.predictions()
    fields = spec["prediction_log"]["fields"]
    assert logged and all(set(line) == set(fields) for line in logged)
    kept = set(spec["prediction_log"]["feature_fields"])
    assert all(set(line["features"]) == kept for line in logged)


def test_the_log_keeps_only_the_allowlisted_inputs(serve: Any, rows: list) -> None:
    server = serve({**CHAMPION_ONLY, "prediction_log": {"feature_fields": ["age", "sex"]}})
    server.client.post("/predict_batch", json={"records": rows[:5]})
    logged = server.predictions()
    assert len(logged) == 5 and all(set(line["features"]) == {"age", "sex"} for line in logged)


def test_canary_split_and_sticky_keys(serve: Any, rows: list, packaged: tuple) -> None:
    _, spec, _ = packaged
    assert spec["challenger"], "the quick pipeline must promote a challenger"
    server = serve({"routing": {"mode": "canary", "challenger_weight": 0.3}})
    answers = server.client.post("/predict_batch", json={"records": rows[:1000]}).json()
    share = np.mean([a["role"] == "challenger" for a in answers])
    assert 0.25 <= share <= 0.35, share  # 1000 draws at 0.3: 4.6 standard deviations either side
    challenger = spec["challenger"]["version"]
    assert {a["version"] for a in answers if a["role"] == "challenger"} == {challenger}
    router = Router(
        Routing.model_validate({**spec["routing"], "mode": "canary", "challenger_weight": 0.3}), True
    )
    keyed = [{**rows[i], "routing_key": f"user-{i}"} for i in range(200)]
    got = [a["role"] for a in server.client.post("/predict_batch", json={"records": keyed}).json()]
    assert got == [
        router.choose(f"user-{i}") for i in range(200)
    ]  # the same assignment as the router computes
    repeat = {
        server.client.post("/predict", json={"record": rows[0], "key": "alice"}).json()["role"]
        for _ in range(15)
    }
    assert len(repeat) == 1 and repeat == {router.choose("alice")}


def test_shadow_mode(serve: Any, rows: list, packaged: tuple) -> None:
    _, spec, _ = packaged
    server = serve({"routing": {"mode": "shadow"}})
    answers = server.client.post("/predict_batch", json={"records": rows[:30]}).json()
    assert {a["role"] for a in answers} == {"champion"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.metric("adult_shadow_predictions_total", outcome="ok") < 30:
        time.sleep(0.2)
    assert (
        server.metric("adult_shadow_predictions_total", outcome="ok", version=spec["challenger"]["version"])
        == 30
    )
    shadow = [p for p in server.predictions() if p["shadow"]]
    assert len(shadow) == 30 and {p["role"] for p in shadow} == {"challenger"}
    assert {p["request_id"] for p in shadow} == {a["request_id"] for a in answers}
    assert server.metric("adult_predictions_total", role="challenger") == 0  # shadows are not answers


@pytest.mark.parametrize(
    ("fault", "reason"),
    [({"challenger_error_rate": 1.0}, "error"), ({"challenger_delay_ms": 600}, "timeout")],
)
def test_challenger_failure_falls_back_to_champion(
    serve: Any, rows: list, packaged: tuple, fault: dict, reason: str
) -> None:
    _, spec, _ = packaged
    server = serve(
        {
            "routing": {
                "mode": "canary",
                "challenger_weight": 1.0,
                "challenger_timeout_ms": 250,
                "fault_injection": fault,
            }
        }
    )
    answers = [server.client.post("/predict", json={"record": r}) for r in rows[:5]]
    assert all(a.status_code == 200 for a in answers)
    bodies = [a.json() for a in answers]
    assert {(b["role"], b["version"], b["fallback"]) for b in bodies} == {
        ("champion", spec["champion"]["version"], reason)
    }
    assert server.metric("adult_fallbacks_total", reason=reason) == 5
    assert f"challenger {spec['challenger']['tag']} failed ({reason}" in server.log()


def test_tampered_model_is_not_ready(
    serve: Any, rows: list, packaged: tuple, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import shutil

    home, spec, _ = packaged
    tampered = Path(shutil.copytree(home, tmp_path_factory.mktemp("tampered") / "bentoml"))
    name, version = spec["champion"]["tag"].split(":")
    target = (
        tampered / "models" / name / version / sorted(spec["champion"]["files"])[0]
    )  # the store serve reads
    target.write_bytes(target.read_bytes() + b"\x00tampered")
    server = serve(CHAMPION_ONLY, home_override=tampered)
    assert server.client.get("/livez").status_code == 200
    assert server.client.get("/readyz").status_code == 503
    assert server.client.post("/predict", json={"record": rows[0]}).status_code == 503
    log = server.log()
    assert "NOT READY" in log and target.name in log and "does not match" in log
    assert server.metric("adult_model_ready", role="champion") == 0


def test_unknown_category_policy_maps_to_missing(serve: Any, rows: list) -> None:
    server = serve({**CHAMPION_ONLY, "input": {"unknown_category": "unknown"}})
    odd = {**rows[0], "workclass": "Space-agency"}
    response = server.client.post("/predict", json={"record": odd})
    assert response.status_code == 200, response.text
    missing = server.client.post("/predict", json={"record": {**rows[0], "workclass": None}}).json()
    assert response.json()["score"] == pytest.approx(missing["score"])  # treated exactly as missing
    assert server.metric("adult_unknown_categories_total", field="workclass") == 1


def test_workers_hold_the_fast_paths_only_and_answer_as_the_reference_does(
    serve: Any, rows: list, packaged: tuple
) -> None:
    """Both models loaded: no torch, pandas or scikit-learn in a worker, and every answer, the challenger's
    included, is the reference pipeline's score within 1e-9. (The network's fast path needs no torch either:
    tests/unit/test_fastpath.py loads it in a fresh process; the benchmark serves it as Adult's challenger.)"""
    import psutil

    home, spec, _ = packaged
    roles = ("champion", "challenger")
    assert spec["challenger"] and all(spec[r]["fast_path"]["files"] for r in roles)
    server = serve({"routing": {"mode": "canary", "challenger_weight": 0.5}})
    answers = server.client.post("/predict_batch", json={"records": rows[:300]}).json()
    assert {a["role"] for a in answers} == {"champion", "challenger"}
    for role in roles:
        name, version = spec[role]["tag"].split(":")
        reference = load_predictor(home / "models" / name / version)
        mine = [i for i, a in enumerate(answers) if a["role"] == role]
        expected = reference.predict_proba(pd.DataFrame([rows[i] for i in mine]))
        assert np.abs(np.array([answers[i]["score"] for i in mine]) - expected).max() <= 1e-9, role
    [pid] = server.worker_pids()
    mapped = {m.path for m in psutil.Process(pid).memory_maps()}
    assert not [p for p in mapped if "libtorch" in p or "/pandas/" in p or "/sklearn/" in p]
    assert psutil.Process(pid).memory_info().rss < 300 * 2**20  # 130 MiB measured; 578 MiB with torch
