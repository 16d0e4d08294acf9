"""The data contract, rule by rule: the real data passes, and each broken rule is reported by name."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.core.config import DatasetConfig, DuplicatePolicy
from pipelines.core.contract import build_schema, check_table


@pytest.fixture()
def train(adult_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return adult_tables["train"].copy()


def broken(frame: pd.DataFrame, dataset: DatasetConfig, table: str = "train") -> list:
    typed, violations = check_table(frame, dataset, table)
    assert typed is None, "a blocking violation must not hand back data"
    return violations


def only(violations: list, rule: str, column: str | None = None):
    matching = [v for v in violations if v.rule == rule and v.column == column]
    assert matching, f"no {rule} on {column}: {[(v.rule, v.column) for v in violations]}"
    return matching[0]


def test_real_tables_pass(adult_tables: dict[str, pd.DataFrame], dataset: DatasetConfig) -> None:
    for name, frame in adult_tables.items():
        typed, violations = check_table(frame, dataset, name)
        assert violations == [] and typed is not None and len(typed) == len(frame)


def test_schema_is_built_from_config(dataset: DatasetConfig) -> None:
    schema = build_schema(dataset, "train")
    assert set(schema.columns) == {*dataset.columns, "target"}
    assert schema.strict is True
    assert not schema.columns["age"].nullable and schema.columns["workclass"].nullable


def test_out_of_range(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train.loc[[3, 8], "age"] = [-5, 200]
    v = only(broken(train, dataset), "range", "age")
    assert v.failures == 2 and "outside [17, 90]" in v.message and "-5 (line 3)" in v.message


def test_unseen_category(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train.loc[10, "workclass"] = "Space-agency"
    v = only(broken(train, dataset), "categories", "workclass")
    assert "'Space-agency' (line 10)" in v.message


def test_not_nullable_column(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train.loc[0, "education"] = pd.NA
    assert "allows none" in only(broken(train, dataset), "not_nullable", "education").message


def test_column_full_of_nulls(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train["occupation"] = pd.NA
    v = only(broken(train, dataset), "missing_fraction", "occupation")
    assert "100.0% missing, above the allowed 10.0%" in v.message


def test_missing_and_renamed_columns(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    violations = broken(train.rename(columns={"age": "Age"}), dataset)
    assert "column 'age' is missing" in only(violations, "column_in_dataframe", "age").message
    assert "unexpected column 'Age'" in only(violations, "column_in_schema").message


def test_text_in_numeric_column(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train["hours_per_week"] = train["hours_per_week"].astype("string")
    train.loc[5, "hours_per_week"] = "forty"
    violations = broken(train, dataset)
    v = only(violations, "dtype", "hours_per_week")
    assert "cannot be read as Int64: 'forty' (line 5)" in v.message
    assert [x.rule for x in violations if x.column == "hours_per_week"] == ["dtype"]  # no follow-on noise


def test_labels_outside_the_label_set(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train.loc[7, "income"] = ">60K"
    v = only(broken(train, dataset), "label_set", "income")
    assert "'>60K' (line 7)" in v.message and "['<=50K', '>50K']" in v.message


def test_min_rows(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    v = only(broken(train.iloc[:1000], dataset), "min_rows")
    assert "1000 rows, fewer than the minimum 30000" in v.message


def test_empty_table_reports_only_min_rows(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    assert [v.rule for v in broken(train.iloc[:0], dataset)] == ["min_rows"]


def test_class_balance(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train["income"], train["target"] = ">50K", 1
    assert (
        "positive rate 1.0 outside the bounds [0.15, 0.35]"
        in only(broken(train, dataset), "class_balance").message
    )


def test_duplicates_error_and_warn(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    replayed = pd.concat([train, train.iloc[:1000]], ignore_index=True)
    assert "duplicate rows" in only(broken(replayed, dataset), "duplicates").message
    lenient = dataset.model_copy(
        update={
            "contract": dataset.contract.model_copy(
                update={"duplicates": DuplicatePolicy(max_fraction=0.005, severity="warn")}
            )
        }
    )
    typed, violations = check_table(replayed, lenient, "train")
    assert typed is not None and len(typed) == len(replayed)
    assert [(v.rule, v.severity) for v in violations] == [("duplicates", "warn")]


def test_examples_are_capped(train: pd.DataFrame, dataset: DatasetConfig) -> None:
    train.iloc[:100, train.columns.get_loc("age")] = 5
    v = only(broken(train, dataset), "range", "age")
    assert v.failures == 100 and len(v.examples) == 5
