"""Corrupted feeds, end to end through the ingest and validate stages.

Each feed is pinned (as a pull request that updates the data and its sha256 would be), so the checksum does not
stop it first: the parser or the contract must. A blocked run exits non-zero with a message naming the cause, and
the last good validated data stays exactly as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipelines import ingest, validate
from pipelines.core.io import sha256_file
from tests.conftest import ROOT

Lines = list[str]


def set_field(lines: Lines, index: int, value: str, rows: slice = slice(0, 1)) -> Lines:
    out = list(lines)
    for i in range(len(out))[rows]:
        fields = out[i].split(", ")
        fields[index] = value
        out[i] = ", ".join(fields)
    return out


FEEDS: dict[str, tuple[Callable[[Lines], Lines], str, str]] = {
    # name: (corruption, stage that must block, words the message must contain)
    "column-of-nulls": (
        lambda ls: set_field(ls, 6, "?", slice(None)),
        "validate",
        "column 'occupation': 100.0% missing",
    ),
    "negative-age": (
        lambda ls: set_field(ls, 0, "-4"),
        "validate",
        "column 'age': 1 value(s) outside [17, 90]: -4",
    ),
    "unseen-category": (lambda ls: set_field(ls, 1, "Space-agency"), "validate", "'Space-agency' (line 1)"),
    "missing-column": (
        lambda ls: [", ".join(line.split(", ")[:2] + line.split(", ")[3:]) for line in ls],
        "ingest",
        "do not have the 15 expected fields",
    ),
    "text-in-numeric": (
        lambda ls: set_field(ls, 12, "forty"),
        "ingest",
        "column 'hours_per_week' (int): 1 value(s) are not int: 'forty'",
    ),
    "empty-file": (lambda ls: [], "ingest", "the file is empty"),
    "label-outside-set": (lambda ls: set_field(ls, 14, ">60K"), "validate", "label(s) outside the label set"),
    "truncated-mid-line": (lambda ls: [*ls[:5000], ls[5000][:25]], "ingest", "line 5001: 4 fields"),
    "truncated-at-line": (lambda ls: ls[:5000], "validate", "5000 rows, fewer than the minimum 30000"),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with good raw data, params pointing at it, and a first good run of ingest and validate."""
    ws = tmp_path_factory.mktemp("feeds")
    (ws / "raw").mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["adult"]["dataset"]["raw_dir"] = str(ws / "raw")
    for spec in params["adult"]["dataset"]["files"].values():
        (ws / "raw" / spec["path"]).write_bytes((ROOT / "data/adult/raw" / spec["path"]).read_bytes())
    (ws / "params-good.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages(ws)
    return ws


def run_stages(ws: Path, name: str = "good") -> None:
    p = str(ws / f"params-{name}.yaml")
    ingest.main(["--system", "adult", "--params", p, "--out", str(ws / "interim")])
    validate.main(
        [
            "--system",
            "adult",
            "--params",
            p,
            "--data",
            str(ws / "interim"),
            "--out",
            str(ws / "validated"),
            "--report",
            str(ws / f"reports-{name}/validation.json"),
        ]
    )


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("feed", list(FEEDS))
def test_corrupted_feed_is_blocked(feed: str, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt, stage, cause = FEEDS[feed]
    good = fingerprint(workspace / "validated")
    lines = [line for line in (workspace / "raw/adult.data").read_text().splitlines() if line]
    bad_dir = workspace / f"raw-{feed}"
    bad_dir.mkdir()
    bad = bad_dir / "adult.data"
    text = "\n".join(corrupt(lines))
    bad.write_text(text + "\n" if text else "")
    params = yaml.safe_load((workspace / "params-good.yaml").read_text())
    feed_params = copy.deepcopy(params)
    feed_params["adult"]["dataset"]["raw_dir"] = str(bad_dir)
    (bad_dir / "adult.test").write_bytes((workspace / "raw/adult.test").read_bytes())
    feed_params["adult"]["dataset"]["files"]["train"]["sha256"] = sha256_file(bad)  # the PR updated the pin
    (workspace / f"params-{feed}.yaml").write_text(yaml.safe_dump(feed_params, sort_keys=False))
    capsys.readouterr()

    with pytest.raises(SystemExit) as exited:
        run_stages(workspace, feed)

    assert exited.value.code != 0
    err = capsys.readouterr().err
    assert f"ERROR [{stage}]" in err and cause in err, err
    assert fingerprint(workspace / "validated") == good, "the last good validated data must be unchanged"
    if stage == "validate":
        report = yaml.safe_load((workspace / f"reports-{feed}/validation.json").read_text())
        assert report["passed"] is False and report["tables"]["train"]["errors"]
        assert (
            (workspace / f"reports-{feed}/validation.md")
            .read_text()
            .startswith("# Data contract: adult FAILED")
        )


def test_good_feed_passes_and_reports(workspace: Path) -> None:
    report = yaml.safe_load((workspace / "reports-good/validation.json").read_text())
    assert report["passed"] is True
    assert report["tables"]["train"]["stats"]["rows"] == 32561
    assert sorted(p.name for p in (workspace / "validated").iterdir()) == ["test.parquet", "train.parquet"]
