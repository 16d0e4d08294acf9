"""The monitor's command line refuses what would lose data or judge the wrong thing, before reading anything:
an --out that holds other files (it would be replaced), a file, the working directory; a --window that is not a
collected window; a reference of another system; a scrape that is not one. Found by a newcomer review."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.core.errors import PipelineError
from pipelines.monitor import checked_out, checked_window, service_counts, stored_reference

ROOT = Path(__file__).resolve().parents[2]


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipelines.monitor", "--system", "adult", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def window(tmp_path: Path) -> Path:
    (tmp_path / "w" / "predictions").mkdir(parents=True)
    return tmp_path / "w"


def test_out_with_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    (out / "sub").mkdir(parents=True)
    (out / "important.txt").write_text("keep me")
    proc = monitor(
        "--window", str(window(tmp_path)), "--out", str(out), "--reference", str(tmp_path / "r.json")
    )
    assert proc.returncode == 1 and "holds other files (important.txt, sub)" in proc.stderr
    assert (out / "important.txt").read_text() == "keep me" and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["file", "cwd"])
def test_out_must_be_a_folder_of_its_own(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "afile.txt" if kind == "file" else Path(".")
    if kind == "file":
        target.write_text("x")
    with pytest.raises(PipelineError, match="is a file" if kind == "file" else "a folder of its own"):
        checked_out(target)
    if kind == "file":
        assert target.read_text() == "x"


def test_out_with_an_earlier_judgement_or_new_is_fine(tmp_path: Path) -> None:
    assert checked_out(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "decision.txt").write_text("ok\n")
    assert checked_out(tmp_path / "old") == tmp_path / "old"


def test_a_window_must_be_a_collected_window(tmp_path: Path) -> None:
    for bad, needle in [
        (tmp_path / "nosuch", "no such folder"),
        (ROOT / "README.md", "no such folder"),
        (tmp_path, "has no predictions/ folder"),
    ]:
        with pytest.raises(PipelineError, match=needle):
            checked_window(bad)
    assert checked_window(window(tmp_path)) == tmp_path / "w"
    proc = monitor("--window", str(tmp_path / "nosuch"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "no such folder" in proc.stderr and not (tmp_path / "o").exists()


def test_a_reference_must_be_this_systems(tmp_path: Path) -> None:
    ref = tmp_path / "r.json"
    for text, needle in [
        ("{bad", "cannot read a stored reference"),
        ("[]", "expected a JSON object"),
        (json.dumps({"system": "hmda"}), "was built for system 'hmda', not 'adult'"),
        (json.dumps({"system": "adult"}), "missing key 'spec'"),
    ]:
        ref.write_text(text)
        with pytest.raises(PipelineError, match=needle):
            stored_reference(ref, "adult")


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("metrics.prom", "garbage ###\n", "is not a Prometheus text scrape"),
        ("service.json", "{bad", "is not JSON"),
        ("service.json", "[1, 2]", "expected a JSON object"),
    ],
)
def test_a_scrape_that_is_not_one_is_a_clear_error(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PipelineError, match=needle):
        service_counts(path, "adult")
