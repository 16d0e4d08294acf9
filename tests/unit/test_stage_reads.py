"""Each data stage depends on every params key it reads: DVC reruns a stage only when a file it declares changes, so
a key read but not declared leaves stale outputs that `dvc status` calls up to date.

The stages run in process on each system's real raw files, writing to a temporary folder, while every config
section's model records the fields read on it; each field read must be covered by the stage's dvc.yaml deps
(``reports/params/<system>/<section>.json`` covers the whole section, ``<section>/<key>.json`` one key).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pipelines import ingest, profile, split, validate
from pipelines.core.params import Params
from tests.conftest import ROOT, SYSTEMS

SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: field.annotation
    for name, field in Params.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


@contextmanager
def fields_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """``section.field`` for every field a stage reads on a section's model while the block runs. Reads by the
    model's own validators are not the stage's: check_params runs the same validation on every key first."""
    seen: set[str] = set()
    validating: list[bool] = []
    for name, model in SECTION_MODELS.items():
        fields = frozenset(model.model_fields)
        original = model.__getattribute__
        validate = model.model_validate

        def read(
            self: Any, attr: str, _name: str = name, _fields: frozenset[str] = fields, _get: Any = original
        ) -> Any:
            if attr in _fields and not validating:
                seen.add(f"{_name}.{attr}")
            return _get(self, attr)

        def checked(obj: Any, *args: Any, _validate: Any = validate, **kwargs: Any) -> Any:
            validating.append(True)
            try:
                return _validate(obj, *args, **kwargs)
            finally:
                validating.pop()

        monkeypatch.setattr(model, "__getattribute__", read)
        monkeypatch.setattr(model, "model_validate", checked)
    yield seen


def declared(stage: str, system: str, model: str = "", root: Path = ROOT) -> set[str]:
    """The params keys (``section`` or ``section.key``) that dvc.yaml makes ``stage@system`` (or, per model,
    ``stage@system-model``) depend on."""
    deps = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]["do"]["deps"]
    prefix = f"reports/params/{system}/"
    out = set()
    for dep in deps:
        path = (
            dep.replace("${item.system}", system).replace("${item.model}", model).replace("${item}", system)
        )
        if path.startswith(prefix) and path.endswith(".json"):
            out.add(path[len(prefix) : -len(".json")].replace("/", "."))
    return out


def undeclared(read: set[str], keys: set[str]) -> list[str]:
    return sorted(r for r in read if r not in keys and r.split(".")[0] not in keys)


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_data_stages_depend_on_every_key_they_read(
    system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # raw_dir and reports/params are relative to the repository, as under DVC
    interim, validated, processed = tmp_path / "interim", tmp_path / "validated", tmp_path / "processed"
    runs = {
        "ingest": lambda: ingest.main(["--system", system, "--out", str(interim)]),
        "validate": lambda: validate.main(
            [
                "--system",
                system,
                "--data",
                str(interim),
                "--out",
                str(validated),
                "--report",
                str(tmp_path / "v.json"),
            ]
        ),
        "split": lambda: split.main(
            [
                "--system",
                system,
                "--data",
                str(validated),
                "--out",
                str(processed),
                "--metrics",
                str(tmp_path / "s.json"),
            ]
        ),
        "profile": lambda: profile.main(
            ["--system", system, "--data", str(processed), "--out", str(tmp_path / "p.json")]
        ),
    }
    missing = {}
    for stage, run in runs.items():
        with monkeypatch.context() as patch, fields_read(patch) as read:
            run()
        assert read, f"{stage}@{system} read no field: the recorder is broken"
        if gaps := undeclared(read, declared(stage, system)):
            missing[f"{stage}@{system}"] = gaps
    assert not missing, f"stages read params keys dvc.yaml does not make them depend on: {missing}"


def test_a_read_the_deps_do_not_cover_is_found() -> None:
    """The comparison itself: a whole-section dep covers its keys, a key dep only itself."""
    keys = {"split", "dataset.files", "dataset.target"}
    assert undeclared({"split.seed", "dataset.files", "dataset.derived"}, keys) == ["dataset.derived"]
    assert "dataset.derived" in declared("ingest", SYSTEMS[0])
