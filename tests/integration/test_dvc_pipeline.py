"""The real DVC pipeline in a temporary copy of the repository: cold run, caching that follows config,
experiments with Hydra overrides, and a blocked run that keeps the last good outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.core.io import sha256_file
from tests.conftest import copy_repo, run

pytestmark = pytest.mark.integration
STAGES = ["ingest", "validate", "split", "profile"]
TARGET = "profile@adult"  # the data stages' end; later stages are tested elsewhere


def ran(output: str) -> list[str]:
    """Stages that really ran their command in a `dvc repro` / `dvc exp run` output (Adult's)."""
    return [s for s in STAGES if f"Running stage '{s}@adult'" in output]


def compose(repo: Path, *overrides: str) -> None:
    run(["python", "-m", "pipelines.compose", *overrides], repo)


def outputs(repo: Path) -> dict[str, str]:
    """Hashes of every file the data stages produce downstream of validate."""
    files = [
        *sorted((repo / "data/adult/validated").iterdir()),
        *sorted((repo / "data/adult/processed").iterdir()),
        repo / "reports/adult/data/profile.json",
        repo / "reports/adult/data/split.json",
    ]
    return {str(p.relative_to(repo)): sha256_file(p) for p in files}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("baseline"))
    proc = run(["dvc", "repro", TARGET], repo)
    assert ran(proc.stdout) == STAGES, proc.stdout
    return repo


@pytest.fixture()
def repo(baseline: Path, tmp_path: Path) -> Path:
    """A private copy of the reproduced baseline (workspace, git history and DVC cache)."""
    return Path(shutil.copytree(baseline, tmp_path / "repo", symlinks=True))


def test_cold_run_produces_every_output(baseline: Path) -> None:
    lock = yaml.safe_load((baseline / "dvc.lock").read_text())
    assert {f"{s}@adult" for s in STAGES} <= set(lock["stages"])
    split = json.loads((baseline / "reports/adult/data/split.json").read_text())
    assert {k: v["rows"] for k, v in split["splits"].items()} == {
        "train": 26048,
        "valid": 6513,
        "test": 16281,
    }
    assert json.loads((baseline / "reports/adult/data/validation.json").read_text())["passed"] is True
    assert "Data and pipelines are up to date" in run(["dvc", "status", TARGET], baseline).stdout


def test_noop_repro_runs_nothing(repo: Path) -> None:
    proc = run(["dvc", "repro", TARGET], repo)
    assert ran(proc.stdout) == []
    assert all(f"Stage '{s}@adult' didn't change, skipping" in proc.stdout for s in STAGES), proc.stdout


def test_seed_change_reruns_split_and_what_follows_only(repo: Path) -> None:
    before = outputs(repo)
    compose(repo, "adult.split.seed=7")
    proc = run(["dvc", "repro", TARGET], repo)
    assert ran(proc.stdout) == ["split", "profile"], proc.stdout
    after = outputs(repo)
    assert after["data/adult/processed/valid.parquet"] != before["data/adult/processed/valid.parquet"]
    assert after["data/adult/validated/train.parquet"] == before["data/adult/validated/train.parquet"]


def test_contract_change_reruns_validate_not_ingest(repo: Path) -> None:
    compose(repo, "adult.dataset.contract.duplicates.max_fraction=0.01")
    proc = run(["dvc", "repro", TARGET], repo)
    assert ran(proc.stdout)[:1] == ["validate"] and "ingest" not in ran(proc.stdout), proc.stdout


def test_exp_run_with_override_changes_the_result(repo: Path) -> None:
    profile_before = json.loads((repo / "reports/adult/data/profile.json").read_text())
    proc = run(["dvc", "exp", "run", "-S", "adult.split.seed=7", TARGET], repo)
    assert ran(proc.stdout) == ["split", "profile"], proc.stdout
    assert (
        yaml.safe_load((repo / "params.yaml").read_text())["adult"]["split"]["seed"] == 7
    )  # composed by DVC's Hydra
    profile_after = json.loads((repo / "reports/adult/data/profile.json").read_text())
    mean = lambda p: p["splits"]["valid"]["columns"]["age"]["mean"]  # noqa: E731
    assert mean(profile_after) != mean(profile_before)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "7" in json.dumps(shown)


def test_blocked_run_keeps_previous_good_outputs(repo: Path) -> None:
    before = outputs(repo)
    raw = repo / "data/adult/raw/adult.data"
    lines = raw.read_text().splitlines()
    lines[0] = lines[0].replace("39,", "-4,", 1)  # a negative age
    raw.write_text("\n".join(lines) + "\n")
    compose(repo, f"adult.dataset.files.train.sha256={sha256_file(raw)}")  # the PR updated the pin
    proc = run(["dvc", "repro", TARGET], repo, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "ERROR [validate]" in text and "column 'age': 1 value(s) outside [17, 90]: -4 (line 1)" in text
    assert ran(proc.stdout) == ["ingest", "validate"], "nothing downstream of a failed contract may run"
    assert outputs(repo) == before
    report = json.loads((repo / "reports/adult/data/validation.json").read_text())
    assert report["passed"] is False and report["tables"]["train"]["errors"][0]["rule"] == "range"


def test_checksum_mismatch_stops_at_ingest(repo: Path) -> None:
    before = outputs(repo)
    raw = repo / "data/adult/raw/adult.data"
    raw.write_text(raw.read_text().replace("State-gov", "State-govt", 1))
    proc = run(["dvc", "repro", TARGET], repo, check=False)
    assert proc.returncode != 0
    assert "sha256 mismatch" in proc.stderr and "data/adult/raw/adult.data" in proc.stderr
    assert ran(proc.stdout) == ["ingest"]
    assert outputs(repo) == before
    assert sorted(p.name for p in (repo / "data/adult/interim").iterdir()) == [
        "manifest.json",
        "test.parquet",
        "train.parquet",
    ]
