"""Post-hoc calibration of scores, fitted on the validation split: isotonic regression or Platt's sigmoid."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["isotonic", "sigmoid"]
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


class ScoreCalibrator:
    """Maps raw scores to calibrated probabilities; ``fit`` on held-out scores and labels."""

    def __init__(self, method: Method) -> None:
        if method not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration method must be isotonic or sigmoid, got {method!r}")
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        else:
            self.model_ = LogisticRegression(C=1e6).fit(_logit(scores).reshape(-1, 1), y)
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.asarray(self.model_.predict(scores), dtype=np.float64)
        return self.model_.predict_proba(_logit(scores).reshape(-1, 1))[:, 1]
