"""Typed views of params.yaml. Each stage validates the sections it reads, so a bad value fails early and by name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.errors import ConfigError

PARAMS_FILE = Path("params.yaml")
ColumnType = Literal["int", "float", "category"]


# A name or a path: an empty string would silently mean "no column" or "the folder itself".
Name = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A params section: unknown keys are errors (a typo must not be silently ignored), and types are strict:
    a string is not a number and a boolean is not an integer, whatever YAML or a command-line override made of
    them (the error says how to write the value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FileSpec(Section):
    path: Name
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256 of the file's bytes")


class FormatSpec(Section):
    separator: str = Field(",", min_length=1, max_length=1)
    header: bool = False
    encoding: Literal["utf-8", "utf-8-sig"] = "utf-8"  # utf-8-sig accepts one leading byte order mark
    quoting: Literal["minimal", "none"] = "minimal"  # none: the file never quotes; a double quote is an error
    missing_token: str = "?"
    comment_prefix: str | None = None
    label_suffix: str | None = None


class TargetSpec(Section):
    column: Name
    name: Name = "target"
    labels: dict[Name, int]

    @field_validator("labels")
    @classmethod
    def _binary(cls, labels: dict[str, int]) -> dict[str, int]:
        if sorted(set(labels.values())) != [0, 1]:
            raise ValueError(f"must map the raw labels onto both 0 and 1, got {labels}")
        return labels

    @property
    def positive_labels(self) -> list[str]:
        return [k for k, v in self.labels.items() if v == 1]


class ColumnRule(Section):
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    max_missing_fraction: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ClassBalance(Section):
    min_positive_rate: float = Field(ge=0.0, le=1.0)
    max_positive_rate: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ClassBalance:
        if self.min_positive_rate > self.max_positive_rate:
            raise ValueError(
                f"min_positive_rate ({self.min_positive_rate}) is greater than max_positive_rate "
                f"({self.max_positive_rate})"
            )
        return self


class DuplicatePolicy(Section):
    max_fraction: float = Field(ge=0.0, le=1.0)
    severity: Literal["error", "warn"] = "error"


class Contract(Section):
    min_rows: dict[str, int]
    class_balance: ClassBalance
    duplicates: DuplicatePolicy
    columns: dict[str, ColumnRule]


class DatasetConfig(Section):
    name: Name
    version: str
    description: str
    citation: str
    license: str
    raw_dir: Name
    files: dict[str, FileSpec]
    format: FormatSpec
    columns: dict[str, ColumnType]
    target: TargetSpec
    sensitive: list[str]
    contract: Contract

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        known = set(self.columns)
        problems = []
        if self.target.column not in known:
            problems.append(f"target.column '{self.target.column}' is not in columns")
        if self.target.name in known:
            problems.append(f"target.name '{self.target.name}' clashes with a raw column")
        problems += [f"sensitive '{c}' is not in columns" for c in self.sensitive if c not in known]
        problems += [
            f"contract.columns.{c} is not in columns" for c in self.contract.columns if c not in known
        ]
        problems += [
            f"contract.min_rows.{k} is not in files" for k in self.contract.min_rows if k not in self.files
        ]
        for name, rule in self.contract.columns.items():
            kind = self.columns.get(name)
            if kind == "category" and (rule.min is not None or rule.max is not None):
                problems.append(f"contract.columns.{name}: min/max given for a category column")
            if kind in ("int", "float") and rule.categories is not None:
                problems.append(f"contract.columns.{name}: categories given for a numeric column")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Every column except the raw label."""
        return [c for c in self.columns if c != self.target.column]

    def numeric_columns(self) -> list[str]:
        return [c for c in self.feature_columns if self.columns[c] in ("int", "float")]

    def categorical_columns(self) -> list[str]:
        return [c for c in self.feature_columns if self.columns[c] == "category"]


SEED = Field(ge=0, le=2**32 - 1, description="a seed numpy and torch both accept")


class SplitConfig(Section):
    seed: int = SEED
    valid_fraction: float = Field(gt=0.0, lt=1.0)
    source: Name
    test: Name
    stratify: list[str] = Field(default_factory=list)
    sample: float | None = Field(None, gt=0.0, le=1.0)


class ProfileConfig(Section):
    reference: Name
    splits: list[Name]
    histogram_bins: int = Field(ge=2, le=1000)
    quantiles: list[float]
    top_categories: int = Field(ge=1)
    intersections: list[list[str]] = Field(default_factory=list)

    @field_validator("quantiles")
    @classmethod
    def _unit_interval(cls, qs: list[float]) -> list[float]:
        bad = [q for q in qs if not 0.0 <= q <= 1.0]
        if bad:
            raise ValueError(f"quantiles must lie in [0, 1], got {bad}")
        return qs


S = TypeVar("S", bound=BaseModel)


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml (composed from conf/ by ``make params`` or ``dvc exp run``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `make params` to compose it from conf/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def section(params: dict[str, Any], name: str, model: type[S]) -> S:
    """Validate one params section against its model; errors name the dotted key and the problem."""
    if name not in params:
        raise ConfigError(
            f"params.yaml has no '{name}' section (is conf/config.yaml missing '{name}' in defaults?)"
        )
    try:
        return model.model_validate(params[name])
    except ValidationError as err:
        raise ConfigError("invalid params:\n" + "\n".join(describe_errors(name, err))) from None


NUMBER_TEXT = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?")
YAML11_BOOLEANS = {"y", "n", "yes", "no", "on", "off", "true", "false"}


def yaml_hint(value: Any, error_type: str) -> str:
    """Why YAML may have typed ``value`` differently from what was meant, when that explains the error."""
    if isinstance(value, str) and error_type in ("list_type", "sequence_str", "tuple_type", "set_type"):
        return f"write a YAML list: [{value}]"
    if isinstance(value, bool) and error_type in ("string_type", "literal_error"):
        return "YAML reads unquoted yes/no/on/off/true/false as a boolean: quote the value, e.g. 'no'"
    if isinstance(value, bool):
        return "a boolean is not a number here: write the number itself"
    if isinstance(value, int | float) and error_type in ("string_type", "literal_error"):
        return f"YAML reads {value!r} unquoted as a number: quote it to keep it text, e.g. '{value}'"
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
        if re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
            return f"YAML 1.1 (PyYAML, DVC) reads {value} as text: write it with a decimal point, e.g. 1.0e-3"
        return f"{value!r} is text, not a number: remove the quotes"
    if value is None and error_type in ("model_type", "dict_type", "list_type", "string_type"):
        return "the key has no value: YAML reads an empty value as null"
    if error_type == "int_from_float":
        return "write a whole number, without a decimal point"
    return ""


def describe_errors(prefix: str, err: ValidationError) -> list[str]:
    """One line per error: the dotted key, the rule, the value as given and, where YAML explains it, a hint."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        got = (
            f" (got {e['input']!r})" if e["type"] not in ("missing", "value_error", "assertion_error") else ""
        )
        hint = yaml_hint(e.get("input"), e["type"]) if e["type"] != "missing" else ""
        lines.append(f"  {key}: {e['msg']}{got}" + (f"; {hint}" if hint else ""))
    return lines
