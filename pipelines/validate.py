"""Stage ``validate``: hold every ingested table to the data contract built from ``dataset`` params.

Writes ``reports/data/validation.json`` and a readable ``validation.md`` on every run. When every table passes, the
typed tables go to ``data/validated/`` for the next stages; on any blocking violation it exits 1, naming the table,
column, rule and failing values, and ``data/validated/`` keeps its previous good content.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.contract import as_dicts, check_table, table_stats
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_parquet, write_json_atomic, write_parquet, write_text_atomic
from pipelines.core.paths import SystemPaths
from pipelines.core.render import render

RULES = [
    "columns present",
    "types",
    "nullability",
    "missing share",
    "ranges",
    "categories",
    "label set",
    "min rows",
    "class balance",
    "duplicates",
]


class ContractViolation(PipelineError):
    """The data broke a blocking rule of the contract."""


def validate_tables(
    dataset: DatasetConfig, tables: dict[str, pd.DataFrame]
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Check each table; return the report and the typed tables that passed."""
    report: dict[str, Any] = {"dataset": dataset.name, "passed": True, "rules": RULES, "tables": {}}
    passed: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        typed, violations = check_table(frame, dataset, name)
        errors = [v for v in violations if v.severity == "error"]
        report["tables"][name] = {
            "passed": not errors,
            "stats": table_stats(frame, dataset),
            "errors": as_dicts(errors),
            "warnings": as_dicts([v for v in violations if v.severity != "error"]),
        }
        report["passed"] &= not errors
        if typed is not None:
            passed[name] = typed
    return report, passed


def read_tables(dataset: DatasetConfig, folder: Path) -> dict[str, pd.DataFrame]:
    """Read ``<folder>/<key>.parquet`` for every configured file."""
    tables = {}
    for key in dataset.files:
        path = folder / f"{key}.parquet"
        if not path.is_file():
            raise PipelineError(f"{path} not found: run the ingest stage first (dvc repro ingest)")
        tables[key] = read_parquet(path)
    return tables


@stage_main("validate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data, args.out = args.data or paths.interim, args.out or paths.validated
    args.report = args.report or paths.data_reports / "validation.json"
    dataset = section(load_system(args.params, args.system), "dataset", DatasetConfig)
    report, typed = validate_tables(dataset, read_tables(dataset, args.data))
    write_json_atomic(args.report, report)
    summary = args.report.with_suffix(".md")
    write_text_atomic(summary, render("validation.md.j2", report=report))
    if not report["passed"]:
        errors = [e for t in report["tables"].values() for e in t["errors"]]
        shown = "\n  ".join(e["message"] for e in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        violation = ContractViolation(
            f"data contract violated ({len(errors)} rule(s) broken); report: {summary}\n  {shown}{more}"
        )
        violation.written = (str(args.report), str(summary))
        raise violation
    with atomic_dir(args.out) as staging:
        for name, frame in typed.items():
            write_parquet(frame, staging / f"{name}.parquet")
    for name, t in report["tables"].items():
        warn = f", {len(t['warnings'])} warning(s)" if t["warnings"] else ""
        print(f"[validate] {name}: {t['stats']['rows']} rows pass the contract{warn}")


if __name__ == "__main__":
    main()
