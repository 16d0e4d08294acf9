"""Does a shared file depend on one system's data? A leak is shared code or a shared template that spells a
system's name or raw file, indexes or reads one of its columns, or compares or indexes with one of its labels.

Read from the code's syntax (``ast`` for Python, Jinja's own parser for templates), not its text, so that prose
and common words pass: docstrings, comments and plain text may discuss a system; a column name counts only as a
string literal or attribute in code, and not when the platform uses the same word for its own keys (a dict key it
writes, a keyword, a field it declares: a column called ``status`` does not make ``{"status": "ok"}`` a leak); a
label counts only where code compares or indexes with it, and a label of digits never counts (``'1'`` is every
counter's business). A line that must keep such a word for the platform's own reasons says so with
``# not-system-specific`` (Python) or ``{# not-system-specific #}`` (templates).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

PRAGMA = "not-system-specific"
YAML_BOOLEAN_WORDS = {"yes", "no", "true", "false", "on", "off"}  # the YAML lint must name them
HOW = {
    "name": "take the system from --system or the config, never spell it",
    "file": "take the file from dataset.files, never spell it",
    "column": "take the column from config (dataset.columns, features, dataset.target.column), never spell it",
    "label": "take labels from dataset.target.labels (or the target's 0/1), never spell them",
}


@dataclass(frozen=True)
class Word:
    text: str
    kind: str  # name, file, column or label
    owner: str  # "column of credit (conf/dataset/credit.yaml)"


@dataclass(frozen=True)
class Leak:
    path: str
    line: int
    how: str  # "indexes with", "spells", ...
    word: Word

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.how} {self.word.text!r}, a {self.word.kind} of {self.word.owner}. Shared "
            f"code serves every system: {HOW[self.word.kind]}. If the word is the platform's own here, not the "
            f"system's, mark the line `{PRAGMA}`."
        )


def vocabulary(params: dict[str, Any]) -> list[Word]:
    """Every word that belongs to one system: its name, data set name and raw files, its columns, its labels and
    how pages name its classes."""
    words: list[Word] = []
    for system in params["systems"]:
        ds = params[system]["dataset"]
        where = f"{system} (its dataset config)"
        words += [Word(system, "name", where), Word(ds["name"], "name", where)]
        words += [Word(Path(f["path"]).name, "file", where) for f in ds["files"].values()]
        columns = {*ds["columns"], *(ds.get("derived") or {}), ds["target"]["column"]}
        words += [Word(c, "column", where) for c in sorted(columns)]
        labels = {*ds["target"]["labels"], *(ds["target"].get("display") or {}).values()}
        words += [
            Word(x, "label", where) for x in sorted(labels) if not x.isdigit() and x not in YAML_BOOLEAN_WORDS
        ]
    return words


def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)


class Checker:
    """Leaks of ``words`` in shared files; ``own`` is the platform's own vocabulary (see ``own_words``)."""

    def __init__(self, words: Iterable[Word], own: set[str]) -> None:
        self.words = list(words)
        self.own = own
        self.by_text: dict[str, list[Word]] = {}
        for w in self.words:
            self.by_text.setdefault(w.text, []).append(w)
        self.spelled = [(w, _whole_word(w.text)) for w in self.words if w.kind in ("name", "file")]

    def spells(self, text: str) -> Iterator[Word]:
        for word, pattern in self.spelled:
            if pattern.search(text):
                yield word

    def literal(self, value: str, position: str) -> Iterator[tuple[str, Word]]:
        """A string literal in code: names and files anywhere in it; a column as the whole literal, unless the
        platform uses the word itself; a label as the whole literal where code compares or indexes with it."""
        for word in self.spells(value):
            yield "spells", word
        if position == "fragment":
            return
        for word in self.by_text.get(value, []):
            if word.kind == "column" and value not in self.own:
                yield {"index": "indexes with", "compare": "compares with"}.get(position, "names"), word
            elif word.kind == "label" and position in ("index", "compare"):
                yield ("indexes with" if position == "index" else "compares with"), word

    def identifier(self, name: str) -> Iterator[tuple[str, Word]]:
        tokens = name.lower().split("_")
        for word in self.words:
            if word.kind == "name" and word.text.lower() in tokens:
                yield "names", word

    def attribute(self, name: str) -> Iterator[tuple[str, Word]]:
        for word in self.by_text.get(name, []):
            if word.kind == "column" and name not in self.own:
                yield "reads attribute", word
        yield from self.identifier(name)

    # Python

    def python(self, path: str, source: str) -> list[Leak]:
        tree = ast.parse(source)
        lines = source.splitlines()
        skip = _docstrings(tree)
        position = _positions(tree)
        found: list[Leak] = []

        def add(node: ast.AST, hits: Iterable[tuple[str, Word]]) -> None:
            line = getattr(node, "lineno", 0)
            if line and PRAGMA in lines[line - 1]:
                return
            found.extend(leak for how, word in hits if (leak := Leak(path, line, how, word)) not in found)

        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                add(node, self.literal(node.value, position.get(id(node), "")))
            elif isinstance(node, ast.Name):
                add(node, self.identifier(node.id))
            elif isinstance(node, ast.Attribute):
                add(node, self.attribute(node.attr))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                add(node, self.identifier(node.name))
            elif isinstance(node, ast.arg):
                add(node, self.identifier(node.arg))
        return found

    # Jinja templates and Markdown pages

    def template(self, path: str, source: str) -> list[Leak]:
        tree = jinja2.Environment().parse(source)
        lines = source.splitlines()
        found: list[Leak] = []

        def add(node: nodes.Node, hits: Iterable[tuple[str, Word]]) -> None:
            line = getattr(node, "lineno", 0)
            if line and PRAGMA in lines[line - 1]:
                return
            found.extend(leak for how, word in hits if (leak := Leak(path, line, how, word)) not in found)

        position: dict[int, str] = {}
        for node in tree.find_all((nodes.Getitem, nodes.Compare, nodes.Operand)):
            if isinstance(node, nodes.Getitem):
                position[id(node.arg)] = "index"
            elif isinstance(node, nodes.Compare):
                position[id(node.expr)] = "compare"
            else:
                position[id(node.expr)] = "compare"
        for node in tree.find_all(nodes.Node):
            if isinstance(node, nodes.TemplateData):
                add(node, (("spells", w) for w in self.spells(node.data)))
            elif isinstance(node, nodes.Const) and isinstance(node.value, str):
                add(node, self.literal(node.value, position.get(id(node), "")))
            elif isinstance(node, nodes.Getattr):
                add(node, self.attribute(node.attr))
            elif isinstance(node, nodes.Name):
                add(node, self.identifier(node.name))
        return found

    def prose(self, path: str, source: str) -> list[Leak]:
        """A hand-written page: only names and files count (columns and labels are words in prose)."""
        found: list[Leak] = []
        for n, line in enumerate(source.splitlines(), start=1):
            if PRAGMA not in line:
                found.extend(
                    leak for w in self.spells(line) if (leak := Leak(path, n, "spells", w)) not in found
                )
        return found

    def check(self, path: Path, root: Path) -> list[Leak]:
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            return self.python(rel, source)
        if path.suffix == ".j2":
            return self.template(rel, source)
        return self.prose(rel, source)


def own_words(paths: Iterable[Path]) -> set[str]:
    """The platform's own vocabulary in its Python files: the keys of dict literals it writes, keyword names it
    passes, the fields and attributes it declares, its parameters, and the names it binds."""
    own: set[str] = set()
    for path in paths:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                own |= {
                    k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
            elif isinstance(node, ast.keyword) and node.arg:
                own.add(node.arg)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
            elif isinstance(node, ast.arg):
                own.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
    return own


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _positions(tree: ast.AST) -> dict[int, str]:
    """Where each string literal stands: ``index`` (a subscript, ``.get``/``.pop``/``.loc``'s key), ``compare``
    (an operand of ``==``, ``in``, ...)."""
    out: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            for sub in ast.walk(node.slice):
                out[id(sub)] = "index"
        elif isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                for sub in ast.walk(operand):
                    out.setdefault(id(sub), "compare")
        elif isinstance(node, ast.JoinedStr):  # an f-string's fixed pieces are fragments, not whole literals
            for part in node.values:
                out[id(part)] = "fragment"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault", "loc", "at")
            and node.args
        ):
            out[id(node.args[0])] = "index"
    return out
