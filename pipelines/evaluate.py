"""Stage ``evaluate``: judge one trained candidate on the test split.

Usage: ``python -m pipelines.evaluate --model NAME``. Reads ``evaluation`` params and the artifact in
``artifacts/candidates/NAME/``. Computes accuracy, precision, recall, F1, ROC-AUC, PR-AUC, log loss, Brier and
expected calibration error with bootstrap percentile intervals; the confusion matrix at the configured threshold;
the reliability diagram (before and after calibration when the model is calibrated); per-group rates and
disparities by every sensitive attribute and intersection (fairlearn MetricFrame); in-process latency, judged
against ``evaluation.latency.budget_p95_ms``: the verdict is a metric, the measured figures (which vary from run
to run) are a run record under ``logs/runs/evaluate/`` (``pipelines.core.runlog``), never a tracked file.

Writes ``reports/eval/NAME/metrics.json`` (headline numbers, a DVC metrics file), ``evaluation.json`` (everything)
and ``plots/{roc,pr,calibration,groups}.json`` (DVC plots).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.compile import CompileError, compile_predictor
from models.predictor import ArtifactError, CalibratedPredictor, Predictor, load_predictor, read_manifest
from pipelines.core import behaviour, fairness, latency, parity, runlog
from pipelines.core import metrics as M
from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, to_json
from pipelines.core.model_config import EvaluationConfig
from pipelines.core.paths import SystemPaths
from pipelines.core.training import read_split


def evaluate(
    predictor: Predictor,
    test: pd.DataFrame,
    cfg: EvaluationConfig,
    categories: dict[str, list[str]] | None = None,
    upper: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The full evaluation of ``predictor`` on ``test``; ``categories`` and ``upper`` (per column, from the data
    contract) bound the behavioural perturbations."""
    categories, upper = categories or {}, upper or {}
    target = predictor.features.target
    y = test[target].astype(int).to_numpy()
    p = predictor.predict_proba(test)
    d = (p >= cfg.threshold).astype(int)
    slices = fairness.slices(
        test.reset_index(drop=True), cfg.fairness.attributes, [list(i) for i in cfg.fairness.intersections]
    )
    eligible = fairness.eligible_groups(slices, cfg.fairness.min_group_size)
    b = cfg.bootstrap
    intervals = M.bootstrap(
        y,
        p,
        cfg.threshold,
        cfg.calibration_bins,
        b.resamples,
        b.confidence,
        b.seed,
        extra=fairness.GroupBootstrap(y, d, slices, eligible),
    )
    point = M.point_metrics(y, p, cfg.threshold, cfg.calibration_bins)
    result: dict[str, Any] = {
        "rows": len(test),
        "positives": int(y.sum()),
        "threshold": cfg.threshold,
        "bootstrap": b.model_dump(),
        "metrics": {k: M.with_ci(v, intervals[k]) for k, v in point.items()},
        "confusion_matrix": M.confusion(y, p, cfg.threshold),
        "calibration": {"bins": M.reliability(y, p, cfg.calibration_bins)},
        "fairness": fairness.fairness_report(y, d, slices, cfg.fairness.min_group_size, intervals),
    }
    if isinstance(predictor, CalibratedPredictor):
        raw = predictor.base.predict_proba(test)
        result["calibration"]["method"] = predictor.calibrator.method
        result["calibration"]["before"] = {
            **{
                k: v
                for k, v in M.point_metrics(y, raw, cfg.threshold, cfg.calibration_bins).items()
                if k in ("ece", "brier", "log_loss", "roc_auc", "accuracy")
            },
            "bins": M.reliability(y, raw, cfg.calibration_bins),
        }
    else:
        result["calibration"]["method"] = None
    serving, measured = serving_path(predictor, test, cfg, p)
    result["serving"] = serving
    result["behaviour"] = behaviour.run(
        predictor.predict_proba, test, cfg.behaviour, cfg.threshold, categories, upper
    )
    result["latency_measured"] = measured  # a run record, never a tracked file (it varies by nature)
    result["latency"] = latency.verdict(measured, cfg.latency.budget_p95_ms)
    result["plots"] = {
        "roc": M.roc_points(y, p),
        "pr": M.pr_points(y, p),
        "calibration": [
            {
                "bin": r["bin"],
                "mean_score": r["mean_score"],
                "positive_rate": r["positive_rate"],
                "count": r["count"],
            }
            for r in result["calibration"]["bins"]
            if r["count"]
        ],
        "groups": [
            {"slice": name, "group": group, "metric": metric, "value": entry[metric]["value"]}
            for name, rep in result["fairness"].items()
            for group, entry in rep["groups"].items()
            for metric in fairness.GROUP_METRICS
        ],
    }
    return result


def serving_path(
    predictor: Predictor, test: pd.DataFrame, cfg: EvaluationConfig, scores: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the service would run: the fast path compiled from ``predictor``, its parity with the reference
    (``scores`` = the reference's scores of ``test``) and latency measured on it (the reference pipeline's is in
    ``make bench``: 5.7 ms a row for a 97-tree gradient boosting model, and seconds beside a busy process with OpenMP's threads).

    Returns the tracked summary (fast path, parity verdict) and the measurements (a run record: they vary).
    Without a fast path the latency is the reference's and parity fails: the model cannot be champion.
    """
    lat = cfg.latency
    timing = (lat.warmup, lat.single_row_repeats, lat.batch_size, lat.batch_repeats)
    try:
        fast = compile_predictor(predictor)
    except CompileError as err:
        failed = {"fast_path": None, "error": str(err), "parity": {"passed": False}}
        return failed, latency.measure(predictor.predict_proba, test, *timing) | {"path": "reference"}
    checked = parity.check(predictor.predict_proba, fast, test, cfg.threshold, reference_scores=scores)
    cat, num = fast.categorical, fast.numeric
    measured = latency.measure(
        fast.score_records, test, *timing, prepare=lambda f: parity.records_of(f, cat, num)
    )
    parts = parity.comparisons(checked)
    summary: dict[str, Any] = {
        "fast_path": fast.info,
        "parity": {
            "tolerance": checked["tolerance"],
            "rows": {k: v["rows"] for k, v in parts.items()},
            "decisions_differ": sum(v["decisions_differ"] for v in parts.values()),
            "max_abs_diff_at_most": parity.bound(checked["max_abs_diff"]),
            "batch_invariance": checked["batch_invariance"],
            "passed": checked["passed"],
        },
    }
    return summary, measured | {"path": "fast", "parity_max_abs_diff": checked["max_abs_diff"]}


def headline(name: str, info: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The compact DVC metrics file: what `dvc metrics diff` and the gates read."""
    out: dict[str, Any] = {"model": name, "kind": info.get("kind"), "threshold": result["threshold"]}
    out |= result["metrics"]
    out["fairness"] = {s: {k: rep[k] for k in fairness.DISPARITIES} for s, rep in result["fairness"].items()}
    out["latency"] = result["latency"]
    parity_ = result["serving"]["parity"]
    out["serving"] = {"parity": {k: parity_.get(k) for k in ("passed", "max_abs_diff_at_most")}}
    out["behaviour"] = behaviour.headline(result["behaviour"])
    if result["calibration"].get("before"):
        out["calibration_before"] = {
            k: result["calibration"]["before"][k] for k in ("ece", "brier", "log_loss")
        }
    return out


def jsonable(data: Any) -> Any:
    """Floats rounded for readable, stable files; NaN becomes null."""
    if isinstance(data, dict):
        return {k: jsonable(v) for k, v in data.items()}
    if isinstance(data, list):
        return [jsonable(v) for v in data]
    if isinstance(data, float | np.floating):
        if np.isnan(data):
            return None
        value = float(data)
        if 0 < abs(value) < 1e-4:  # a tolerance or a bound (1e-9): three significant digits, not zero
            return float(f"{value:.3g}")
        return round(value, 6)
    if isinstance(data, np.integer):
        return int(data)
    return data


@stage_main("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data, args.artifacts = args.data or paths.processed, args.artifacts or paths.candidates
    params = load_system(args.params, args.system)
    cfg = section(params, "evaluation", EvaluationConfig)
    dataset = section(params, "dataset", DatasetConfig)
    rules = dataset.contract.columns
    categories = {c: list(r.categories) for c, r in rules.items() if r.categories}
    upper = {c: r.max for c, r in rules.items() if r.max is not None}
    out = args.out or paths.evals / args.model
    try:
        folder = args.artifacts / args.model
        predictor, info = load_predictor(folder), read_manifest(folder)["info"]
    except ArtifactError as err:
        raise PipelineError(str(err)) from None
    test = read_split(args.data, cfg.split)
    result = evaluate(predictor, test, cfg, categories, upper)
    measured = result.pop("latency_measured")
    runlog.record("evaluate", f"{args.system}/{args.model}", {"latency": jsonable(measured)})
    with atomic_dir(out) as staging:
        (staging / "plots").mkdir()
        for name, points in result.pop("plots").items():
            (staging / "plots" / f"{name}.json").write_text(to_json(jsonable(points)))
        (staging / "evaluation.json").write_text(
            to_json(jsonable({"model": args.model, "info": info, **result}))
        )
        (staging / "metrics.json").write_text(to_json(jsonable(headline(args.model, info, result))))
    m = result["metrics"]
    print(
        f"[evaluate] {args.model}: accuracy {m['accuracy']['value']:.4f}, ROC-AUC {m['roc_auc']['value']:.4f}, "
        f"ECE {m['ece']['value']:.4f}, single-row p95 {measured['single_row']['p95_ms']:.3f} ms on the "
        f"{measured['path']} path (budget {cfg.latency.budget_p95_ms} ms), "
        f"parity {'passed' if result['serving']['parity']['passed'] else 'FAILED'} -> {out}"
    )


if __name__ == "__main__":
    main()
