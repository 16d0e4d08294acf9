"""Window counts: what DuckDB reads from a prediction log, and that counts of partitions add up exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.monitoring import count_frame
from pipelines.core.window import NULL, OTHER, FeatureBins, WindowCounts, WindowSpec, count_log

SPEC = WindowSpec(
    [
        FeatureBins("age", "numeric", cuts=[20.0, 30.0, 40.0, 60.0]),
        FeatureBins("sex", "categorical", categories=["Male", "Female"]),
    ],
    [["sex"]],
    score_bins=10,
)


def line(i: int, age: Any, sex: Any, score: float, role: str = "champion", shadow: bool = False) -> str:
    return json.dumps(
        {
            "request_id": f"r{i}",
            "time": f"2026-01-01T00:00:{i % 60:02d}.000+00:00",
            "model": "m",
            "version": "v",
            "role": role,
            "shadow": shadow,
            "score": score,
            "decision": int(score >= 0.5),
            "latency_ms": 1.0,
            "features": {"age": age, "sex": sex},
        }
    )


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


def test_bins_nulls_others_and_what_is_left_out(tmp_path: Path) -> None:
    log = write(
        tmp_path / "p.jsonl",
        [
            line(0, 10, "Male", 0.05),  # below the training range
            line(1, 20, "Female", 0.15),  # the first cut belongs to the first bin
            line(2, 60, "X", 0.95),  # the last cut belongs to the last bin; an unseen category is "other"
            line(3, 61, None, 0.55),  # above the range; a null category
            line(4, None, "Male", 0.45),  # a null number
            line(5, 35, "Male", 0.5, role="challenger"),  # the challenger's canary share: left out
            line(6, 35, "Male", 0.5, shadow=True),  # a shadow copy: left out
            '{"request_id": "torn", "time": "2026-',  # a torn last line (a crash mid-write): skipped
        ],
    )
    labels = write(
        tmp_path / "l.jsonl",
        [
            json.dumps({"request_id": "r0", "label": 0, "time": "2026-01-01T00:00:30+00:00"}),
            json.dumps({"request_id": "r2", "label": 0, "time": "2026-01-01T01:00:00+00:00"}),
            json.dumps(
                {"request_id": "r2", "label": 1, "time": "2026-01-02T01:00:00+00:00"}
            ),  # the last wins
        ],
    )
    c = count_log([log], SPEC, [labels])
    assert c.rows == 5 and c.first == "2026-01-01T00:00:00.000+00:00"
    assert SPEC.features[0].labels == ["< 20", "[20, 30)", "[30, 40)", "[40, 60]", "> 60", NULL]
    assert c.arrays["feature:age"].tolist() == [1, 1, 0, 1, 1, 1]
    assert SPEC.features[1].labels == ["Male", "Female", OTHER, NULL]
    assert c.arrays["feature:sex"].tolist() == [2, 1, 1, 1]
    assert c.arrays["label:count"].sum() == 2 and c.arrays["label:positive"].sum() == 1
    assert c.arrays["confusion"].tolist() == [1, 0, 0, 1]  # tn (r0), fp, fn, tp (r2 decided 1, label 1)
    assert c.arrays["lag"].tolist() == [1, 0, 0, 1, 0, 0]  # 30 s; a day and an hour
    assert c.groups["sex"]["Male"] == [2, 0, 1, 0, 0, 0]


@given(st.data())
@settings(max_examples=25, deadline=None)
def test_counts_of_two_partitions_add_up_to_the_whole(tmp_path_factory: Any, data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("merge")
    n = data.draw(st.integers(0, 60))
    rng = np.random.default_rng(data.draw(st.integers(0, 10_000)))
    lines = [
        line(
            i,
            None if rng.random() < 0.1 else int(rng.integers(0, 90)),
            [None, "Male", "Female", "Other"][int(rng.integers(0, 4))],
            float(rng.random()),
        )
        for i in range(n)
    ]
    labels = write(
        tmp / "l.jsonl",
        [
            json.dumps(
                {"request_id": f"r{i}", "label": int(rng.integers(0, 2)), "time": "2026-01-02T00:00:00+00:00"}
            )
            for i in range(n)
            if rng.random() < 0.5
        ],
    )
    cut = data.draw(st.integers(0, n))
    a = count_log([write(tmp / "a.jsonl", lines[:cut])], SPEC, [labels])
    b = count_log([write(tmp / "b.jsonl", lines[cut:])], SPEC, [labels])
    whole = count_log([write(tmp / "w.jsonl", lines)], SPEC, [labels])
    merged = a.merge(b)
    assert merged.rows == whole.rows == n
    assert set(merged.arrays) == set(whole.arrays)
    for key, value in whole.arrays.items():
        if key == "label_quality":  # the label feed is joined by each call, not partitioned
            continue
        np.testing.assert_allclose(merged.arrays[key], value, atol=1e-9, err_msg=key)
    assert merged.groups == whole.groups and (merged.first, merged.last) == (whole.first, whole.last)
    assert WindowCounts.from_dict(json.loads(json.dumps(whole.to_dict()))).to_dict() == whole.to_dict()


def test_a_table_in_memory_counts_like_the_log(tmp_path: Path) -> None:
    rows = [(25, "Male", 0.2), (45, "Female", 0.7), (None, None, 0.9)]
    log = write(tmp_path / "p.jsonl", [line(i, a, s, sc) for i, (a, s, sc) in enumerate(rows)])
    frame = pd.DataFrame(
        {
            "age": [25.0, 45.0, np.nan],
            "sex": pd.array(["Male", "Female", None], dtype="string"),
            "score": [0.2, 0.7, 0.9],
            "decision": [0, 1, 1],
            "label": pd.array([pd.NA] * 3, dtype="Int64"),
            "time": pd.array([f"2026-01-01T00:00:{i:02d}.000+00:00" for i in range(3)], dtype="string"),
            "label_time": pd.array([None] * 3, dtype="string"),
        }
    )
    from_log, from_frame = count_log([log], SPEC), count_frame(frame, SPEC)
    for key in set(from_log.arrays) - {"quality", "label_quality"}:  # a table has no lines
        np.testing.assert_allclose(from_frame.arrays[key], from_log.arrays[key], err_msg=key)
    assert from_frame.groups == from_log.groups


def test_an_empty_log_counts_nothing(tmp_path: Path) -> None:
    c = count_log([write(tmp_path / "p.jsonl", [])], SPEC)
    assert c.rows == 0 and c.arrays["feature:age"].sum() == 0 and c.groups["sex"] == {}


@pytest.mark.parametrize("garbage", ["not json", "{}", '{"score": "high"}', "[1, 2]"])
def test_malformed_lines_are_skipped_not_fatal(tmp_path: Path, garbage: str) -> None:
    log = write(tmp_path / "p.jsonl", [line(0, 25, "Male", 0.2), garbage, line(1, 35, "Female", 0.8)])
    c = count_log([log], SPEC)
    assert c.arrays["feature:age"].sum() == 2


def test_invalid_answers_and_labels_are_counted_not_fatal(tmp_path: Path) -> None:
    lines = [line(i, 30, "Male", 0.3) for i in range(6)]
    lines[1] = lines[1].replace('"score": 0.3', '"score": "high"')  # not a number: read as null, invalid
    lines[2] = lines[2].replace('"score": 0.3', '"score": 1e400')  # infinite: an invalid answer
    lines[3] = lines[3].replace('"score": 0.3', '"score": 1.5')  # outside [0, 1]
    lines[4] = lines[4].replace('"age": 30', '"age": 1e308')  # absurd but a number: the "above" bin
    labels = write(
        tmp_path / "l.jsonl",
        [
            json.dumps({"request_id": "r0", "label": 2, "time": "2026-01-01T01:00:00+00:00"}),
            json.dumps({"request_id": "r4", "label": -1, "time": "2026-01-01T01:00:00+00:00"}),
            json.dumps({"request_id": "r5", "label": "yes", "time": "2026-01-01T01:00:00+00:00"}),
            json.dumps({"request_id": "r5", "label": 1, "time": "2026-01-01T01:00:00+00:00"}),
            "garbage",
        ],
    )
    c = count_log([write(tmp_path / "p.jsonl", lines)], SPEC, [labels])
    assert c.arrays["quality"].tolist() == [6, 6, 3]  # log lines, parsed, invalid answers
    assert c.arrays["label_quality"].tolist() == [
        5,
        5,
        4,
    ]  # label lines, parsed (garbage as nulls), not 0 or 1
    assert c.rows == 3 and c.arrays["label:count"].sum() == 1  # r0, r4, r5 kept; only r5's label is a label
    assert c.arrays["feature:age"][4] == 1  # 1e308 is above the range
    json.dumps(c.to_dict(), allow_nan=False)  # every count is finite


@pytest.mark.parametrize("bad", ["tomorrow", "", "2026-13-45T99:00:00", "1e9", "null-ish"])
def test_a_time_that_is_not_one_counts_without_a_lag_never_crashes(tmp_path: Path, bad: str) -> None:
    """Found by a review: one unparseable time in the log or the label feed stopped the monitor (a cast error)."""
    lines = [line(i, 30, "Male", 0.3) for i in range(4)]
    lines[1] = lines[1].replace('"time": "2026-01-01T00:00:01.000+00:00"', json.dumps({"time": bad})[1:-1])
    labels = write(
        tmp_path / "l.jsonl",
        [json.dumps({"request_id": f"r{i}", "label": 1, "time": "2026-01-01T02:00:00+00:00"}) for i in (0, 1)]
        + [json.dumps({"request_id": "r2", "label": 0, "time": bad})],
    )
    c = count_log([write(tmp_path / "p.jsonl", lines)], SPEC, [labels])
    assert c.rows == 4 and c.arrays["label:count"].sum() == 3  # every answer and label counted
    assert c.arrays["lag"].sum() == 1  # only r0 has two times that parse
    assert c.first == "2026-01-01T00:00:00.000+00:00" and c.last == "2026-01-01T00:00:03.000+00:00"


def test_a_compressed_partition_counts_its_lines_uncompressed(tmp_path: Path) -> None:
    import gzip

    body = "".join(line(i, 30, "Male", 0.3) + "\n" for i in range(50)).encode()
    path = tmp_path / "p.jsonl.1.gz"
    path.write_bytes(gzip.compress(body))
    c = count_log([path], SPEC)
    assert c.rows == 50 and c.arrays["quality"].tolist() == [50, 50, 0]
