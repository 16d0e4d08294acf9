"""Typed views of params.yaml. Each stage validates the sections it reads, so a bad value fails early and by name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.errors import ConfigError

PARAMS_FILE = Path("params.yaml")
# Each system's stages read their params from reports/params/<system>/<section>.json and depend on one file per
# key they read (<section>/<key>.json); check_params and `make params` write them from params.yaml. As DVC params
# deps, every stage parsed all of params.yaml (90% of a no-op `dvc status`) and dvc.lock held the values of every
# key of every stage (5,100 of its 7,200 lines), which DVC parses and rewrites after each stage it runs.
STAGE_PARAMS_DIR = Path("reports/params")
ColumnType = Literal["int", "float", "category"]


# A name or a path: an empty string would silently mean "no column" or "the folder itself".
Name = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A params section: unknown keys are errors (a typo must not be silently ignored), and types are strict:
    a string is not a number and a boolean is not an integer, whatever YAML or a command-line override made of
    them (the error says how to write the value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FormatSpec(Section):
    separator: str = Field(",", min_length=1, max_length=1)
    header: bool = False
    encoding: Literal["utf-8", "utf-8-sig"] = "utf-8"  # utf-8-sig accepts one leading byte order mark
    quoting: Literal["minimal", "none"] = "minimal"  # none: the file never quotes; a double quote is an error
    missing_token: str = "?"
    comment_prefix: str | None = None
    label_suffix: str | None = None


class FileSpec(Section):
    path: Name
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256 of the file's bytes")
    format: FormatSpec | None = None  # this file's own format (default: dataset.format), e.g. a CT export


class TargetDisplay(Section):
    positive: str = Field(min_length=1)  # how pages name the positive class (a short phrase)
    negative: str = Field(min_length=1)


class TargetSpec(Section):
    column: Name
    name: Name = "target"
    labels: dict[Name, int]
    display: TargetDisplay | None = None  # default: the raw labels

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


class DerivedColumn(Section):
    """A category column computed by ingest from another column: ``map`` (codes as written -> values; a code not
    in the map is an error naming its line) or ``threshold`` (``above`` when the number is >= threshold, else
    ``below``; a missing number stays missing)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True
    )
    source: str = Field(alias="from", min_length=1)
    map: dict[str, str] | None = None
    threshold: float | None = None
    above: str | None = None
    below: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> DerivedColumn:
        if (self.map is None) == (self.threshold is None):
            raise ValueError("give exactly one of map (code -> value) and threshold (with above and below)")
        if self.threshold is not None and (self.above is None or self.below is None):
            raise ValueError("a threshold needs both above (value when >= threshold) and below")
        if self.map is not None and (self.above is not None or self.below is not None):
            raise ValueError("above and below go with threshold, not with map")
        return self


class DatasetConfig(Section):
    name: Name
    title: str = Field(min_length=1)  # how pages name the data set, the data set's usual name and subject
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
    # category columns computed by ingest (each also listed in columns, as category); the file has the others
    derived: dict[str, DerivedColumn] = Field(default_factory=dict)

    @property
    def file_columns(self) -> list[str]:
        """The columns read from the files (in file order when there is no header): every column not derived."""
        return [c for c in self.columns if c not in self.derived]

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        known = set(self.columns)
        problems = []
        for name, how in self.derived.items():
            if self.columns.get(name) != "category":
                problems.append(f"derived.{name}: list it in columns as a category column")
            if how.source not in known or how.source in self.derived:
                problems.append(f"derived.{name}.from: '{how.source}' is not a column read from the files")
            elif how.threshold is not None and self.columns[how.source] == "category":
                problems.append(
                    f"derived.{name}.threshold: '{how.source}' is a category column, not a number"
                )
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
    """train / valid / test. ``test`` names the file kept whole as the test set; when the data has no official test
    file, ``test: null`` and ``test_fraction`` carve a seeded, stratified test set from ``source`` first."""

    seed: int = SEED
    valid_fraction: float = Field(gt=0.0, lt=1.0)
    source: Name
    test: Name | None
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    stratify: list[str] = Field(default_factory=list)
    sample: float | None = Field(None, gt=0.0, le=1.0)
    # keys of dataset.files added whole to the training split (make ct: labelled production rows); valid and test
    # stay as they were, so a retrained candidate is judged on the same rows as the champion
    extra_train: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_test_set(self) -> SplitConfig:
        if (self.test is None) == (self.test_fraction is None):
            raise ValueError(
                "give exactly one of test (a key of dataset.files kept whole as the test set) and test_fraction "
                f"(a share of source carved off as the test set); got test={self.test!r}, "
                f"test_fraction={self.test_fraction!r}"
            )
        return self


class ProfileConfig(Section):
    reference: Name
    splits: list[Name]
    histogram_bins: int = Field(ge=2, le=1000)
    quantiles: list[float]
    top_categories: int = Field(ge=1)
    intersections: list[list[str]] = Field(default_factory=list)
    summary_numeric: list[str] = Field(
        default_factory=list
    )  # numeric columns the datasheet summarizes per group

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


GLOBAL_SECTIONS = ("trainer", "report")  # shared by every system; every other section is per system


class SystemParams(dict[str, Any]):
    """One system's params (``params.yaml`` key ``<system>``) with the global sections beside them.

    Stages read it as they would a one-system params file; ``key`` gives the dotted key a user edits
    (``<system>.split.seed``, but ``trainer.max_epochs``), so every error names the key to change.
    """

    def __init__(self, system: str, sections: dict[str, Any]) -> None:
        super().__init__(sections)
        self.system = system

    def key(self, name: str) -> str:
        return name if name.split(".")[0] in GLOBAL_SECTIONS else f"{self.system}.{name}"


def systems_of(params: dict[str, Any]) -> list[str]:
    """The systems ``params.yaml`` lists under ``systems`` (conf/config.yaml), in order."""
    names = params.get("systems")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"params.yaml: 'systems' must be a non-empty list of system names, got {names!r}")
    return names


def system_params(params: dict[str, Any], system: str) -> SystemParams:
    """``params[system]`` plus the global sections; a ConfigError names the systems that exist."""
    names = systems_of(params)
    if system not in names:
        raise ConfigError(f"unknown system '{system}': params.yaml lists systems {names}")
    own = params.get(system)
    if not isinstance(own, dict):
        raise ConfigError(
            f"params.yaml has no '{system}' mapping (is conf/config.yaml missing '- {system}: system'?)"
        )
    return SystemParams(system, {**own, **{g: params[g] for g in GLOBAL_SECTIONS if g in params}})


def load_system(path: str | Path | None, system: str) -> SystemParams:
    """One system's view (``system_params``) of its params: from ``params.yaml`` (or another composed file), or
    by default from ``reports/params/<system>/``, the files dvc.yaml declares for the system's stages."""
    if path is not None:
        return system_params(load_params(path), system)
    folder = STAGE_PARAMS_DIR / system
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ConfigError(
            f"{folder}/ has no params: run `make params` (or `dvc repro`, whose check_params writes it)"
        )
    params: dict[str, Any] = {}
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{file} is not valid JSON ({err}): run `make params` to write it again"
            ) from None
        for key, value in data.items():
            if key in GLOBAL_SECTIONS or key == "systems":
                params[key] = value
            else:
                params.setdefault(key, {}).update(value)
    return system_params(params, system)


def stage_params_files(params: dict[str, Any]) -> dict[str, str]:
    """``<system>/...json`` -> text, for every system: what its stages read and what they depend on.

    ``<system>/<section>.json`` holds a whole section (the global ones and the list of systems among them): stages
    read these. ``<system>/<section>/<key>.json`` holds one key of a section: dvc.yaml makes each stage depend on
    the files of exactly the keys it reads, so a change reruns the stages that read it and dvc.lock records a
    hash per key read. Every file keeps params.yaml's keys (``{"adult": {"split": ...}}``) and order
    (``dataset.columns`` is the file's column order)."""
    out = {}
    for system in systems_of(params):
        own = system_params(params, system)
        sections: dict[str, Any] = {name: {system: {name: value}} for name, value in params[system].items()}
        sections |= {g: {g: own[g]} for g in GLOBAL_SECTIONS if g in own}
        sections["systems"] = {"systems": systems_of(params)}
        for name, data in sections.items():
            out[f"{system}/{name}.json"] = _json(data)
        for name, value in params[system].items():
            if isinstance(value, dict):
                for key, sub in (_defaults(name, value) | value).items():
                    out[f"{system}/{name}/{key}.json"] = _json({system: {name: {key: sub}}})
    return out


def _defaults(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """The keys of section ``name`` that params.yaml leaves out, with the defaults a stage reads for them
    (``dataset.derived``: ``{}``), so that a stage can depend on every key it reads; nothing when the section has
    no model or does not validate (check_params then stops the run)."""
    from pipelines.core.params import Params  # it imports this module

    field = Params.model_fields.get(name)
    model = field.annotation if field else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return {}
    try:
        full = model.model_validate(value).model_dump(mode="json")
    except ValidationError:
        return {}
    return {key: full[key] for key in model.model_fields if key not in value and key in full}


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def section(params: dict[str, Any], name: str, model: type[S]) -> S:
    """Validate one params section against its model; errors name the dotted key and the problem."""
    key = params.key(name) if isinstance(params, SystemParams) else name
    if name not in params:
        raise ConfigError(f"params.yaml has no '{key}' section (is it missing from the defaults in conf/?)")
    try:
        return model.model_validate(params[name])
    except ValidationError as err:
        raise ConfigError("invalid params:\n" + "\n".join(describe_errors(key, err))) from None


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


# Mappings whose values are a discriminated union (``kind``): pydantic puts the tag into an error's location
# (``scenarios.broken_units.units.factor``); the user's key has no such part. Filled by the modules that use one.
TAGGED_MAPPINGS: dict[str, set[str]] = {}


def _user_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    parts = list(loc)
    for i in range(2, len(parts)):
        if str(parts[i - 2]) in TAGGED_MAPPINGS and str(parts[i]) in TAGGED_MAPPINGS[str(parts[i - 2])]:
            return parts[:i] + parts[i + 1 :]
    return parts


def describe_errors(prefix: str, err: ValidationError) -> list[str]:
    """One line per error: the dotted key, the rule, the value as given and, where YAML explains it, a hint."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix, *_user_loc(e["loc"])) if p != "")
        got = (
            f" (got {e['input']!r})" if e["type"] not in ("missing", "value_error", "assertion_error") else ""
        )
        hint = yaml_hint(e.get("input"), e["type"]) if e["type"] != "missing" else ""
        lines.append(f"  {key}: {e['msg']}{got}" + (f"; {hint}" if hint else ""))
    return lines
