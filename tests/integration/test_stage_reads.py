"""The model stages depend on every params key they read (the data stages: tests/unit/test_stage_reads.py).

Each runs in process in a private copy of the quick build, on the first model of each kind it trains or judges,
while every config section's model records the fields read on it. Not ``package``: BentoML fixes its model store
once per process, so a second system's cannot be packaged in the same one (its dataset keys are checked by hand:
columns, contract, target).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines import evaluate, monitor, select, train_baselines
from pipelines.core.config import load_params
from tests.conftest import SYSTEMS
from tests.unit.test_stage_reads import declared, fields_read, undeclared


@pytest.fixture(scope="module")
def repo(quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(quick_repo[0], tmp_path_factory.mktemp("reads") / "repo", symlinks=True))


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_model_stages_depend_on_every_key_they_read(
    system: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    dag = load_params(repo / "params.yaml")["dag"]
    fitted = next(v["model"] for v in dag["train_baselines"].values() if v["system"] == system)
    args = ["--system", system]
    runs: dict[str, tuple[str, Callable[[], object]]] = {
        "train_baselines": (
            fitted,
            lambda: train_baselines.main([*args, "--model", fitted, "--out", str(tmp_path / "m")]),
        ),
        "evaluate": (fitted, lambda: evaluate.main([*args, "--model", fitted, "--out", str(tmp_path / "e")])),
        "select": ("", lambda: select.main(args)),
        "monitor": ("", lambda: monitor.main(args)),
    }
    missing, seen = {}, set()
    for stage, (model, run) in runs.items():
        with monkeypatch.context() as patch, fields_read(patch) as read:
            run()
        seen |= read  # train_baselines reads its model and features as plain mappings, not section models
        if gaps := undeclared(read, declared(stage, system, model, repo)):
            missing[f"{stage}@{system}"] = gaps
    assert "dataset.target" in seen, "the recorder saw nothing"
    assert not missing, f"stages read params keys dvc.yaml does not make them depend on: {missing}"
