"""Reading delimited text strictly: bytes to lines, and what may not appear in a field.

Every problem names the 1-based line and shows the text as written (``repr``), never a value the file does not
hold. Used by ``ingest``; ``pipelines.ingest`` turns the problems into one ``ERROR [ingest]`` block.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass

BOM = "\ufeff"
# Characters no field may hold: control characters (tab is the separator's business), format characters (byte
# order, zero-width and bidirectional marks), surrogates, private use, unassigned code points, Unicode line and
# paragraph separators, and U+FFFD, which marks text already damaged by a wrong decoding upstream.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
ASCII_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
NON_ASCII = re.compile(r"[^\x00-\x7f]")
NAMES = {"\r": "carriage return", "\x00": "NUL", BOM: "byte order mark", "\ufffd": "replacement character"}


@dataclass(frozen=True)
class TextProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def describe_char(char: str) -> str:
    name = NAMES.get(char) or unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} ({name.lower()})"


def decode(raw: bytes, encoding: str) -> tuple[str, list[TextProblem]]:
    """Decode ``raw`` as UTF-8 (``utf-8-sig`` also drops one leading byte order mark).

    Undecodable bytes are reported with their line; the text is then decoded with replacement characters only so
    that the other checks can run (the caller stops on any problem).
    """
    try:
        return raw.decode(encoding), []
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        start = raw.rfind(b"\n", 0, err.start) + 1
        column = len(raw[start : err.start].decode("utf-8", "replace")) + 1
        shown = raw[err.start : err.start + 4]
        problem = TextProblem(
            line,
            f"not UTF-8 text: byte(s) {shown!r} at column {column} (is the file Latin-1 or UTF-16? "
            "re-encode it as UTF-8)",
        )
        return raw.decode(encoding, errors="replace"), [problem]


def forbidden_chars(line: str) -> list[str]:
    """The characters in ``line`` that no field may hold (empty for clean text)."""
    found = [c for c in ASCII_CONTROL.findall(line) if c != "\t"]
    if not line.isascii():
        found += [
            c
            for c in NON_ASCII.findall(line)
            if unicodedata.category(c) in FORBIDDEN_CATEGORIES or c == "\ufffd"
        ]
    return found


def split_line(line: str, separator: str, quoting: str) -> list[str]:
    """Split one line into trimmed fields; raise ``ValueError`` naming the quoting problem.

    ``quoting: none``: double quotes are not special, and a double quote anywhere is an error (a stray quote in a
    file that never quotes would otherwise swallow the lines after it). ``quoting: minimal``: RFC 4180 quoting
    within one line (a quoted field may hold the separator and doubled quotes, not a line break).
    """
    if quoting == "none":
        if '"' in line:
            raise ValueError("a stray double quote (dataset.format.quoting is none: this file never quotes)")
        return [f.strip() for f in line.split(separator)]
    try:
        [fields] = list(csv.reader([line], delimiter=separator, skipinitialspace=True, strict=True))
    except csv.Error as err:
        raise ValueError(
            f"malformed quoting ({err}); a quoted field must close on the line it opens"
        ) from None
    if any('"' in f for f in fields) and '""' not in line:
        raise ValueError("a double quote inside an unquoted field")
    return [f.strip() for f in fields]


def excerpt(text: str, limit: int = 60) -> str:
    """``repr`` of at most ``limit`` characters, marked when cut."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
