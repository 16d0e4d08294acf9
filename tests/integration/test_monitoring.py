"""The monitor on seeded replay windows of the quick pipeline's systems: false alarms, detection, ranking,
broken feeds and the performance estimate (issue: monitoring and continuous training).

Each window goes through the service's own request schema and the champion in process
(``pipelines.replay.simulate``), is written as a prediction log and a label feed, and is judged from those files by
the same code as the ``monitor`` stage. Windows of one scenario differ only by seed.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from models.predictor import load_predictor
from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.monitor_config import MonitorConfig
from pipelines.core.monitoring import Reference, performance
from pipelines.core.paths import SystemPaths
from pipelines.core.training import read_split
from pipelines.core.window import WindowCounts, count_log
from pipelines.monitor import judge
from pipelines.replay import generate, simulate
from services.tabular.spec import load_spec
from tests.conftest import SYSTEMS

WINDOWS = 20
SEEDS = range(1000, 1000 + WINDOWS)
REPO: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def repo(quick_repo: tuple[Path, str]) -> Path:
    REPO[:] = [quick_repo[0]]
    return quick_repo[0]


@cache
def context(system: str) -> dict[str, Any]:
    root = REPO[0]
    with contextlib.chdir(root):
        params = load_system("params.yaml", system)
        paths = SystemPaths(system)
        reference = Reference.from_dict(json.loads(paths.monitor_reference.read_text()))
        return {
            "params": params,
            "cfg": section(params, "monitor", MonitorConfig),
            "dataset": section(params, "dataset", DatasetConfig),
            "reference": reference,
            "test": read_split(paths.processed, "test"),
            "champion": load_predictor(paths.release("champion")),
            "spec": load_spec(paths.serving_spec),
        }


def window(system: str, scenario: str, seed: int, folder: Path) -> tuple[dict[str, Any], WindowCounts]:
    """Judge one seeded window of ``scenario``; also return its counts."""
    c = context(system)
    cfg = c["cfg"]
    frame, y = generate(c["test"], cfg.replay.scenarios[scenario], cfg.replay.rows, seed, c["dataset"])
    ids = [f"{scenario}-{seed}-{i}" for i in range(len(frame))]
    log, labels, service = simulate(
        frame, y, c["champion"], c["spec"], ids, datetime(2026, 1, 1, tzinfo=UTC), 60
    )
    (folder / "predictions").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "predictions/p.jsonl").write_text(log)
    (folder / "labels/l.jsonl").write_text(labels)
    result = judge(c["reference"], folder, cfg, c["params"]["evaluation"]["gates"], system, service)
    counts = count_log([folder / "predictions/p.jsonl"], c["reference"].spec, [folder / "labels/l.jsonl"])
    return result, counts


def run(system: str, scenario: str, tmp_path: Path) -> list[dict[str, Any]]:
    return [window(system, scenario, seed, tmp_path / f"{scenario}-{seed}")[0] for seed in SEEDS]


@pytest.mark.parametrize("system", SYSTEMS)
def test_no_shift_raises_at_most_the_stated_false_alarm_rate(system: str, tmp_path: Path) -> None:
    results = run(system, "none", tmp_path)
    rows = context(system)["cfg"].replay.rows
    assert all(r["rows"] >= 0.8 * rows and r["status"] == "judged" for r in results)
    alarms = [r["reasons"] for r in results if r["decision"] != "ok"]
    assert len(alarms) / WINDOWS <= context(system)["cfg"].false_alarm_rate, alarms


EXPECTED_FIRST = {
    "covariate": lambda sc: f"feature:{sc.feature}",
    "category_mix": lambda sc: f"feature:{sc.feature}",
    "label_shift": lambda sc: "label",
}


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("scenario", ["covariate", "category_mix", "label_shift"])
def test_a_shift_is_detected_with_the_shifted_feature_ranked_first(
    system: str, scenario: str, tmp_path: Path
) -> None:
    results = run(system, scenario, tmp_path)
    expected = EXPECTED_FIRST[scenario](context(system)["cfg"].replay.scenarios[scenario])
    hits = [r["decision"] == "retrain" and r["ranking"][0]["check"] == expected for r in results]
    assert sum(hits) / WINDOWS >= 0.9, Counter((r["decision"], r["ranking"][0]["check"]) for r in results)


@pytest.mark.parametrize("system", SYSTEMS)
def test_concept_drift_is_found_by_the_labels(system: str, tmp_path: Path) -> None:
    """Same inputs, flipped answers in one segment: only the delayed labels can tell (decay, label rate)."""
    results = run(system, "concept", tmp_path)
    found = [
        r["decision"] in ("retrain", "rollback") and r["ranking"][0]["check"] in ("performance", "label")
        for r in results
    ]
    assert sum(found) / WINDOWS >= 0.9, Counter((r["decision"], r["ranking"][0]["check"]) for r in results)
    assert all(
        r["performance"]["window"]["realized"]["roc_auc"] < r["performance"]["reference"]["roc_auc"]
        for r in results
    )


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("scenario", ["broken_nulls", "broken_units"])
def test_a_broken_feed_blocks(system: str, scenario: str, tmp_path: Path) -> None:
    results = run(system, scenario, tmp_path)
    assert all(r["decision"] == "block" for r in results), Counter(r["decision"] for r in results)
    assert all(any(x.startswith("broken feed:") for x in r["reasons"]) for r in results)


def test_the_estimate_tracks_the_realized_auc_under_covariate_shift(tmp_path: Path) -> None:
    """CBPE on the scores alone against the AUC the labels give, over the 20 windows merged (counts add)."""
    merged = WindowCounts()
    gaps = []
    for seed in SEEDS:
        result, counts = window("adult", "covariate", seed, tmp_path / str(seed))
        merged = merged.merge(counts)
        p = result["performance"]["window"]
        gaps.append(p["estimated_all"]["roc_auc"] - p["realized"]["roc_auc"])
    whole = performance(merged)
    assert abs(whole["estimated_all"]["roc_auc"] - whole["realized"]["roc_auc"]) <= 0.01, whole
    assert abs(sum(gaps) / len(gaps)) <= 0.01, gaps


def test_too_small_a_window_is_insufficient_data_not_an_alarm(tmp_path: Path) -> None:
    c = context("adult")
    cfg = c["cfg"]
    frame, y = generate(c["test"], cfg.replay.scenarios["covariate"], cfg.min_rows // 2, 1, c["dataset"])
    ids = [f"small-{i}" for i in range(len(frame))]
    log, _labels, service = simulate(
        frame, y, c["champion"], c["spec"], ids, datetime(2026, 1, 1, tzinfo=UTC), 60
    )
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions/p.jsonl").write_text(log)
    result = judge(c["reference"], tmp_path, cfg, c["params"]["evaluation"]["gates"], "adult", service)
    assert result["decision"] == "ok" and result["status"] == "insufficient data"
    assert "insufficient data" in result["reasons"][0]


@pytest.mark.parametrize("system", SYSTEMS)
def test_answers_that_stop_following_the_inputs_roll_back(system: str, tmp_path: Path) -> None:
    """Labels shuffled: same inputs, same base rate, the champion's gates fail with nothing to explain it."""
    results = run(system, "scrambled", tmp_path)
    rolled = [
        r["decision"] == "rollback" and r["reasons"][0].startswith("the live champion fails a gate")
        for r in results
    ]
    assert sum(rolled) / WINDOWS >= 0.9, Counter(r["decision"] for r in results)


def test_an_unreadable_log_blocks_and_says_how_much(tmp_path: Path) -> None:
    result, _ = window("adult", "none", 1, tmp_path / "w")
    assert result["decision"] == "ok"
    log = tmp_path / "w/predictions/p.jsonl"
    lines = log.read_text().splitlines()
    broken = [x if i % 3 else x[: len(x) // 2] for i, x in enumerate(lines)]  # a third of the lines torn
    log.write_text("\n".join(broken) + "\n")
    c = context("adult")
    again = judge(c["reference"], tmp_path / "w", c["cfg"], c["params"]["evaluation"]["gates"], "adult")
    assert again["decision"] == "block" and "lines are unreadable or invalid" in again["reasons"][0]
    assert again["quality"]["log_lines"] == len(lines) and again["quality"]["log_parsed"] < len(lines)
