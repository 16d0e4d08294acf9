"""Configuration: every option composes and validates, params.yaml is fresh, and bad values fail by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines import compose
from pipelines.core.config import ConfigError, DatasetConfig, ProfileConfig, SplitConfig, load_params, section
from pipelines.core.model_config import (
    EvaluationConfig,
    FeaturesConfig,
    LightningModel,
    MitigationModel,
    SklearnModel,
    model_section,
)
from pipelines.core.params import validate_params
from tests.conftest import ROOT

SECTIONS = {
    "dataset": DatasetConfig,
    "split": SplitConfig,
    "profile": ProfileConfig,
    "features": FeaturesConfig,
    "evaluation": EvaluationConfig,
}
FAMILIES = {"sklearn": SklearnModel, "lightning": LightningModel, "mitigation": MitigationModel}
GROUPS = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir())
# groups placed under another package in conf/config.yaml are overridden as group@package=option
DEFAULTS = yaml.safe_load((ROOT / "conf/config.yaml").read_text())["defaults"]
OVERRIDE_KEY = {
    key.split("@")[0]: key for entry in DEFAULTS if isinstance(entry, dict) for key in entry if "@" in key
}


def test_params_yaml_is_not_stale() -> None:
    diff = compose.stale_diff(ROOT / "params.yaml")
    assert diff == "", f"params.yaml is stale; run `make params`:\n{diff}"


def test_staleness_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "params.yaml"
    stale.write_text(compose.composed_text(["split.seed=1234"]))
    assert "seed: 1234" in compose.stale_diff(stale)
    with pytest.raises(SystemExit) as exited:
        compose.main(["--check", "--output", str(stale)])
    assert exited.value.code == 2


def validate_all(params: dict) -> None:
    """Every section on its own (as each stage reads it), then the whole file (as check_params does)."""
    for name, model in SECTIONS.items():
        section(params, name, model)
    for name in params["models"]:
        model_section(params, name)
    validate_params(params)


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, p.stem) for g in GROUPS if g != "model" for p in sorted((ROOT / "conf" / g).glob("*.yaml"))],
)
def test_every_config_option_composes_and_validates(group: str, option: str) -> None:
    validate_all(yaml.safe_load(compose.composed_text([f"{OVERRIDE_KEY.get(group, group)}={option}"])))


@pytest.mark.parametrize("option", sorted(p.stem for p in (ROOT / "conf/model").glob("*.yaml")))
def test_every_model_option_composes_and_validates(option: str) -> None:
    params = yaml.safe_load(compose.composed_text([f"+model@models.probe={option}"]))
    probe = params["models"]["probe"]
    FAMILIES[probe["family"]].model_validate(probe)


def test_every_model_option_is_a_candidate(params: dict) -> None:
    options = {p.stem for p in (ROOT / "conf/model").glob("*.yaml")}
    assert set(params["models"]) == options, "each conf/model option is listed in conf/config.yaml"


def test_experiments_compose_and_change_something(params: dict) -> None:
    for path in sorted((ROOT / "conf/experiment").glob("*.yaml")):
        composed = yaml.safe_load(compose.composed_text([f"experiment={path.stem}"]))
        validate_all(composed)
        assert composed != params, f"experiment {path.stem} changes nothing"


def test_override_reaches_params() -> None:
    params = yaml.safe_load(compose.composed_text(["split.seed=7", "split.valid_fraction=0.25"]))
    cfg = section(params, "split", SplitConfig)
    assert (cfg.seed, cfg.valid_fraction) == (7, 0.25)


def test_bad_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchgroup"):
        compose.composed_text(["nosuchgroup=foo"])


@pytest.mark.parametrize(
    ("name", "patch", "expected"),
    [
        ("split", {"valid_fraction": 1.5}, "split.valid_fraction: Input should be less than 1 (got 1.5)"),
        ("split", {"seeds": 3}, "split.seeds: Extra inputs are not permitted"),
        ("profile", {"quantiles": [0.5, 2]}, "quantiles must lie in [0, 1]"),
        ("dataset", {"sensitive": ["gender"]}, "sensitive 'gender' is not in columns"),
        (
            "dataset",
            {"target": {"column": "income", "labels": {"a": 1, "b": 1}}},
            "must map the raw labels onto both 0 and 1",
        ),
    ],
)
def test_invalid_params_name_the_key(params: dict, name: str, patch: dict, expected: str) -> None:
    bad = dict(params)
    bad[name] = {**params[name], **patch}
    with pytest.raises(ConfigError) as err:
        section(bad, name, SECTIONS[name])
    assert expected in str(err.value)


def test_bad_pin_format(params: dict) -> None:
    bad = yaml.safe_load(yaml.safe_dump(params))
    bad["dataset"]["files"]["train"]["sha256"] = "abc"
    with pytest.raises(ConfigError, match=r"dataset.files.train.sha256: String should match pattern"):
        section(bad, "dataset", DatasetConfig)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `make params`"):
        load_params(tmp_path / "params.yaml")


def test_missing_section(params: dict) -> None:
    with pytest.raises(ConfigError, match="no 'split' section"):
        section({k: v for k, v in params.items() if k != "split"}, "split", SplitConfig)


def test_dvc_uses_hydra() -> None:
    config = (ROOT / ".dvc/config").read_text()
    assert "[hydra]" in config and "enabled = true" in config
    assert "analytics = false" in config
