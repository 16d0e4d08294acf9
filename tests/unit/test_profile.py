"""Profile: hand-checkable statistics on a tiny frame, and the shape of the real profile."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.core.config import DatasetConfig, ProfileConfig
from pipelines.profile import categorical_profile, histogram_edges, numeric_profile, profile_splits


def test_numeric_profile_by_hand() -> None:
    values = pd.Series([1, 2, 3, 4, None], dtype="Int64")
    p = numeric_profile(values, histogram_edges(values, 3), [0.5])
    assert (p["count"], p["missing"], p["mean"], p["min"], p["max"]) == (4, 1, 2.5, 1.0, 4.0)
    assert p["quantiles"] == {"0.5": 2.5}
    assert p["histogram"]["edges"] == [1.0, 2.0, 3.0, 4.0] and p["histogram"]["counts"] == [1, 1, 2]
    shifted = numeric_profile(pd.Series([0, 2, 9]), p["histogram"]["edges"], [0.5])
    assert (shifted["histogram"]["below"], shifted["histogram"]["above"]) == (1, 1)


def test_categorical_profile_by_hand() -> None:
    p = categorical_profile(pd.Series(["a", "b", "a", None, "c"], dtype="string"), top=1)
    assert p["counts"] == {"a": 2, "(other)": 2}
    assert (p["missing"], p["unique"], p["missing_fraction"]) == (1, 3, 0.2)


def test_profile_of_real_splits(
    adult_tables: dict[str, pd.DataFrame], dataset: DatasetConfig, params: dict
) -> None:
    cfg = ProfileConfig.model_validate(params["profile"] | {"splits": ["train", "test"]})
    out = profile_splits({"train": adult_tables["train"], "test": adult_tables["test"]}, dataset, cfg)
    json.dumps(out, allow_nan=False)  # no NaN may leak into the JSON
    train = out["splits"]["train"]
    assert train["rows"] == 32561
    sex = train["groups"]["sex"]
    assert sex["Female"]["rows"] + sex["Male"]["rows"] == 32561
    assert sex["Female"]["positive_rate"] == pytest.approx(0.1095, abs=1e-3)
    assert sex["Male"]["positive_rate"] == pytest.approx(0.3057, abs=1e-3)
    assert "Female / White" in train["groups"]["sex x race"]
    assert train["columns"]["occupation"]["missing"] == 1843
    # the test split is binned on the reference split's edges, for drift comparison
    assert (
        out["splits"]["test"]["columns"]["age"]["histogram"]["edges"]
        == train["columns"]["age"]["histogram"]["edges"]
    )
