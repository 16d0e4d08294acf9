"""Jinja rendering for generated Markdown: templates hold the prose, code supplies only data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def environment(*folders: Path) -> jinja2.Environment:
    """A strict environment: an undefined variable is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in (*folders, TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["pct"] = lambda x, digits=1: "n/a" if x is None else f"{100 * x:.{digits}f}%"
    env.filters["num"] = lambda x, digits=3: (
        "n/a" if x is None else (f"{x:,}" if isinstance(x, int) else f"{x:.{digits}f}")
    )
    return env


def render(template: str, *folders: Path, **data: Any) -> str:
    """Render ``template`` (a file name in ``folders`` or pipelines/templates) with ``data``."""
    return environment(*folders).get_template(template).render(**data)
