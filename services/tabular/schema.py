"""Request and response models, generated from the input fields the data contract allows.

Every feature is required (nullable ones accept an explicit null); unexpected fields, wrong types and values out
of range are 400s with field-level details. Types are JSON's: a number field takes a JSON number only (a boolean
or a string is rejected, never read as 1 or 40), finite and within the contract's range (and int64); a category
takes a string. An unknown category is a 400 under ``unknown_category: reject`` or
becomes null (missing, which every model handles) under ``unknown``.
"""

import math
import re
from typing import Annotated, Any, Literal, NotRequired

from _bentoml_sdk.io_models import IODescriptor
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from services.tabular.guard import shown
from services.tabular.spec import InputPolicy

UNKNOWN_SEEN: dict[str, int] = {}  # field -> count of unknown categories mapped to null (read by the service)
INT64 = (-(2**63), 2**63 - 1)
KEY_MAX = 256  # characters in a routing key
NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)  # a JSON number


def _json_number(value: Any) -> Any:
    """Only a JSON number is a number here: pydantic's lax mode would read true as 1 and "40" as 40."""
    if value is None:
        raise ValueError("null is not allowed: the contract allows no missing value in this field")
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number: send the number itself")
    if isinstance(value, str):
        number = value.strip()
        if len(number) <= 80 and NUMBER_TEXT.fullmatch(number) and math.isfinite(float(number)):
            raise ValueError(f"a string is not a number: send {number} without quotes, not {shown(value)}")
        raise ValueError(f"a string is not a number: got {shown(value)}")  # cut at 80 characters
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity, or a literal like 1e999
        raise ValueError(f"must be a finite number, not {value!r} (JSON has no NaN or Infinity)")
    return value


def _json_text(value: Any) -> Any:
    if value is None:
        raise ValueError("null is not allowed: the contract allows no missing value in this field")
    if not isinstance(value, str):
        raise ValueError(f"must be a string (a category), not {type(value).__name__}")
    return value


def _routing_key(value: Any) -> Any:
    """A key is an opaque string of 1 to 256 characters (a user or session id); null means none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(
            f"the routing key must be a string of 1 to {KEY_MAX} characters, not {type(value).__name__}"
        )
    if not 1 <= len(value) <= KEY_MAX:
        raise ValueError(
            f"the routing key must be a string of 1 to {KEY_MAX} characters, not {len(value)} characters"
        )
    return value


def int_range(f: Any) -> Any:
    """An int field's range as a pydantic ``Field``: the contract's, within int64."""
    return Field(
        ge=max(f.min, INT64[0]) if f.min is not None else INT64[0],
        le=min(f.max, INT64[1]) if f.max is not None else INT64[1],
    )


def _json_integer(value: Any) -> Any:
    """A JSON number that is whole (40 or 40.0) becomes an int, so a whole number beyond the range (1e308) gets the
    range's message rather than pydantic's "unable to parse input string as an integer"."""
    value = _json_number(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_float(value: Any) -> Any:
    """A JSON integer becomes a float here, so a large one gets the range's message; one beyond what a float holds
    (10**400) gets its own message rather than pydantic's "Input should be a valid number"."""
    value = _json_number(value)
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("the number is beyond what a float holds (about 1.8e308)") from None
    return value


MAX_EXTRA_NAMED = 5  # extra fields named in a 400 (one error each); the rest are not listed


def _bounded_extras(allowed: frozenset[str]) -> Any:
    """A model validator (mode before) that lets at most MAX_EXTRA_NAMED extra fields reach ``extra="forbid"``,
    each name cut at 80 characters: one error per extra field made a 1.9 MB body of 170,000 extra fields a 25.7 MB
    answer, and a 1.9 MB field name came back whole. With a few short extras the data passes unchanged."""

    def bound(cls: type, data: Any) -> Any:
        if not isinstance(data, dict) or allowed.issuperset(data):
            return data
        extra = [k for k in data if k not in allowed]
        if len(extra) <= MAX_EXTRA_NAMED and all(len(k) <= 80 for k in extra):
            return data
        kept = {k: v for k, v in data.items() if k in allowed}
        for key in extra[:MAX_EXTRA_NAMED]:
            kept[key if len(key) <= 80 else f"{key[:80]}... ({len(key)} characters)"] = data[key]
        return kept

    return model_validator(mode="before")(bound)


Number = BeforeValidator(_json_number)
Float = BeforeValidator(_json_float)
Integer = BeforeValidator(_json_integer)
Text = BeforeValidator(_json_text)
RoutingKey = Annotated[str | None, BeforeValidator(_routing_key)]


def _category_validator(name: str, allowed: list[str], policy: str) -> Any:
    allowed_set = frozenset(allowed)

    def check(cls: type, value: str | None) -> str | None:
        if value is None or value in allowed_set:
            return value
        if policy == "unknown":
            UNKNOWN_SEEN[name] = UNKNOWN_SEEN.get(name, 0) + 1
            return None
        allowed_shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
        raise ValueError(f"unknown category {shown(value)}; allowed: {allowed_shown}")

    return field_validator(name)(classmethod(check))


def record_model(
    policy: InputPolicy, name: str = "Record", extra: dict[str, Any] | None = None
) -> type[BaseModel]:
    """A pydantic model with one field per feature, typed and bounded as the contract says."""
    fields: dict[str, Any] = {}
    validators: dict[str, Any] = {}
    for f in policy.fields:
        if f.type == "category":
            base: Any = Annotated[str, Text]
        elif f.type == "int":  # an integral JSON number (40 or 40.0), within the contract's range and int64
            base = Annotated[int, Integer, int_range(f)]
        else:  # a finite JSON number within the contract's range
            base = Annotated[float, Float, Field(ge=f.min, le=f.max, allow_inf_nan=False)]
        annotation = base | None if f.nullable else base
        extra_schema: dict[str, Any] | None = {"enum": list(f.categories)} if f.categories else None
        description = f.type + (" (nullable: send null when unknown)" if f.nullable else "")
        fields[f.name] = (annotation, Field(..., description=description, json_schema_extra=extra_schema))
        if f.categories is not None:
            validators[f"check_{f.name}"] = _category_validator(f.name, f.categories, policy.unknown_category)
    for key, value in (extra or {}).items():
        fields[key] = value
    validators["bound_extras"] = _bounded_extras(frozenset(fields))
    return create_model(name, __config__=ConfigDict(extra="forbid"), __validators__=validators, **fields)


class Prediction(BaseModel):
    """One answer: the score, the decision at the gated threshold, and which model version gave it."""

    request_id: str
    score: float
    decision: int
    label: str  # the raw label, as the data set codes it (">50K", "2")
    display: str  # how pages name the class (dataset.target.display: "denied", "bad credit risk")
    threshold: float
    model: str
    version: str
    role: Literal["champion", "challenger"]
    fallback: str | None = None


def request_models(
    policy: InputPolicy,
) -> tuple[type[BaseModel], type[BaseModel], type[IODescriptor], type[IODescriptor]]:
    """Record, BatchRecord (a record with an optional routing_key), and the two endpoints' input specs."""
    record_cls = record_model(policy)
    batch_cls = record_model(
        policy,
        "BatchRecord",
        {
            "routing_key": (
                RoutingKey,
                Field(None, description="sticky routing key (at most 256 characters)"),
            )
        },
    )
    limit = policy.max_batch_records

    class PredictInput(IODescriptor):
        model_config = ConfigDict(extra="forbid")
        record: record_cls  # type: ignore[valid-type]
        key: RoutingKey = Field(None, description="sticky routing key: the same key, the same model")
        bound_extras = _bounded_extras(frozenset({"record", "key"}))

    class BatchInput(IODescriptor):
        model_config = ConfigDict(extra="forbid")
        records: Annotated[list[batch_cls], Field(min_length=1, max_length=limit)]  # type: ignore[valid-type]
        bound_extras = _bounded_extras(frozenset({"records"}))

    return record_cls, batch_cls, PredictInput, BatchInput


NATIVE = ConfigDict(extra="forbid", strict=True)
NativeKey = Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX)] | None  # as _routing_key


def _native_record(policy: InputPolicy, name: str, routing_key: bool) -> Any:
    fields: dict[str, Any] = {}
    for f in policy.fields:
        if f.categories is not None:
            base: Any = Literal[tuple(f.categories)]
        elif f.type == "category":
            base = str
        elif f.type == "int":
            base = Annotated[int, int_range(f)]
        else:
            base = Annotated[float, Field(ge=f.min, le=f.max, allow_inf_nan=False)]
        fields[f.name] = base | None if f.nullable else base
    if routing_key:
        fields["routing_key"] = NotRequired[NativeKey]
    record = TypedDict(name, fields)  # type: ignore[misc]
    record.__pydantic_config__ = NATIVE  # type: ignore[attr-defined]
    return record


def native_request_validators(policy: InputPolicy) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    """The two endpoints' inputs, ``{"record", "key"}`` and ``{"records"}``, checked by pydantic-core alone.

    The request models above run Python for every field (to word their errors); these strict schemas run none:
    a JSON number for a number (an int field takes a JSON integer only), a known category, no null where the
    contract has none, the same ranges and limits, no extra field. They accept part of what the request models
    accept (never more), and what they accept they return as the request models' ``model_dump()`` would, as
    dicts (property-tested in tests/unit/test_direct_endpoints.py); anything else goes to the request models for
    their decision and words. Measured: 122 us for 32 records of 14 fields against 579 us, 5.7 us for one against 19 us.
    """
    record_type = _native_record(policy, "Record", False)
    batch_record_type = _native_record(policy, "BatchRecord", True)
    limits = Field(min_length=1, max_length=policy.max_batch_records)

    class PredictInput(TypedDict):
        __pydantic_config__ = NATIVE  # type: ignore[misc]
        record: record_type  # type: ignore[valid-type]
        key: NotRequired[NativeKey]

    class BatchInput(TypedDict):
        __pydantic_config__ = NATIVE  # type: ignore[misc]
        records: Annotated[list[batch_record_type], limits]  # type: ignore[valid-type]

    return TypeAdapter(PredictInput), TypeAdapter(BatchInput)
