"""Behavioural tests of a model (CheckList, Ribeiro et al. 2020; the behavioural tests of Made-With-ML).

Each test perturbs test rows and compares the model's scores or decisions before and after:

- **directional**: raising a feature must not move the score against the stated direction (``increase``: the
  score must not fall). Violation rate = share of (row, delta) pairs whose score moves the wrong way by more than
  ``tolerance``. A raised value is clipped to the contract's maximum.
- **invariance**: a small relative change of a feature (``relative_change``: each value times 1 + u, u uniform in
  [-r, r]) must not flip decisions. Flip rate = share of rows whose decision changes.
- **counterfactual** (per sensitive attribute): the share of decisions that change when only that attribute is
  set to each other category (rows x alternatives), overall and by the row's original group.
- **minimum functionality**: hand-written records with the decision a reasonable model must give.

Every rate comes with its count, so a gate (``evaluation.gates``, metric ``behaviour.<kind>.<name>.<rate>``) and a
reader can judge it. Rows are a seeded sample of the evaluation split: the same model gives the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.core.config import Section

Predict = Callable[[pd.DataFrame], np.ndarray]


class DirectionalTest(Section):
    direction: Literal["increase", "decrease"]  # how the score must move (or stay) when the feature rises
    deltas: list[float] = Field(min_length=1)  # added to the feature, each a separate perturbation
    tolerance: float = Field(0.0, ge=0.0, lt=1.0)  # a move the wrong way within this is not a violation


class InvarianceTest(Section):
    relative_change: float = Field(gt=0.0, lt=1.0)


class MinimumCase(Section):
    name: str = Field(min_length=1)
    record: dict[str, str | int | float | None]
    expect: Literal[0, 1]  # the decision a reasonable model gives
    why: str = Field(min_length=1)


class BehaviourConfig(Section):
    rows: int = Field(ge=10, le=1_000_000)  # test rows sampled for the perturbation tests
    seed: int = Field(ge=0, le=2**32 - 1)
    directional: dict[str, DirectionalTest] = Field(default_factory=dict)  # feature -> test
    invariance: dict[str, InvarianceTest] = Field(default_factory=dict)  # feature -> test
    counterfactual: list[str] = Field(default_factory=list)  # sensitive attributes
    minimum_functionality: list[MinimumCase] = Field(default_factory=list)


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def directional(
    predict: Predict, rows: pd.DataFrame, feature: str, test: DirectionalTest, upper: float | None
) -> dict[str, Any]:
    base = predict(rows)
    sign = 1.0 if test.direction == "increase" else -1.0
    violations = pairs = 0
    moves: list[float] = []
    for delta in test.deltas:
        changed = rows.copy()
        raised = rows[feature].astype("Float64") + delta
        if upper is not None:
            raised = raised.clip(upper=upper)
        changed[feature] = raised.round().astype("Int64") if str(rows[feature].dtype) == "Int64" else raised
        known = rows[feature].notna().to_numpy()
        move = (predict(changed) - base)[known] * sign
        violations += int((move < -test.tolerance).sum())
        pairs += int(known.sum())
        moves.append(float(move.mean()) if known.any() else 0.0)
    return {
        "direction": test.direction,
        "deltas": test.deltas,
        "pairs": pairs,
        "violations": violations,
        "violation_rate": _rate(violations, pairs),
        "mean_move": float(np.mean(moves)),
    }


def invariance(
    predict: Predict, rows: pd.DataFrame, feature: str, test: InvarianceTest, threshold: float, seed: int
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    factor = 1.0 + rng.uniform(-test.relative_change, test.relative_change, size=len(rows))
    changed = rows.copy()
    scaled = rows[feature].astype("Float64") * factor
    if str(rows[feature].dtype) == "Int64":
        scaled = scaled.round().astype("Int64")
    changed[feature] = scaled
    before = predict(rows) >= threshold
    after = predict(changed) >= threshold
    flips = int((before != after).sum())
    return {
        "relative_change": test.relative_change,
        "rows": len(rows),
        "flips": flips,
        "flip_rate": _rate(flips, len(rows)),
    }


def counterfactual(
    predict: Predict, rows: pd.DataFrame, attribute: str, categories: list[str], threshold: float
) -> dict[str, Any]:
    before = predict(rows) >= threshold
    flips = np.zeros(len(rows), dtype=int)
    alternatives = np.zeros(len(rows), dtype=int)
    original = rows[attribute].astype("string")
    for value in categories:
        others = (original != value).fillna(True).to_numpy()
        changed = rows.copy()
        changed[attribute] = pd.array([value] * len(rows), dtype=rows[attribute].dtype)
        after = predict(changed) >= threshold
        flips += (others & (after != before)).astype(int)
        alternatives += others.astype(int)
    by_group = {}
    for group in sorted(original.dropna().unique()):
        m = (original == group).fillna(False).to_numpy()
        by_group[str(group)] = {
            "rows": int(m.sum()),
            "flip_rate": _rate(int(flips[m].sum()), int(alternatives[m].sum())),
        }
    return {
        "categories": categories,
        "rows": len(rows),
        "counterfactuals": int(alternatives.sum()),
        "flips": int(flips.sum()),
        "flip_rate": _rate(int(flips.sum()), int(alternatives.sum())),
        "rows_with_any_flip": int((flips > 0).sum()),
        "by_group": by_group,
    }


def minimum_functionality(
    predict: Predict, cases: list[MinimumCase], columns: pd.DataFrame, threshold: float
) -> dict[str, Any]:
    if not cases:
        return {"cases": 0, "failures": 0, "pass_rate": None, "results": []}
    frame = pd.DataFrame([c.record for c in cases])
    frame = frame.astype({c: columns[c].dtype for c in frame.columns if c in columns})
    scores = predict(frame)
    results = [
        {"name": c.name, "expect": c.expect, "score": float(s), "decision": int(s >= threshold), "why": c.why}
        for c, s in zip(cases, scores, strict=True)
    ]
    failures = sum(r["decision"] != r["expect"] for r in results)
    return {
        "cases": len(cases),
        "failures": failures,
        "pass_rate": _rate(len(cases) - failures, len(cases)),
        "results": results,
    }


def run(
    predict: Predict,
    test: pd.DataFrame,
    cfg: BehaviourConfig,
    threshold: float,
    categories: dict[str, list[str]],
    upper: Mapping[str, float | None],
) -> dict[str, Any]:
    """Every configured behavioural test on a seeded sample of ``test`` (shape: rows x raw columns)."""
    rows = test.sample(n=min(cfg.rows, len(test)), random_state=cfg.seed).reset_index(drop=True)
    features = test.iloc[:0]  # the columns' dtypes, for the hand-written records
    return {
        "rows": len(rows),
        "seed": cfg.seed,
        "directional": {
            f: directional(predict, rows, f, t, upper.get(f)) for f, t in cfg.directional.items()
        },
        "invariance": {
            f: invariance(predict, rows, f, t, threshold, cfg.seed) for f, t in cfg.invariance.items()
        },
        "counterfactual": {
            a: counterfactual(predict, rows, a, categories[a], threshold) for a in cfg.counterfactual
        },
        "minimum_functionality": minimum_functionality(
            predict, cfg.minimum_functionality, features, threshold
        ),
    }


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """What the metrics file (and the gates) keep: one rate per test."""
    return {
        "directional": {f: {"violation_rate": r["violation_rate"]} for f, r in result["directional"].items()},
        "invariance": {f: {"flip_rate": r["flip_rate"]} for f, r in result["invariance"].items()},
        "counterfactual": {a: {"flip_rate": r["flip_rate"]} for a, r in result["counterfactual"].items()},
        "minimum_functionality": {
            "failures": result["minimum_functionality"]["failures"],
            "pass_rate": result["minimum_functionality"]["pass_rate"],
        },
    }
