"""Atomic writes: a failure while writing leaves the previous content in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.io import atomic_dir, write_text_atomic


def test_atomic_dir_replaces_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out) as staging:
        (staging / "a.txt").write_text("one")
    with atomic_dir(out) as staging:
        (staging / "b.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_previous_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out) as staging:
        (staging / "good.txt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(out) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("stage failed midway")
    assert [p.name for p in out.iterdir()] == ["good.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_text_atomic(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "sub" / "f.txt", "x")
    assert path.read_text() == "x" and len(list(path.parent.iterdir())) == 1
