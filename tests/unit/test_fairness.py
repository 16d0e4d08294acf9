"""Fairness: per-group rates and disparities against fairlearn, undefined rates by one rule, property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core import fairness as F
from pipelines.core import metrics as M
from pipelines.core.gates import judge
from pipelines.core.model_config import Gate

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


# -- undefined rates: one rule for estimates, intervals and gates ---------------------------------------------


def full_report(y: np.ndarray, d: np.ndarray, p: np.ndarray, frame: pd.DataFrame, min_size: int) -> dict:
    """What the evaluate stage computes: headline metrics and the fairness report, each with intervals."""
    slices = F.slices(frame, ["sex"], [])
    eligible = F.eligible_groups(slices, min_size)
    intervals = M.bootstrap(y, p, 0.5, 5, 200, 0.95, 0, extra=F.GroupBootstrap(y, d, slices, eligible))
    point = M.point_metrics(y, p, 0.5, 5)
    return {
        "metrics": {k: M.with_ci(v, intervals[k]) for k, v in point.items()},
        "fairness": F.fairness_report(y, d, slices, min_size, intervals),
    }


def entries(node: object) -> list[dict]:
    """Every {"value", "ci_low", "ci_high"} entry in a report."""
    if isinstance(node, dict):
        if "value" in node and "ci_low" in node:
            return [node]
        return [e for v in node.values() for e in entries(v)]
    return []


def test_a_group_without_positives_has_no_tpr_and_does_not_inflate_equalized_odds() -> None:
    # group a: 10 positives, TPR 0.9, FPR 0.2 over 10 negatives; group b: no positives at all, FPR 0.1
    y = np.array([1] * 10 + [0] * 10 + [0] * 20)
    d = np.array([1] * 9 + [0] + [1] * 2 + [0] * 8 + [1] * 2 + [0] * 18)
    frame = pd.DataFrame({"sex": ["a"] * 20 + ["b"] * 20})
    sf = frame["sex"]
    assert true_positive_rate(y[20:], d[20:]) == 0.0  # fairlearn's default: a TPR of 0 for no positives
    assert equalized_odds_difference(y, d, sensitive_features=sf) == pytest.approx(0.9)  # inflated
    report = full_report(y, d, d.astype(float) * 0.8 + 0.1, frame, 5)["fairness"]["sex"]
    assert report["groups"]["b"]["tpr"] == {
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "undefined": "no positive labels",
    }
    assert report["excluded_undefined"] == {"tpr": ["b"]}
    eod = report["equalized_odds_difference"]
    assert eod["value"] == pytest.approx(0.1)  # the FPR difference, the only one defined: |0.2 - 0.1|
    assert eod["ci_low"] <= eod["value"] <= eod["ci_high"]
    assert report["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y, d, sensitive_features=sf)
    )


def test_undefined_disparity_gives_a_gate_detail_with_the_reason() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    d = np.zeros(8, dtype=int)  # nobody selected: every selection rate is 0, the ratio is 0/0
    frame = pd.DataFrame({"sex": list("aaaabbbb")})
    report = full_report(y, d, np.full(8, 0.2), frame, 2)
    ratio = report["fairness"]["sex"]["demographic_parity_ratio"]
    assert ratio["value"] is None and "0/0" in ratio["undefined"]
    assert report["metrics"]["precision"]["value"] is None  # no positive decisions
    metrics = {
        "kind": "candidate",
        "fairness": {"sex": {k: report["fairness"]["sex"][k] for k in F.DISPARITIES}},
    }
    gate = Gate(
        metric="fairness.sex.demographic_parity_ratio", op=">=", threshold=0.8, severity="warn", rationale="r"
    )
    verdict = judge("m", metrics, "dp", gate, {"m": metrics})
    assert (
        verdict.verdict == "warn"
        and "undefined for m: no eligible group has a positive decision" in verdict.detail
    )
    block = judge("m", metrics, "dp", gate.model_copy(update={"severity": "block"}), {"m": metrics})
    assert block.verdict == "fail"


GROUPS = st.lists(
    st.lists(st.tuples(st.booleans(), st.booleans(), st.floats(0, 1)), min_size=1, max_size=12),
    min_size=2,
    max_size=4,
)


@settings(max_examples=80, deadline=None)
@given(groups=GROUPS, min_size=st.integers(1, 6))
def test_every_estimate_lies_in_its_interval_and_follows_the_rule(groups: list, min_size: int) -> None:
    rows = [(f"g{i}", int(lab), int(dec), score) for i, g in enumerate(groups) for lab, dec, score in g]
    frame = pd.DataFrame({"sex": [r[0] for r in rows]})
    y = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows])
    p = np.array([r[3] for r in rows])
    report = full_report(y, d, p, frame, min_size)
    for e in entries(report):
        if e["value"] is None:
            assert e["ci_low"] is None and e["ci_high"] is None
        elif e["ci_low"] is not None:
            assert e["ci_low"] <= e["value"] <= e["ci_high"], e
    # the rule, by brute force: undefined exactly when the denominator is zero; disparities over defined rates
    sex = report["fairness"]["sex"]
    defined = {"selection_rate": [], "tpr": [], "fpr": []}
    for g in sorted(set(frame["sex"])):
        m = (frame["sex"] == g).to_numpy()
        pos, neg, sel = y[m].sum(), (1 - y[m]).sum(), d[m].sum()
        entry = sex["groups"][g]
        assert (entry["tpr"]["value"] is None) == (pos == 0)
        assert (entry["fpr"]["value"] is None) == (neg == 0)
        assert (entry["precision"]["value"] is None) == (sel == 0)
        if entry["eligible"]:
            for metric in defined:
                if entry[metric]["value"] is not None:
                    defined[metric].append(entry[metric]["value"])
    spread = {k: (max(v) - min(v) if len(v) >= 2 else None) for k, v in defined.items()}
    assert sex["demographic_parity_difference"]["value"] == pytest.approx(spread["selection_rate"])
    eod = [v for v in (spread["tpr"], spread["fpr"]) if v is not None]
    assert sex["equalized_odds_difference"]["value"] == pytest.approx(max(eod) if eod else None)
    if len(defined["selection_rate"]) >= 2 and max(defined["selection_rate"]) > 0:
        expected = min(defined["selection_rate"]) / max(defined["selection_rate"])
        assert sex["demographic_parity_ratio"]["value"] == pytest.approx(expected)
    else:
        assert sex["demographic_parity_ratio"]["value"] is None


@settings(max_examples=40, deadline=None)
@given(groups=GROUPS)
def test_with_every_rate_defined_the_values_equal_fairlearn(groups: list) -> None:
    rows = [(f"g{i}", int(lab), int(dec)) for i, g in enumerate(groups) for lab, dec, _ in g]
    frame = pd.DataFrame({"sex": [r[0] for r in rows]})
    y, d = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    by_group = frame.groupby("sex").indices
    if any(y[i].sum() in (0, len(i)) or d[i].sum() == 0 for i in by_group.values()):
        return  # some rate undefined: fairlearn's convention differs there by design
    report = F.fairness_report(y, d, F.slices(frame, ["sex"], []), 1)["sex"]
    sf = frame["sex"]
    assert report["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y, d, sensitive_features=sf)
    )
    assert report["demographic_parity_ratio"]["value"] == pytest.approx(
        demographic_parity_ratio(y, d, sensitive_features=sf)
    )
