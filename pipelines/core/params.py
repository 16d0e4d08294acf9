"""The whole of params.yaml, validated at once: every section, the references between sections, and every
``_target_`` a stage will build.

``validate_params`` runs when ``make params`` composes the file and as the first DVC stage (``check_params``), so a
bad value anywhere stops the pipeline before any model trains. It reports every problem in one error, each with
its dotted key, the value as given and, where YAML typing explains it, how to write it.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from pipelines.core.config import (
    GLOBAL_SECTIONS,
    ConfigError,
    DatasetConfig,
    ProfileConfig,
    Section,
    SplitConfig,
    describe_errors,
    system_params,
    yaml_hint,
)
from pipelines.core.deploy_config import DeployConfig
from pipelines.core.metrics import METRICS
from pipelines.core.model_config import (
    EvaluationConfig,
    FeaturesConfig,
    LightningModel,
    MitigationModel,
    ModelConfig,
    SklearnModel,
)
from pipelines.core.monitor_config import CategoryMix, Concept, MonitorConfig
from pipelines.core.paths import SYSTEM_NAME
from services.tabular.spec import Batching, Overload, PredictionLog, Routing

FAMILIES: dict[str, type[ModelConfig]] = {
    "sklearn": SklearnModel,
    "lightning": LightningModel,
    "mitigation": MitigationModel,
}
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")


class TrainerConfig(Section):
    """``trainer``: the Lightning Trainer's hardware and loop settings (conf/trainer: cpu, gpu, ddp)."""

    model_config = ConfigDict(
        extra="allow", frozen=True, strict=True
    )  # other Trainer arguments: see target_checks
    target: Literal["pytorch_lightning.Trainer", "lightning.pytorch.Trainer"] = Field(alias="_target_")
    accelerator: Literal["cpu", "gpu", "cuda", "mps", "tpu", "auto"]
    devices: int | str | list[int]
    strategy: str
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true"]
    max_epochs: int = Field(ge=1)
    deterministic: bool


class InputConfig(Section):
    unknown_category: Literal["reject", "unknown"]
    max_batch_records: int = Field(ge=1)


class Http(Section):
    """BentoML's per-request access log and OpenTelemetry spans, and whether the request guard answers the
    prediction endpoints itself, past BentoML's router and IO descriptors (``serving.http``)."""

    access_log: bool
    tracing: bool
    direct: bool


class ServingConfig(Section):
    """``serving``: routing, the input policy, batching, workers and the prediction log of the service."""

    routing: Routing
    input: InputConfig
    decision_threshold: float = Field(gt=0.0, lt=1.0)
    batching: Batching
    workers: int = Field(ge=1, le=64)
    threads: int = Field(ge=1, le=64)
    native_threads: int = Field(ge=1, le=64)
    overload: Overload
    prediction_log: PredictionLog
    http: Http
    port: int = Field(ge=1, le=65535)

    @model_validator(mode="after")
    def _batch_fits(self) -> ServingConfig:
        if self.batching.adaptive and self.batching.max_batch_size < self.input.max_batch_records:
            raise ValueError(
                f"batching.max_batch_size ({self.batching.max_batch_size}) is smaller than "
                f"input.max_batch_records ({self.input.max_batch_records}): BentoML would shed the largest "
                "allowed requests with 503"
            )
        return self


class RiskThresholds(Section):
    ece_threshold: float = Field(gt=0.0, lt=1.0)


class ReportConfig(Section):
    """``report``: the documents' names and the thresholds that raise measured risks."""

    site_name: str = Field(min_length=1)
    organization: str = Field(min_length=1)
    repository: str = Field(pattern=r"^https?://\S+$")
    plot_dpi: int = Field(ge=50, le=600)
    history_limit: int = Field(ge=1, le=1000)
    risk: RiskThresholds


class Params(BaseModel):
    """Every section of params.yaml (each strict, unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetConfig
    split: SplitConfig
    profile: ProfileConfig
    features: FeaturesConfig
    models: dict[str, ModelConfig]
    trainer: TrainerConfig
    evaluation: EvaluationConfig
    serving: ServingConfig
    monitor: MonitorConfig
    deploy: DeployConfig
    report: ReportConfig


DAG_STAGES = {"train_baselines": "sklearn", "train": "lightning", "mitigate": "mitigation", "evaluate": None}
TOP_LEVEL = {"systems", "dag", *GLOBAL_SECTIONS}


def validate_params(params: Any, machine: bool = False) -> dict[str, Params]:
    """Validate the parsed params.yaml as a whole: every system, the shared sections and the per-model DVC stages.

    Raises one ConfigError listing every problem, each line a dotted key as the user writes it
    (``<system>.split.seed``, ``trainer.max_epochs``, ``dag.train.<system>-<model>``). ``machine``: also check
    that this machine has the hardware the trainer asks for (the check_params stage does; composing does not).
    Returns the typed params of each system.
    """
    if not isinstance(params, dict):
        raise ConfigError(f"params.yaml must hold a mapping of sections, got {type(params).__name__}")
    systems = params.get("systems")
    if not isinstance(systems, list) or not systems or not all(isinstance(n, str) for n in systems):
        raise ConfigError(
            f"invalid params:\n  systems: must be a non-empty list of system names (got {systems!r})"
        )
    problems: list[str] = []
    for i, name in enumerate(systems):
        if not SYSTEM_NAME.match(name):
            problems.append(
                f"  systems.{i}: '{name}' must be lowercase letters, digits and _, starting with a letter"
            )
        elif not isinstance(params.get(name), dict):
            problems.append(
                f"  systems.{i}: '{name}' has no config (add '- {name}: system' to conf/config.yaml)"
            )
    if len(set(systems)) != len(systems):
        problems.append(f"  systems: names repeat ({systems})")
    for key in params:
        if key not in TOP_LEVEL and key not in systems:
            problems.append(
                f"  {key}: not a system listed in 'systems' nor a shared section {sorted(TOP_LEVEL)}"
            )
    if problems:
        raise ConfigError("invalid params:\n" + "\n".join(problems))
    typed: dict[str, Params] = {}
    seen: set[str] = set()
    for name in systems:
        view = system_params(params, name)
        try:
            typed[name] = validate_system(view, machine)
        except ConfigError as err:
            for line in str(err).splitlines()[1:]:
                text = line.strip()
                key = text.split(":", 1)[0]
                text = text if view.key(key) == key else f"{name}.{text}"
                if text not in seen:
                    seen.add(text)
                    problems.append(f"  {text}")
    ports: dict[int, str] = {}
    for name, p in typed.items():  # every system's bento must be servable beside the others on one machine
        other = ports.setdefault(p.serving.port, name)
        if other != name:
            problems.append(f"  {name}.serving.port: {p.serving.port} is also {other}.serving.port")
    failed = set(systems) - set(typed)  # their models are unknown: their dag entries are not judged
    problems += [f"  {p}" for p in dag_checks(params.get("dag"), typed, failed)]
    if problems:
        raise ConfigError("invalid params:\n" + "\n".join(problems))
    return typed


def dag_checks(dag: Any, typed: dict[str, Params], failed: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """``dag`` must list each model of each system once under the stage of its family, and every model under
    evaluate: dvc.yaml runs the per-model stages from these lists."""
    if not isinstance(dag, dict):
        return [f"dag: must map {sorted(DAG_STAGES)} to their <system>-<model> entries (conf/config.yaml)"]
    out = [f"dag.{k}: not a per-model stage ({sorted(DAG_STAGES)})" for k in dag if k not in DAG_STAGES]
    for stage, family in DAG_STAGES.items():
        entries = dag.get(stage) or {}
        if not isinstance(entries, dict):
            out.append(f"dag.{stage}: must be a mapping of <system>-<model> to {{system, model}}")
            continue
        expected = {
            f"{s}-{m}": (s, m, getattr(cfg, "base", None))
            for s, p in typed.items()
            for m, cfg in p.models.items()
            if family is None or cfg.family == family
        }
        for key, item in entries.items():
            system = item.get("system") if isinstance(item, dict) else None
            if isinstance(system, str) and system in failed:  # any YAML value may stand here, a list too
                continue
            got = (
                (item.get("system"), item.get("model"), item.get("base")) if isinstance(item, dict) else None
            )
            if key not in expected:
                out.append(
                    f"dag.{stage}.{key}: no such {family or ''} model in the systems' config".replace(
                        "  ", " "
                    )
                )
            elif got != tuple(expected[key]) and not (
                family != "mitigation" and got and got[:2] == expected[key][:2]
            ):
                s, m, base = expected[key]
                want = (
                    f"{{system: {s}, model: {m}" + (f", base: {base}" if family == "mitigation" else "") + "}"
                )
                out.append(f"dag.{stage}.{key}: must be {want}, got {item!r}")
        for key, (s, m, base) in expected.items():
            if key not in entries:
                want = (
                    f"{{system: {s}, model: {m}" + (f", base: {base}" if family == "mitigation" else "") + "}"
                )
                out.append(
                    f"dag.{stage}: {s}.models.{m} has no stage; add `{key}: {want}` in conf/config.yaml"
                )
    return out


def validate_system(params: Any, machine: bool = False) -> Params:
    """Validate one system's params (``SystemParams``: its sections and the global ones) as a whole.

    ``machine``: also check that this machine has the hardware the trainer asks for (the check_params stage
    does; composing a GPU config on a laptop does not).
    """
    if not isinstance(params, dict):
        raise ConfigError(f"params.yaml must hold a mapping of sections, got {type(params).__name__}")
    problems: list[str] = []
    models: dict[str, ModelConfig] = {}
    raw_models = params.get("models")
    for name, spec in (raw_models or {}).items() if isinstance(raw_models, dict) else []:
        family = spec.get("family") if isinstance(spec, dict) else None
        if not isinstance(family, str) or family not in FAMILIES:
            problems.append(f"  models.{name}.family: must be one of {sorted(FAMILIES)} (got {family!r})")
            continue
        try:
            models[name] = FAMILIES[family].model_validate(spec)
        except ValidationError as err:
            problems += describe_errors(f"models.{name}", err)
    try:
        typed = Params.model_validate(
            {**params, "models": models if isinstance(raw_models, dict) else raw_models}
        )
    except ValidationError as err:
        problems += describe_errors("", err)
    if problems:
        raise ConfigError("invalid params:\n" + "\n".join(problems))
    problems = cross_checks(typed) + target_checks(typed) + (machine_checks(typed) if machine else [])
    if problems:
        raise ConfigError("invalid params:\n" + "\n".join(f"  {p}" for p in problems))
    return typed


def cross_checks(p: Params) -> list[str]:
    """References between sections: every column, split, model, metric and field named exists."""
    ds, out = p.dataset, []
    columns = set(ds.columns)
    splits = {"train", "valid", "test"}
    for kind, names, allowed in (
        ("categorical", p.features.categorical, {"category"}),
        ("numeric", p.features.numeric, {"int", "float"}),
    ):
        for i, col in enumerate(names):
            if col not in columns:
                out.append(f"features.{kind}.{i}: '{col}' is not a column of dataset.columns")
            elif ds.columns[col] not in allowed:
                out.append(f"features.{kind}.{i}: '{col}' is a {ds.columns[col]} column, not {kind}")
            elif col == ds.target.column:
                out.append(f"features.{kind}.{i}: '{col}' is the label (dataset.target.column)")
    both = sorted(set(p.features.categorical) & set(p.features.numeric))
    if both:
        out.append(f"features: {both} listed as both categorical and numeric")
    for key in ("source", "test"):
        value = getattr(p.split, key)
        if value is not None and value not in ds.files:
            out.append(f"split.{key}: '{value}' is not a key of dataset.files ({sorted(ds.files)})")
    for i, value in enumerate(p.split.extra_train):
        if value not in ds.files:
            out.append(f"split.extra_train.{i}: '{value}' is not a key of dataset.files ({sorted(ds.files)})")
        elif value in (p.split.source, p.split.test):
            out.append(
                f"split.extra_train.{i}: '{value}' is already split.{'source' if value == p.split.source else 'test'}"
            )
    for i, col in enumerate(p.split.stratify):
        if col not in columns | {ds.target.name}:
            out.append(
                f"split.stratify.{i}: '{col}' is not a column nor dataset.target.name ('{ds.target.name}')"
            )
    if p.profile.reference not in p.profile.splits:
        out.append(f"profile.reference: '{p.profile.reference}' is not in profile.splits {p.profile.splits}")
    out += [
        f"profile.splits: '{s}' is not one of {sorted(splits)}" for s in p.profile.splits if s not in splits
    ]
    for i, cols in enumerate(p.profile.intersections):
        out += [f"profile.intersections.{i}: '{c}' is not a column" for c in cols if c not in columns]
    for i, col in enumerate(p.profile.summary_numeric):
        if ds.columns.get(col) not in ("int", "float"):
            out.append(f"profile.summary_numeric.{i}: '{col}' is not a numeric column of dataset.columns")
    out += model_checks(p)
    out += evaluation_checks(p, columns, splits)
    out += monitor_checks(p)
    feature_names = set(p.features.categorical) | set(p.features.numeric)
    for i, name in enumerate(p.serving.prediction_log.feature_fields):
        if name not in feature_names:
            out.append(f"serving.prediction_log.feature_fields.{i}: '{name}' is not a model input (features)")
    return out


def monitor_checks(p: Params) -> list[str]:
    """Each replay scenario shifts a feature the prediction log keeps, of the right type, and a category the
    contract allows (the service would refuse any other)."""
    out = []
    logged = set(p.serving.prediction_log.feature_fields)
    rules = p.dataset.contract.columns
    for name, sc in p.monitor.replay.scenarios.items():
        feature = getattr(sc, "feature", None)
        if feature is None:
            continue
        key = f"monitor.replay.scenarios.{name}.feature"
        numeric = feature in p.features.numeric
        if feature not in logged:
            out.append(f"{key}: '{feature}' is not logged (serving.prediction_log.feature_fields)")
        elif sc.kind in ("covariate", "units") and not numeric:
            out.append(f"{key}: '{feature}' is not a numeric feature (a {sc.kind} scenario shifts numbers)")
        elif sc.kind in ("category_mix", "concept") and feature not in p.features.categorical:
            out.append(
                f"{key}: '{feature}' is not a categorical feature (a {sc.kind} scenario picks a category)"
            )
        elif isinstance(sc, CategoryMix | Concept):
            rule = rules.get(feature)
            allowed = (rule.categories if rule is not None else None) or []
            if allowed and sc.category not in allowed:
                out.append(
                    f"monitor.replay.scenarios.{name}.category: '{sc.category}' is not a category of '{feature}' "
                    f"in dataset.contract ({', '.join(allowed[:8])}{', ...' if len(allowed) > 8 else ''})"
                )
    unlogged = [c for c in p.dataset.file_columns if c not in logged and c != p.dataset.target.column]
    if unlogged:
        out.append(
            f"serving.prediction_log.feature_fields: does not keep {unlogged}; continuous training (make ct) "
            "rebuilds training rows from the log, so it must keep every input column of the data"
        )
    if p.monitor.calibration.rows < p.monitor.min_rows:
        out.append(
            f"monitor.calibration.rows: {p.monitor.calibration.rows} is below monitor.min_rows "
            f"({p.monitor.min_rows}): thresholds must be calibrated on windows the monitor would judge"
        )
    return out


def model_checks(p: Params) -> list[str]:
    out = []
    if not p.models:
        out.append("models: no model is configured (conf/config.yaml lists them under models.<name>)")
    for name, cfg in p.models.items():
        if cfg.name != name:
            out.append(f"models.{name}.name: is {cfg.name!r}; it must equal its key")
        if isinstance(cfg, MitigationModel):
            base = p.models.get(cfg.base)
            if base is None:
                out.append(f"models.{name}.base: '{cfg.base}' is not a configured model ({sorted(p.models)})")
            elif isinstance(base, MitigationModel):
                out.append(
                    f"models.{name}.base: '{cfg.base}' is itself a mitigation; mitigate a trained model"
                )
            if cfg.sensitive not in p.features.categorical:
                out.append(
                    f"models.{name}.sensitive: '{cfg.sensitive}' is not a categorical model input "
                    f"(features.categorical: {p.features.categorical})"
                )
    return out


def evaluation_checks(p: Params, columns: set[str], splits: set[str]) -> list[str]:
    ev, out = p.evaluation, []
    if ev.split not in splits:
        out.append(f"evaluation.split: '{ev.split}' is not one of {sorted(splits)}")
    if ev.primary_metric not in METRICS:
        out.append(f"evaluation.primary_metric: '{ev.primary_metric}' is not one of {list(METRICS)}")
    for i, col in enumerate(ev.fairness.attributes):
        if col not in columns:
            out.append(f"evaluation.fairness.attributes.{i}: '{col}' is not a column of dataset.columns")
    for i, cols in enumerate(ev.fairness.intersections):
        out += [
            f"evaluation.fairness.intersections.{i}: '{c}' is not a column" for c in cols if c not in columns
        ]
    out += behaviour_checks(p)
    slices = set(ev.fairness.attributes) | {" x ".join(c) for c in ev.fairness.intersections}
    for name, gate in ev.gates.items():
        problem = metric_path_problem(gate.metric, slices, behaviour_metrics(p))
        if problem:
            out.append(f"evaluation.gates.{name}.metric: '{gate.metric}' {problem}")
        lo, hi = metric_range(gate.metric)
        if gate.relative_to:
            lo, hi = -(hi - lo), hi - lo  # a margin over the best baseline
        if not lo <= gate.threshold <= hi:
            out.append(
                f"evaluation.gates.{name}.threshold: {gate.threshold} is outside [{lo:g}, {hi:g}], the range of "
                f"{gate.metric}{' margins' if gate.relative_to else ''}: the gate could never be decided by the metric"
            )
    return out


UNBOUNDED = {"log_loss", "behaviour.minimum_functionality.failures"}


def metric_range(path: str) -> tuple[float, float]:
    """Where a metric's values lie: rates, AUCs, ECE, Brier, flip rates and verdicts in [0, 1]; counts and log
    loss at or above 0."""
    return (0.0, float("inf")) if path in UNBOUNDED else (0.0, 1.0)


def behaviour_metrics(p: Params) -> set[str]:
    b = p.evaluation.behaviour
    return (
        {f"behaviour.directional.{f}.violation_rate" for f in b.directional}
        | {f"behaviour.invariance.{f}.flip_rate" for f in b.invariance}
        | {f"behaviour.counterfactual.{a}.flip_rate" for a in b.counterfactual}
        | {"behaviour.minimum_functionality.failures", "behaviour.minimum_functionality.pass_rate"}
    )


def behaviour_checks(p: Params) -> list[str]:
    """Behavioural tests name model inputs of the right kind, and hand-written records obey the contract."""
    b, ds, out = p.evaluation.behaviour, p.dataset, []
    numeric, categorical = set(p.features.numeric), set(p.features.categorical)
    where = "evaluation.behaviour"
    for kind, names in (("directional", b.directional), ("invariance", b.invariance)):
        out += [
            f"{where}.{kind}.{f}: '{f}' is not a numeric model input (features.numeric)"
            for f in names
            if f not in numeric
        ]
    for i, a in enumerate(b.counterfactual):
        rule = ds.contract.columns.get(a)
        if a not in categorical or rule is None or not rule.categories:
            out.append(
                f"{where}.counterfactual.{i}: '{a}' is not a categorical input with contract categories"
            )
    inputs = [*p.features.categorical, *p.features.numeric]
    for i, case in enumerate(b.minimum_functionality):
        key = f"{where}.minimum_functionality.{i}.record"
        missing = [c for c in inputs if c not in case.record]
        extra = [c for c in case.record if c not in inputs]
        if missing or extra:
            out.append(f"{key}: must hold exactly the model inputs (missing {missing}, unknown {extra})")
        for column, value in case.record.items():
            rule = ds.contract.columns.get(column)
            if rule is None or value is None:
                continue
            if rule.categories is not None and value not in rule.categories:
                out.append(
                    f"{key}.{column}: {value!r} is not an allowed category (dataset.contract.columns.{column})"
                )
            if isinstance(value, int | float) and not isinstance(value, bool):
                if (rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max):
                    out.append(
                        f"{key}.{column}: {value!r} is not within [{rule.min}, {rule.max}] "
                        f"(dataset.contract.columns.{column})"
                    )
            elif rule.categories is None:
                out.append(f"{key}.{column}: {value!r} is not a number")
    return out


def metric_path_problem(path: str, slices: set[str], behaviour: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """Why ``path`` names no metric the evaluate stage writes ('' when it does)."""
    parts = path.split(".")
    if parts[0] in METRICS and len(parts) == 1:
        return ""
    if parts[0] == "fairness":
        if len(parts) != 3 or parts[1] not in slices or parts[2] not in DISPARITIES:
            return f"is not fairness.<slice>.<disparity> with a slice in {sorted(slices)} and one of {DISPARITIES}"
        return ""
    if path in ("latency.single_row.within_budget", "serving.parity.passed") or path in behaviour:
        return ""
    if parts[0] == "behaviour":
        return f"is not a configured behavioural metric ({sorted(behaviour)})"
    return (
        f"is not a metric the evaluate stage writes ({list(METRICS)}, fairness.*, latency.*, behaviour.*, "
        "serving.parity.passed)"
    )


# -- _target_ checks: what the training stages will instantiate ----------------------------------------------


def target_checks(p: Params) -> list[str]:
    out = []
    for name, cfg in p.models.items():
        if isinstance(cfg, SklearnModel):
            out += check_estimator(f"models.{name}.estimator", cfg.estimator)
        elif isinstance(cfg, LightningModel):
            out += check_target(
                f"models.{name}.datamodule", cfg.datamodule, skip={"data_dir", "features", "seed"}
            )
            out += check_target(f"models.{name}.module", cfg.module, skip={"cardinalities", "n_numeric"})
            for cb, spec in cfg.callbacks.items():
                out += check_callback(f"models.{name}.callbacks.{cb}", spec, cfg.module)
    out += trainer_checks(p.trainer)
    extra = p.trainer.model_extra or {}
    if extra:
        out += check_target("trainer", {"_target_": p.trainer.target, **extra}, skip=set())
    return out


def machine_checks(p: Params) -> list[str]:
    """The accelerator the trainer asks for exists on this machine."""
    if not any(isinstance(m, LightningModel) for m in p.models.values()):
        return []
    import torch

    accelerator = p.trainer.accelerator
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        return [f"trainer.accelerator: {accelerator!r} but this machine has no CUDA device (use trainer=cpu)"]
    if accelerator == "mps" and not torch.backends.mps.is_available():
        return ["trainer.accelerator: 'mps' but this machine has no Apple GPU (use trainer=cpu)"]
    return []


def trainer_checks(trainer: TrainerConfig) -> list[str]:
    """The strategy and devices Lightning will accept (its own registry of strategies)."""
    from pytorch_lightning.strategies import StrategyRegistry

    out = []
    known = ["auto", *StrategyRegistry.available_strategies()]
    if trainer.strategy not in known:
        out.append(
            f"trainer.strategy: {trainer.strategy!r} is not a Lightning strategy (one of {known[:8]}, ...)"
        )
    devices = trainer.devices
    if (
        isinstance(devices, str)
        and devices != "auto"
        and not all(p.strip().isdigit() for p in devices.split(","))
    ):
        out.append(
            f"trainer.devices: {devices!r} is not 'auto', a count, or a comma-separated list of indices"
        )
    if (isinstance(devices, int) and devices == 0) or (isinstance(devices, int) and devices < -1):
        out.append(f"trainer.devices: {devices} is not a device count (-1 for all, or at least 1)")
    return out


def check_callback(where: str, spec: dict[str, Any], module: dict[str, Any]) -> list[str]:
    """Arguments by signature, then the callback built (it checks its own options, e.g. mode), then ``monitor``
    against the metrics the module logs."""
    import pytorch_lightning as pl

    out = check_target(where, spec, skip={"dirpath"}, kind=pl.Callback)
    if out:
        return out
    cls, _ = resolve(where, spec)
    try:
        cls(**{k: v for k, v in spec.items() if not k.startswith("_")})
    except Exception as err:  # Lightning raises MisconfigurationException, a plain Exception subclass
        return [f"{where}: {err}"]
    module_cls, problem = resolve(where, module)
    logged = getattr(module_cls, "logged_metrics", None) if not problem else None
    monitor = spec.get("monitor")
    if logged and monitor is not None and monitor not in logged:
        out.append(f"{where}.monitor: {monitor!r} is not a metric {module['_target_']} logs ({list(logged)})")
    return out


def resolve(where: str, spec: dict[str, Any]) -> tuple[Any, str]:
    target = spec.get("_target_")
    if not isinstance(target, str) or "." not in target:
        return None, f"{where}._target_: needs a dotted import path (got {target!r})"
    module, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr), ""
    except (ImportError, AttributeError) as err:
        return None, f"{where}._target_: cannot import {target} ({err})"


def check_target(where: str, spec: dict[str, Any], skip: set[str], kind: type | None = None) -> list[str]:
    """The target is a class (of ``kind`` when given), and every argument is one it accepts, of the type its
    annotation names (strictly, with the constraints the annotation carries)."""
    cls, problem = resolve(where, spec)
    if problem:
        return [problem]
    if not inspect.isclass(cls):
        return [f"{where}._target_: {spec['_target_']} is not a class (got a {type(cls).__name__})"]
    if kind is not None and not issubclass(cls, kind):
        return [f"{where}._target_: {spec['_target_']} is not a {kind.__module__}.{kind.__qualname__}"]
    kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    out = []
    for key in kwargs:
        if key in skip:
            out.append(f"{where}.{key}: set by the stage, not by config")
        elif key not in signature.parameters and not accepts_any:
            known = sorted(k for k in signature.parameters if k not in skip and k != "self")
            out.append(f"{where}.{key}: {spec['_target_']} has no argument '{key}' (it takes {known})")
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception:  # unresolvable annotations: names were checked above
        return out
    for key, value in kwargs.items():
        if key in hints and key not in skip:
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=True)
            except ValidationError as err:
                for line in describe_errors(f"{where}.{key}", err):
                    out.append(line.strip())
            except Exception:  # an annotation pydantic cannot check (a protocol, a callable): skip it
                continue
    return out


def check_estimator(where: str, spec: dict[str, Any]) -> list[str]:
    """Build the scikit-learn estimator and run its own parameter validation (types and ranges)."""
    cls, problem = resolve(where, spec)
    if problem:
        return [problem]
    kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
    try:
        estimator = cls(**kwargs)
    except (TypeError, ValueError) as err:
        return [f"{where}: {err}"]
    if not callable(getattr(estimator, "predict_proba", None)):
        return [f"{where}._target_: {spec['_target_']} is not a classifier with predict_proba"]
    validate = getattr(estimator, "_validate_params", None)
    if validate is None or not hasattr(estimator, "_parameter_constraints"):
        return check_target(where, spec, skip=set())
    constraints = estimator._parameter_constraints
    booleans = [
        f"{where}.{k}: {v!r} is a boolean; {spec['_target_']} takes a number or an option here, and a boolean "
        "would be read as 0 or 1"
        for k, v in kwargs.items()
        if isinstance(v, bool) and not any(c == "boolean" or c is bool for c in constraints.get(k, []))
    ]
    if booleans:
        return booleans
    try:
        validate()
    except (ValueError, TypeError) as err:
        bad = next((k for k in kwargs if f"'{k}'" in str(err)), None)
        hint = yaml_hint(kwargs.get(bad), "float_type") if bad else ""
        return [f"{where}{'.' + bad if bad else ''}: {err}" + (f"; {hint}" if hint else "")]
    return []
