"""scikit-learn candidates: the preprocessing lives inside each pipeline, so one artifact maps raw rows to scores."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from models.features import FeatureSpec

Preprocessing = Literal["onehot", "ordinal", "none"]
MISSING = "(missing)"


def preprocessor(kind: Preprocessing, features: FeatureSpec) -> ColumnTransformer | None:
    """The column transformer for ``kind``.

    ``onehot``: missing categories become their own level, unknown ones encode as all zeros; numerics are
    median-imputed and standardized (linear models). ``ordinal``: categories become integer codes with unknown and
    missing as NaN, numerics pass through (histogram gradient boosting handles both natively). ``none``: raw frame.
    """
    cat, num = list(features.categorical), list(features.numeric)
    if kind == "none":
        return None
    if kind == "onehot":
        return ColumnTransformer(
            [
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value=MISSING),
                        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    ),
                    cat,
                ),
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
            ],
            verbose_feature_names_out=False,
        )
    if kind == "ordinal":
        return ColumnTransformer(
            [
                (
                    "cat",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
                    ),
                    cat,
                ),
                ("num", "passthrough", num),
            ],
            verbose_feature_names_out=False,
        )
    raise ValueError(f"unknown preprocessing '{kind}'; choose onehot, ordinal or none")


def build_pipeline(
    estimator: BaseEstimator, kind: Preprocessing, features: FeatureSpec
) -> Pipeline | BaseEstimator:
    """``estimator`` behind the preprocessing ``kind``; gradient boosting is told which columns are categorical."""
    pre = preprocessor(kind, features)
    if pre is None:
        return estimator
    if kind == "ordinal" and "categorical_features" in estimator.get_params():
        mask = [True] * len(features.categorical) + [False] * len(features.numeric)
        estimator.set_params(categorical_features=mask)
    return Pipeline([("preprocess", pre), ("model", estimator)])
