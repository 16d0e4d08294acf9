"""The desired state reaches the service as environment variables (<SYSTEM>_ROUTING_MODE, _CHALLENGER_WEIGHT,
_EXPECTED_CHAMPION): valid values change the routing; an invalid one, or an image of another champion, keeps the
service from being ready with a reason naming the variable, and never crashes it."""

from __future__ import annotations

import json

import pytest

from services.tabular.spec import ServingSpec, apply_deployment_env
from tests.conftest import serving_spec


@pytest.fixture()
def spec() -> ServingSpec:
    return serving_spec("adult", "adult-hgb:0123456789ab", "adult-tabular-nn:abcdef012345")


def test_nothing_set_changes_nothing(spec: ServingSpec) -> None:
    assert apply_deployment_env(spec, {}) == (spec, [])
    assert apply_deployment_env(spec, {"ADULT_ROUTING_MODE": "", "ADULT_CHALLENGER_WEIGHT": ""}) == (spec, [])


def test_the_routing_comes_from_the_desired_state(spec: ServingSpec) -> None:
    env = {
        "ADULT_ROUTING_MODE": "shadow",
        "ADULT_CHALLENGER_WEIGHT": "0.25",
        "ADULT_EXPECTED_CHAMPION": spec.champion.tag,
    }
    applied, problems = apply_deployment_env(spec, env)
    assert problems == [] and applied.routing.mode == "shadow" and applied.routing.challenger_weight == 0.25
    assert applied.champion == spec.champion and applied.routing.salt == spec.routing.salt
    assert env[
        "HMDA_ROUTING_MODE" if False else "ADULT_ROUTING_MODE"
    ]  # another system's variables are not read
    other, _ = apply_deployment_env(spec, {"HMDA_ROUTING_MODE": "champion_only"})
    assert other.routing == spec.routing


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"ADULT_ROUTING_MODE": "Canary"},
            "ADULT_ROUTING_MODE='Canary': expected canary, shadow or champion_only",
        ),
        ({"ADULT_CHALLENGER_WEIGHT": "ten"}, "ADULT_CHALLENGER_WEIGHT='ten': expected a number from 0 to 1"),
        ({"ADULT_CHALLENGER_WEIGHT": "1.5"}, "ADULT_CHALLENGER_WEIGHT='1.5'"),
        ({"ADULT_CHALLENGER_WEIGHT": "nan"}, "ADULT_CHALLENGER_WEIGHT='nan'"),
        ({"ADULT_CHALLENGER_WEIGHT": "-0.1"}, "ADULT_CHALLENGER_WEIGHT='-0.1'"),
        ({"ADULT_EXPECTED_CHAMPION": "adult-hgb:000000000000"}, "the desired state and the image disagree"),
    ],
)
def test_a_bad_value_is_a_readiness_problem_naming_the_variable(
    spec: ServingSpec, env: dict, needle: str
) -> None:
    applied, problems = apply_deployment_env(spec, env)
    assert len(problems) == 1 and needle in problems[0], problems
    assert applied.routing == spec.routing  # the bad value is not applied


def test_a_challenger_mode_without_a_challenger(spec: ServingSpec) -> None:
    alone = ServingSpec.model_validate(json.loads(spec.model_dump_json()) | {"challenger": None})
    _, problems = apply_deployment_env(
        alone, {"ADULT_ROUTING_MODE": "canary", "ADULT_CHALLENGER_WEIGHT": "0.1"}
    )
    assert problems == ["ADULT_ROUTING_MODE='canary', but this image has no challenger"]
    assert apply_deployment_env(alone, {"ADULT_ROUTING_MODE": "champion_only"})[1] == []
