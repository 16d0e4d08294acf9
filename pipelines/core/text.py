"""Reading delimited text strictly: bytes to lines, and what may not appear in a field.

Every problem names the 1-based line and shows the text as written (``repr``), never a value the file does not
hold. Used by ``ingest``; ``pipelines.ingest`` turns the problems into one ``ERROR [ingest]`` block.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
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


def decode_line(raw: bytes, number: int, encoding: str) -> tuple[str, TextProblem | None]:
    """Decode one line as UTF-8 (``utf-8-sig`` drops one byte order mark at the start of the file).

    An undecodable line is reported with its first bad byte(s) as written and their column, never decoded with
    replacement characters (which would report a character the file does not hold).
    """
    if number == 1 and encoding == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as err:
        column = len(raw[: err.start].decode("utf-8", "replace")) + 1
        before = raw[max(0, err.start - 20) : err.start].decode("utf-8", "replace")
        if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "a UTF-16 byte order mark: the file is UTF-16 (a spreadsheet's 'Unicode text'); re-encode it as UTF-8"
        else:
            hint = "is the file Latin-1 or UTF-16? re-encode it as UTF-8"
        problem = TextProblem(
            number,
            f"not UTF-8 text: byte(s) {raw[err.start : err.end]!r} at column {column}, after {before!r} ({hint})",
        )
        return "", problem


def char_hint(line: str, position: int) -> str:
    """What a forbidden character most likely means, beyond its name, or ""."""
    char = line[position]
    if char == "\x00" and line.count("\x00") * 3 >= len(line):
        return " (NUL between characters: the file looks UTF-16 without a byte order mark; re-encode it as UTF-8)"
    if char == "\r":
        return " (a carriage return inside a line: lines must end with \\n or \\r\\n; a classic Mac file ends them with \\r alone)"
    return ""


def forbidden_char(line: str) -> int:
    """The position of the first character in ``line`` that no field may hold (-1 for clean text)."""
    positions = [m.start() for m in ASCII_CONTROL.finditer(line) if m.group() != "\t"][:1]
    if not line.isascii():
        positions += [
            m.start()
            for m in NON_ASCII.finditer(line)
            if unicodedata.category(m.group()) in FORBIDDEN_CATEGORIES or m.group() == "\ufffd"
        ][:1]
    return min(positions, default=-1)


def around(line: str, position: int, width: int = 24) -> str:
    """``repr`` of the text around ``position``, so the character at fault is always shown."""
    start, end = max(0, position - width), min(len(line), position + width + 1)
    return ("..." if start else "") + repr(line[start:end]) + ("..." if end < len(line) else "")


def field_at(line: str, position: int, separator: str, names: list[str], quoting: str = "none") -> str:
    """The column a position falls in, for the message: separators are counted outside double quotes when the
    file quotes (``quoting: minimal``), so a quoted separator does not shift the column named."""
    if quoting == "none":
        index = line[:position].count(separator)
    else:
        index, quoted = 0, False
        for char in line[:position]:
            if char == '"':
                quoted = not quoted
            elif char == separator and not quoted:
                index += 1
    return f"column '{names[index]}'" if index < len(names) else f"field {index + 1}"


OTHER_SEPARATORS = (",", ";", "\t", "|", " ")


def separator_hint(
    line: str, separator: str, width: int, names: Callable[[list[str]], bool] | None = None
) -> str:
    """Advice when ``line`` looks separated by another character than ``separator``: it splits into ``width``
    fields by it, or (a header) into fields that ``names`` accepts as the column names; "" when it does not."""
    for other in OTHER_SEPARATORS:
        if other != separator and other in line:
            fields = [f.strip() for f in line.split(other)]
            if len(fields) == width or (names is not None and names(fields)):
                return f"; the line looks {other!r}-separated: set dataset.format.separator: {other!r}?"
    return ""


def split_line(line: str, separator: str, quoting: str) -> list[str]:
    """Split one line into trimmed fields; raise ``QuoteError`` at the first quoting problem (see ``split_fields``)."""
    if quoting == "none" and '"' not in line:
        return [f.strip() for f in line.split(separator)]  # the common case, without the columns
    return [value for _, value in split_fields(line, separator, quoting)]


def split_fields(line: str, separator: str, quoting: str) -> list[tuple[int, str]]:
    """Split one line into ``(column, value)`` pairs: each field's trimmed value and the 0-based position where its
    text starts (for messages that point at a field); raise ``QuoteError`` at the first quoting problem.

    ``quoting: none``: double quotes are not special, and a double quote anywhere is an error (a stray quote in a
    file that never quotes would otherwise swallow the lines after it). ``quoting: minimal``: RFC 4180 quoting
    within one line: a field is either unquoted and free of double quotes, or wholly quoted with inner quotes
    doubled (it may hold the separator, not a line break). Either way a line with ``k`` separators outside quotes
    has ``k + 1`` fields, whatever the separator (a space included).
    """
    if quoting == "none":
        if '"' in line:
            raise QuoteError(
                line.index('"'),
                "a stray double quote (dataset.format.quoting is none: this file never quotes)",
            )
        out, start = [], 0
        for raw in line.split(separator):
            value = raw.strip()
            out.append((start + (raw.index(value) if value else 0), value))
            start += len(raw) + 1
        return out
    fields: list[tuple[int, str]] = []
    i, n = 0, len(line)
    while True:
        begin = i
        while i < n and line[i] != separator and line[i].isspace():
            i += 1
        if i < n and line[i] == '"':
            start, i, parts = i, i + 1, []
            while True:
                close = line.find('"', i)
                if close < 0:
                    raise QuoteError(start, "a quoted field does not close on the line it opens")
                parts.append(line[i:close])
                if line.startswith('""', close):
                    parts.append('"')
                    i = close + 2
                    continue
                i = close + 1
                break
            rest = line.find(separator, i)
            tail = line[i:] if rest < 0 else line[i:rest]
            if tail.strip():
                raise QuoteError(i, "text after the closing quote of a quoted field")
            fields.append((start, "".join(parts)))
        else:
            rest = line.find(separator, begin)
            raw = line[begin:] if rest < 0 else line[begin:rest]
            if '"' in raw:
                raise QuoteError(begin + raw.index('"'), "a double quote inside an unquoted field")
            value = raw.strip()
            fields.append((begin + (raw.index(value) if value else 0), value))
        if rest < 0:
            return fields
        i = rest + 1


class QuoteError(ValueError):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


def excerpt(text: str, limit: int = 60) -> str:
    """``repr`` of at most ``limit`` characters, marked when cut."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
