"""Fairness mitigation by post-processing: fairlearn's ThresholdOptimizer over a trained predictor.

The optimizer picks group-specific thresholds on the validation split so that the chosen constraint
(demographic parity, equalized odds, ...) holds there while accuracy is as high as possible. It reads the
sensitive attribute at prediction time, so that column must be a model input. Its score is the probability of a
positive decision; decisions use the usual threshold on that score, so the same input always gets the same answer
(fairlearn would randomize between two thresholds), and the evaluation measures the fairness that results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from models.predictor import Predictor


class PredictorAdapter(ClassifierMixin, BaseEstimator):
    """A fitted, scikit-learn-shaped view of a ``Predictor`` (what fairlearn expects with ``prefit=True``)."""

    def __init__(self, predictor: Predictor | None = None) -> None:
        self.predictor = predictor

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def fit(self, X: Any, y: Any) -> PredictorAdapter:
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        assert self.predictor is not None
        p = self.predictor.predict_proba(X)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


class ThresholdMitigator:
    """Group-specific thresholds over ``base`` for ``sensitive``; ``predict_proba`` gives P(positive decision)."""

    def __init__(
        self,
        base: Predictor,
        sensitive: str,
        constraint: str = "demographic_parity",
        objective: str = "accuracy_score",
        grid_size: int = 1000,
        tol: float | None = None,
    ) -> None:
        if sensitive not in base.features.categorical:
            raise ValueError(
                f"mitigation reads '{sensitive}' at prediction time; it must be a categorical feature"
            )
        self.base = base
        self.sensitive = sensitive
        self.constraint = constraint
        self.objective = objective
        self.grid_size = grid_size
        self.tol = tol

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ThresholdMitigator:
        self.optimizer_ = ThresholdOptimizer(
            estimator=PredictorAdapter(self.base),
            constraints=self.constraint,
            objective=self.objective,
            grid_size=self.grid_size,
            prefit=True,
            predict_method="predict_proba",
            tol=self.tol,
        )
        self.optimizer_.fit(X, y, sensitive_features=X[self.sensitive].fillna("(missing)").astype(str))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        groups = X[self.sensitive].fillna("(missing)").astype(str)
        pmf = self.optimizer_._pmf_predict(X, sensitive_features=groups)
        return np.asarray(pmf, dtype=np.float64)
