"""Fairness report against fairlearn on a small hand-made case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

from pipelines.core import fairness as F

# group a: 4 rows, selection 3/4 ; group b: 4 rows, selection 1/4 ; group c: 2 rows (too small)
FRAME = pd.DataFrame({"sex": list("aaaabbbbcc"), "race": list("xyxyxyxyxy")})
Y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 0])
D = np.array([1, 1, 1, 0, 1, 0, 0, 0, 1, 1])


def test_group_rates_by_hand() -> None:
    slices = F.slices(FRAME, ["sex"], [["sex", "race"]])
    report = F.fairness_report(Y, D, slices, min_group_size=3)
    a = report["sex"]["groups"]["a"]
    assert a["count"] == 4 and a["selection_rate"]["value"] == 0.75
    assert (
        a["tpr"]["value"] == 1.0
        and a["fpr"]["value"] == 0.5
        and a["precision"]["value"] == pytest.approx(2 / 3)
    )
    assert report["sex"]["groups"]["c"]["eligible"] is False
    assert report["sex"]["eligible_groups"] == ["a", "b"]
    assert "a / x" in report["sex x race"]["groups"]


def test_disparities_match_fairlearn_over_eligible_groups() -> None:
    slices = F.slices(FRAME, ["sex"], [])
    report = F.fairness_report(Y, D, slices, min_group_size=3)
    mask = FRAME["sex"].isin(["a", "b"]).to_numpy()
    sf = FRAME["sex"][mask]
    assert report["sex"]["demographic_parity_ratio"]["value"] == pytest.approx(
        demographic_parity_ratio(Y[mask], D[mask], sensitive_features=sf)
    )
    assert report["sex"]["demographic_parity_ratio"]["value"] == pytest.approx(1 / 3)
    assert report["sex"]["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(Y[mask], D[mask], sensitive_features=sf)
    )


def test_fewer_than_two_eligible_groups_gives_no_disparity() -> None:
    report = F.fairness_report(Y, D, F.slices(FRAME, ["sex"], []), min_group_size=5)
    assert report["sex"]["demographic_parity_ratio"]["value"] is None


def test_group_bootstrap_with_unit_weights_equals_point_values() -> None:
    slices = F.slices(FRAME, ["sex"], [])
    extra = F.GroupBootstrap(Y, D, slices, {"sex": ["a", "b"]})(np.ones((1, len(Y))))
    assert extra["sex::a::selection_rate"][0] == 0.75
    assert extra["sex::b::tpr"][0] == 1.0 and extra["sex::a::fpr"][0] == 0.5
    assert extra["sex::demographic_parity_ratio"][0] == pytest.approx(1 / 3)
    report = F.fairness_report(Y, D, slices, min_group_size=3)
    assert extra["sex::equalized_odds_difference"][0] == pytest.approx(
        report["sex"]["equalized_odds_difference"]["value"]
    )
