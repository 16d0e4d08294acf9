"""The service's health from a scrape of its Prometheus ``/metrics``: request error rate and latency p95.

Counted over the scoring endpoints (``/predict``, ``/predict_batch``) from BentoML's request counter and duration
histogram (``bentoml_service_request_total``, ``bentoml_service_request_duration_seconds``) and the service's own
refusal counter (``<system>_rejected_requests_total``, statuses 400-415). The p95 is read from cumulative histogram
buckets by linear interpolation inside the bucket, as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ENDPOINTS = {"/predict", "/predict_batch"}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative ``buckets`` [(upper bound, count)], interpolating linearly in a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width > 0 else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def service_stats(text: str, system: str) -> dict[str, Any]:
    """Requests, errors (4xx and 5xx), error rate and latency p95 (ms) of the scoring endpoints."""
    by_code: dict[str, float] = {}
    buckets: dict[float, float] = {}
    rejected = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            endpoint = s.labels.get("endpoint")
            if s.name == "bentoml_service_request_total" and endpoint in ENDPOINTS:
                code = s.labels.get("http_response_code", "")
                by_code[code] = by_code.get(code, 0.0) + s.value
            elif s.name == "bentoml_service_request_duration_seconds_bucket" and endpoint in ENDPOINTS:
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
            elif s.name == f"{system}_rejected_requests_total":
                rejected += s.value
    requests = sum(by_code.values())
    errors = sum(v for c, v in by_code.items() if c[:1] in ("4", "5"))
    p95 = histogram_quantile(0.95, list(buckets.items()))
    return {
        "requests": int(requests),
        "errors": int(errors),
        "rejected": int(rejected),
        "error_rate": errors / requests if requests else None,
        "latency_p95_ms": None if p95 is None else round(p95 * 1000, 3),
    }
