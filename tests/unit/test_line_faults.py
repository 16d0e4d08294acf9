"""The first and the last line of a raw file are judged like every line between (issue: a header row with a byte
order mark was set aside and the first data row read as the header).

Every system's format is tried with and without a header row, with ``\\n`` and ``\\r\\n`` endings, with and without
a final newline; each kind of fault is put at the first line (the header, where there is one), a middle line and
the last line, and must be reported on that line and no other. A data row is never read as the header, and a
header never as data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.config import DatasetConfig, load_params, load_system, section, systems_of
from pipelines.core.io import sha256_file
from pipelines.ingest import IngestError, ingest_file, parse_rows
from tests.conftest import ROOT

SYSTEMS = systems_of(load_params(ROOT / "params.yaml"))
DATA_LINES = 12


def dataset_of(system: str) -> DatasetConfig:
    cfg = section(load_system(ROOT / "params.yaml", system), "dataset", DatasetConfig)
    return cfg.model_copy(update={"raw_dir": str(ROOT / cfg.raw_dir)})


@dataclass(frozen=True)
class Format:
    """One system's format with or without a header row, and a clean sample file in it (lines without endings)."""

    system: str
    header: bool
    dataset: DatasetConfig
    lines: tuple[str, ...]

    @property
    def sep(self) -> str:
        return self.dataset.format.separator

    def __repr__(self) -> str:  # hypothesis prints this on failure
        return f"Format({self.system}, header={self.header})"


def formats() -> list[Format]:
    out = []
    for system in SYSTEMS:
        ds = dataset_of(system)
        fmt = ds.format
        first = next(iter(ds.files.values()))
        content = (Path(ds.raw_dir) / first.path).read_text(encoding="utf-8").splitlines()
        content = [line for line in content if line.strip()]
        if fmt.comment_prefix:
            content = [line for line in content if not line.startswith(fmt.comment_prefix)]
        data = content[1:] if fmt.header else content
        data = data[:DATA_LINES]
        names = fmt.separator.join(ds.file_columns)
        for header in (True, False):
            # without a header row the columns are the configured ones in file order; data is rewritten in that order
            lines = ([names] if header else []) + data
            if fmt.header and not header:
                index = [content[0].split(fmt.separator).index(c) for c in ds.file_columns]
                lines = [fmt.separator.join(line.split(fmt.separator)[i] for i in index) for line in data]
            out.append(
                Format(
                    system,
                    header,
                    ds.model_copy(update={"format": fmt.model_copy(update={"header": header})}),
                    tuple(lines),
                )
            )
            # the same rows with a space or a tab between fields, where no value holds one
            for sep in (" ", "\t"):
                if sep == fmt.separator:
                    continue
                fields = [[f.strip() for f in line.split(fmt.separator)] for line in lines]
                if any(sep in f or '"' in f for row in fields for f in row):
                    continue
                other = fmt.model_copy(update={"header": header, "separator": sep, "quoting": "none"})
                rows = tuple(sep.join(row) for row in fields)
                out.append(Format(f"{system}+{sep!r}", header, ds.model_copy(update={"format": other}), rows))
    return out


FORMATS = formats()


def write(tmp: Path, fmt: Format, lines: list[bytes], ending: bytes, final: bool) -> DatasetConfig:
    """The lines as a file in ``tmp``; the dataset config pointing its first file there, pinned to it."""
    path = tmp / "raw.txt"
    path.write_bytes(ending.join(lines) + (ending if final else b""))
    key = next(iter(fmt.dataset.files))
    files = {key: fmt.dataset.files[key].model_copy(update={"path": path.name, "sha256": sha256_file(path)})}
    return fmt.dataset.model_copy(update={"files": files, "raw_dir": str(tmp)})


def rows_of(ds: DatasetConfig) -> tuple[list[list[str]], list[int]]:
    key = next(iter(ds.files))
    return parse_rows(Path(ds.raw_dir) / ds.files[key].path, ds)


# A fault: (what it does to a line's text, which lines it applies to, words the message must hold)
def insert(char: str) -> Callable[[str, int], str]:
    return lambda line, at: line[:at] + char + line[at:]


FAULTS = {
    "bom": (lambda line, at: "\ufeff" + line, "any", ["U+FEFF"]),
    "zero-width-space": (insert("\u200b"), "any", ["U+200B"]),
    "bell": (insert("\x07"), "any", ["U+0007"]),
    "lone-cr": (insert("\r"), "inner", ["U+000D"]),
    "stray-quote": (insert('"'), "any", ["quote"]),
    "extra-field": (lambda line, at: line + ",x", "any", ["fields"]),
    "trailing-separator": (None, "any", ["fields"]),
    "empty-fields": (None, "any", ["every field is empty"]),
    "names-row": (None, "data", ["column names"]),
    "case": (lambda line, at: line.upper(), "header", ["only by case"]),
}
LATIN1 = "latin1"  # a byte that is not UTF-8, put in as bytes


def apply(fault: str, fmt: Format, line: str, at: int) -> str:
    change, _, _ = FAULTS[fault]
    if fault == "trailing-separator":
        return line + fmt.sep
    if fault == "empty-fields":
        return fmt.sep * (len(line.split(fmt.sep)) - 1)
    if fault == "names-row":
        return fmt.sep.join(fmt.dataset.file_columns)
    if fault == "extra-field":
        return line + fmt.sep + "x"
    assert change is not None
    return str(change(line, min(at, len(line))))


def expected_line(fmt: Format, where: str) -> int:
    return {"first": 1, "middle": len(fmt.lines) // 2 + 1, "last": len(fmt.lines)}[where]


def message(ds: DatasetConfig) -> str:
    with pytest.raises(IngestError) as err:
        rows_of(ds)
    return str(err.value)


def test_clean_samples_parse_alike_in_every_layout(tmp_path: Path) -> None:
    """The samples themselves are clean: with or without a header, any ending, the same rows."""
    for fmt in FORMATS:
        tables = []
        for ending in (b"\n", b"\r\n"):
            for final in (True, False):
                ds = write(tmp_path, fmt, [line.encode() for line in fmt.lines], ending, final)
                rows, lines = rows_of(ds)
                assert len(rows) == DATA_LINES and lines[-1] == len(fmt.lines)
                tables.append(rows)
        assert all(t == tables[0] for t in tables), fmt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(FORMATS),
    fault=st.sampled_from([*FAULTS, LATIN1]),
    where=st.sampled_from(["first", "middle", "last"]),
    ending=st.sampled_from([b"\n", b"\r\n"]),
    final=st.booleans(),
    at=st.integers(1, 40),
)
def test_a_fault_is_reported_on_its_line_wherever_it_is(
    tmp_path: Path, fmt: Format, fault: str, where: str, ending: bytes, final: bool, at: int
) -> None:
    number = expected_line(fmt, where)
    is_header = fmt.header and number == 1
    scope = FAULTS[fault][1] if fault != LATIN1 else "any"
    if (scope == "header" and not is_header) or (scope == "data" and is_header):
        return
    if fault == "empty-fields" and fmt.sep.isspace():
        return  # a line of separators is a blank line when the separator is a space: skipped, as blank lines are
    if scope == "inner" and where == "last" and not final:
        return  # a carriage return at the very end of the file is a line ending
    lines = [line.encode() for line in fmt.lines]
    if fault == LATIN1:
        lines[number - 1] = lines[number - 1][:at] + b"\xe9" + lines[number - 1][at:]
        words = ["not UTF-8", "b'\\xe9'"]
    else:
        lines[number - 1] = apply(fault, fmt, fmt.lines[number - 1], at).encode()
        words = list(FAULTS[fault][2])
    if fault == "names-row" and not fmt.header and number == 1:
        words.append("dataset.format.header: true")
    if fault == "bom" and number == 1:
        words.append("dataset.format.encoding: utf-8-sig")
    text = message(write(tmp_path, fmt, lines, ending, final))
    assert f"line {number}:" in text, text
    for word in words:
        assert word in text, (word, text)
    others = {int(n) for n in re.findall(r"^\s+line (\d+):", text, re.MULTILINE)} - {number}
    assert not others, f"only line {number} is at fault, the message names {others}: {text}"
    if is_header:
        assert "the header has [" not in text or fault in {"extra-field", "trailing-separator", "names-row"}


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.header], ids=repr)
def test_a_byte_order_mark_on_the_header_is_named_and_no_data_row_becomes_the_header(
    tmp_path: Path, fmt: Format
) -> None:
    """The field case: a header row with a UTF-8 byte order mark in front, read as utf-8."""
    lines = [line.encode() for line in fmt.lines]
    lines[0] = b"\xef\xbb\xbf" + lines[0]
    ds = write(tmp_path, fmt, lines, b"\n", True)
    text = message(ds)
    assert "line 1:" in text and "U+FEFF" in text and "dataset.format.encoding: utf-8-sig" in text
    assert "line 2" not in text and "which the header does not have" not in text
    utf8_sig = ds.model_copy(update={"format": ds.format.model_copy(update={"encoding": "utf-8-sig"})})
    rows, numbers = rows_of(utf8_sig)
    assert numbers[0] == 2 and len(rows) == DATA_LINES  # the mark accepted: line 1 is the header, line 2 data


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.header], ids=repr)
def test_a_file_without_its_header_row_is_named_not_read(tmp_path: Path, fmt: Format) -> None:
    text = message(write(tmp_path, fmt, [line.encode() for line in fmt.lines[1:]], b"\n", True))
    assert "line 1:" in text and "reads like a data row" in text and "dataset.format.header: false" in text


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.header], ids=repr)
def test_the_header_may_come_in_any_case_only_as_configured(tmp_path: Path, fmt: Format) -> None:
    """A header that differs by case, spaces or a trailing separator: named with field and column."""
    header = fmt.lines[0]
    first = header.split(fmt.sep)[0]
    for changed, words in [
        (header.replace(first, first.title(), 1), ["only by case", "field 1, column 1"]),
        (
            header.replace(first, first.replace("_", " ") + " ", 1)
            if "_" in first
            else " " + first.upper() + header[len(first) :],
            ["only by case, spaces"],
        ),
        (header + fmt.sep, ["the header has", "ends with a separator", "no data line does"]),
    ]:
        lines = [changed.encode(), *(line.encode() for line in fmt.lines[1:])]
        text = message(write(tmp_path, fmt, lines, b"\n", True))
        assert text.count("line 1:") == 1 and not re.search(r"^\s+line 2:", text, re.MULTILINE), text
        for word in words:
            assert word in text, (word, text)


def test_a_separator_declaration_from_a_spreadsheet_is_named(tmp_path: Path) -> None:
    fmt = next(f for f in FORMATS if f.header)
    lines = [f"sep={fmt.sep}".encode(), *(line.encode() for line in fmt.lines)]
    text = message(write(tmp_path, fmt, lines, b"\r\n", True))
    assert "line 1:" in text and "separator declaration" in text and "line 2" not in text


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    fmt = FORMATS[0]
    data = "\n".join(fmt.lines).encode("utf-16")
    path = tmp_path / "raw.txt"
    ds = write(tmp_path, fmt, [data], b"\n", False)
    assert path.read_bytes()[:2] == b"\xff\xfe"
    assert "line 1: not UTF-8" in message(ds) and "UTF-16 byte order mark" in message(ds)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(FORMATS),
    blanks=st.lists(
        st.tuples(st.integers(0, DATA_LINES + 1), st.sampled_from(["", " ", "\t", "\r"])), max_size=4
    ),
)
def test_blank_lines_are_skipped_wherever_they_are(
    tmp_path: Path, fmt: Format, blanks: list[tuple[int, str]]
) -> None:
    """Blank lines at the start (before the header), between, and at the end: the same rows, shifted numbers."""
    lines = list(fmt.lines)
    for index, blank in sorted(blanks, reverse=True):
        lines.insert(index, blank)
    rows, numbers = rows_of(write(tmp_path, fmt, [line.encode() for line in lines], b"\n", True))
    clean, _ = rows_of(write(tmp_path, fmt, [line.encode() for line in fmt.lines], b"\n", False))
    assert rows == clean
    assert [lines[n - 1] for n in numbers] == list(fmt.lines[1:] if fmt.header else fmt.lines)


@pytest.mark.parametrize("fmt", FORMATS, ids=repr)
@pytest.mark.parametrize(
    "content", [b"", b"\n", b"\r\n", b"  \n\t\n"], ids=["empty", "newline", "crlf", "blank"]
)
def test_an_empty_file_is_one_error_in_every_format(tmp_path: Path, fmt: Format, content: bytes) -> None:
    path = tmp_path / "raw.txt"
    path.write_bytes(content)
    ds = write(tmp_path, fmt, [content], b"", False)
    assert "the file is empty" in message(ds)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.header], ids=repr)
def test_a_header_alone_has_no_data_rows(tmp_path: Path, fmt: Format) -> None:
    for final in (True, False):
        text = message(write(tmp_path, fmt, [fmt.lines[0].encode()], b"\n", final))
        assert "no data rows" in text


def test_the_real_files_ingest_unchanged() -> None:
    """Every system's committed files still ingest (the reader's rewrite changed no row)."""
    for system in SYSTEMS:
        ds = dataset_of(system)
        for key in ds.files:
            table, entry = ingest_file(ds, key)
            assert entry["rows"] == len(table) > 0


# Found by a newcomer's review: the column named under quoting, the line blamed, and the advice given.


def header_format() -> Format:
    return next(f for f in FORMATS if f.header and f.dataset.format.quoting == "minimal")


def no_header_format() -> Format:
    return next(f for f in FORMATS if not f.header and f.dataset.format.comment_prefix)


def test_a_quoted_separator_does_not_shift_the_column_named(tmp_path: Path) -> None:
    fmt = header_format()
    fields = fmt.lines[2].split(fmt.sep)
    fields[0] = f'"{fields[0]}{fmt.sep}x"'  # a quoted field holding the separator
    fields[2] = fields[2] + "\x07"
    lines = [*fmt.lines[:2], fmt.sep.join(fields), *fmt.lines[3:]]
    text = message(write(tmp_path, fmt, [line.encode() for line in lines], b"\n", True))
    names = fmt.lines[0].split(fmt.sep)
    assert "line 3:" in text and f"(column '{names[2]}')" in text, text


def test_a_lone_data_row_with_a_field_too_many_names_both_lines(tmp_path: Path) -> None:
    fmt = header_format()
    lines = [fmt.lines[0], fmt.lines[1] + fmt.sep + "x"]
    text = message(write(tmp_path, fmt, [line.encode() for line in lines], b"\n", True))
    assert "line 1: the header has" in text and "(line 2: " in text and "a separator too many" in text


@pytest.mark.parametrize(("other", "where"), [(";", "header"), ("\t", "data")])
def test_another_separator_is_named(tmp_path: Path, other: str, where: str) -> None:
    fmt = header_format() if where == "header" else no_header_format()
    lines = [line.replace(fmt.sep, other) for line in fmt.lines]
    text = message(write(tmp_path, fmt, [line.encode() for line in lines], b"\n", True))
    assert f"set dataset.format.separator: {other!r}" in text, text
    assert "dataset.format.header: false" not in text


def test_a_comment_before_the_header_is_named_as_such(tmp_path: Path) -> None:
    fmt = header_format()
    lines = ["# exported 2024-01-01", *fmt.lines]
    text = message(write(tmp_path, fmt, [line.encode() for line in lines], b"\n", True))
    assert "line 1:" in text and "set dataset.format.comment_prefix: '#'" in text


def test_a_header_written_as_a_comment_is_named(tmp_path: Path) -> None:
    fmt = no_header_format()
    prefix = fmt.dataset.format.comment_prefix
    assert prefix is not None
    names = fmt.sep.join(fmt.dataset.file_columns)
    ds = fmt.dataset.model_copy(update={"format": fmt.dataset.format.model_copy(update={"header": True})})
    headered = Format(fmt.system, True, ds, (prefix + names, *fmt.lines))
    text = message(write(tmp_path, headered, [line.encode() for line in headered.lines], b"\n", True))
    assert f"line 1 holds them but starts with dataset.format.comment_prefix {prefix!r}" in text, text


def test_a_second_byte_order_mark_is_not_told_to_set_what_is_set(tmp_path: Path) -> None:
    fmt = header_format()
    ds = write(
        tmp_path,
        fmt,
        [b"\xef\xbb\xbf\xef\xbb\xbf" + fmt.lines[0].encode(), *(x.encode() for x in fmt.lines[1:])],
        b"\n",
        True,
    )
    ds = ds.model_copy(update={"format": ds.format.model_copy(update={"encoding": "utf-8-sig"})})
    text = message(ds)
    assert (
        "line 1:" in text and "a second byte order mark" in text and "set dataset.format.encoding" not in text
    )


def test_utf16_without_a_mark_and_classic_mac_endings_are_named(tmp_path: Path) -> None:
    fmt = no_header_format()
    data = "\n".join(fmt.lines).encode("utf-16-le")
    assert "looks UTF-16 without a byte order mark" in message(write(tmp_path, fmt, [data], b"", False))
    mac = "\r".join(fmt.lines).encode()
    assert "classic Mac file" in message(write(tmp_path, fmt, [mac], b"", False))


def test_header_names_that_differ_by_punctuation_or_are_missing_are_named_together(tmp_path: Path) -> None:
    fmt = header_format()
    names = fmt.lines[0].split(fmt.sep)
    dotted, gone = names[1][:2] + "." + names[1][2:], names[3]
    header = fmt.sep.join([names[0], dotted, names[2], "other", *names[4:]])
    text = message(write(tmp_path, fmt, [header.encode(), *(x.encode() for x in fmt.lines[1:])], b"\n", True))
    assert f"'{dotted}'" in text and "only by case, spaces or punctuation" in text
    assert f"does not have ['{gone}'] at all" in text
