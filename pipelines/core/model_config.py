"""Typed views of the model-side params: ``features``, ``models.<name>`` (the ``model`` group) and ``evaluation``."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from pipelines.core.behaviour import BehaviourConfig
from pipelines.core.config import ConfigError, Name, Section, section


class FeaturesConfig(Section):
    categorical: list[Name]
    numeric: list[Name]


Calibration = Literal["isotonic", "sigmoid"] | None


class ModelBase(Section):
    name: str
    kind: Literal["baseline", "candidate"]
    description: str
    calibration: Calibration = None


class SklearnModel(ModelBase):
    family: Literal["sklearn"]
    preprocessing: Literal["onehot", "ordinal", "none"]
    estimator: dict[str, Any]

    @field_validator("estimator")
    @classmethod
    def _target(cls, estimator: dict[str, Any]) -> dict[str, Any]:
        if "_target_" not in estimator:
            raise ValueError("needs a _target_ (the estimator class to instantiate)")
        return estimator


class LightningModel(ModelBase):
    family: Literal["lightning"]
    seed: int = Field(ge=0, le=2**32 - 1)  # Lightning replaces a seed outside this range with a random one
    datamodule: dict[str, Any]
    module: dict[str, Any]
    callbacks: dict[str, dict[str, Any]] = Field(default_factory=dict)


class MitigationModel(ModelBase):
    family: Literal["mitigation"]
    base: Name
    sensitive: Name
    constraint: Literal[
        "demographic_parity",
        "equalized_odds",
        "false_negative_rate_parity",
        "false_positive_rate_parity",
        "true_positive_rate_parity",
        "true_negative_rate_parity",
    ]
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = "accuracy_score"
    grid_size: int = Field(1000, ge=10)
    tol: float | None = None


ModelConfig = SklearnModel | LightningModel | MitigationModel


def model_section(params: dict[str, Any], name: str) -> ModelConfig:
    """Validate ``models.<name>``; the error names the model and its bad key."""
    models = params.get("models") or {}
    if name not in models:
        raise ConfigError(
            f"params.yaml has no models.{name} (known: {sorted(models)}); is it in conf/config.yaml?"
        )
    family = models[name].get("family")
    model_cls: dict[str, type[BaseModel]] = {
        "sklearn": SklearnModel,
        "lightning": LightningModel,
        "mitigation": MitigationModel,
    }
    if family not in model_cls:
        raise ConfigError(f"models.{name}.family must be one of {sorted(model_cls)}, got {family!r}")
    cfg = section(models, name, model_cls[family])
    if cfg.name != name:  # type: ignore[attr-defined]
        raise ConfigError(f"models.{name}.name is {cfg.name!r}; it must equal its key")  # type: ignore[attr-defined]
    return cfg  # type: ignore[return-value]


M = TypeVar("M", SklearnModel, LightningModel, MitigationModel)
FAMILY_OF = {SklearnModel: "sklearn", LightningModel: "lightning", MitigationModel: "mitigation"}


def model_for_stage(params: dict[str, Any], name: str, expected: type[M], stage: str) -> M:
    """``models.<name>``, which must be of the family ``stage`` trains (else a ConfigError naming both)."""
    cfg = model_section(params, name)
    if not isinstance(cfg, expected):
        raise ConfigError(
            f"models.{name} has family '{cfg.family}'; {stage} handles family '{FAMILY_OF[expected]}'"
        )
    return cfg


class Bootstrap(Section):
    resamples: int = Field(ge=10, le=100_000)
    confidence: float = Field(gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class Fairness(Section):
    attributes: list[str]
    intersections: list[list[str]] = Field(default_factory=list)
    min_group_size: int = Field(ge=1)


class Latency(Section):
    warmup: int = Field(ge=0)
    single_row_repeats: int = Field(ge=5)
    batch_size: int = Field(ge=1)
    batch_repeats: int = Field(ge=3)
    budget_p95_ms: float = Field(gt=0, description="single-row in-process p95 budget, milliseconds")


class Selection(Section):
    eligible_kinds: list[Literal["baseline", "candidate"]] = Field(min_length=1)


class Gate(Section):
    metric: str
    op: Literal[">=", "<="]
    threshold: float
    severity: Literal["block", "warn"]
    applies_to: Literal["all", "candidates", "baselines"] = "all"
    relative_to: Literal["best_baseline"] | None = None
    rationale: str = Field(min_length=1)


class EvaluationConfig(Section):
    behaviour: BehaviourConfig
    split: str
    threshold: float = Field(gt=0.0, lt=1.0)
    primary_metric: str
    bootstrap: Bootstrap
    calibration_bins: int = Field(ge=2, le=100)
    fairness: Fairness
    latency: Latency
    selection: Selection
    gates: dict[str, Gate]
