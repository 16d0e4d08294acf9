"""Behavioural tests (pipelines/core/behaviour.py) against scoring functions whose behaviour is known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.core import behaviour as B

ROWS = pd.DataFrame(
    {
        "capital_gain": pd.array([0, 1000, 5000, 99000, None], dtype="Int64"),
        "fnlwgt": pd.array([100, 1000, 10000, 100000, 200000], dtype="Int64"),
        "sex": pd.array(["Male", "Female", "Male", "Female", None], dtype="string"),
    }
)


def gain(frame: pd.DataFrame, sign: float = 1.0) -> np.ndarray:
    """A score that rises (sign 1) or falls (sign -1) with capital_gain; missing gain scores 0.5."""
    g = frame["capital_gain"].astype("Float64").fillna(50000).to_numpy(dtype=float)
    return 1 / (1 + np.exp(-sign * (g - 50000) / 10000))


def test_directional_counts_every_row_and_delta_that_moves_the_wrong_way() -> None:
    up = B.DirectionalTest(direction="increase", deltas=[1000, 2000], tolerance=0.0)
    ok = B.directional(gain, ROWS, "capital_gain", up, upper=99999)
    assert (ok["pairs"], ok["violations"], ok["violation_rate"]) == (8, 0, 0.0)  # the missing gain is skipped
    bad = B.directional(lambda f: gain(f, -1.0), ROWS, "capital_gain", up, upper=99999)
    # 99000 + 2000 is clipped to 99999; every known row still moves down
    assert (bad["violations"], bad["violation_rate"]) == (8, 1.0)
    down = B.DirectionalTest(direction="decrease", deltas=[1000], tolerance=0.0)
    assert B.directional(lambda f: gain(f, -1.0), ROWS, "capital_gain", down, upper=None)["violations"] == 0


def test_directional_tolerance_forgives_small_moves() -> None:
    up = B.DirectionalTest(direction="increase", deltas=[1], tolerance=0.01)
    assert B.directional(lambda f: gain(f, -1.0), ROWS, "capital_gain", up, upper=None)["violations"] == 0


def test_invariance_counts_decision_flips() -> None:
    def threshold_on_weight(frame: pd.DataFrame) -> np.ndarray:
        return (frame["fnlwgt"].astype(float).to_numpy() >= 100000).astype(float)

    test = B.InvarianceTest(relative_change=0.5)
    r = B.invariance(threshold_on_weight, ROWS, "fnlwgt", test, 0.5, seed=0)
    rng = np.random.default_rng(0)
    factor = 1 + rng.uniform(-0.5, 0.5, size=5)
    changed = np.round(ROWS["fnlwgt"].to_numpy(dtype=float) * factor)
    expected = int(((changed >= 100000) != (ROWS["fnlwgt"].to_numpy(dtype=float) >= 100000)).sum())
    assert r["flips"] == expected and r["flip_rate"] == expected / 5


def test_counterfactual_flip_rate_of_a_model_that_reads_only_sex() -> None:
    def by_sex(frame: pd.DataFrame) -> np.ndarray:
        return (frame["sex"] == "Male").fillna(False).to_numpy(dtype=float)

    r = B.counterfactual(by_sex, ROWS, "sex", ["Female", "Male"], 0.5)
    # 4 known rows each have one alternative, and every one flips; the missing row gets both (no flip to Female)
    assert r["counterfactuals"] == 6 and r["flips"] == 5
    assert r["by_group"]["Male"] == {"rows": 2, "flip_rate": 1.0}
    assert B.counterfactual(gain, ROWS, "sex", ["Female", "Male"], 0.5)["flips"] == 0


def test_minimum_functionality_counts_failures() -> None:
    cases = [
        B.MinimumCase(
            name="rich", record={"capital_gain": 90000, "fnlwgt": 1, "sex": "Male"}, expect=1, why="w"
        ),
        B.MinimumCase(
            name="poor", record={"capital_gain": 90000, "fnlwgt": 1, "sex": "Male"}, expect=0, why="w"
        ),
    ]
    r = B.minimum_functionality(gain, cases, ROWS.iloc[:0], 0.5)
    assert (r["cases"], r["failures"], r["pass_rate"]) == (2, 1, 0.5)
    assert [x["decision"] for x in r["results"]] == [1, 1]


def test_run_is_seeded_and_headline_keeps_one_rate_per_test() -> None:
    cfg = B.BehaviourConfig(
        rows=10,  # more than the 5 rows: all of them, in a seeded order
        seed=3,
        directional={"capital_gain": B.DirectionalTest(direction="increase", deltas=[10])},
        invariance={"fnlwgt": B.InvarianceTest(relative_change=0.01)},
        counterfactual=["sex"],
    )
    first = B.run(gain, ROWS, cfg, 0.5, {"sex": ["Female", "Male"]}, {"capital_gain": 99999})
    assert first == B.run(gain, ROWS, cfg, 0.5, {"sex": ["Female", "Male"]}, {"capital_gain": 99999})
    head = B.headline(first)
    assert head["directional"]["capital_gain"] == {"violation_rate": pytest.approx(0.0)}
    assert set(head) == {"directional", "invariance", "counterfactual", "minimum_functionality"}
