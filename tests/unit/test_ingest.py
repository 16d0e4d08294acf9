"""Ingest: checksum pins, parsing and normalization of the real Adult files, and clear errors on bad raw files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.config import DatasetConfig, FileSpec
from pipelines.core.io import sha256_file
from pipelines.ingest import IngestError, ingest_file, main, unique_header

RAW_TRAIN_LINE = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K"


def with_file(dataset: DatasetConfig, path: Path, key: str = "train") -> DatasetConfig:
    """The dataset config pointing ``key`` at ``path``, pinned to that file's current hash."""
    files = dict(dataset.files)
    files[key] = FileSpec(path=path.name, sha256=sha256_file(path))
    return dataset.model_copy(update={"files": files, "raw_dir": str(path.parent)})


def test_real_files_parse_to_the_published_counts(adult_tables: dict[str, pd.DataFrame]) -> None:
    assert len(adult_tables["train"]) == 32561
    assert len(adult_tables["test"]) == 16281  # the comment line "|1x3 Cross validator" is skipped


def test_labels_are_normalized_and_target_is_binary(adult_tables: dict[str, pd.DataFrame]) -> None:
    for table in adult_tables.values():
        assert set(table["income"]) == {"<=50K", ">50K"}  # the test file's trailing periods are gone
        assert table["target"].dtype == "Int8"
        assert (table["target"] == (table["income"] == ">50K").astype("Int8")).all()
    assert adult_tables["train"]["target"].mean() == pytest.approx(0.2408, abs=1e-4)


def test_missing_token_becomes_null_and_columns_are_typed(adult_tables: dict[str, pd.DataFrame]) -> None:
    train = adult_tables["train"]
    assert train["workclass"].isna().sum() == 1836
    assert train["native_country"].isna().sum() == 583
    assert not (train.astype("string") == "?").any().any()
    assert str(train["age"].dtype) == "Int64" and str(train["workclass"].dtype) == "string"
    first = train.iloc[0]
    assert (first["age"], first["workclass"], first["capital_gain"]) == (39, "State-gov", 2174)


def test_checksum_mismatch_names_the_file_and_both_hashes(dataset: DatasetConfig, tmp_path: Path) -> None:
    path = tmp_path / "adult.data"
    path.write_text(RAW_TRAIN_LINE + "\n")
    pinned = with_file(dataset, path)
    path.write_text(RAW_TRAIN_LINE.replace("39", "40", 1) + "\n")
    with pytest.raises(IngestError) as err:
        ingest_file(pinned, "train")
    message = str(err.value)
    assert str(path) in message
    assert pinned.files["train"].sha256 in message and sha256_file(path) in message
    assert "dataset.files.train.sha256" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        (RAW_TRAIN_LINE + "\n" + RAW_TRAIN_LINE[:40] + "\n", "line 2: 6 fields"),
        (RAW_TRAIN_LINE.replace(", 77516", "") + "\n", "do not have the 15 expected fields"),
        (
            RAW_TRAIN_LINE.replace("39,", "thirty-nine,") + "\n",
            "column 'age' (int): 1 value(s) are not int: 'thirty-nine' (line 1)",
        ),
        (RAW_TRAIN_LINE.replace(" 40,", " 40.5,") + "\n", "column 'hours_per_week' (int)"),
        ("|only a comment\n", "no data rows"),
    ],
    ids=[
        "empty",
        "blank-lines",
        "truncated",
        "missing-column",
        "text-in-int",
        "fraction-in-int",
        "only-comment",
    ],
)
def test_bad_raw_files_stop_with_the_cause(
    dataset: DatasetConfig, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "adult.data"
    path.write_text(content)
    with pytest.raises(IngestError, match=r"adult\.data") as err:
        ingest_file(with_file(dataset, path), "train")
    assert expected in str(err.value)


def test_not_utf8_is_reported(dataset: DatasetConfig, tmp_path: Path) -> None:
    path = tmp_path / "adult.data"
    path.write_bytes(RAW_TRAIN_LINE.encode() + b"\xff\xfe\n")
    with pytest.raises(IngestError, match="not UTF-8"):
        ingest_file(with_file(dataset, path), "train")


def test_missing_file_is_reported(dataset: DatasetConfig, tmp_path: Path) -> None:
    files = dict(dataset.files)
    files["train"] = FileSpec(path="nope.data", sha256="0" * 64)
    with pytest.raises(IngestError, match=r"nope.data: file not found \(dataset.files.train.path\)"):
        ingest_file(dataset.model_copy(update={"files": files, "raw_dir": str(tmp_path)}), "train")


def test_header_feed_detects_a_renamed_column(dataset: DatasetConfig, tmp_path: Path) -> None:
    names = list(dataset.columns)
    path = tmp_path / "adult.data"
    renamed = ["years", *names[1:]]
    path.write_text(", ".join(renamed) + "\n" + RAW_TRAIN_LINE + "\n")
    headered = with_file(dataset, path).model_copy(
        update={"format": dataset.format.model_copy(update={"header": True})}
    )
    with pytest.raises(
        IngestError, match=r"line 1: dataset.columns names \['age'\], which the header does not have"
    ):
        ingest_file(headered, "train")
    path.write_text(", ".join(["Age", *names[1:]]) + "\n" + RAW_TRAIN_LINE + "\n")
    with pytest.raises(
        IngestError,
        match=r"line 1: .*'Age' \(field 1, column 1\) differs from the configured 'age' only by case",
    ):
        ingest_file(with_file(headered, path), "train")
    path.write_text(", ".join(names) + "\n" + RAW_TRAIN_LINE + "\n")
    table, entry = ingest_file(with_file(headered, path), "train")
    assert len(table) == 1 and entry["rows"] == 1


def test_header_columns_are_selected_by_name(dataset: DatasetConfig, tmp_path: Path) -> None:
    """Any order, extra columns ignored, a repeated name read as <name>_2: the same typed row as the plain file."""
    names = list(dataset.columns)
    values = [v.strip() for v in RAW_TRAIN_LINE.split(",")]
    order = list(reversed(range(len(names))))
    header = ["id", *(names[i] for i in order), "age"]  # reversed, an extra column, a repeated name
    row = ["7", *(values[i] for i in order), "99"]
    path = tmp_path / "adult.data"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    headered = with_file(dataset, path).model_copy(
        update={"format": dataset.format.model_copy(update={"header": True})}
    )
    table, _ = ingest_file(headered, "train")
    plain = tmp_path / "plain.data"
    plain.write_text(RAW_TRAIN_LINE + "\n")
    expected, _ = ingest_file(with_file(dataset, plain), "train")
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected.reset_index(drop=True))
    assert list(table.index) == [2]  # the header is line 1
    assert unique_header(["a", "b", "a", "a"]) == ["a", "b", "a_2", "a_3"]


def test_stage_writes_tables_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "interim"
    main(["--system", "adult", "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.parquet", "train.parquet"]
    assert "train: 32561 rows" in capsys.readouterr().out
