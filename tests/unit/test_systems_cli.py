"""`SYSTEM=<name>` in the Makefile is checked against params.yaml before DVC runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMES: list[str] = yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]


def systems(*args: str, params: Path = ROOT / "params.yaml") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipelines.systems", "--params", str(params), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_lists_the_systems_in_order() -> None:
    names = yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]
    proc = systems()
    assert proc.returncode == 0 and proc.stdout.split() == names


@pytest.mark.parametrize(
    "name",
    ["nosuch", NAMES[0].upper(), NAMES[0] + " ", "", NAMES[0] + ".split"],
    ids=["unknown", "case", "space", "empty", "key"],
)
def test_an_unknown_system_names_the_known_ones(name: str) -> None:
    proc = systems("--check", name)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"SYSTEM={name!r} is not a system" in proc.stderr and ", ".join(NAMES) in proc.stderr


def test_a_known_system_passes() -> None:
    proc = systems("--check", NAMES[-1])
    assert proc.returncode == 0 and proc.stdout.strip() == NAMES[-1]


def test_missing_params_is_a_clean_error(tmp_path: Path) -> None:
    proc = systems(params=tmp_path / "params.yaml")
    assert proc.returncode != 0 and "make params" in proc.stderr and "Traceback" not in proc.stderr


def test_make_site_refuses_an_unknown_system_before_dvc() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "site", "SYSTEM=nosuch"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert f"the systems are: {', '.join(NAMES)}" in proc.stderr and "dvc repro" not in proc.stdout


def test_the_workflow_matrix_lists_every_system_or_the_one_asked() -> None:
    names = yaml.safe_load((ROOT / "params.yaml").read_text())["systems"]
    assert systems("--matrix").stdout.strip() == "list=" + json.dumps(names)
    assert systems("--matrix", NAMES[-1]).stdout.strip() == f'list=["{NAMES[-1]}"]'
    bad = systems("--matrix", "nosuch")
    assert (
        bad.returncode != 0
        and "SYSTEM='nosuch' is not a system" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    made = subprocess.run(
        ["make", "--no-print-directory", "--silent", "ct-matrix", "SYSTEM="],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0 and made.stdout.strip() == "list=" + json.dumps(
        names
    )  # a job output line only
