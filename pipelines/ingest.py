"""Stage ``ingest``: verify the pinned raw files, parse and normalize them, write typed parquet tables.

Reads ``dataset`` params. For each entry of ``dataset.files`` it checks the sha256 pin, parses the delimited text
(whitespace trimmed, the missing token as null, comment lines and the label suffix removed), types every column and
adds the binary target. Writes ``<out>/<key>.parquet`` for each file and ``<out>/manifest.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import DatasetConfig, load_params, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, sha256_file, to_json, write_parquet

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
    """Split a delimited text file into trimmed fields; return the rows and their 1-based line numbers."""
    fmt, names = dataset.format, list(dataset.columns)
    raw = path.read_bytes()
    if not raw.strip():
        raise IngestError(
            f"{path}: the file is empty ({len(raw)} bytes); expected {len(names)} columns per line"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestError(
            f"{path}: not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 8]!r})"
        ) from None
    reader = csv.reader(io.StringIO(text), delimiter=fmt.separator, skipinitialspace=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: list[str] = []
    n_bad = 0
    header_seen = not fmt.header
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if fmt.comment_prefix and fields[0].lstrip().startswith(fmt.comment_prefix):
            continue
        fields = [f.strip() for f in fields]
        if not header_seen:
            header_seen = True
            _check_header(path, fields, names)
            continue
        if len(fields) != len(names):
            n_bad += 1
            if len(bad) < MAX_EXAMPLES:
                bad.append(
                    f"line {reader.line_num}: {len(fields)} fields ({fmt.separator.join(fields)[:60]!r})"
                )
            continue
        rows.append(fields)
        lines.append(reader.line_num)
    if n_bad:
        raise IngestError(
            f"{path}: {n_bad} line(s) do not have the {len(names)} expected fields (a truncated file, or a column "
            "missing or added):\n  " + "\n  ".join(bad)
        )
    if not rows:
        raise IngestError(f"{path}: no data rows (only blank, comment or header lines)")
    return rows, lines


def _check_header(path: Path, header: list[str], names: list[str]) -> None:
    if header == names:
        return
    missing = [c for c in names if c not in header]
    unexpected = [c for c in header if c not in names]
    detail = (
        f"missing {missing}, unexpected {unexpected}" if missing or unexpected else "columns are out of order"
    )
    raise IngestError(f"{path}: header does not match dataset.columns: {detail}")


def to_table(rows: list[list[str]], lines: list[int], dataset: DatasetConfig, path: Path) -> pd.DataFrame:
    """Type each column as configured; values that cannot be typed stop ingest with examples and line numbers."""
    fmt, target = dataset.format, dataset.target
    raw = pd.DataFrame(rows, columns=list(dataset.columns), dtype="string")
    raw = raw.mask(raw == fmt.missing_token)
    if fmt.label_suffix:
        raw[target.column] = raw[target.column].str.removesuffix(fmt.label_suffix)
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, kind in dataset.columns.items():
        values = raw[name]
        if kind == "category":
            out[name] = values
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        wrong = values.notna() & numbers.isna()
        if kind == "int":
            wrong |= numbers.notna() & (numbers != numbers.round())
        if wrong.any():
            shown = ", ".join(f"{values[i]!r} (line {lines[i]})" for i in wrong[wrong].index[:MAX_EXAMPLES])
            problems.append(f"column '{name}' ({kind}): {int(wrong.sum())} value(s) are not {kind}: {shown}")
            continue
        out[name] = numbers.astype("Int64" if kind == "int" else "Float64")
    if problems:
        raise IngestError(f"{path}: values of the wrong type:\n  " + "\n  ".join(problems))
    table = pd.DataFrame(out)
    table[target.name] = table[target.column].map(target.labels).astype("Int8")
    return table


def ingest_file(dataset: DatasetConfig, key: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Verify, parse and type one configured file; return the table and its manifest entry."""
    spec = dataset.files[key]
    path = Path(dataset.raw_dir) / spec.path
    digest = verify_checksum(path, spec.sha256, key)
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
    parser.add_argument("--out", type=Path, default=Path("data/interim"))
    args = parser.parse_args(argv)
    dataset = section(load_params(args.params), "dataset", DatasetConfig)
    results = {key: ingest_file(dataset, key) for key in dataset.files}
    with atomic_dir(args.out) as staging:
        for key, (table, _) in results.items():
            write_parquet(table, staging / f"{key}.parquet")
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
