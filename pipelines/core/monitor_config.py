"""The ``<system>.monitor`` params section (conf/monitor/): windows, thresholds, decay, replay scenarios."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipelines.core.config import TAGGED_MAPPINGS, Name, Section

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class EffectFloor(Section):
    psi: float = Field(gt=0.0)
    js: float = Field(gt=0.0, le=0.8326)  # sqrt(ln 2): the largest Jensen-Shannon distance (natural log)
    wasserstein: float = Field(gt=0.0)


class Calibration(Section):
    windows: int = Field(ge=20, le=100_000)
    rows: int = Field(ge=10)
    seed: int = Field(ge=0)


class BrokenFeed(Section):
    max_null_increase: Fraction
    max_out_of_range: Fraction
    max_error_rate: Fraction


class Decay(Section):
    max_auc_drop: Fraction
    max_positive_rate_change: Fraction


class CT(Section):
    min_labelled_rows: int = Field(ge=1)
    max_regression: float = Field(ge=0.0, lt=1.0)


class NoShift(Section):
    kind: Literal["none"]


class Covariate(Section):
    """Add ``shift`` to a numeric feature (clipped to the contract's range, so the service accepts it)."""

    kind: Literal["covariate"]
    feature: Name
    shift: float


class CategoryMix(Section):
    """Resample so that ``category`` of ``feature`` makes up ``share`` of the window."""

    kind: Literal["category_mix"]
    feature: Name
    category: Name
    share: Fraction


class LabelShift(Section):
    """Resample so that the positive class makes up ``positive_rate`` of the window."""

    kind: Literal["label_shift"]
    positive_rate: Fraction


class Concept(Section):
    """Flip the labels of the rows where ``feature`` is ``category``: same inputs, another answer."""

    kind: Literal["concept"]
    feature: Name
    category: Name


class Scramble(Section):
    """The outcomes stop following the inputs: labels shuffled across the window (same inputs, same base rate).
    Nothing drifts, yet the champion fails its gates: the ``rollback`` case."""

    kind: Literal["scramble"]


class Nulls(Section):
    """A broken feed: ``feature`` arrives null in every row."""

    kind: Literal["nulls"]
    feature: Name


class Units(Section):
    """A broken feed: ``feature`` arrives multiplied by ``factor`` (a unit change)."""

    kind: Literal["units"]
    feature: Name
    factor: float = Field(gt=0.0)


Scenario = Annotated[
    NoShift | Covariate | CategoryMix | LabelShift | Concept | Scramble | Nulls | Units,
    Field(discriminator="kind"),
]


TAGGED_MAPPINGS["scenarios"] = {
    "none",
    "covariate",
    "category_mix",
    "label_shift",
    "concept",
    "scramble",
    "nulls",
    "units",
}
# a scenario's name becomes part of a file name (logs/labels/<system>/labels-<scenario>-...)
ScenarioName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")]


class Replay(Section):
    rows: int = Field(ge=1, le=10_000_000)
    seed: int = Field(ge=0)
    label_lag_s: float = Field(ge=0.0)
    scenarios: dict[ScenarioName, Scenario] = Field(default_factory=dict)


class MonitorConfig(Section):
    min_rows: int = Field(ge=1)
    min_labelled: int = Field(ge=1)
    false_alarm_rate: Fraction
    numeric_bins: int = Field(ge=2, le=1000)
    max_categories: int = Field(ge=1, le=10_000)
    score_bins: int = Field(ge=10, le=10_000)
    effect_floor: EffectFloor
    calibration: Calibration
    broken_feed: BrokenFeed
    decay: Decay
    ct: CT
    replay: Replay
