"""Process-level helpers of a service worker (services/tabular/runtime.py) that need no server."""

from __future__ import annotations

import prometheus_client
import pytest

from services.tabular import runtime


def test_a_labelled_series_is_looked_up_once_and_counts_as_the_plain_lookup() -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("c_total", "test", ["model", "role"], registry=registry)
    first = runtime.labelled(counter, "hgb", "champion")
    assert runtime.labelled(counter, "hgb", "champion") is first is counter.labels("hgb", "champion")
    first.inc(2)
    runtime.labelled(counter, "hgb", "challenger").inc()
    assert registry.get_sample_value("c_total", {"model": "hgb", "role": "champion"}) == 2
    assert registry.get_sample_value("c_total", {"model": "hgb", "role": "challenger"}) == 1
    with pytest.raises(
        ValueError
    ):  # a wrong label count is still prometheus_client's error, not a cached miss
        runtime.labelled(counter, "hgb")


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("order-17:a.b_c", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("a b", False),
        ("", False),
        (None, False),
    ],
)
def test_a_client_request_id_is_kept_only_when_short_and_plain(header: str | None, kept: bool) -> None:
    got = runtime.request_id(header)
    assert (got == header) is kept
    if not kept:
        assert len(got) == 32 and int(got, 16) >= 0
