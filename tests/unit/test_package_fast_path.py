"""The package stage refuses a model without a fast path, or whose fast path differs from it, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from models.features import FeatureSpec
from models.predictor import SklearnPredictor, save_predictor
from models.sklearn_models import build_pipeline
from pipelines.core.errors import PipelineError
from pipelines.package import compile_fast_path
from tests.conftest import ROOT, run


class DriftingLogisticRegression(LogisticRegression):
    """A logistic regression whose scores are not its coefficients' (a fault the parity check must catch)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = super().predict_proba(X)
        return np.column_stack([p[:, 0] - 1e-7, p[:, 1] + 1e-7])


@pytest.fixture(scope="module")
def features(params: dict) -> FeatureSpec:
    return FeatureSpec.from_params(params["features"], params["dataset"])


def artifact(folder: Path, estimator: object, features: FeatureSpec, train: pd.DataFrame) -> Path:
    model = build_pipeline(estimator, "onehot", features).fit(*features.xy(train))  # type: ignore[arg-type]
    folder.mkdir(parents=True)
    manifest = save_predictor(SklearnPredictor(model, features), folder, {"name": "odd"})
    release = {"name": "odd", "version": "odd-0123456789ab", "files": manifest["files"], "params_hash": "x"}
    release["metrics"] = {"roc_auc": {"value": 0.5}}
    (folder / "release.json").write_text(json.dumps(release))
    return folder


def test_a_model_whose_fast_path_differs_is_not_packaged(
    tmp_path: Path, features: FeatureSpec, adult_tables: dict
) -> None:
    train, test = adult_tables["train"].head(3000), adult_tables["test"].head(2000)
    folder = artifact(tmp_path / "champion", DriftingLogisticRegression(max_iter=300), features, train)
    with pytest.raises(PipelineError) as err:
        compile_fast_path("champion", folder, test, 0.5, tmp_path / "out")
    text = str(err.value)
    assert "differs from its reference pipeline" in text and "it is not packaged" in text
    assert "max |diff| 1e-07 (tolerance 1e-09)" in text and not (tmp_path / "out").exists()
    ok = artifact(tmp_path / "plain", LogisticRegression(max_iter=300), features, train)
    done = compile_fast_path("champion", ok, test, 0.5, tmp_path / "out")
    assert done["parity"]["max_abs_diff_at_most"] <= 1e-15 and set(done["files"]) == {
        "fastpath.json",
        "fastpath.bin",
    }


def test_the_stage_refuses_a_champion_without_a_fast_path_and_writes_nothing(
    tmp_path: Path, features: FeatureSpec, adult_tables: dict
) -> None:
    train = adult_tables["train"].head(3000)
    artifact(tmp_path / "artifacts/champion", KNeighborsClassifier(5), features, train)
    (tmp_path / "artifacts/challenger").mkdir()
    (tmp_path / "artifacts/challenger/release.json").write_text("{}")  # no challenger
    (tmp_path / "data").mkdir()
    adult_tables["test"].head(500).to_parquet(tmp_path / "data/test.parquet")
    out = {k: tmp_path / k for k in ("home", "spec.json", "report.json")}
    proc = run(
        ["python", "-m", "pipelines.package", "--system", "adult", "--artifacts", str(tmp_path / "artifacts"),
         "--data", str(tmp_path / "data"), "--home", str(out["home"]), "--spec", str(out["spec.json"]),
         "--report", str(out["report.json"])],
        ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "has no serving fast path: no fast path for estimator KNeighborsClassifier" in proc.stderr
    assert "it is not packaged" in proc.stderr and not any(p.exists() for p in out.values())
