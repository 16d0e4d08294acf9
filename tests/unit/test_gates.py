"""Gates: pass, warn and block verdicts, the relative-to-baseline rule, ranking, and no champion."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.core.gates import evaluate_gates, lookup
from pipelines.core.model_config import EvaluationConfig


def metrics(kind: str, auc: float, ece: float = 0.01, dpr: float = 0.3) -> dict[str, Any]:
    return {
        "kind": kind,
        "roc_auc": {"value": auc},
        "ece": {"value": ece},
        "fairness": {"sex": {"demographic_parity_ratio": {"value": dpr}}},
    }


@pytest.fixture()
def cfg(params: dict) -> EvaluationConfig:
    base = params["evaluation"] | {
        "gates": {
            "min_auc": {
                "metric": "roc_auc",
                "op": ">=",
                "threshold": 0.8,
                "severity": "block",
                "rationale": "r",
            },
            "max_ece": {
                "metric": "ece",
                "op": "<=",
                "threshold": 0.05,
                "severity": "block",
                "rationale": "r",
            },
            "dpr": {
                "metric": "fairness.sex.demographic_parity_ratio",
                "op": ">=",
                "threshold": 0.8,
                "severity": "warn",
                "rationale": "r",
            },
            "beats": {
                "metric": "roc_auc",
                "op": ">=",
                "threshold": 0.01,
                "relative_to": "best_baseline",
                "severity": "block",
                "applies_to": "candidates",
                "rationale": "r",
            },
        }
    }
    return EvaluationConfig.model_validate(base)


def test_lookup() -> None:
    m = metrics("baseline", 0.9)
    assert lookup(m, "roc_auc") == 0.9 and lookup(m, "fairness.sex.demographic_parity_ratio") == 0.3
    assert lookup(m, "fairness.race.demographic_parity_ratio") is None


def test_pass_warn_block_and_ranking(cfg: EvaluationConfig) -> None:
    result = evaluate_gates(
        {
            "base": metrics("baseline", 0.85),
            "good": metrics("candidate", 0.92, dpr=0.9),  # passes everything
            "warned": metrics("candidate", 0.95),  # best AUC, fairness warning only
            "uncalibrated": metrics("candidate", 0.97, ece=0.2),  # best AUC but blocked
            "marginal": metrics("candidate", 0.855),  # does not beat the baseline by 0.01
        },
        cfg,
    )
    models = result["models"]
    assert models["good"]["status"] == "passed"
    assert models["warned"]["status"] == "passed with warnings" and models["warned"]["warned"] == ["dpr"]
    assert models["uncalibrated"]["status"] == "blocked" and models["uncalibrated"]["failed"] == ["max_ece"]
    assert models["marginal"]["failed"] == ["beats"]
    beats = next(v for v in models["marginal"]["gates"] if v["gate"] == "beats")
    assert beats["effective_threshold"] == pytest.approx(0.86)
    assert not any(v["gate"] == "beats" for v in models["base"]["gates"])  # candidates only
    assert result["champion"] == "warned" and result["challenger"] == "good"
    assert result["ranking"] == ["warned", "good", "base"]


def test_blocked_model_is_never_champion_even_if_best(cfg: EvaluationConfig) -> None:
    result = evaluate_gates({"b": metrics("baseline", 0.85), "x": metrics("candidate", 0.99, ece=0.3)}, cfg)
    assert result["champion"] == "b" and result["challenger"] is None


def test_none_passes(cfg: EvaluationConfig) -> None:
    result = evaluate_gates({"b": metrics("baseline", 0.6), "x": metrics("candidate", 0.7)}, cfg)
    assert result["champion"] is None and result["ranking"] == []


def test_baselines_can_be_excluded(cfg: EvaluationConfig) -> None:
    only = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"eligible_kinds": ["candidate"]})}
    )
    result = evaluate_gates({"b": metrics("baseline", 0.95, dpr=0.9)}, only)
    assert result["champion"] is None and result["models"]["b"]["status"] == "passed"


def test_missing_metric_fails_a_blocking_gate(cfg: EvaluationConfig) -> None:
    m = metrics("candidate", 0.95)
    del m["ece"]
    result = evaluate_gates({"b": metrics("baseline", 0.8), "x": m}, cfg)
    assert result["models"]["x"]["failed"] == ["max_ece"]
