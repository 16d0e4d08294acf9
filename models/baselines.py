"""Transparent baselines: an ordered rule list whose every score is a training-set rate anyone can check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

OPERATORS = {
    "in": lambda s, v: s.isin(v),
    "not_in": lambda s, v: ~s.isin(v) & s.notna(),
    "ge": lambda s, v: s >= v,
    "gt": lambda s, v: s > v,
    "le": lambda s, v: s <= v,
    "lt": lambda s, v: s < v,
}


class RuleListClassifier(ClassifierMixin, BaseEstimator):
    """An ordered decision list: each row takes the first rule it matches (or the default).

    A rule is ``{"name": str, "when": {column: {operator: value}}}``; its conditions are AND-ed. Operators:
    ``in``, ``not_in``, ``ge``, ``gt``, ``le``, ``lt``. ``fit`` sets each rule's score to the positive rate of
    the training rows it catches, smoothed toward the overall rate by ``smoothing`` pseudo-rows.
    """

    def __init__(self, rules: list[dict[str, Any]] | None = None, smoothing: float = 1.0) -> None:
        self.rules = rules
        self.smoothing = smoothing

    def _validate_rules(self) -> list[dict[str, Any]]:
        rules = list(self.rules or [])
        for i, rule in enumerate(rules):
            if "name" not in rule or "when" not in rule:
                raise ValueError(f"rules[{i}] needs 'name' and 'when', got {sorted(rule)}")
            for column, condition in rule["when"].items():
                bad = set(condition) - set(OPERATORS)
                if bad:
                    raise ValueError(
                        f"rules[{i}] ({rule['name']}): unknown operator(s) {sorted(bad)} on '{column}'"
                    )
        return rules

    def leaf(self, X: pd.DataFrame) -> np.ndarray:
        """Index of the first matching rule per row (``len(rules)`` for the default)."""
        rules = self._validate_rules()
        leaf = np.full(len(X), len(rules), dtype=np.int64)
        unassigned = np.ones(len(X), dtype=bool)
        for i, rule in enumerate(rules):
            match = np.ones(len(X), dtype=bool)
            for column, condition in rule["when"].items():
                if column not in X:
                    raise KeyError(f"rule '{rule['name']}' reads column '{column}', which the input lacks")
                for op, value in condition.items():
                    match &= np.asarray(OPERATORS[op](X[column], value), dtype=bool)
            take = match & unassigned
            leaf[take] = i
            unassigned &= ~take
        return leaf

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RuleListClassifier:
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        leaf = self.leaf(X)
        prior = float(y.mean())
        n_leaves = len(self._validate_rules()) + 1
        hits = np.bincount(leaf, minlength=n_leaves)
        positives = np.bincount(leaf, weights=y, minlength=n_leaves)
        self.prior_ = prior
        self.leaf_counts_ = hits
        self.leaf_rates_ = (positives + self.smoothing * prior) / (hits + self.smoothing)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.leaf_rates_[self.leaf(X)]
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def describe(self) -> list[dict[str, Any]]:
        """Each rule with its training support and score, for the model card."""
        names = [r["name"] for r in self._validate_rules()] + ["default"]
        return [
            {"rule": n, "train_rows": int(c), "score": round(float(r), 4)}
            for n, c, r in zip(names, self.leaf_counts_, self.leaf_rates_, strict=True)
        ]
