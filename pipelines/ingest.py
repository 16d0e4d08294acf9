"""Stage ``ingest``: verify the pinned raw files, parse and normalize them, write typed parquet tables.

Reads ``dataset`` params. For each entry of ``dataset.files`` it checks the sha256 pin, parses the delimited text
(whitespace trimmed, the missing token as null, comment lines and the label suffix removed), types every column and
adds the binary target. Writes ``<out>/<key>.parquet`` for each file and ``<out>/manifest.json``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
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

    Each physical line is one record (``\n`` or ``\r\n`` endings; the last line may lack its newline). Blank
    lines are skipped wherever they are; comment lines only before the data (the header included). With
    ``dataset.format.header`` the first other line is the header, judged like every line: if it cannot be read,
    no later line is taken for it, and a header that does not fit the data is reported on its own line. A line
    with an undecodable byte, a control, format or replacement character, a quoting error, only empty fields,
    the wrong number of fields, or the column names where data should be is reported with its number and its text
    as written; any such line stops ingest.
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise IngestError(
            f"{path}: the file is empty ({len(raw)} bytes); expected {len(dataset.file_columns)} columns per line"
        )
    reader = LineReader(path, dataset)
    for number, raw_line in enumerate(raw.split(b"\n"), start=1):
        reader.read(number, raw_line.removesuffix(b"\r"))
    return reader.finish()


class LineReader:
    """``parse_rows``' state: one line at a time, the header line like any other."""

    def __init__(self, path: Path, dataset: DatasetConfig) -> None:
        self.path, self.fmt, self.names = path, dataset.format, dataset.file_columns
        self.problems: list[text.TextProblem] = []
        self.n_bad = 0
        self.rows: list[list[str]] = []
        self.lines: list[int] = []
        self.header_line = 0  # the header's line once met (with format.header); 0 before
        self.header: list[str] | None = None  # its names once read and accepted: fields are then named by it
        self.data_seen = False
        self.comments: list[int] = []  # comment lines skipped before the data
        self.comment_lines: list[tuple[int, str]] = []  # the first few, with their text
        self.positions = list(range(len(self.names)))  # the field of each configured column
        self.width = len(self.names)
        self.widths: list[tuple[int, int, str]] = []  # data lines of another width: (line, fields, text)
        self.n_widths = 0
        self.name_keys = {loose_name(n) for n in self.names}

    def bad(self, problem: text.TextProblem) -> None:
        self.n_bad += 1
        if len(self.problems) < MAX_EXAMPLES:
            self.problems.append(problem)

    def at(self, number: int, line: str, position: int, what: str) -> text.TextProblem:
        names = self.header if self.header is not None else self.names
        if self.fmt.header and (self.awaiting_header() or number <= self.header_line):
            names = []  # the header itself, or a line before it: fields by number
        where = text.field_at(line, position, self.fmt.separator, names, self.fmt.quoting)
        return text.TextProblem(
            number, f"{what} at column {position + 1} ({where}): {text.around(line, position)}"
        )

    def awaiting_header(self) -> bool:
        return self.fmt.header and not self.header_line

    def unreadable(self, number: int) -> None:
        """A line that could not be read: if the header was due, this was it (no later line is taken for it)."""
        if self.awaiting_header():
            self.header_line = number

    def names_row(self, values: list[str]) -> bool:
        """Whether a data line holds the column names (the header's, else the configured ones, loosely): at least
        two of them and at least half (one for a single-column table), the first field among them."""
        keys = self.name_keys
        if not values or loose_name(values[0]) not in keys:
            return False
        return len(keys & {loose_name(v) for v in values}) >= min(len(keys), max(2, (len(keys) + 1) // 2))

    def read(self, number: int, raw_line: bytes) -> None:
        line, undecodable = text.decode_line(raw_line, number, self.fmt.encoding)
        if undecodable:
            self.bad(undecodable)
            self.unreadable(number)
            return
        if not line.strip():
            return
        position = text.forbidden_char(line)
        if position >= 0:
            what = text.describe_char(line[position]) + text.char_hint(line, position)
            if number == 1 and position == 0 and line.startswith(text.BOM):
                if self.fmt.encoding == "utf-8-sig":
                    what += " (a second byte order mark: utf-8-sig accepts one)"
                else:
                    what += " (a byte order mark: set dataset.format.encoding: utf-8-sig to accept one)"
            self.bad(self.at(number, line, position, what))
            self.unreadable(number)
            return
        # comment lines are recognised only before the data: a data row may start with any character
        if (
            not self.data_seen
            and self.fmt.comment_prefix
            and line.lstrip().startswith(self.fmt.comment_prefix)
        ):
            self.comments.append(number)
            if len(self.comment_lines) < MAX_EXAMPLES:
                self.comment_lines.append((number, line))
            return
        if not self.data_seen and self.header is None and SEP_HINT.fullmatch(line.strip()):
            self.bad(
                text.TextProblem(
                    number,
                    f"{text.excerpt(line)} is a spreadsheet's separator declaration, not "
                    f"{'a header' if self.fmt.header else 'data'}: remove the line "
                    f"(dataset.format.separator is {self.fmt.separator!r})",
                )
            )
            self.unreadable(number)
            return
        try:
            values = text.split_line(line, self.fmt.separator, self.fmt.quoting)
        except text.QuoteError as err:
            self.bad(self.at(number, line, err.position, str(err)))
            self.unreadable(number)
            return
        if not any(values):
            self.bad(
                text.TextProblem(
                    number, f"every field is empty (a spreadsheet's blank row?): {text.excerpt(line)}"
                )
            )
            self.unreadable(number)
            return
        if self.awaiting_header():
            self.header_line = number
            problem = self.read_header(
                number, line, text.split_fields(line, self.fmt.separator, self.fmt.quoting)
            )
            if problem:
                self.bad(problem)
            return
        self.data_seen = True
        if self.header_line and self.header is None:
            return  # the header was not read: a data line's fields cannot be placed; its text is still checked
        if self.names_row(values):
            self.bad(self.repeated_header(number, line))
            return
        if len(values) != self.width:
            self.n_widths += 1
            if len(self.widths) < MAX_EXAMPLES:
                self.widths.append((number, len(values), line))
            return
        self.rows.append([values[i] for i in self.positions])
        self.lines.append(number)

    def repeated_header(self, number: int, line: str) -> text.TextProblem:
        if self.fmt.header:
            what = f"holds the column names again, repeating the header of line {self.header_line} (files joined end to end?)"
        elif not self.rows and not self.widths:
            what = "holds the column names, not data: set dataset.format.header: true if the file has a header row"
        else:
            what = "holds the column names, not data (files with a header row joined end to end?)"
        return text.TextProblem(number, f"{what}: {text.excerpt(line)}")

    def read_header(self, number: int, line: str, fields: list[tuple[int, str]]) -> text.TextProblem | None:
        """Accept the header line (the field of each configured column), or the problem that stops it."""
        values = [value.strip() for _, value in fields]
        unique = unique_header(values)
        index = {name: i for i, name in enumerate(unique)}
        missing = [c for c in self.names if c not in index]
        if not missing:
            self.header, self.positions, self.width = unique, [index[c] for c in self.names], len(values)
            self.name_keys = {loose_name(n) for n in unique if n}
            return None
        loose = {loose_name(name): i for i, name in reversed(list(enumerate(unique)))}
        near = [(c, loose[loose_name(c)]) for c in missing if loose_name(c) in loose]
        if near:
            shown = "; ".join(
                f"'{unique[i]}' (field {i + 1}, column {fields[i][0] + 1}) differs from the configured '{c}' only by "
                "case, spaces or punctuation"
                for c, i in near[:MAX_EXAMPLES]
            )
            absent = [c for c in missing if loose_name(c) not in loose]
            also = f"; the header does not have {absent} at all" if absent else ""
            return text.TextProblem(
                number,
                f"the header's names must match dataset.columns exactly: {shown}{also}; correct the header or "
                "rename the column in dataset.columns",
            )
        if not any(loose_name(c) in loose for c in self.names):
            return text.TextProblem(number, self.no_names(line))
        repeated = sorted({h for h in unique if h != h.rsplit("_", 1)[0] and h.rsplit("_", 1)[0] in index})
        hint = f"; repeated names are read as {repeated}" if repeated else ""
        return text.TextProblem(
            number,
            f"dataset.columns names {missing}, which the header does not have; the header has {unique}{hint}",
        )

    def no_names(self, line: str) -> str:
        """Why a header holds none of the configured names, with the setting that most likely explains it."""
        what = f"the header holds none of the configured column names: {text.excerpt(line)}"
        hint = text.separator_hint(
            line, self.fmt.separator, 0, lambda fields: self.names_in(" ".join(fields))
        )
        if hint:
            return what + hint
        commented = [n for n, content in self.comment_lines if self.names_in(content)]
        if commented:
            return (
                f"{what}; line {commented[0]} holds them but starts with dataset.format.comment_prefix "
                f"{self.fmt.comment_prefix!r}: remove the prefix from the header"
            )
        start = line.lstrip()[:1]
        if start and not start.isalnum() and start not in "\"'_":
            return (
                f"{what}; if the line is a comment, set dataset.format.comment_prefix: {start!r}; if the file has "
                "no header row, set dataset.format.header: false"
            )
        return f"{what} (it reads like a data row): if the file has no header row, set dataset.format.header: false"

    def names_in(self, content: str) -> bool:
        """Whether a line's text holds most configured names (a header written as a comment)."""
        keys = {loose_name(n) for n in self.names}
        words = {loose_name(w) for w in re.split(r"[^\w.-]+", content)}
        return len(keys & words) >= max(1, (len(keys) + 1) // 2)

    def finish(self) -> tuple[list[list[str]], list[int]]:
        width_problems = [
            text.TextProblem(
                n,
                f"{k} fields, expected {self.width}: {text.excerpt(line)}"
                + (text.separator_hint(line, self.fmt.separator, self.width) if k == 1 else ""),
            )
            for n, k, line in self.widths
        ]
        n_bad = self.n_bad + self.n_widths
        if self.header is not None and self.widths and not self.rows:
            # no data line fits the header: the header is the line at fault
            counts = Counter(k for _, k, _ in self.widths)
            common = counts.most_common(1)[0][0]
            trailing = " (the header ends with a separator)" if self.header[-1] == "" else ""
            first = self.widths[0][0]
            width_problems = [
                text.TextProblem(
                    self.header_line,
                    f"the header has {self.width} fields{trailing}, but no data line does: the data lines have "
                    f"{common} (line {first}: {text.excerpt(self.widths[0][2])}); a name missing from the header, or "
                    "a separator too many at the end of the data lines?",
                )
            ]
            n_bad = self.n_bad + 1
        problems = sorted(self.problems + width_problems, key=lambda p: p.line)[:MAX_EXAMPLES]
        if problems:
            raise IngestError(
                f"{self.path}: {max(n_bad, len(problems))} line(s) do not have the {self.width} expected fields "
                "or hold text that cannot be read (a truncated or damaged file, a stray quote, a control character, a "
                "column missing or added, a header that does not fit):\n  " + "\n  ".join(map(str, problems))
            )
        if self.fmt.header and not self.header_line:
            raise IngestError(
                f"{self.path}: no header line (dataset.format.header is true; only blank or comment lines)"
            )
        if not self.rows:
            raise IngestError(f"{self.path}: no data rows (only blank, comment or header lines)")
        return self.rows, self.lines


# Excel writes `sep=;` as its first line when asked to name the separator.
SEP_HINT = re.compile(r"sep=.", re.IGNORECASE)


def loose_name(name: str) -> str:
    """A column name with case, spaces and punctuation ignored: 'Loan Amount' ~ 'loan_amount' ~ 'loan.amount'."""
    return re.sub(r"[\W_]+", "", name).casefold()


def unique_header(header: list[str]) -> list[str]:
    """Header names made unique: a name's second and later occurrences become ``<name>_2``, ``<name>_3``, ...
    (the first keeps its name), so a file with repeated names can still be described by config."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


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
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
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
