"""Shared fixtures: the repository root, its typed params, the real ingested Adult tables, temp repo copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.config import DatasetConfig, load_params, section

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the venv first on PATH, no telemetry, a fixed git identity."""
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        BENTOML_DO_NOT_TRACK="True",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on an unexpected failure show what it printed."""
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_repo(dest: Path) -> Path:
    """Copy the working tree (tracked and untracked-but-not-ignored files) into ``dest`` as a fresh git repo."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "copy of the repository under test"], dest)
    return dest


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def dataset(params: dict) -> DatasetConfig:
    cfg = section(params, "dataset", DatasetConfig)
    return cfg.model_copy(update={"raw_dir": str(ROOT / cfg.raw_dir)})


@pytest.fixture(scope="session")
def adult_tables(dataset: DatasetConfig) -> dict[str, pd.DataFrame]:
    """The real Adult files, ingested once per session."""
    from pipelines.ingest import ingest_file

    return {key: ingest_file(dataset, key)[0] for key in dataset.files}
