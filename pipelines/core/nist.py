"""NIST AI RMF 1.0 subcategory IDs: validation and coverage, from site/curated/nist_ai_rmf.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ID = re.compile(r"^(GOVERN|MAP|MEASURE|MANAGE) (\d+)\.(\d+)$")


class Framework:
    """The functions, categories and subcategory counts of the AI RMF core."""

    def __init__(self, path: Path) -> None:
        self.data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))["functions"]

    def valid(self, subcategory: str) -> bool:
        match = ID.match(subcategory)
        if not match:
            return False
        function, category, number = match.group(1), int(match.group(2)), int(match.group(3))
        categories = self.data[function]["categories"]
        return category in categories and 1 <= number <= categories[category]["subcategories"]

    def problem(self, subcategory: str) -> str | None:
        """Why ``subcategory`` is not a valid ID (None when it is)."""
        if self.valid(subcategory):
            return None
        match = ID.match(subcategory)
        if not match:
            return f"'{subcategory}' is not of the form 'FUNCTION C.S' (e.g. 'MEASURE 2.11')"
        function, category = match.group(1), int(match.group(2))
        categories = self.data[function]["categories"]
        if category not in categories:
            return f"{function} has categories 1 to {max(categories)}, not {category}"
        return f"{function} {category} has subcategories {function} {category}.1 to .{categories[category]['subcategories']}"

    def coverage(self, subcategories: list[str]) -> list[dict[str, Any]]:
        """Per function: subcategories in the framework, those cited, and the categories touched."""
        rows = []
        for function, spec in self.data.items():
            total = sum(c["subcategories"] for c in spec["categories"].values())
            cited = sorted(
                {s for s in subcategories if s.startswith(function + " ")},
                key=lambda s: tuple(int(x) for x in s.split(" ")[1].split(".")),
            )
            categories = sorted({int(s.split(" ")[1].split(".")[0]) for s in cited})
            rows.append(
                {
                    "function": function,
                    "title": spec["title"],
                    "subcategories": total,
                    "cited": cited,
                    "categories": len(spec["categories"]),
                    "categories_cited": categories,
                }
            )
        return rows
