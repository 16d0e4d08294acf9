"""Malformed text in a raw file: ingest names the line and the value as written, never crashes, never misreports.

Field cases (from public bug reports of CSV readers): a stray double quote on line 10 crashed ingest with
``_csv.Error: field larger than field limit``; the same quote near the end was blamed on the last line; ``inf`` and
``99999999999999999999`` in an int column reached the contract as ``-9223372036854775808``. Siblings of each kind:
quotes, encoding marks, control characters and values too large for their type, placed anywhere in the real file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import ingest
from pipelines.core.io import sha256_file
from tests.conftest import ROOT

RAW = (ROOT / "data/adult/raw/adult.data").read_bytes()
LINES = RAW.decode().split("\n")  # the last element is "" (the file ends with a newline)
N = len([line for line in LINES if line.strip()])


def edit(line: int, change: Callable[[str], str]) -> bytes:
    """The real adult.data with 1-based ``line`` changed."""
    lines = list(LINES)
    changed = change(lines[line - 1])
    assert changed != lines[line - 1], f"the edit does not apply to line {line}: {lines[line - 1]!r}"
    lines[line - 1] = changed
    return "\n".join(lines).encode()


def set_field(line: int, index: int, value: str) -> bytes:
    def change(text: str) -> str:
        fields = text.split(", ")
        fields[index] = value
        return ", ".join(fields)

    return edit(line, change)


def run_ingest(tmp_path: Path, data: bytes, **fmt: str) -> tuple[int, str]:
    """Run the ingest stage on ``data`` as adult.data (pinned, as a pull request would); return (exit code, stderr)."""
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "adult.data").write_bytes(data)
    (raw / "adult.test").write_bytes((ROOT / "data/adult/raw/adult.test").read_bytes())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["adult"]["dataset"]["raw_dir"] = str(raw)
    params["adult"]["dataset"]["files"]["train"]["sha256"] = sha256_file(raw / "adult.data")
    params["adult"]["dataset"]["format"].update(fmt)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ingest.main(
                [
                    "--system",
                    "adult",
                    "--params",
                    str(tmp_path / "params.yaml"),
                    "--out",
                    str(tmp_path / "interim"),
                ]
            )
            code = 0
        except SystemExit as exited:
            code = int(exited.code or 0)
    return code, err.getvalue()


CASES: dict[str, tuple[bytes, list[str]]] = {
    # the field cases
    "quote-line-10": (
        edit(10, lambda t: t.replace(", ", ', "', 1)),
        ["line 10:", "stray double quote"],
    ),
    "quote-near-end": (
        edit(N - 2, lambda t: t.replace(", ", ', "', 1)),
        [f"line {N - 2}:", "stray double quote"],
    ),
    "inf-in-int": (set_field(5, 10, "inf"), ["column 'capital_gain' (int)", "'inf' (line 5)"]),
    "huge-int": (
        set_field(5, 10, "99999999999999999999"),
        ["column 'capital_gain' (int): 1 value(s) do not fit int64: '99999999999999999999' (line 5)"],
    ),
    # quotes
    "closing-quote-only": (
        edit(7, lambda t: t.replace(",", '",', 1)),
        ["line 7:", "double quote"],
    ),
    "quoted-number": (set_field(3, 0, '"38"'), ["line 3:", "double quote"]),
    # encoding marks
    "bom-at-start": (b"\xef\xbb\xbf" + RAW, ["line 1:", "U+FEFF", "utf-8-sig"]),
    "bom-mid-file": (edit(200, lambda t: "\ufeff" + t), ["line 200:", "U+FEFF"]),
    "zero-width-space": (set_field(42, 1, "Pri\u200bvate"), ["line 42:", "U+200B"]),
    "bidi-override": (set_field(43, 13, "\u202eUnited-States"), ["line 43:", "U+202E"]),
    "latin1-byte": (
        edit(11, lambda t: t.replace(", ", ", Caf\xe9", 1)).replace(b"\xc3\xa9", b"\xe9"),
        ["line 11:", "not UTF-8", "b'\\xe9"],
    ),
    "utf16-file": (RAW[:2000].decode().encode("utf-16"), ["line 1:", "not UTF-8"]),
    "replacement-char": (set_field(12, 3, "Bach\ufffdlors"), ["line 12:", "U+FFFD"]),
    # control characters
    "nul-byte": (set_field(13, 1, "Priv\x00ate"), ["line 13:", "U+0000"]),
    "lone-carriage-return": (edit(14, lambda t: t.replace(", ", ",\r", 1)), ["line 14:", "U+000D"]),
    "escape-char": (set_field(15, 5, "Never\x1b-married"), ["line 15:", "U+001B"]),
    "line-separator": (set_field(16, 6, "Sales\u2028"), ["line 16:", "U+2028"]),
    # values too large for their type, or not numbers as written
    "negative-huge-int": (
        set_field(20, 0, "-99999999999999999999"),
        ["'-99999999999999999999' (line 20)", "int64"],
    ),
    "nan-in-int": (set_field(21, 12, "nan"), ["'nan' (line 21)"]),
    "exponent-in-int": (set_field(22, 12, "4e1"), ["'4e1' (line 22)"]),
    "hex-in-int": (set_field(23, 2, "0x1F"), ["'0x1F' (line 23)"]),
    "underscore-in-int": (set_field(24, 2, "77_516"), ["'77_516' (line 24)"]),
    "arabic-indic-digits": (set_field(25, 0, "\u0663\u0669"), ["'\u0663\u0669' (line 25)"]),
    "fullwidth-digits": (set_field(26, 0, "\uff13\uff19"), ["'\uff13\uff19' (line 26)"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_text_is_named_by_line_and_value(case: str, tmp_path: Path) -> None:
    data, expected = CASES[case]
    code, err = run_ingest(tmp_path, data)
    assert code == 1, err
    assert err.startswith("ERROR [ingest]") and "Traceback" not in err
    for words in expected:
        assert words in err, (words, err)
    assert "-9223372036854775808" not in err and "9.223372036854776e" not in err
    assert not (tmp_path / "interim").exists(), "nothing is written when ingest stops"


def test_clean_file_still_ingests(tmp_path: Path) -> None:
    code, err = run_ingest(tmp_path, RAW)
    assert code == 0, err


def test_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    code, err = run_ingest(tmp_path, RAW.replace(b"\n", b"\r\n"))
    assert code == 0, err


def test_utf8_sig_accepts_one_leading_bom_only(tmp_path: Path) -> None:
    assert run_ingest(tmp_path, b"\xef\xbb\xbf" + RAW, encoding="utf-8-sig")[0] == 0
    code, err = run_ingest(tmp_path, b"\xef\xbb\xbf\xef\xbb\xbf" + RAW, encoding="utf-8-sig")
    assert code == 1 and "line 1:" in err and "U+FEFF" in err


def test_minimal_quoting_reads_rfc4180_fields_and_names_the_line_a_quote_opens(tmp_path: Path) -> None:
    quoted = set_field(30, 1, '"Private"')
    assert run_ingest(tmp_path, quoted, quoting="minimal")[0] == 0
    unclosed = set_field(31, 1, '"Private')
    code, err = run_ingest(tmp_path, unclosed, quoting="minimal")
    assert code == 1 and "line 31:" in err and "does not close on the line it opens" in err
    # a stray quote inside an unquoted field is caught even when the line also holds a legitimate empty ""
    stray = edit(37, lambda t: t.replace(", ", ', Pri"vate, "", ', 1))
    code, err = run_ingest(tmp_path, stray, quoting="minimal")
    assert code == 1 and "line 37:" in err and "a double quote inside an unquoted field" in err


# Property: a forbidden character anywhere in any line is reported on that line, and nothing is written.
FORBIDDEN = st.sampled_from(
    [
        '"',
        "\x00",
        "\x07",
        "\x1b",
        "\x7f",
        "\r",
        "\x85",
        "\u200b",
        "\u200e",
        "\u2028",
        "\ufeff",
        "\ufffd",
        "\ue000",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(1, N), position=st.integers(0, 120), char=FORBIDDEN)
def test_any_forbidden_character_is_named_on_its_line(
    tmp_path_factory: pytest.TempPathFactory, line: int, position: int, char: str
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    data = edit(line, lambda t: t[: min(position, len(t))] + char + t[min(position, len(t)) :])
    code, err = run_ingest(tmp, data)
    assert code == 1 and f"line {line}:" in err and "Traceback" not in err, err


# Property: a number in an int column is read exactly as written, or reported as written; never wrapped.
INT_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e3", "1.5", "0x10", "1_0", "", "+", "--1", "٣", "1.0", "-0"]),
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(INT_TEXT, min_size=1, max_size=8))
def test_int_column_is_exact_or_reported(values: list[str]) -> None:
    import pandas as pd

    series = pd.Series(values, dtype="string").mask(pd.Series(values) == "")
    column, found = ingest.parse_numbers(series, "int")
    bad = {i for rows in found.values() for i in rows}
    for i, text in enumerate(values):
        if text == "":
            assert pd.isna(column[i]) and i not in bad
        elif i in bad:
            assert pd.isna(column[i])
        else:
            assert int(column[i]) == int(text.split(".")[0]) and -(2**63) <= int(column[i]) < 2**63


# Found by a newcomer's break test: counts, the character shown, floats that vanish, rows mistaken for comments.


def test_undecodable_lines_are_each_reported_once_with_their_bytes(tmp_path: Path) -> None:
    data = edit(6, lambda t: t.replace(", ", ", Caf\xe9, ", 1)).replace(b"\xc3\xa9", b"\xe9")
    lines = data.split(b"\n")
    lines[9] = lines[9].replace(b", ", b", Na\xefve, ", 1)
    code, err = run_ingest(tmp_path, b"\n".join(lines))
    assert code == 1 and "2 line(s)" in err
    assert (
        "line 6: not UTF-8 text: byte(s) b'\\xe9'" in err
        and "line 10: not UTF-8 text: byte(s) b'\\xef" in err
    )
    assert "U+FFFD" not in err  # never a character the file does not hold


def test_the_character_at_fault_is_shown_whatever_its_column(tmp_path: Path) -> None:
    code, err = run_ingest(tmp_path, set_field(44, 13, "United\u200b-States"))
    assert code == 1 and "line 44:" in err and "column 'native_country'" in err and "\\u200b" in err


def test_a_float_that_underflows_to_zero_is_reported() -> None:
    import pandas as pd

    values = pd.Series(
        ["1e-400", "0.0", "-0e5", "2.5e-300", "123456789012345678901234567890"], dtype="string"
    )
    column, found = ingest.parse_numbers(values, "float")
    assert found == {"do not fit float64": [0]}
    assert column[1] == 0.0 and column[3] == 2.5e-300 and column[4] == pytest.approx(1.2345678901234568e29)


def test_a_data_row_that_starts_like_a_comment_is_not_dropped(tmp_path: Path) -> None:
    code, err = run_ingest(tmp_path, edit(200, lambda t: "|" + t))
    assert code == 1 and "'|24' (line 200)" in err  # read as data: its bad age is reported, not skipped


def test_validate_names_the_same_line_as_the_file(tmp_path: Path) -> None:
    from pipelines import validate

    code, err = run_ingest(tmp_path, set_field(6, 0, "-4"))
    assert code == 0, err
    params = str(tmp_path / "params.yaml")
    with pytest.raises(SystemExit):
        validate.main(
            [
                "--system",
                "adult",
                "--params",
                params,
                "--data",
                str(tmp_path / "interim"),
                "--out",
                str(tmp_path / "v"),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
    report = (tmp_path / "r.json").read_text()
    assert '"line": 6' in report and "-4 (line 6)" in report
