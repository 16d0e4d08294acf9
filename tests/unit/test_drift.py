"""Drift statistics against hand-computed values (Evidently's documented definitions) and their properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pipelines.core import drift
from pipelines.core import performance as perf
from pipelines.core.service_metrics import histogram_quantile, service_stats

# reference a, a, b, c; current a, b, b, b: shares p = (.5, .25, .25), q = (.25, .75, 0)
REF, CUR = [2, 1, 1], [1, 3, 0]


def test_psi_by_hand() -> None:
    # Evidently: zeros become 1e-4; PSI = sum((p - q) ln(p / q))
    q3 = 1e-4
    by_hand = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.25 - 0.75) * math.log(0.25 / 0.75)
    by_hand += (0.25 - q3) * math.log(0.25 / q3)
    assert drift.psi(REF, CUR) == pytest.approx(by_hand, abs=1e-12)
    assert drift.psi(REF, CUR) == pytest.approx(2.67782, abs=1e-5)


def test_jensen_shannon_by_hand() -> None:
    # m = (.375, .5, .125); KL(p||m) = .5 ln(4/3) + .25 ln(.5) + .25 ln 2; KL(q||m) = .25 ln(2/3) + .75 ln(1.5)
    kl_p = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.5) + 0.25 * math.log(0.25 / 0.125)
    kl_q = 0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.5)
    assert drift.js_distance(REF, CUR) == pytest.approx(math.sqrt((kl_p + kl_q) / 2), abs=1e-12)
    assert drift.js_distance(REF, CUR) == pytest.approx(0.416277, abs=1e-6)


def test_normed_wasserstein_by_hand() -> None:
    # reference 1, 2, 3, 4 and current 2, 3, 4, 5: W1 = 1, std (ddof 0) = sqrt(1.25)
    value = drift.wasserstein_normed(
        [1, 2, 3, 4, 5], [1, 1, 1, 1, 0], [1, 2, 3, 4, 5], [0, 1, 1, 1, 1], 1.118034
    )
    assert value == pytest.approx(1 / math.sqrt(1.25), abs=1e-6)
    assert drift.wasserstein_normed([1.0], [3], [1.0], [5], 0.0) == 0.0  # one value: no distance
    assert drift.wasserstein_normed([1.0], [3], [2.0], [5], 0.0) == pytest.approx(1 / 0.001)  # std floor


@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=12).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.integers(0, 50), min_size=len(a), max_size=len(a)))
    )
)
@settings(max_examples=200, deadline=None)
def test_statistics_are_finite_and_vanish_on_equal_shares(pair: tuple[list[int], list[int]]) -> None:
    ref, cur = pair
    for value in (drift.psi(ref, cur), drift.js_distance(ref, cur)):
        assert math.isfinite(value) and value >= -1e-12
    if sum(ref) and sum(cur):
        assert drift.js_distance(ref, cur) <= math.sqrt(math.log(2)) + 1e-9
    doubled = [2 * x for x in ref]
    assert drift.psi(ref, doubled) == pytest.approx(0.0, abs=1e-9)
    assert drift.js_distance(ref, doubled) == pytest.approx(0.0, abs=1e-6)
    g, p = drift.g_test(ref, cur)
    assert g >= -1e-9 and 0.0 <= p <= 1.0


def test_g_test_matches_scipy_and_pools_sparse_bins() -> None:
    ref, cur = np.array([500, 300, 200]), np.array([40, 30, 30])
    g, p = drift.g_test(ref, cur)
    g2, p2, _, _ = stats.chi2_contingency(np.vstack([ref, cur]), correction=False, lambda_="log-likelihood")
    assert (g, p) == pytest.approx((g2, p2))
    # bins expected below 5 in the window are pooled (Cochran), so a tiny window is not an alarm by sparsity
    ref, cur = np.array([1000, 3, 2, 1, 1]), np.array([100, 1, 0, 0, 0])
    pooled_ref, pooled_cur = drift.pooled(ref, cur)
    assert pooled_ref.tolist() == [1000, 7] and pooled_cur.tolist() == [100, 1]
    assert drift.g_test([10, 0], [0, 0]) == (0.0, 1.0)  # an empty window: nothing to test


positive = st.floats(0.01, 100.0, allow_nan=False)


@given(
    st.lists(st.tuples(st.floats(-1e3, 1e3, allow_nan=False), positive), min_size=1, max_size=15),
    st.lists(st.tuples(st.floats(-1e3, 1e3, allow_nan=False), positive), min_size=1, max_size=15),
)
@settings(max_examples=300, deadline=None)
def test_wasserstein_matches_scipy(u: list[tuple[float, float]], v: list[tuple[float, float]]) -> None:
    """drift computes W1 itself (scipy.stats costs 1 s to import); it must agree with scipy's."""
    uv, uw = np.array([a for a, _ in u]), np.array([w for _, w in u])
    vv, vw = np.array([a for a, _ in v]), np.array([w for _, w in v])
    expected = stats.wasserstein_distance(uv, vv, uw, vw)
    assert drift.wasserstein_1d(uv, vv, uw, vw) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@given(
    st.lists(st.integers(0, 400), min_size=2, max_size=10).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.integers(0, 400), min_size=len(a), max_size=len(a)))
    )
)
@settings(max_examples=300, deadline=None)
def test_g_test_matches_scipy_on_any_table(pair: tuple[list[int], list[int]]) -> None:
    ref, cur = (np.array(x, dtype=float) for x in pair)
    g, p = drift.g_test(ref, cur)
    pr, pc = drift.pooled(ref, cur)
    table = np.vstack([pr, pc])
    table = table[:, table.sum(axis=0) > 0]
    if pr.size < 2 or pr.sum() == 0 or pc.sum() == 0 or table.shape[1] < 2:
        assert (g, p) == (0.0, 1.0)
        return
    g2, p2, _, _ = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert g == pytest.approx(g2, rel=1e-9, abs=1e-9) and p == pytest.approx(p2, rel=1e-7, abs=1e-12)


def test_holm_by_hand() -> None:
    # p = .01, .04, .03, .005 -> sorted .005 (x4), .01 (x3), .03 (x2), .04 (x1), each at least the previous
    assert drift.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert drift.holm([0.9, 0.9]) == [1.0, 1.0]


def test_wilson_by_hand() -> None:
    lo, hi = drift.wilson(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson (1927), z = 1.96
    assert drift.wilson(0, 0) == (None, None)
    assert drift.wilson(0, 5)[0] == 0.0


def test_binned_auc_matches_sklearn_within_bin_resolution() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    b = np.minimum((s * 100).astype(int), 99)
    pos = np.bincount(b[y == 1], minlength=100)
    neg = np.bincount(b[y == 0], minlength=100)
    assert perf.auc_from_bins(pos, neg) == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    assert perf.auc_from_bins(np.zeros(3), np.ones(3)) is None


def test_cbpe_of_calibrated_scores_estimates_the_realized_auc() -> None:
    rng = np.random.default_rng(1)
    s = rng.beta(2, 5, 200_000)
    y = rng.random(s.size) < s  # calibrated by construction
    b = np.minimum((s * 100).astype(int), 99)
    count = np.bincount(b, minlength=100).astype(float)
    ssum = np.bincount(b, weights=s, minlength=100)
    decided = np.bincount(b[s >= 0.5], minlength=100).astype(float)
    est = perf.estimated(count, ssum, decided, float(np.sum(s * s)))
    pos = np.bincount(b[y], minlength=100)
    realized_auc = perf.auc_from_bins(pos, count - pos)
    assert est["roc_auc"] == pytest.approx(realized_auc, abs=0.005)
    assert est["brier"] == pytest.approx(float(np.mean((s - y) ** 2)), abs=0.002)
    assert est["positive_rate"] == pytest.approx(float(y.mean()), abs=0.005)


def test_histogram_quantile_like_prometheus() -> None:
    # 100 requests: 50 under 0.1 s, 40 more under 0.2 s, 10 more under 0.5 s -> p95 halfway into (0.2, 0.5]
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.35)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, []) is None


def test_service_stats_from_a_scrape() -> None:
    text = "\n".join(
        [
            "# TYPE bentoml_service_request_total counter",
            'bentoml_service_request_total{endpoint="/predict",http_response_code="200"} 80.0',
            'bentoml_service_request_total{endpoint="/predict",http_response_code="400"} 20.0',
            'bentoml_service_request_total{endpoint="/readyz",http_response_code="200"} 5.0',
            "# TYPE bentoml_service_request_duration_seconds histogram",
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="0.01"} 50.0',
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="0.1"} 100.0',
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 100.0',
            'bentoml_service_request_duration_seconds_count{endpoint="/predict"} 100.0',
            'bentoml_service_request_duration_seconds_sum{endpoint="/predict"} 3.0',
            "# TYPE demo_rejected_requests_total counter",
            'demo_rejected_requests_total{status="400"} 20.0',
        ]
    )
    stats_ = service_stats(text + "\n", "demo")
    assert stats_["requests"] == 100 and stats_["errors"] == 20 and stats_["error_rate"] == 0.2
    assert stats_["rejected"] == 20 and stats_["latency_p95_ms"] == pytest.approx(91.0)
