"""YAML traps in conf/, caught before Hydra composes it: each names the file, the line and how to write it.

YAML 1.1 (PyYAML, and OmegaConf on top of it) reads some plain scalars as something else than they look:
``017`` is the octal number 15, ``1:30`` the sexagesimal number 90, ``no``/``off``/``y`` are booleans (a country code
``NO`` becomes false), and a lone ``|`` or ``>`` starts an empty block scalar. These compose into valid values of
the right type, so no schema can tell them apart from what was meant; they are rejected here instead. Syntax
errors and duplicate keys, which PyYAML would report as a traceback or resolve silently, are reported the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

OCTAL = re.compile(r"[-+]?0[0-9_]+")
SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
BOOLEAN_WORDS = {"y", "yes", "n", "no", "on", "off"}  # true/false are fine; YAML 1.1 also reads these


def scalar_problem(node: yaml.ScalarNode) -> str:
    """Why a scalar node is a trap ('' when it is not)."""
    text = node.value
    if node.style in ("|", ">") and text == "":
        return (
            f"an empty block scalar ('{node.style}' alone): to mean the character, quote it: '{node.style}'"
        )
    if node.style is not None:  # quoted or block: read as written
        return ""
    if OCTAL.fullmatch(text):
        return f"{text} is read as an octal number ({int(text.replace('_', ''), 8)}): write it without leading zeros, or quote it"
    if SEXAGESIMAL.fullmatch(text):
        return f"{text} is read as a base-60 number: quote it if it is text (a time, a ratio)"
    if text.lower() in BOOLEAN_WORDS:
        return f"{text} is read as a boolean: write true/false, or quote it ('{text}') if it is text"
    return ""


def walk(node: yaml.Node, path: Path, problems: list[str]) -> None:
    if isinstance(node, yaml.ScalarNode):
        problem = scalar_problem(node)
        if problem:
            problems.append(f"{path}:{node.start_mark.line + 1}: {problem}")
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            walk(child, path, problems)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    problems.append(
                        f"{path}:{key.start_mark.line + 1}: duplicate key '{key.value}' (first on line "
                        f"{seen[key.value]}); YAML keeps only one of them"
                    )
                seen.setdefault(key.value, key.start_mark.line + 1)
            walk(key, path, problems)
            walk(value, path, problems)


def lint_file(path: Path) -> list[str]:
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        reason = getattr(err, "problem", None) or str(err)
        return [
            f"{where}: not valid YAML: {reason} (quote values that start with ?, <, >, |, @, ` or contain ': ')"
        ]
    except UnicodeDecodeError as err:
        return [f"{path}: not UTF-8 text (byte {err.start})"]
    problems: list[str] = []
    if node is not None:
        walk(node, path, problems)
    return problems


def lint_tree(folder: Path) -> list[str]:
    """Every problem in every .yaml file under ``folder``, in path order."""
    return [p for path in sorted(folder.rglob("*.yaml")) for p in lint_file(path)]
