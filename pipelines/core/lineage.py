"""Where an artifact came from: git commit, data hashes recorded in dvc.lock, a hash of the params that made it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """HEAD's commit and whether tracked files differ from it (``unknown`` outside a git repository)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def dvc_lock_hashes(
    lock: Path = Path("dvc.lock"), stages: tuple[str, ...] = ("ingest", "split")
) -> dict[str, str]:
    """md5 of every dep and out of ``stages`` as dvc.lock records them (the data lineage)."""
    if not lock.is_file():
        return {}
    recorded = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    out: dict[str, str] = {}
    for stage in stages:
        for kind in ("deps", "outs"):
            for entry in recorded.get(stage, {}).get(kind, []):
                path = entry["path"]
                if path.startswith("data/") and "md5" in entry:
                    out[path] = entry["md5"]
    return out


def params_hash(params: Any) -> str:
    """sha256 of the canonical JSON of ``params``."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def content_version(files: dict[str, str]) -> str:
    """A version string that changes exactly when any file's content changes (12 hex digits)."""
    joined = "\n".join(f"{name}:{digest}" for name, digest in sorted(files.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]
