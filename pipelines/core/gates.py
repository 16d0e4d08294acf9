"""Acceptance gates: compare each candidate's metrics with the thresholds in ``evaluation.gates``.

A gate reads one metric (a dotted path into ``reports/eval/<model>/metrics.json``; a ``{"value": ...}`` node
yields its value), compares it with ``op`` and ``threshold`` (plus the best baseline's value when
``relative_to: best_baseline``) and gives ``pass``, ``warn`` or ``fail``. A candidate with any ``fail`` on a
``block`` gate is blocked; the champion is the eligible, unblocked candidate with the best primary metric.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.core.model_config import EvaluationConfig, Gate

OPS = {">=": operator.ge, "<=": operator.le}
# Metrics where lower is better, for ranking and for "best baseline".
LOWER_IS_BETTER = {"log_loss", "brier", "ece"}


def node_at(metrics: dict[str, Any], path: str) -> Any:
    """The node at ``path`` (``a.b.c``), or None when any part is missing."""
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def lookup(metrics: dict[str, Any], path: str) -> float | None:
    """The value at ``path`` (``a.b.c``); None when any part is missing or the value is null (undefined)."""
    node = node_at(metrics, path)
    if isinstance(node, dict):
        node = node.get("value")
    return None if node is None else float(node)


def why_missing(metrics: dict[str, Any], path: str, model: str) -> str:
    """The reason a gate has no value: the metric's own 'undefined' note, or that it is absent."""
    node = node_at(metrics, path)
    if isinstance(node, dict) and node.get("undefined"):
        return (
            f"{path} is undefined for {model}: {node['undefined']}; a gate cannot pass on an undefined value"
        )
    if node is not None:
        return f"{path} is undefined for {model}; a gate cannot pass on an undefined value"
    return f"{path} is missing from {model}'s metrics"


@dataclass
class Verdict:
    gate: str
    metric: str
    value: float | None
    op: str
    threshold: float
    effective_threshold: float | None
    severity: str
    verdict: str  # pass | warn | fail | skip
    detail: str


def best_baseline(metrics: dict[str, dict[str, Any]], metric: str) -> tuple[str | None, float | None]:
    """The baseline with the best value of ``metric``."""
    scored: list[tuple[str, float]] = []
    for name, m in metrics.items():
        value = lookup(m, metric)
        if m.get("kind") == "baseline" and value is not None:
            scored.append((name, value))
    if not scored:
        return None, None
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scored, key=lambda nv: nv[1])


def applies(gate: Gate, kind: str) -> bool:
    return gate.applies_to == "all" or (gate.applies_to == "candidates") == (kind == "candidate")


def judge(
    name: str, metrics: dict[str, Any], gate_name: str, gate: Gate, all_metrics: dict[str, dict[str, Any]]
) -> Verdict:
    value = lookup(metrics, gate.metric)
    effective: float | None = gate.threshold
    note = ""
    if gate.relative_to == "best_baseline":
        base, base_value = best_baseline(all_metrics, gate.metric)
        if base_value is None:
            return Verdict(
                gate_name,
                gate.metric,
                value,
                gate.op,
                gate.threshold,
                None,
                gate.severity,
                "skip",
                "no baseline was evaluated",
            )
        effective = base_value + gate.threshold if gate.op == ">=" else base_value - gate.threshold
        note = f" (best baseline {base} = {base_value:.4f}, margin {gate.threshold})"
    if value is None:
        verdict = "fail" if gate.severity == "block" else "warn"
        return Verdict(
            gate_name,
            gate.metric,
            None,
            gate.op,
            gate.threshold,
            effective,
            gate.severity,
            verdict,
            why_missing(metrics, gate.metric, name),
        )
    assert effective is not None
    ok = OPS[gate.op](value, effective)
    verdict = "pass" if ok else ("fail" if gate.severity == "block" else "warn")
    detail = f"{gate.metric} = {value:.4f} {'meets' if ok else 'misses'} {gate.op} {effective:.4f}{note}"
    return Verdict(
        gate_name, gate.metric, value, gate.op, gate.threshold, effective, gate.severity, verdict, detail
    )


def evaluate_gates(all_metrics: dict[str, dict[str, Any]], cfg: EvaluationConfig) -> dict[str, Any]:
    """Every gate for every model, each model's status, and the ranking of the unblocked, eligible ones."""
    results: dict[str, Any] = {}
    for name, metrics in all_metrics.items():
        kind = metrics.get("kind") or "candidate"
        verdicts = [
            judge(name, metrics, g, gate, all_metrics) for g, gate in cfg.gates.items() if applies(gate, kind)
        ]
        failed = [v.gate for v in verdicts if v.verdict == "fail"]
        warned = [v.gate for v in verdicts if v.verdict == "warn"]
        status = "blocked" if failed else ("passed with warnings" if warned else "passed")
        results[name] = {
            "kind": kind,
            "status": status,
            "eligible": kind in cfg.selection.eligible_kinds and not failed,
            "primary": lookup(metrics, cfg.primary_metric),
            "failed": failed,
            "warned": warned,
            "gates": [asdict(v) for v in verdicts],
        }
    reverse = cfg.primary_metric not in LOWER_IS_BETTER
    ranking = sorted(
        (n for n, r in results.items() if r["eligible"] and r["primary"] is not None),
        key=lambda n: (results[n]["primary"], n) if reverse else (-results[n]["primary"], n),
        reverse=True,
    )
    return {
        "primary_metric": cfg.primary_metric,
        "ranking": ranking,
        "champion": ranking[0] if ranking else None,
        "challenger": ranking[1] if len(ranking) > 1 else None,
        "models": results,
    }
