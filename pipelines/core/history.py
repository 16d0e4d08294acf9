"""History from git: champions over the commits that changed the gate report, and DVC experiments (refs/exps).

Read with plain git (no DVC lock), so it works inside a running DVC stage.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _gate_at(rev: str, cwd: Path | None, gate: str) -> dict[str, Any] | None:
    text = _git("show", f"{rev}:{gate}", cwd=cwd)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _summary(gate: dict[str, Any]) -> dict[str, Any]:
    champion = gate.get("champion")
    models = gate.get("models", {})
    return {
        "champion": champion,
        "champion_version": models.get(champion, {}).get("version") if champion else None,
        "primary_metric": gate.get("primary_metric"),
        "primary": models.get(champion, {}).get("primary") if champion else None,
        "challenger": gate.get("challenger"),
        "blocked": sorted(n for n, m in models.items() if m.get("status") == "blocked"),
    }


def _changes(limit: int, path: str, cwd: Path | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(commit, date, subject) and the JSON file ``path`` as committed, for each commit that changed it."""
    out = _git("log", f"-n{limit}", "--format=%H%x09%cs%x09%s", "--", path, cwd=cwd) or ""
    rows = []
    for line in out.splitlines():
        sha, date, subject = line.split("\t", 2)
        found = _gate_at(sha, cwd, path)
        if found:
            rows.append(({"commit": sha[:10], "date": date, "subject": subject}, found))
    return rows


def commits(limit: int, gate: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    """The commits that changed the gate report ``gate`` (a path), newest first, with their champion."""
    return [head | _summary(found) for head, found in _changes(limit, gate, cwd)]


def experiments(limit: int, gate: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    """DVC experiments kept as refs/exps/..., newest first, with their champion."""
    out = (
        _git(
            "for-each-ref",
            "--sort=-committerdate",
            f"--count={limit}",
            "--format=%(refname)%09%(objectname)%09%(committerdate:short)",
            "refs/exps",
            cwd=cwd,
        )
        or ""
    )
    rows = []
    for line in out.splitlines():
        ref, sha, date = line.split("\t")
        if ref.count("/") < 4:  # refs/exps/<base-prefix>/<base-rest>/<name>
            continue
        found = _gate_at(sha, cwd, gate)
        if found:
            rows.append({"name": ref.rsplit("/", 1)[-1], "commit": sha[:10], "date": date, **_summary(found)})
    return rows


def windows(limit: int, decision: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    """The commits that changed the monitor's ``decision`` file (a path), newest first, with its figures."""
    keys = ("decision", "rows", "labelled", "realized_auc", "estimated_auc", "top_alarm", "dp_ratio")
    return [
        head | {k: found.get(k) for k in keys}
        for head, found in _changes(limit, decision, cwd)
        if "decision" in found
    ]
