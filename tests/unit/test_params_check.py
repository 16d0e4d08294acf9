"""Every bad config value is one clean error, named by dotted key, before any expensive stage runs.

Field case: ``dvc exp run -S serving.routing.challenger_weight=1.5`` trained every model, then crashed ``package``
with a pydantic traceback. Now the whole of params.yaml is validated by ``make params`` and by the first DVC stage
(``check_params``). Siblings: a bad value in every section, values YAML typed differently from what was meant
(with a hint), references between sections, arguments of every ``_target_``; and a property over every leaf.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import check_params, compose
from pipelines.core.config import ConfigError
from pipelines.core.params import validate_params
from tests.conftest import ROOT, copy_repo, run

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def key_of(path: str) -> str:
    """The dotted key in params.yaml: system sections are under the system (``serving.port`` is Adult's)."""
    return path if path.split(".")[0] in PARAMS else f"adult.{path}"


def patched(path: str, value: Any) -> dict[str, Any]:
    """PARAMS with the value at dotted ``path`` replaced (list items by index); see ``key_of``."""
    out = copy.deepcopy(PARAMS)
    *parents, last = key_of(path).split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


CASES = [
    # (dotted key, bad value, words the error must contain)
    (
        "serving.routing.challenger_weight",
        1.5,
        ["serving.routing.challenger_weight", "less than or equal to 1", "1.5"],
    ),
    ("serving.routing.mode", "blue_green", ["serving.routing.mode", "'blue_green'"]),
    ("serving.workers", "2", ["serving.workers", "'2' is text, not a number: remove the quotes"]),
    ("serving.workers", True, ["serving.workers", "a boolean is not a number"]),
    ("serving.port", 70000, ["serving.port", "70000"]),
    (
        "serving.batching",
        {"adaptive": True, "max_batch_size": 10, "max_latency_ms": 1000},
        ["max_batch_size (10) is smaller than input.max_batch_records"],
    ),
    ("serving.prediction_log.fields", ["request_id", "ssn"], ["serving.prediction_log.fields.1", "'ssn'"]),
    (
        "serving.prediction_log.feature_fields",
        ["salary"],
        ["serving.prediction_log.feature_fields.0", "'salary'"],
    ),
    ("serving.prediction_log.on_failure", "ignore", ["serving.prediction_log.on_failure", "'ignore'"]),
    ("serving.overload.max_in_flight", 0, ["serving.overload.max_in_flight", "greater than or equal to 1"]),
    ("serving.native_threads", "1", ["serving.native_threads", "remove the quotes"]),
    ("serving.decision_threshold", 0, ["serving.decision_threshold", "greater than 0"]),
    ("report.plot_dpi", "100", ["report.plot_dpi", "remove the quotes"]),
    ("report.repository", "not a url", ["report.repository", "'not a url'"]),
    ("report.history_limit", None, ["report.history_limit"]),
    ("trainer.strategy", "nonsense", ["trainer.strategy: 'nonsense' is not a Lightning strategy"]),
    ("trainer.devices", "two", ["trainer.devices: 'two'"]),
    ("trainer.devices", 0, ["trainer.devices: 0"]),
    ("trainer.max_epochs", 0, ["trainer.max_epochs", "greater than or equal to 1"]),
    ("trainer.precision", 16.5, ["trainer.precision", "16.5"]),
    ("trainer.deterministic", "yes", ["trainer.deterministic", "'yes'"]),
    ("split.seed", -1, ["split.seed", "greater than or equal to 0"]),
    ("split.seed", 2**40, ["split.seed", "less than or equal to 4294967295"]),
    ("split.valid_fraction", "0.2", ["split.valid_fraction", "remove the quotes"]),
    ("split.stratify", "target", ["split.stratify", "write a YAML list: [target]"]),
    ("split.source", "training", ["split.source: 'training' is not a key of dataset.files"]),
    ("dataset.version", 1.1, ["dataset.version", "YAML reads 1.1 unquoted as a number: quote it"]),
    (
        "dataset.contract.columns.sex.categories.0",
        False,
        ["dataset.contract.columns.sex.categories.0", "boolean"],
    ),
    ("dataset.format.quoting", "always", ["dataset.format.quoting", "'always'"]),
    ("features.numeric.0", "salary", ["features.numeric.0: 'salary' is not a column"]),
    ("features.categorical.0", "age", ["features.categorical.0: 'age' is a int column, not categorical"]),
    ("profile.reference", "holdout", ["profile.reference: 'holdout' is not in profile.splits"]),
    ("evaluation.primary_metric", "auc", ["evaluation.primary_metric: 'auc'"]),
    (
        "evaluation.fairness.attributes.0",
        "gender",
        ["evaluation.fairness.attributes.0: 'gender' is not a column"],
    ),
    ("evaluation.gates.dp_ratio_sex.metric", "fairness.sex.dp", ["evaluation.gates.dp_ratio_sex.metric"]),
    ("evaluation.gates.min_roc_auc.severity", "fatal", ["evaluation.gates.min_roc_auc.severity", "'fatal'"]),
    ("evaluation.bootstrap.resamples", 1.5, ["evaluation.bootstrap.resamples", "1.5"]),
    (
        "models.hgb.estimator.learning_rate",
        "1e-3",
        ["models.hgb.estimator.learning_rate", "write it with a decimal point"],
    ),
    ("models.hgb.estimator.max_iter", -5, ["models.hgb.estimator.max_iter", "-5"]),
    (
        "models.hgb.estimator._target_",
        "sklearn.ensemble.NoSuchModel",
        ["models.hgb.estimator._target_", "cannot import"],
    ),
    ("models.tabular_nn.module.dropout", "0.1", ["models.tabular_nn.module.dropout", "remove the quotes"]),
    (
        "models.tabular_nn.module.hidden_dims",
        "256",
        ["models.tabular_nn.module.hidden_dims", "write a YAML list"],
    ),
    ("models.tabular_nn.datamodule.batch_size", 0.5, ["models.tabular_nn.datamodule.batch_size", "0.5"]),
    ("models.tabular_nn.callbacks.early_stopping.patience", "5", ["callbacks.early_stopping.patience"]),
    ("models.tabular_nn.seed", 2**33, ["models.tabular_nn.seed"]),
    ("models.hgb_fair.base", "xgb", ["models.hgb_fair.base: 'xgb' is not a configured model"]),
    ("models.hgb_fair.constraint", "parity", ["models.hgb_fair.constraint", "'parity'"]),
    ("models.logreg.name", "lr", ["models.logreg.name", "must equal its key"]),
    # found by a newcomer's break test: booleans read as numbers, ranges, kinds of _target_, references
    ("models.hgb.estimator.max_iter", True, ["models.hgb.estimator.max_iter: True is a boolean"]),
    ("models.logreg.estimator.C", True, ["models.logreg.estimator.C: True is a boolean"]),
    ("models.hgb.estimator.random_state", True, ["models.hgb.estimator.random_state: True is a boolean"]),
    ("models.hgb.estimator._target_", "sklearn.ensemble.HistGradientBoostingRegressor", ["not a classifier"]),
    ("models.tabular_nn.module.lr", -1.0, ["models.tabular_nn.module.lr", "greater than 0"]),
    ("models.tabular_nn.module.lr", float("nan"), ["models.tabular_nn.module.lr"]),
    ("models.tabular_nn.module.dropout", 1.5, ["models.tabular_nn.module.dropout", "less than 1"]),
    ("models.tabular_nn.module.embedding_dim", 0, ["models.tabular_nn.module.embedding_dim"]),
    ("models.tabular_nn.module.hidden_dims", [0], ["models.tabular_nn.module.hidden_dims.0"]),
    ("models.tabular_nn.module.periodic.frequencies", -1, ["models.tabular_nn.module.periodic.frequencies"]),
    (
        "models.tabular_nn.module.periodic.frequencies",
        "16",
        ["models.tabular_nn.module.periodic.frequencies"],
    ),
    ("models.tabular_nn.module.periodic.foo", 1, ["models.tabular_nn.module.periodic.foo", "Extra inputs"]),
    ("models.tabular_nn.datamodule.batch_size", 0, ["models.tabular_nn.datamodule.batch_size"]),
    ("models.tabular_nn.callbacks.early_stopping.mode", "maximum", ["callbacks.early_stopping", "maximum"]),
    ("models.tabular_nn.callbacks.early_stopping.monitor", "val_auc", ["early_stopping.monitor: 'val_auc'"]),
    ("models.tabular_nn.module._target_", "math.pi", ["models.tabular_nn.module"]),
    ("models.hgb_fair.sensitive", "fnlwgt", ["models.hgb_fair.sensitive: 'fnlwgt' is not a categorical"]),
    (
        "evaluation.gates.min_roc_auc.threshold",
        1.5,
        ["evaluation.gates.min_roc_auc.threshold: 1.5 is outside"],
    ),
    ("evaluation.gates.min_roc_auc.threshold", float("nan"), ["evaluation.gates.min_roc_auc.threshold"]),
    ("evaluation.selection.eligible_kinds", [], ["evaluation.selection.eligible_kinds"]),
    ("dataset.contract.columns.age.max", float("nan"), ["dataset.contract.columns.age.max"]),
    ("dataset.contract.class_balance.min_positive_rate", 0.5, ["min_positive_rate (0.5) is greater than"]),
    # monitoring: thresholds, scenarios, what continuous training needs from the log
    ("monitor.false_alarm_rate", 0.0, ["monitor.false_alarm_rate"]),
    ("monitor.false_alarm_rate", 1.5, ["monitor.false_alarm_rate"]),
    ("monitor.effect_floor.js", 0.9, ["monitor.effect_floor.js"]),
    ("monitor.calibration.windows", 5, ["monitor.calibration.windows"]),
    ("monitor.calibration.rows", 100, ["monitor.calibration.rows: 100 is below monitor.min_rows"]),
    ("monitor.score_bins", 3, ["monitor.score_bins"]),
    ("monitor.ct.max_regression", -0.1, ["monitor.ct.max_regression"]),
    ("monitor.replay.scenarios.covariate.feature", "nosuch", ["'nosuch' is not logged"]),
    ("monitor.replay.scenarios.covariate.feature", "sex", ["'sex' is not a numeric feature"]),
    ("monitor.replay.scenarios.concept.feature", "age", ["'age' is not a categorical feature"]),
    ("monitor.replay.scenarios.category_mix.category", "Divorcee", ["'Divorcee' is not a category of"]),
    ("monitor.replay.scenarios.covariate.kind", "earthquake", ["monitor.replay.scenarios.covariate"]),
    ("monitor.replay.scenarios.covariate.shift", "12", ["monitor.replay.scenarios.covariate.shift"]),
    ("monitor.replay.scenarios.label_shift.positive_rate", 1.0, ["positive_rate"]),
    ("monitor.replay.scenarios.broken_units.factor", 0, ["monitor.replay.scenarios.broken_units.factor"]),
    ("serving.prediction_log.feature_fields", ["age"], ["does not keep", "continuous training"]),
    ("dag.train.adult-tabular_nn.system", ["adult"], ["dag.train.adult-tabular_nn: must be"]),
    ("dag.train.adult-tabular_nn", "adult", ["dag.train.adult-tabular_nn: must be"]),
    ("split.extra_train", ["nosuch"], ["split.extra_train.0: 'nosuch' is not a key of dataset.files"]),
    ("split.extra_train", ["test"], ["split.extra_train.0: 'test' is already split.test"]),
]


@pytest.mark.parametrize(("key", "value", "words"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_bad_value_is_named(key: str, value: Any, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        validate_params(patched(key, value))
    message = str(err.value)
    assert "  " + ".".join(key_of(key).split(".")[:2]) in message, message
    for w in words:
        assert w in message, (w, message)


def test_unknown_key_and_missing_section_are_named() -> None:
    typo = copy.deepcopy(PARAMS)
    typo["adult"]["serving"]["routing"]["challenger_wieght"] = 0.1
    with pytest.raises(
        ConfigError, match=r"  adult.serving.routing.challenger_wieght: Extra inputs are not permitted"
    ):
        validate_params(typo)
    with pytest.raises(ConfigError, match=r"report: Field required"):
        validate_params({k: v for k, v in PARAMS.items() if k != "report"})
    with pytest.raises(ConfigError, match="mapping of sections"):
        validate_params(["not", "a", "mapping"])


def test_every_problem_is_reported_at_once() -> None:
    bad = patched("serving.workers", 0)
    bad["report"]["plot_dpi"] = 1  # a shared section: named without the system
    with pytest.raises(ConfigError) as err:
        validate_params(bad)
    message = str(err.value)
    assert "  adult.serving.workers" in message and "  report.plot_dpi" in message


def test_committed_params_are_valid() -> None:
    validate_params(PARAMS)


def test_compose_refuses_to_write_a_bad_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "params.yaml"
    out.write_text("previous\n")
    with pytest.raises(SystemExit) as exited:
        compose.main(["adult.serving.routing.challenger_weight=1.5", "--output", str(out)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "ERROR [compose]" in err and "serving.routing.challenger_weight" in err and "(got 1.5)" in err
    assert out.read_text() == "previous\n"


def test_stage_writes_each_systems_sections(tmp_path: Path) -> None:
    """One JSON file per section of each system (and the global ones), nothing else: a removed system's go."""
    out = tmp_path / "params"
    (out / "gone").mkdir(parents=True)
    (out / "gone" / "split.json").write_text("{}")
    check_params.main(["--out", str(out)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(params["systems"])
    for system in params["systems"]:
        names = {p.stem for p in (out / system).glob("*.json")}
        assert names == {*params[system], "trainer", "report", "systems"}
        split = json.loads((out / system / "split.json").read_text())
        assert split == {system: {"split": params[system]["split"]}}


# Property: any leaf replaced by a value of another YAML type is valid or one ConfigError naming that key.
def leaves(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, f"{prefix}{k}.")]
    if isinstance(node, list) and node:
        return [p for i, v in enumerate(node) for p in leaves(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")]


LEAVES = [p for p in leaves(PARAMS) if p]
WRONG = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "no", "1e3", "0x10", "1.5", "-1", "text", "[a]"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "_target_"]), st.integers(), max_size=1),
)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(LEAVES), value=WRONG)
def test_any_leaf_of_any_type_is_valid_or_named(key: str, value: Any) -> None:
    """Never another exception; every line of the error names a dotted key of a known section."""
    try:
        validate_params(patched(key, value))
    except ConfigError as err:
        lines = str(err).splitlines()
        assert lines[0] == "invalid params:" and len(lines) > 1
        for line in lines[1:]:
            assert line.startswith("  ") and ": " in line, line
            assert line.strip().split(".")[0].split(":")[0] in PARAMS, line
        named = {line.strip().split(": ")[0] for line in lines[1:]}
        # the mutated key (or its parent) is named, unless the new value broke a reference made elsewhere
        assert any(n == key or key.startswith(n + ".") or n.startswith(key) for n in named) or all(
            "not" in line for line in lines[1:]
        ), (key, value, lines)


@pytest.mark.integration
def test_bad_override_stops_before_any_stage(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    proc = run(["dvc", "exp", "run", "-S", "adult.serving.routing.challenger_weight=1.5"], repo, check=False)
    assert proc.returncode != 0
    assert "ERROR [check_params]" in proc.stderr
    assert (
        "serving.routing.challenger_weight: Input should be less than or equal to 1 (got 1.5)" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'check_params':"
    ]
    # DVC left the override in params.yaml, as the error says, and `make params` restores what conf/ composes
    assert "challenger_weight: 1.5" in (repo / "params.yaml").read_text()
    assert "run `make params` to compose params.yaml from conf/" in proc.stderr
    run(["python", "-m", "pipelines.compose"], repo)  # what `make params` runs, without setting up a venv
    assert run(["git", "status", "--porcelain", "params.yaml"], repo).stdout == ""


def test_the_trainer_needs_its_hardware_on_this_machine() -> None:
    import torch

    gpu = patched("trainer.accelerator", "gpu")
    validate_params(gpu)  # composing a GPU config anywhere is fine
    if not torch.cuda.is_available():
        with pytest.raises(
            ConfigError, match=r"trainer\.accelerator: 'gpu' but this machine has no CUDA device"
        ):
            validate_params(gpu, machine=True)


YAML_TRAPS = [
    ("seed: 017\n", "017 is read as an octal number (15)"),
    ("challenger_timeout_ms: 2:50\n", "2:50 is read as a base-60 number"),
    ("comment_prefix: |\nlabel: x\n", "an empty block scalar"),
    ("native_country: NO\n", "NO is read as a boolean"),
    ("enabled: on\n", "on is read as a boolean"),
    ("missing_token: ?\n", "not valid YAML"),
    ("labels: { <=50K: 0, >50K: 1 }\n", "not valid YAML"),
    ("max_iter: 300\nmax_iter: 50\n", "trap.yaml:3: duplicate key 'max_iter' (first on line 2)"),
]


@pytest.mark.parametrize(("text", "words"), YAML_TRAPS)
def test_yaml_traps_in_conf_are_named_with_file_and_line(tmp_path: Path, text: str, words: str) -> None:
    import shutil

    conf = Path(shutil.copytree(ROOT / "conf", tmp_path / "conf"))
    (conf / "split/trap.yaml").write_text("# a file a user added\n" + text)
    with pytest.raises(ConfigError) as err:
        compose.composed_text(conf_dir=conf)
    message = str(err.value)
    assert "split/trap.yaml:" in message and words in message, message
    assert "Traceback" not in message


def test_quoted_values_are_what_they_say() -> None:
    from pipelines.core.yaml_lint import lint_file

    path = ROOT / "conf/dataset/adult.yaml"
    assert lint_file(path) == []


@pytest.mark.parametrize(
    "key",
    [
        "dataset.target.name",
        "dataset.target.column",
        "dataset.raw_dir",
        "dataset.files.train.path",
        "split.source",
        "profile.reference",
        "models.hgb_fair.base",
        "models.hgb_fair.sensitive",
        "features.numeric.0",
    ],
)
def test_an_empty_name_is_named(key: str) -> None:
    """Found by the property above: an empty target name passed, then failed elsewhere under another key."""
    with pytest.raises(ConfigError) as err:
        validate_params(patched(key, ""))
    assert f"  {key_of(key)}: String should have at least 1 character" in str(err.value)


def test_two_systems_may_not_share_a_port() -> None:
    bad = copy.deepcopy(PARAMS)
    bad["hmda"]["serving"]["port"] = bad["adult"]["serving"]["port"]
    with pytest.raises(ConfigError, match=r"  hmda.serving.port: 3000 is also adult.serving.port"):
        validate_params(bad)
