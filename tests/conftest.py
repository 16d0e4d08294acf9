"""Shared fixtures: the repository root, its typed params, the real ingested Adult tables, temp repo copies."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.core.config import DatasetConfig, load_params, load_system, section, systems_of
from pipelines.core.workspace import ROOT, copy_worktree, tool_env


def run(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on an unexpected failure show what it printed."""
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_repo(dest: Path) -> Path:
    """The working tree under test, as a fresh git repository in ``dest``."""
    return copy_worktree(dest, ROOT, "copy of the repository under test")


SYSTEM = "adult"  # the system most tests exercise; tests/integration/test_systems.py covers the others
SYSTEMS: list[str] = systems_of(load_params(ROOT / "params.yaml"))  # every system, in order: tests list these


@pytest.fixture(scope="session")
def params() -> dict:
    """Adult's params (its sections and the shared ones), as its stages read them."""
    return load_system(ROOT / "params.yaml", SYSTEM)


@pytest.fixture(scope="session")
def dataset(params: dict) -> DatasetConfig:
    cfg = section(params, "dataset", DatasetConfig)
    return cfg.model_copy(update={"raw_dir": str(ROOT / cfg.raw_dir)})


@pytest.fixture(scope="session")
def adult_tables(dataset: DatasetConfig) -> dict[str, pd.DataFrame]:
    """The real Adult files, ingested once per session."""
    from pipelines.ingest import ingest_file

    return {key: ingest_file(dataset, key)[0] for key in dataset.files}


@pytest.fixture(scope="session")
def quick_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the repository after `dvc exp run -S experiment=quick` (every stage, on a 10% sample).

    Shared by the model-pipeline and service tests; they copy it before changing anything. Returns the path and
    the stdout of the run.
    """
    repo = copy_repo(tmp_path_factory.mktemp("quick"))
    proc = run(["dvc", "exp", "run", "-S", "experiment=quick"], repo)
    site = run(["python", "-m", "pipelines.site"], repo)  # what `make pipeline` runs after dvc repro
    return repo, proc.stdout + site.stdout


def serving_spec(system: str, champion: str, challenger: str | None = None) -> Any:
    """The serving spec the package stage would write for ``system`` from the committed params.yaml, with the
    given champion and challenger BentoML tags (no artifacts needed: a clean clone has none)."""
    from pipelines.package import input_fields
    from services.tabular.spec import ServingSpec

    params = load_system(ROOT / "params.yaml", system)
    dataset = section(params, "dataset", DatasetConfig)
    serving = params["serving"]

    def ref(tag: str) -> dict[str, Any]:
        name = tag.split(":")[0].removeprefix(f"{system}-")
        parity = {"tolerance": 1e-9, "rows": 0, "max_abs_diff_at_most": 1e-15, "batch_invariant": True}
        fast = {"files": {}, "info": {}, "parity": parity}
        return {
            "tag": tag,
            "name": name,
            "version": f"{name}-{tag.split(':')[1]}",
            "files": {},
            "fast_path": fast,
        }

    return ServingSpec.model_validate(
        {
            "system": system,
            "service_name": system,
            "champion": ref(champion),
            "challenger": ref(challenger) if challenger else None,
            "routing": serving["routing"],
            "input": {**serving["input"], "fields": input_fields(dataset, params["features"])},
            "decision_threshold": serving["decision_threshold"],
            "labels": {str(v): k for k, v in dataset.target.labels.items()},
            "display": {
                "0": dataset.target.display.negative if dataset.target.display else "0",
                "1": dataset.target.display.positive if dataset.target.display else "1",
            },
            **{k: serving[k] for k in ("batching", "workers", "threads", "native_threads", "overload")},
            "prediction_log": serving["prediction_log"],
            "http": serving["http"],
            "port": serving["port"],
        }
    )
