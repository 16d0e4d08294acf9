"""Where an artifact came from: git commit, hashes of the data it was built from, a hash of the params that made it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


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


def data_lineage(dataset: dict[str, Any], processed: Path) -> dict[str, str]:
    """sha256 of the data a model was built from, read only from a stage's declared inputs.

    Raw files: the pins in ``dataset.files`` (ingest refuses a file whose sha256 differs). Split files: hashed
    here from ``processed`` (a declared dep of every stage that calls this). Never read from ``dvc.lock``: a stage
    that reads the lock depends on a file DVC does not track as its input, so its output changes when an unrelated
    stage re-runs (measured: a cold ``dvc repro`` re-hashed ``artifacts/champion`` after ingest's output hash moved).

    Returns ``{relative path: sha256 hex}``, raw files first, then split files in name order.
    """
    raw_dir = Path(dataset.get("raw_dir", "data/raw"))
    out = {str(raw_dir / f["path"]): f["sha256"] for f in dataset.get("files", {}).values()}
    for path in sorted(processed.rglob("*")):
        if path.is_file():
            out[path.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def params_hash(params: Any) -> str:
    """sha256 of the canonical JSON of ``params``."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def content_version(files: dict[str, str]) -> str:
    """A version string that changes exactly when any file's content changes (12 hex digits)."""
    joined = "\n".join(f"{name}:{digest}" for name, digest in sorted(files.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]
