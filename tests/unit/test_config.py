"""Configuration: every option composes and validates, params.yaml is fresh, and bad values fail by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines import compose
from pipelines.core.config import (
    ConfigError,
    DatasetConfig,
    ProfileConfig,
    SplitConfig,
    SystemParams,
    load_params,
    section,
    system_params,
)
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
ROOT_CONFIG = yaml.safe_load((ROOT / "conf/config.yaml").read_text())
SYSTEMS = ROOT_CONFIG["systems"]
SHARED_GROUPS = [
    "trainer",
    "report",
]  # the groups of conf/config.yaml itself; every other group is per system


def system_defaults(system: str) -> list[tuple[str, str, str]]:
    """(group, package, option) of each default in conf/<system>/system.yaml."""
    out = []
    for entry in yaml.safe_load((ROOT / "conf" / system / "system.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            [(key, option)] = entry.items()
            group, _, package = key.lstrip("/").partition("@")
            out.append((group, package, option))
    return out


def test_params_yaml_is_not_stale() -> None:
    diff = compose.stale_diff(ROOT / "params.yaml")
    assert diff == "", f"params.yaml is stale; run `make params`:\n{diff}"


def test_staleness_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "params.yaml"
    stale.write_text(compose.composed_text([f"{SYSTEMS[0]}.split.seed=1234"]))
    assert "seed: 1234" in compose.stale_diff(stale)
    with pytest.raises(SystemExit) as exited:
        compose.main(["--check", "--output", str(stale)])
    assert exited.value.code == 2


def validate_all(params: dict) -> None:
    """Every section of every system on its own (as each stage reads it), then the whole file (check_params)."""
    for system in params["systems"]:
        view = system_params(params, system)
        for name, model in SECTIONS.items():
            section(view, name, model)
        for name in view["models"]:
            model_section(view, name)
    validate_params(params)


def test_every_option_file_is_used() -> None:
    """Each option under conf/<group>/ is a default of some system or of the root (so params.yaml checks it)."""
    used = {(g, o) for s in SYSTEMS for g, _, o in system_defaults(s)}
    used |= {(g, o) for entry in ROOT_CONFIG["defaults"] if isinstance(entry, dict) for g, o in entry.items()}
    for group_dir in (ROOT / "conf").iterdir():  # an option another option of its group starts from
        for option in group_dir.glob("*.yaml") if group_dir.is_dir() else []:
            data = yaml.safe_load(option.read_text()) or {}
            bases = data.get("defaults", []) if isinstance(data, dict) else []
            used |= {(group_dir.name, b) for b in bases if isinstance(b, str) and b != "_self_"}
    for group_dir in (ROOT / "conf").iterdir():
        if group_dir.is_dir() and group_dir.name not in ("experiment", *SYSTEMS):
            for option in group_dir.glob("*.yaml"):
                assert (group_dir.name, option.stem) in used or group_dir.name in SHARED_GROUPS, option


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, p.stem) for g in SHARED_GROUPS for p in sorted((ROOT / "conf" / g).glob("*.yaml"))],
)
def test_every_shared_option_composes_and_validates(group: str, option: str) -> None:
    validate_all(yaml.safe_load(compose.composed_text([f"{group}={option}"])))


@pytest.mark.parametrize(("system", "default"), [(s, d) for s in SYSTEMS for d in system_defaults(s)])
def test_every_system_default_can_be_overridden_by_name(system: str, default: tuple[str, str, str]) -> None:
    """`<group>@<system>.<package>=<option>` is how a run swaps one of a system's config options."""
    group, package, option = default
    composed = yaml.safe_load(compose.composed_text([f"{group}@{system}.{package}={option}"]))
    validate_all(composed)


@pytest.mark.parametrize("option", sorted(p.stem for p in (ROOT / "conf/model").glob("*.yaml")))
def test_every_model_option_composes_and_validates(option: str) -> None:
    params = yaml.safe_load(compose.composed_text([f"+model@{SYSTEMS[0]}.models.probe={option}"]))
    probe = params[SYSTEMS[0]]["models"]["probe"]
    FAMILIES[probe["family"]].model_validate(probe)


def test_experiments_compose_and_change_something() -> None:
    plain = yaml.safe_load((ROOT / "params.yaml").read_text())
    experiments = sorted((ROOT / "conf/experiment").rglob("*.yaml"))
    assert experiments
    for path in experiments:
        name = path.relative_to(ROOT / "conf/experiment").with_suffix("").as_posix()
        composed = yaml.safe_load(compose.composed_text([f"experiment={name}"]))
        validate_all(composed)
        assert composed != plain, f"experiment {name} changes nothing"


def test_override_reaches_params() -> None:
    system = SYSTEMS[0]
    params = yaml.safe_load(
        compose.composed_text([f"{system}.split.seed=7", f"{system}.split.valid_fraction=0.25"])
    )
    cfg = section(system_params(params, system), "split", SplitConfig)
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
    bad = SystemParams("adult", yaml.safe_load(yaml.safe_dump(dict(params))))
    bad["dataset"]["files"]["train"]["sha256"] = "abc"
    with pytest.raises(ConfigError, match=r"  adult.dataset.files.train.sha256: String should match pattern"):
        section(bad, "dataset", DatasetConfig)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `make params`"):
        load_params(tmp_path / "params.yaml")


def test_missing_section(params: dict) -> None:
    with pytest.raises(ConfigError, match=r"no 'adult\.split' section"):
        section(
            SystemParams("adult", {k: v for k, v in params.items() if k != "split"}), "split", SplitConfig
        )


def test_dvc_uses_hydra() -> None:
    config = (ROOT / ".dvc/config").read_text()
    assert "[hydra]" in config and "enabled = true" in config
    assert "analytics = false" in config


def test_stale_stage_params_are_detected(tmp_path: Path) -> None:
    """reports/params/<system>/<section>.json must say what params.yaml says: make params writes both."""
    from pipelines.check_params import write_stage_params
    from pipelines.core.config import STAGE_PARAMS_DIR, load_params

    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    folder = tmp_path / STAGE_PARAMS_DIR
    write_stage_params(load_params(params_file), folder)
    assert compose.stale_stage_params(params_file) == ""
    split = folder / SYSTEMS[0] / "split.json"
    split.write_text(split.read_text().replace('"seed": ', '"seed": 1'))
    assert compose.stale_stage_params(params_file) == (
        f"reports/params/{SYSTEMS[0]}/split.json: differs from what params.yaml gives\n"
    )
    split.unlink()
    (folder / "gone").mkdir()
    (folder / "gone" / "split.json").write_text("{}")
    (folder / SYSTEMS[0] / "notes.txt").write_text("a stray file of any kind\n")
    assert compose.stale_stage_params(params_file).splitlines() == [
        f"reports/params/{SYSTEMS[0]}/split.json: missing",
        f"reports/params/{SYSTEMS[0]}/notes.txt: not written from params.yaml (no key of any system's params names it)",
        "reports/params/gone/split.json: not written from params.yaml (no key of any system's params names it)",
    ]


def test_stage_params_hold_params_yaml_section_by_section() -> None:
    """What a stage reads from reports/params/<system>/ is what params.yaml says for the system, in its order."""
    from pipelines.core.config import load_params, load_system

    params = load_params(ROOT / "params.yaml")
    for system in SYSTEMS:
        from_files = load_system(None, system)
        from_yaml = load_system(ROOT / "params.yaml", system)
        assert from_files == from_yaml
        columns = from_files["dataset"]["columns"]
        assert list(columns) == list(params[system]["dataset"]["columns"])  # file order, not sorted
