"""Working copies of the repository and the environment to run tools in them (tests, benchmarks, CT).

A copy holds the tracked files plus untracked ones git does not ignore, committed into a fresh git repository,
so DVC and git behave there exactly as in a fresh clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's venv first on PATH, no telemetry, a fixed git identity."""
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        BENTOML_DO_NOT_TRACK="True",
        GIT_AUTHOR_NAME=env.get("GIT_AUTHOR_NAME", "pipeline-bot"),
        GIT_AUTHOR_EMAIL=env.get("GIT_AUTHOR_EMAIL", "pipeline-bot@example.com"),
        GIT_COMMITTER_NAME=env.get("GIT_COMMITTER_NAME", "pipeline-bot"),
        GIT_COMMITTER_EMAIL=env.get("GIT_COMMITTER_EMAIL", "pipeline-bot@example.com"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def copy_worktree(dest: Path, src: Path = ROOT, message: str = "working copy") -> Path:
    """Copy ``src``'s working tree into ``dest`` and commit it there as the first commit of a new repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        path = src / rel
        if path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
    env = tool_env()
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", message],
    ):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest
