"""File helpers: hashing, and writes that replace a target only once its new content is complete."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads in the functions that use it: judging a window does not (0.5 s)
    import pandas as pd


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a file.
    ``mode`` (e.g. ``PRIVATE_FILE``) is set before the rename, so the file is never readable more widely."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


# The prediction log and the label feed hold people's attributes (sensitive ones included): every copy of them is
# kept as the service writes them, folders 0700 and files 0600.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: str | Path) -> Path:
    """``path`` created (with its parents) and set to mode 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)
    return path


def copy_private(source: str | Path, dest: str | Path) -> Path:
    """Copy a file's bytes to ``dest`` with mode 0600 (set before any byte is written)."""
    dest = Path(dest)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(dest, PRIVATE_FILE)
    return dest


def to_json(data: Any) -> str:
    """Stable, readable JSON (sorted keys are left to the caller: order carries meaning in reports)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(path, to_json(data))


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``path`` only when the block ends without error.

    Stages mark their folder outputs ``persist: true`` in dvc.yaml, so DVC does not delete them before a run;
    together with this, a stage that fails leaves the previous good output exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = path.with_name(f".{path.name}.retired-{os.getpid()}")
    if path.exists():
        os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


def write_parquet(frame: pd.DataFrame, path: str | Path, index: bool = False) -> Path:
    """Write a frame as parquet, without the index unless asked (deterministic bytes for identical data)."""
    frame.to_parquet(path, index=index, engine="pyarrow", compression="zstd")
    return Path(path)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a parquet table written by :func:`write_parquet`."""
    import pandas as pd

    return pd.read_parquet(path, engine="pyarrow")
