"""Does a shared file depend on one system's data? A leak is shared code or a shared template that spells a
system's name or raw file, indexes or reads one of its columns, or compares, indexes or maps with one of its labels.

Read from the code's syntax (``ast`` for Python, Jinja's own parser for templates), not its text, so that prose
and common words pass:

- docstrings and comments may discuss a system; in other strings a system's name counts where it is the whole
  string or part of a path, a stage or a file name (``data/adult/raw``, ``report@adult``), not in a sentence
  ("no credit left"); a raw file's name counts anywhere;
- a column counts where code indexes, compares or maps with it as a whole string (or a whole f-string), reads it
  as an attribute or names it in a query string (``frame.query``, ``con.sql``), and, when it is not a plain word
  (``capital_gain``, not ``rate``), as any whole string literal; never when the platform uses the same word for its
  own keys: a dict key it writes, a keyword it passes, a field it declares (a column called ``status`` does not
  make ``{"status": "ok"}`` or ``report["status"]`` a leak);
- a label counts where code compares with it, indexes with it, maps it (a dict key) or looks it up (``isin``,
  ``index``, ``case``); a label that is a number (``1``, ``-1``, ``2.0``) never counts;
- identifiers count when a word of them (``snake_case`` or ``camelCase``) is a system's name, imports included.

A line that must keep such a word for the platform's own reasons says so with ``# not-system-specific``
(Python) or ``{# not-system-specific #}`` (templates).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

PRAGMA = "not-system-specific"
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
HOW = {
    "name": "take the system from --system or the config, never spell it",
    "file": "take the file from dataset.files, never spell it",
    "column": "take the column from config (dataset.columns, features, dataset.target.column), never spell it",
    "label": "take labels from dataset.target.labels (or the target's 0/1), never spell them",
}
LOOKUPS = {"get", "pop", "setdefault", "loc", "at", "isin", "index", "count", "remove", "discard"}
QUERIES = {"query", "sql", "execute", "eval", "filter", "where"}


@dataclass(frozen=True)
class Word:
    text: str
    kind: str  # name, file, column or label
    owner: str  # "credit (its dataset config)"


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
    """Every word that belongs to one system: its name, data set name and raw files, its columns and labels."""
    words: list[Word] = []
    for system in params["systems"]:
        ds = params[system]["dataset"]
        where = f"{system} (its dataset config)"
        words += [Word(system, "name", where), Word(ds["name"], "name", where)]
        words += [Word(Path(f["path"]).name, "file", where) for f in ds["files"].values()]
        columns = {*ds["columns"], *(ds.get("derived") or {}), ds["target"]["column"]}
        words += [Word(c, "column", where) for c in sorted(columns)]
        words += [Word(x, "label", where) for x in sorted(ds["target"]["labels"]) if not NUMBER.fullmatch(x)]
    return list(dict.fromkeys(words))


def _tokens(name: str) -> set[str]:
    """The words of an identifier or dotted module path: snake_case, camelCase and dots split."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.replace("_", " ").replace(".", " "))
    return {t.lower() for t in spaced.split()}


class Checker:
    """Leaks of ``words`` in shared files; ``own`` is the platform's own vocabulary (see ``own_words``)."""

    def __init__(self, words: Iterable[Word], own: set[str]) -> None:
        self.words = list(dict.fromkeys(words))
        self.own = own
        self.by_text: dict[str, list[Word]] = {}
        for w in self.words:
            self.by_text.setdefault(w.text, []).append(w)
        esc = re.escape
        self.anywhere = [
            (w, re.compile(rf"(?<![\w-]){esc(w.text)}(?![\w-])", re.I))
            for w in self.words
            if w.kind == "name"
        ]
        self.in_paths = [  # a name as part of a path, a stage or a file name, or the whole string
            (w, re.compile(rf"(^|[/@.\\])({esc(w.text)})([/@.\\]|$)|^{esc(w.text)}$", re.I))
            for w in self.words
            if w.kind == "name"
        ]
        self.files = [
            (w, re.compile(rf"(?<![\w.-]){esc(w.text)}(?![\w-])", re.I))
            for w in self.words
            if w.kind == "file"
        ]
        self.columns = [
            (w, re.compile(rf"(?<![\w.]){esc(w.text)}(?!\w)")) for w in self.words if w.kind == "column"
        ]

    def spells(self, text: str, prose: bool) -> Iterator[Word]:
        """Names (anywhere in prose, in paths elsewhere) and raw files (anywhere) that ``text`` spells."""
        for word, pattern in (self.anywhere if prose else self.in_paths) + self.files:
            if pattern.search(text):
                yield word

    def literal(self, value: str, position: str) -> Iterator[tuple[str, Word]]:
        """A string in code at ``position`` (index, compare, map, query, fragment or "")."""
        for word in self.spells(value, prose=False):
            yield "spells", word
        if position == "query":
            for word, pattern in self.columns:
                if pattern.search(value) and word.text not in self.own:
                    yield "queries", word
            return
        if position == "fragment":
            return
        for word in self.by_text.get(value, []):
            # a plain word ("rate", "job") counts only where code indexes, compares or maps with it; a name like
            # "capital_gain" wherever it stands (a call's argument: sort_values("capital_gain"))
            if word.kind == "column" and value not in self.own and (position or not value.isalpha()):
                yield (
                    {"index": "indexes with", "compare": "compares with", "map": "maps"}.get(
                        position, "names"
                    ),
                    word,
                )
            elif word.kind == "label" and position in ("index", "compare", "map"):
                yield {"index": "indexes with", "compare": "compares with", "map": "maps"}[position], word

    def identifier(self, name: str) -> Iterator[tuple[str, Word]]:
        tokens = _tokens(name)
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
        skip = _docstrings(tree)
        position = _positions(tree)
        found: list[Leak] = []
        add = _collector(path, source, found)

        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str | bytes)
                and id(node) not in skip
            ):
                value = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                add(node, self.literal(value, position.get(id(node), "")))
            elif isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
                text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
                add(node, self.literal(text, position.get(id(node), "")))
            elif isinstance(node, ast.Name):
                add(node, self.identifier(node.id))
            elif isinstance(node, ast.Attribute):
                add(node, self.attribute(node.attr))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                add(node, self.identifier(node.name))
            elif isinstance(node, ast.arg):
                add(node, self.identifier(node.arg))
            elif isinstance(node, ast.alias):
                add(node, self.identifier(node.name))
                if node.asname:
                    add(node, self.identifier(node.asname))
            elif isinstance(node, ast.ImportFrom) and node.module:
                add(node, self.identifier(node.module))
        return found

    # Jinja templates and Markdown pages

    def template(self, path: str, source: str) -> list[Leak]:
        tree = jinja2.Environment().parse(source)
        found: list[Leak] = []
        add = _collector(path, source, found)

        position: dict[int, str] = {}
        for node in tree.find_all((nodes.Getitem, nodes.Compare, nodes.Operand, nodes.Filter, nodes.Test)):
            if isinstance(node, nodes.Getitem):
                position[id(node.arg)] = "index"
            elif isinstance(node, nodes.Compare | nodes.Operand):
                position[id(node.expr)] = "compare"
            else:  # a filter's or test's arguments: selectattr("label", "equalto", "x") compares
                for arg in node.args:
                    position.setdefault(id(arg), "compare")
        for node in tree.find_all(nodes.Node):
            if isinstance(node, nodes.TemplateData):
                add(node, (("spells", w) for w in self.spells(node.data, prose=True)))
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
                    leak
                    for w in self.spells(line, prose=True)
                    if (leak := Leak(path, n, "spells", w)) not in found
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


def _collector(
    path: str, source: str, found: list[Leak]
) -> Callable[[Any, Iterable[tuple[str, Word]]], None]:
    """``add(node, hits)``: the hits at the node's line, once each, unless the line carries the pragma."""
    lines = source.splitlines()

    def add(node: Any, hits: Iterable[tuple[str, Word]]) -> None:
        line = getattr(node, "lineno", 0)
        if line and PRAGMA in lines[line - 1]:
            return
        found.extend(leak for how, word in hits if (leak := Leak(path, line, how, word)) not in found)

    return add


def own_words(paths: Iterable[Path]) -> set[str]:
    """The platform's own keys in its Python files: the keys of dict literals it writes, the keyword names it
    passes, and the fields its classes declare (``name: type`` in a class body). Not its variable or parameter
    names: ``income = frame["income"]`` must not excuse itself."""
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
            elif isinstance(node, ast.ClassDef):
                own |= {
                    s.target.id
                    for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                }
    return own


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _positions(tree: ast.AST) -> dict[int, str]:
    """Where each string literal stands: ``index`` (a subscript; ``.get``, ``.isin``, ``.index``... and the items
    of a list given to them), ``compare`` (an operand of ``==``, ``in``, ..., a ``case`` value), ``map`` (a dict
    literal's key), ``query`` (the text given to ``.query``, ``.sql``, ``.execute``...), ``fragment`` (a piece of
    an f-string with a placeholder)."""
    out: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            for sub in ast.walk(node.slice):
                out[id(sub)] = "index"
        elif isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                for sub in ast.walk(operand):
                    out.setdefault(id(sub), "compare")
        elif isinstance(node, ast.MatchValue):
            out[id(node.value)] = "compare"
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    out.setdefault(id(key), "map")
        elif isinstance(node, ast.JoinedStr) and not all(isinstance(v, ast.Constant) for v in node.values):
            for part in node.values:
                out[id(part)] = "fragment"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            first = node.args[0]
            if node.func.attr in LOOKUPS:
                for sub in (
                    first,
                    *(first.elts if isinstance(first, ast.List | ast.Tuple | ast.Set) else ()),
                ):
                    out[id(sub)] = "index"
            elif node.func.attr in QUERIES:
                out.setdefault(id(first), "query")
    return out
