"""Evaluation math against scikit-learn and hand computation on small, hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipelines.core import metrics as M

Y = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.05, 0.6, 0.7])  # ties at 0.4 across both classes


def test_point_metrics_match_sklearn() -> None:
    m = M.point_metrics(Y, P, 0.5, 10)
    d = (P >= 0.5).astype(int)
    assert m["accuracy"] == skm.accuracy_score(Y, d) == 0.7
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(Y, P))
    assert m["brier"] == pytest.approx(np.mean((P - Y) ** 2))


def test_weighted_metrics_with_unit_weights_equal_sklearn() -> None:
    prep = M.Prepared.of(Y, P, 0.5, 10)
    weighted = M.weighted_metrics(prep, np.ones((1, len(Y))))
    for name, value in M.point_metrics(Y, P, 0.5, 10).items():
        assert weighted[name][0] == pytest.approx(value, abs=1e-12), name


def test_weights_are_row_repetitions() -> None:
    """Weight 2 on a row must equal duplicating that row (what a bootstrap resample is)."""
    w = np.array([[2, 1, 0, 1, 3, 1, 0, 1, 1, 0]], dtype=float)
    rows = np.repeat(np.arange(len(Y)), w[0].astype(int))
    expected = M.point_metrics(Y[rows], P[rows], 0.5, 10)
    got = M.weighted_metrics(M.Prepared.of(Y, P, 0.5, 10), w)
    for name, value in expected.items():
        assert got[name][0] == pytest.approx(value, abs=1e-12), name


def test_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.15, 0.15, 0.85, 0.85])
    # bin 1: mean score 0.15, positive rate 0.5 -> gap 0.35 ; bin 8: 0.85 vs 1.0 -> gap 0.15 ; equal weights
    assert M.ece(y, p, 10) == pytest.approx((0.35 + 0.15) / 2)
    table = M.reliability(y, p, 10)
    assert table[1]["count"] == 2 and table[1]["positive_rate"] == 0.5 and table[0]["count"] == 0


def test_ece_of_perfect_calibration_is_zero() -> None:
    y = np.array([0, 0, 0, 1] * 25)
    assert M.ece(y, np.full(100, 0.25), 10) == pytest.approx(0.0)


def test_confusion_at_threshold() -> None:
    assert M.confusion(Y, P, 0.5) == {"tn": 4, "fp": 1, "fn": 2, "tp": 3}
    assert M.confusion(Y, P, 0.3)["tp"] == 5


def test_bootstrap_intervals_cover_the_estimate_and_are_reproducible() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(0.3 * y + 0.7 * rng.random(2000), 0, 1)
    a = M.bootstrap(y, p, 0.5, 10, 200, 0.95, seed=7)
    b = M.bootstrap(y, p, 0.5, 10, 200, 0.95, seed=7)
    assert a == b
    point = M.point_metrics(y, p, 0.5, 10)
    for name in M.METRICS:
        lo, hi = a[name]
        assert lo is not None and hi is not None and lo <= point[name] <= hi, name
    small = M.bootstrap(y[:200], p[:200], 0.5, 10, 200, 0.95, seed=7)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(small["roc_auc"]) > width(a["roc_auc"])  # fewer rows, wider interval


def test_curves_are_downsampled_and_keep_the_ends() -> None:
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 5000), rng.random(5000)
    roc = M.roc_points(y, p, limit=50)
    assert len(roc) <= 50 and roc[0] == {"fpr": 0.0, "tpr": 0.0} and roc[-1] == {"fpr": 1.0, "tpr": 1.0}


def test_the_latency_verdict_survives_one_slow_round() -> None:
    """Contention during one round of timing (a burst from another process) does not flip the verdict."""
    import time

    import pandas as pd

    from pipelines.core import latency

    calls = iter(range(10_000))

    def predict(row: pd.DataFrame) -> None:  # the first round's calls are slow, as beside a busy process
        if next(calls) < 12:
            time.sleep(0.08)

    measured = latency.measure(predict, pd.DataFrame({"x": range(5)}), 0, 30, 5, 1)
    single = measured["single_row"]
    assert len(single["round_p95_ms"]) == latency.ROUNDS and single["p95_ms"] >= 80
    assert single["round_p95_ms"][0] >= 80 and min(single["round_p95_ms"]) < 50
    assert latency.verdict(measured, 50)["single_row"]["within_budget"] is True
    busy = {"single_row": {"p95_ms": 400.0, "round_p95_ms": [400.0, 300.0, 90.0]}}
    assert (
        latency.verdict(busy, 50)["single_row"]["within_budget"] is False
    )  # slow in every round: over budget
