"""Model code: the rule list by hand, scikit-learn pipelines, artifacts (round trip, tampering), calibration and
fairness mitigation on real Adult data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from models.baselines import RuleListClassifier
from models.calibration import ScoreCalibrator
from models.features import FeatureSpec
from models.mitigation import ThresholdMitigator
from models.predictor import (
    ArtifactError,
    CalibratedPredictor,
    SklearnPredictor,
    load_predictor,
    save_predictor,
)
from models.sklearn_models import build_pipeline
from pipelines.core.metrics import ece


@pytest.fixture(scope="module")
def features(params: dict) -> FeatureSpec:
    return FeatureSpec.from_params(params["features"], params["dataset"])


@pytest.fixture(scope="module")
def logreg(features: FeatureSpec, adult_tables: dict[str, pd.DataFrame]) -> SklearnPredictor:
    x, y = features.xy(adult_tables["train"])
    return SklearnPredictor(
        build_pipeline(LogisticRegression(max_iter=1000), "onehot", features).fit(x, y), features
    )


def test_rule_list_by_hand() -> None:
    X = pd.DataFrame({"gain": [9000, 0, 0, 0, 0, 0], "married": ["y", "y", "y", "n", "n", "n"]})
    y = np.array([1, 1, 0, 0, 0, 1])
    rules = [
        {"name": "gain", "when": {"gain": {"ge": 7000}}},
        {"name": "married", "when": {"married": {"in": ["y"]}}},
    ]
    clf = RuleListClassifier(rules, smoothing=0.0).fit(X, y)
    assert clf.leaf(X).tolist() == [0, 1, 1, 2, 2, 2]  # first match wins; the rest fall to the default
    assert clf.predict_proba(X)[:, 1].tolist() == [1.0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3]
    assert [r["train_rows"] for r in clf.describe()] == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown operator"):
        RuleListClassifier([{"name": "bad", "when": {"gain": {"between": 1}}}]).fit(X, y)


def test_pipelines_handle_unseen_and_missing_categories(features: FeatureSpec, adult_tables: dict) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = adult_tables["train"].iloc[:3000]
    x, y = features.xy(train)
    odd = train.iloc[:3].copy()
    odd.loc[odd.index[0], "workclass"] = "Space-agency"
    odd.loc[odd.index[1], "occupation"] = None
    for est, kind in [
        (LogisticRegression(max_iter=500), "onehot"),
        (HistGradientBoostingClassifier(max_iter=20), "ordinal"),
    ]:
        model = SklearnPredictor(build_pipeline(est, kind, features).fit(x, y), features)
        p = model.predict_proba(odd)
        assert p.shape == (3,) and np.isfinite(p).all()


def test_artifact_round_trip_and_tamper_detection(
    logreg: SklearnPredictor, adult_tables: dict, tmp_path: Path
) -> None:
    test = adult_tables["test"].iloc[:500]
    manifest = save_predictor(logreg, tmp_path, {"name": "logreg"})
    assert set(manifest["files"]) == {"model.joblib"} and len(manifest["files"]["model.joblib"]) == 64
    loaded = load_predictor(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(test), logreg.predict_proba(test))
    with open(tmp_path / "model.joblib", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ArtifactError, match=r"model.joblib: sha256 [0-9a-f]{64} != recorded"):
        load_predictor(tmp_path)


def test_calibration_fixes_distorted_scores(logreg: SklearnPredictor, adult_tables: dict) -> None:
    class Overconfident(SklearnPredictor):
        def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
            return super().predict_proba(data) ** 3  # a monotone distortion: same ranking, bad probabilities

    distorted = Overconfident(logreg.model, logreg.features)
    valid, test = adult_tables["train"].iloc[20000:], adult_tables["test"]
    y_valid, y_test = valid["target"].astype(int).to_numpy(), test["target"].astype(int).to_numpy()
    before = ece(y_test, distorted.predict_proba(test), 10)
    for method in ("isotonic", "sigmoid"):
        calibrated = CalibratedPredictor(
            distorted, ScoreCalibrator(method).fit(distorted.predict_proba(valid), y_valid)
        )
        after = ece(y_test, calibrated.predict_proba(test), 10)
        assert after < before / 3, (method, before, after)
        auc = roc_auc_score(y_test, calibrated.predict_proba(test))
        assert auc == pytest.approx(roc_auc_score(y_test, distorted.predict_proba(test)), abs=0.01)


def test_threshold_mitigation_narrows_the_selection_gap(logreg: SklearnPredictor, adult_tables: dict) -> None:
    valid, test = adult_tables["train"].iloc[20000:], adult_tables["test"]
    x_valid, y_valid = logreg.features.xy(valid)
    mitigated = SklearnPredictor(
        ThresholdMitigator(logreg, "sex", "demographic_parity").fit(x_valid, y_valid), logreg.features
    )
    y = test["target"].astype(int).to_numpy()
    before = demographic_parity_ratio(y, logreg.predict(test), sensitive_features=test["sex"])
    after = demographic_parity_ratio(y, mitigated.predict(test), sensitive_features=test["sex"])
    assert before < 0.4 and after > 0.7
    with pytest.raises(ValueError, match="must be a categorical feature"):
        ThresholdMitigator(logreg, "age")
