"""The prediction log's lines (services/tabular/predlog.py): the configured fields in their order, a missing one as
null, of the features only the allowed ones in the allowlist's order, and what JSON cannot hold as its ``str``;
the fast path for the service's complete entries writes exactly what the general one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tabular.predlog import PredictionLogger
from services.tabular.spec import LOG_FIELDS, PredictionLog


def logger_for(tmp: Path, fields: list[str], features: list[str]) -> PredictionLogger:
    cfg = PredictionLog.model_validate(
        {
            "enabled": True,
            "dir": str(tmp),
            "fields": fields,
            "feature_fields": features,
            "retention": {"max_bytes": 1 << 20, "backup_count": 1, "max_age_days": 1},
            "on_failure": "degrade",
        }
    )
    return PredictionLogger(cfg, worker="0")


def general(log: PredictionLogger, entry: dict[str, Any]) -> bytes:
    """The line's definition, field by field."""
    out = {k: entry.get(k) for k in log.fields}
    if isinstance(out.get("features"), dict):
        out["features"] = {k: out["features"][k] for k in log.feature_order if k in out["features"]}
    return pydantic_core.to_json(out, fallback=str) + b"\n"


ENTRY = {
    "request_id": "r1",
    "time": "2026-11-30T10:00:00.000+00:00",
    "model": "m",
    "version": "v1",
    "role": "champion",
    "shadow": False,
    "score": 0.25,
    "decision": 0,
    "latency_ms": 0.1,
    "fallback": None,
    "features": {"b": 2, "a": "x", "secret": "s"},
}


def test_a_line_keeps_the_configured_fields_and_allowed_features_in_their_order(tmp_path: Path) -> None:
    log = logger_for(tmp_path, ["score", "request_id", "features"], ["a", "b"])
    assert log.line(ENTRY) == b'{"score":0.25,"request_id":"r1","features":{"a":"x","b":2}}\n'
    log = logger_for(tmp_path, ["request_id"], [])  # one field, no features
    assert log.line(ENTRY) == b'{"request_id":"r1"}\n'
    log = logger_for(tmp_path, ["features", "model"], ["z", "a"])  # an allowed feature the record lacks
    assert log.line(ENTRY) == b'{"features":{"a":"x"},"model":"m"}\n'
    log = logger_for(tmp_path, ["fallback", "model"], [])  # a field the entry lacks is null
    assert log.line({"model": "m"}) == b'{"fallback":null,"model":"m"}\n'
    assert log.line({"model": Path("/x")}) == b'{"fallback":null,"model":"/x"}\n'


def test_written_lines_read_back_as_json(tmp_path: Path) -> None:
    log = logger_for(tmp_path, list(LOG_FIELDS), ["a"])
    assert log.write_many([ENTRY, {**ENTRY, "request_id": "r2"}])
    lines = log.path.read_bytes().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["r1", "r2"]
    assert json.loads(lines[0])["features"] == {"a": "x"}


values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
feature_names = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.sampled_from(LOG_FIELDS), unique=True, max_size=len(LOG_FIELDS)),
    allowed=st.lists(feature_names, unique=True, max_size=4),
    entry=st.dictionaries(st.sampled_from(LOG_FIELDS), values, max_size=len(LOG_FIELDS)),
    features=st.none() | st.dictionaries(feature_names, values, max_size=4) | values,
)
def test_every_line_is_the_definitions(
    tmp_path_factory: pytest.TempPathFactory,
    fields: list[str],
    allowed: list[str],
    entry: dict[str, Any],
    features: Any,
) -> None:
    log = logger_for(tmp_path_factory.mktemp("log"), fields, allowed)
    if features is not None:
        entry = {**entry, "features": features}
    assert log.line(entry) == general(log, entry)
