"""The data contract: a pandera schema built from ``dataset`` params, and a readable verdict on a table.

Rules per column: type (coerced), nullability and the share of missing values allowed, value range, allowed
categories, and the label set for the raw label. Rules per table: no unexpected or missing columns, a minimum row
count, class-balance bounds and a bound on exact duplicate rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipelines.core.config import ColumnRule, DatasetConfig

PANDAS_DTYPES = {"int": "Int64", "float": "Float64", "category": "string"}
MAX_EXAMPLES = 5

# Rule ids double as pandera ``error`` strings, so failure cases come back labelled with them.
RANGE, CATEGORIES, LABELS, MISSING = "range", "categories", "label_set", "missing_fraction"
MIN_ROWS, CLASS_BALANCE, DUPLICATES = "min_rows", "class_balance", "duplicates"


@dataclass
class Violation:
    """One broken rule: where, which rule, how many values, a few examples and a sentence for humans."""

    table: str
    column: str | None
    rule: str
    severity: str
    failures: int
    message: str
    examples: list[dict[str, Any]] = field(default_factory=list)


def _column_checks(name: str, rule: ColumnRule, dataset: DatasetConfig) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if rule.min is not None and rule.max is not None:
        checks.append(pa.Check.in_range(rule.min, rule.max, error=RANGE))
    elif rule.min is not None:
        checks.append(pa.Check.ge(rule.min, error=RANGE))
    elif rule.max is not None:
        checks.append(pa.Check.le(rule.max, error=RANGE))
    if rule.categories is not None:
        checks.append(pa.Check.isin(rule.categories, error=CATEGORIES))
    if name == dataset.target.column:
        checks.append(pa.Check.isin(list(dataset.target.labels), error=LABELS))
    if rule.max_missing_fraction > 0:
        limit = rule.max_missing_fraction
        checks.append(
            pa.Check(
                lambda s: s.empty or bool(s.isna().mean() <= limit),
                element_wise=False,
                ignore_na=False,
                error=MISSING,
            )
        )
    return checks


def build_schema(dataset: DatasetConfig, table: str, skip: set[str] | None = None) -> pa.DataFrameSchema:
    """The pandera schema that table ``table`` (a key of ``dataset.files``) must satisfy.

    ``skip`` names table-level rules to leave out (used to re-validate when those rules only warned).
    """
    contract = dataset.contract
    columns: dict[str, pa.Column] = {}
    for name, kind in dataset.columns.items():
        rule = contract.columns.get(name, ColumnRule())
        columns[name] = pa.Column(
            PANDAS_DTYPES[kind],
            checks=_column_checks(name, rule, dataset),
            nullable=rule.max_missing_fraction > 0,
            coerce=True,
        )
    target = dataset.target.name
    columns[target] = pa.Column("Int8", pa.Check.isin([0, 1], error=LABELS), nullable=False, coerce=True)

    balance, dups = contract.class_balance, contract.duplicates
    minimum = contract.min_rows.get(table, 1)
    checks = [
        # An empty table is judged by min_rows alone; the share-based rules need rows to mean anything.
        pa.Check(lambda df: len(df) >= minimum, error=MIN_ROWS),
        pa.Check(
            lambda df: (
                df.empty or bool(balance.min_positive_rate <= df[target].mean() <= balance.max_positive_rate)
            ),
            error=CLASS_BALANCE,
        ),
        pa.Check(lambda df: df.empty or bool(df.duplicated().mean() <= dups.max_fraction), error=DUPLICATES),
    ]
    checks = [c for c in checks if c.error not in (skip or set())]
    return pa.DataFrameSchema(columns, checks=checks, strict=True, name=f"{dataset.name}.{table}")


def table_stats(frame: pd.DataFrame, dataset: DatasetConfig) -> dict[str, Any]:
    """Observed quantities the table-level rules judge (reported whether or not they pass)."""
    target = dataset.target.name
    positive = None
    if target in frame and len(frame):
        values = pd.to_numeric(frame[target], errors="coerce")
        positive = None if values.isna().all() else round(float(values.mean()), 6)
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "positive_rate": positive,
        "duplicate_rows": int(frame.duplicated().sum()) if len(frame) else 0,
        "duplicate_fraction": round(float(frame.duplicated().mean()), 6) if len(frame) else 0.0,
        "missing": {c: int(n) for c, n in frame.isna().sum().items() if n},
    }


def _example(value: Any, index: Any, where: str = "row") -> dict[str, Any]:
    """A failing value and its position: ``line`` (of the raw file, when ingest kept it as the index) or ``row``."""
    row = None if index is None or pd.isna(index) else int(index)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return {where: row, "value": None}
    if hasattr(value, "item"):  # numpy scalar -> Python scalar, for JSON
        value = value.item()
    return {where: row, "value": value if isinstance(value, (int, float, str)) else str(value)}


def _describe(
    table: str,
    column: str | None,
    rule: str,
    n: int,
    examples: list[dict[str, Any]],
    stats: dict[str, Any],
    dataset: DatasetConfig,
) -> str:
    shown = ", ".join(
        f"{e['value']!r}" + "".join(f" ({k} {e[k]})" for k in ("line", "row") if e.get(k) is not None)
        for e in examples
    )
    contract = dataset.contract
    rule_cfg = contract.columns.get(column or "", ColumnRule())
    where = f"{table}: column '{column}'"
    if rule == "column_in_dataframe":
        return f"{table}: column '{column}' is missing (renamed or dropped?); dataset.columns expects it"
    if rule == "column_in_schema":
        return f"{table}: unexpected column {shown} not in dataset.columns (renamed or added?)"
    if rule == "dtype":
        kind = dataset.columns.get(column or "")
        return f"{where}: {n} value(s) cannot be read as {PANDAS_DTYPES[kind] if kind else '?'}: {shown}"
    if rule == "not_nullable":
        return (
            f"{where}: {n} missing value(s) in a column that allows none (contract max_missing_fraction = 0)"
        )
    if rule == MISSING:
        observed = stats["missing"].get(column, 0) / max(stats["rows"], 1)
        return f"{where}: {observed:.1%} missing, above the allowed {rule_cfg.max_missing_fraction:.1%}"
    if rule == RANGE:
        return (
            f"{where}: {n} value(s) outside [{_g(rule_cfg.min, '-inf')}, {_g(rule_cfg.max, 'inf')}]: {shown}"
        )
    if rule == CATEGORIES:
        return f"{where}: {n} value(s) not among the allowed categories: {shown}"
    if rule == LABELS:
        allowed = list(dataset.target.labels) if column == dataset.target.column else [0, 1]
        return f"{where}: {n} label(s) outside the label set {allowed}: {shown}"
    if rule == MIN_ROWS:
        minimum = contract.min_rows.get(table, 1)
        return f"{table}: {stats['rows']} rows, fewer than the minimum {minimum} (truncated or partial file?)"
    if rule == CLASS_BALANCE:
        b = contract.class_balance
        return (
            f"{table}: positive rate {stats['positive_rate']} outside the bounds "
            f"[{b.min_positive_rate}, {b.max_positive_rate}]"
        )
    if rule == DUPLICATES:
        return (
            f"{table}: {stats['duplicate_rows']} duplicate rows ({stats['duplicate_fraction']:.2%}), above the "
            f"allowed {contract.duplicates.max_fraction:.2%}"
        )
    return f"{where}: rule {rule} failed on {n} value(s): {shown}"


def _g(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:g}"


def _rule_id(check: str) -> str:
    if check.startswith(("dtype(", "coerce_dtype(")):
        return "dtype"
    return check


def check_table(
    frame: pd.DataFrame, dataset: DatasetConfig, table: str
) -> tuple[pd.DataFrame | None, list[Violation]]:
    """Validate one table; return the coerced frame (None if it broke a blocking rule) and every violation."""
    schema = build_schema(dataset, table)
    stats = table_stats(frame, dataset)
    try:
        validated = schema.validate(frame, lazy=True)
        return validated, []
    except SchemaErrors as err:
        cases = err.failure_cases
    cases = cases.assign(rule=cases["check"].astype(str).map(_rule_id))
    table_level = cases["schema_context"] == "DataFrameSchema"
    cases["column"] = cases["column"].astype(object).where(cases["column"].notna() & ~table_level, None)
    mistyped = set(cases.loc[cases["rule"] == "dtype", "column"].dropna())
    violations: list[Violation] = []
    where = "line" if frame.index.name == "line" else "row"  # ingest keeps each row's line of the raw file
    for (column, rule), group in cases.groupby(["column", "rule"], dropna=False, sort=False):
        column = None if column is None or (isinstance(column, float) and pd.isna(column)) else str(column)
        if column in mistyped and rule != "dtype":
            continue  # value rules on values that are not even of the right type only add noise
        if rule == "column_in_dataframe":
            column = str(group["failure_case"].iloc[0])
        examples: list[dict[str, Any]] = []
        for value, index in zip(group["failure_case"], group["index"], strict=False):
            example = _example(value, index, where)
            if example not in examples and len(examples) < MAX_EXAMPLES:
                examples.append(example)
        count = len(
            {
                (e[where], str(e["value"]))
                for e in (
                    _example(v, i, where) for v, i in zip(group["failure_case"], group["index"], strict=False)
                )
            }
        )
        severity = dataset.contract.duplicates.severity if rule == DUPLICATES else "error"
        failures = count if rule not in (MIN_ROWS, CLASS_BALANCE, DUPLICATES, MISSING) else 1
        violations.append(
            Violation(
                table,
                column,
                rule,
                severity,
                failures,
                _describe(table, column, rule, failures, examples, stats, dataset),
                examples,
            )
        )
    if any(v.severity == "error" for v in violations):
        return None, violations
    # Only warnings: validate again without the warned rules to hand back the typed frame.
    relaxed = build_schema(dataset, table, skip={v.rule for v in violations})
    return relaxed.validate(frame, lazy=True), violations


def as_dicts(violations: list[Violation]) -> list[dict[str, Any]]:
    """Plain dicts for JSON reports."""
    return [asdict(v) for v in violations]
