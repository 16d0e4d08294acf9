"""Stage ``ingest``: verify the pinned raw files, parse and normalize them, write typed parquet tables.

Reads ``dataset`` params. For each entry of ``dataset.files`` it checks the sha256 pin, parses the delimited text
(whitespace trimmed, the missing token as null, comment lines and the label suffix removed), types every column and
adds the binary target. Writes ``<out>/<key>.parquet`` for each file and ``<out>/manifest.json``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core import text
from pipelines.core.config import DatasetConfig, DerivedColumn, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, sha256_file, to_json, write_parquet
from pipelines.core.paths import SystemPaths

MAX_EXAMPLES = 5


class IngestError(PipelineError):
    """A raw file cannot be read as the configured table."""


def verify_checksum(path: Path, expected: str, key: str) -> str:
    """Return the file's sha256; raise naming the file and both hashes if it is not the pinned one."""
    if not path.is_file():
        raise IngestError(f"{path}: file not found (dataset.files.{key}.path)")
    actual = sha256_file(path)
    if actual != expected:
        raise IngestError(
            f"{path}: sha256 mismatch\n  expected {expected} (dataset.files.{key}.sha256)\n  found    {actual}\n"
            "If this new data is intended, update the pin in conf/dataset/, run `make params` and open a pull request."
        )
    return actual


def parse_rows(path: Path, dataset: DatasetConfig) -> tuple[list[list[str]], list[int]]:
    """Split a delimited text file into trimmed fields; return the rows and their 1-based line numbers.

    Each physical line is one record (``\n`` or ``\r\n`` endings). A line with an undecodable byte, a control,
    format or replacement character, a quoting error or the wrong number of fields is reported with its number
    and its text as written; any such line stops ingest.
    """
    fmt, names = dataset.format, dataset.file_columns
    raw = path.read_bytes()
    if not raw.strip():
        raise IngestError(
            f"{path}: the file is empty ({len(raw)} bytes); expected {len(names)} columns per line"
        )
    problems: list[text.TextProblem] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    n_bad = 0
    header_seen = not fmt.header
    data_seen = False
    positions = list(
        range(len(names))
    )  # the field of each configured column; from the header when there is one
    width = len(names)

    def bad(problem: text.TextProblem) -> None:
        nonlocal n_bad
        n_bad += 1
        if len(problems) < MAX_EXAMPLES:
            problems.append(problem)

    def at(number: int, line: str, position: int, what: str) -> text.TextProblem:
        where = text.field_at(line, position, fmt.separator, names)
        return text.TextProblem(
            number, f"{what} at column {position + 1} ({where}): {text.around(line, position)}"
        )

    for number, raw_line in enumerate(raw.split(b"\n"), start=1):
        line, undecodable = text.decode_line(raw_line.removesuffix(b"\r"), number, fmt.encoding)
        if undecodable:
            bad(undecodable)
            continue
        if not line.strip():
            continue
        position = text.forbidden_char(line)
        if position >= 0:
            what = text.describe_char(line[position])
            if number == 1 and position == 0 and line.startswith(text.BOM):
                what += " (a byte order mark: set dataset.format.encoding: utf-8-sig to accept one)"
            bad(at(number, line, position, what))
            continue
        # comment lines are recognised only before the data: a data row may start with any character
        if not data_seen and fmt.comment_prefix and line.lstrip().startswith(fmt.comment_prefix):
            continue
        try:
            fields = text.split_line(line, fmt.separator, fmt.quoting)
        except text.QuoteError as err:
            bad(at(number, line, err.position, str(err)))
            continue
        if not header_seen:
            header_seen = True
            positions, width = header_positions(path, number, fields, names), len(fields)
            continue
        data_seen = True
        if len(fields) != width:
            bad(text.TextProblem(number, f"{len(fields)} fields, expected {width}: {text.excerpt(line)}"))
            continue
        rows.append([fields[i] for i in positions])
        lines.append(number)
    if problems:
        total = max(n_bad, len(problems))
        raise IngestError(
            f"{path}: {total} line(s) do not have the {width} expected fields or hold text that cannot be read "
            "(a truncated or damaged file, a stray quote, a control character, a column missing or added):\n  "
            + "\n  ".join(map(str, problems))
        )
    if not rows:
        raise IngestError(f"{path}: no data rows (only blank, comment or header lines)")
    return rows, lines


def unique_header(header: list[str]) -> list[str]:
    """Header names made unique: a name's second and later occurrences become ``<name>_2``, ``<name>_3``, ...
    (the first keeps its name), so a file with repeated names can still be described by config."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def header_positions(path: Path, line: int, header: list[str], names: list[str]) -> list[int]:
    """The field index of each configured column, found by name in the header (any order; other columns are
    ignored). A configured column the header lacks is an error naming both."""
    unique = unique_header([h.strip() for h in header])
    index = {name: i for i, name in enumerate(unique)}
    missing = [c for c in names if c not in index]
    if missing:
        repeated = sorted({h for h in unique if h != h.rsplit("_", 1)[0] and h.rsplit("_", 1)[0] in index})
        hint = f"; repeated names are read as {repeated}" if repeated else ""
        raise IngestError(
            f"{path} (line {line}): dataset.columns names {missing}, which the header does not have; "
            f"the header has {unique}{hint}"
        )
    return [index[c] for c in names]


# Numbers as written in ASCII decimal notation: no inf or nan, no hexadecimal, no digit separators, no digits of
# other scripts (Python's int() would read '٣'). An int may be written with a zero fraction ('40.0').
INT_TEXT = re.compile(r"[+-]?[0-9]+(?:\.0*)?", re.ASCII)
FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
INT64 = (-(2**63), 2**63 - 1)


def parse_numbers(values: pd.Series, kind: str) -> tuple[pd.Series, dict[str, list[int]]]:
    """Type one numeric column exactly; return it and the row positions of each kind of bad value.

    An int column becomes Int64, a float column Float64; null stays null. A value that is not a finite decimal
    number of the column's kind, or that does not fit its type (beyond int64, or overflowing float64 to
    infinity), is reported as written: no value is ever rounded, wrapped or clipped into one the file lacks.
    """
    present = values.notna().to_numpy()
    text_values = values.to_numpy(dtype=object)
    pattern = INT_TEXT if kind == "int" else FLOAT_TEXT
    parsed: list[int | float | None] = []
    found: dict[str, list[int]] = {}
    for i, (value, has) in enumerate(zip(text_values, present, strict=True)):
        if not has:
            parsed.append(None)
            continue
        if not pattern.fullmatch(value):
            found.setdefault(f"are not {'int' if kind == 'int' else 'finite numbers'}", []).append(i)
            parsed.append(None)
            continue
        if kind == "int":
            number: int | float = int(value.split(".", 1)[0])
            ok = INT64[0] <= number <= INT64[1]
        else:
            number = float(value)
            mantissa = re.split("[eE]", value)[0]
            underflow = number == 0.0 and any(c in "123456789" for c in mantissa)
            ok = number not in (float("inf"), float("-inf")) and not underflow
        if not ok:
            found.setdefault(f"do not fit {'int64' if kind == 'int' else 'float64'}", []).append(i)
            parsed.append(None)
            continue
        parsed.append(number)
    dtype = "Int64" if kind == "int" else "Float64"
    return pd.Series(pd.array(parsed, dtype=dtype), index=values.index), found


def to_table(rows: list[list[str]], lines: list[int], dataset: DatasetConfig, path: Path) -> pd.DataFrame:
    """Type each column as configured; values that cannot be typed stop ingest with examples and line numbers."""
    fmt, target = dataset.format, dataset.target
    raw = pd.DataFrame(rows, columns=dataset.file_columns, dtype="string")
    raw = raw.mask(raw == fmt.missing_token)
    if fmt.label_suffix:
        raw[target.column] = raw[target.column].str.removesuffix(fmt.label_suffix)
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, kind in dataset.columns.items():
        if name in dataset.derived:
            continue
        values = raw[name]
        if kind == "category":
            out[name] = values
            continue
        column, found = parse_numbers(values, kind)
        for what, wrong in found.items():
            shown = ", ".join(f"{values[i]!r} (line {lines[i]})" for i in wrong[:MAX_EXAMPLES])
            problems.append(f"column '{name}' ({kind}): {len(wrong)} value(s) {what}: {shown}")
        out[name] = column
    for name, rule in dataset.derived.items():
        out[name], unmapped = derive(raw[rule.source], out[rule.source], rule)
        if unmapped:
            shown = ", ".join(f"{raw[rule.source][i]!r} (line {lines[i]})" for i in unmapped[:MAX_EXAMPLES])
            problems.append(
                f"column '{rule.source}': {len(unmapped)} value(s) not in dataset.derived.{name}.map: {shown}"
            )
    if problems:
        raise IngestError(f"{path}: values of the wrong type:\n  " + "\n  ".join(problems))
    table = pd.DataFrame(out)[list(dataset.columns)]
    table[target.name] = table[target.column].map(target.labels).astype("Int8")
    table.index = pd.Index(lines, name="line")  # the raw file's line of each row: validate names it
    return table


def derive(text_values: pd.Series, typed: pd.Series, rule: DerivedColumn) -> tuple[pd.Series, list[int]]:
    """A derived category column and the row positions whose code the map lacks (missing stays missing)."""
    if rule.map is not None:
        mapped = text_values.map(rule.map, na_action="ignore").astype("string")
        unmapped = [
            i
            for i, (t, m) in enumerate(zip(text_values, mapped, strict=True))
            if not pd.isna(t) and pd.isna(m)
        ]
        return mapped, unmapped
    assert rule.threshold is not None and rule.above is not None and rule.below is not None
    numbers = typed.astype("Float64")
    out = pd.Series(pd.NA, index=typed.index, dtype="string")
    out[numbers >= rule.threshold] = rule.above
    out[numbers < rule.threshold] = rule.below
    return out, []


def ingest_file(dataset: DatasetConfig, key: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Verify, parse and type one configured file; return the table and its manifest entry."""
    spec = dataset.files[key]
    path = Path(dataset.raw_dir) / spec.path
    digest = verify_checksum(path, spec.sha256, key)
    if spec.format is not None:  # a file with its own format (a CT export): columns by name from its header
        dataset = dataset.model_copy(update={"format": spec.format})
    rows, lines = parse_rows(path, dataset)
    table = to_table(rows, lines, dataset, path)
    entry = {
        "path": str(path),
        "sha256": digest,
        "bytes": path.stat().st_size,
        "rows": len(table),
        "missing": {c: int(n) for c, n in table.isna().sum().items() if n},
    }
    return table, entry


@stage_main("ingest")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    params = load_system(args.params, args.system)
    dataset = section(params, "dataset", DatasetConfig)
    args.out = args.out or SystemPaths(args.system).interim
    results = {key: ingest_file(dataset, key) for key in dataset.files}
    with atomic_dir(args.out) as staging:
        for key, (table, _) in results.items():
            write_parquet(table, staging / f"{key}.parquet", index=True)
        manifest = {
            "dataset": dataset.name,
            "version": dataset.version,
            "files": {k: e for k, (_, e) in results.items()},
        }
        (staging / "manifest.json").write_text(to_json(manifest), encoding="utf-8")
    for key, (table, _) in results.items():
        print(f"[ingest] {key}: {len(table)} rows -> {args.out / (key + '.parquet')}")


if __name__ == "__main__":
    main()
