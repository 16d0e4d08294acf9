"""Stage ``monitor``: judge a window of production traffic against the training reference; decide ok, retrain,
block or rollback.

Reads the system's ``monitor``, ``dataset``, ``features``, ``evaluation`` (gates, fairness slices) and ``serving``
params, the train and valid splits, the champion, and the collected window in ``data/<system>/production/``
(``predictions/*.jsonl*`` as the service writes them, ``labels/*.jsonl`` delayed labels joined by request id,
``metrics.prom`` a scrape of the service's ``/metrics``). Writes the reference (``artifacts/<system>/monitor/
reference.json``: bins, counts and calibrated thresholds, see ``pipelines.core.monitoring``) and the judgement
(``reports/<system>/monitor/monitor.json``, with ``decision`` and ``reasons``). An empty window is "insufficient
data" and the decision ``ok``.

``python -m pipelines.monitor --system NAME --collect`` first replaces the window with the live logs
(``logs/predictions/<system>``, ``logs/labels/<system>``, ``logs/metrics/<system>/metrics.prom``); ``make monitor``
collects, then runs this stage through DVC.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pipelines.core import runlog
from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, write_json_atomic, write_text_atomic
from pipelines.core.monitor_config import MonitorConfig
from pipelines.core.monitoring import Reference, analyse, build_reference, summary
from pipelines.core.paths import PRODUCTION_README as README
from pipelines.core.paths import SystemPaths
from pipelines.core.service_metrics import service_stats
from pipelines.core.window import WindowCounts, count_log


def window_files(window: Path) -> tuple[list[Path], list[Path], Path | None]:
    """The prediction-log partitions, the label files and the service's counts (a ``metrics.prom`` scrape of
    ``/metrics``, or ``service.json`` from an in-process replay) of a collected window."""
    logs = sorted(p for p in (window / "predictions").glob("*.jsonl*") if p.is_file())
    labels = sorted(p for p in (window / "labels").glob("*.jsonl") if p.is_file())
    counts = next((window / n for n in ("metrics.prom", "service.json") if (window / n).is_file()), None)
    return logs, labels, counts


def collect(paths: SystemPaths) -> dict[str, int]:
    """Replace ``data/<system>/production`` with copies of the live logs (the README stays); counts of files."""
    sources = {
        "predictions": sorted(p for p in paths.prediction_logs.glob("*.jsonl*") if p.is_file()),
        "labels": sorted(p for p in paths.label_logs.glob("*.jsonl") if p.is_file()),
    }
    metrics = Path("logs/metrics") / paths.system
    with atomic_dir(paths.production) as staging:
        (staging / "README.md").write_text(README.format(system=paths.system), encoding="utf-8")
        for folder, files in sources.items():
            (staging / folder).mkdir()
            for f in files:
                shutil.copyfile(f, staging / folder / f.name)
        counts = [metrics / n for n in ("metrics.prom", "service.json") if (metrics / n).is_file()]
        counts.sort(key=lambda f: f.stat().st_mtime, reverse=True)
        for f in counts[:1]:  # the newer of a scrape of the service and in-process counts
            shutil.copyfile(f, staging / f.name)
    return {k: len(v) for k, v in sources.items()} | {"service counts": len(counts[:1])}


def reference_for(params: Any, paths: SystemPaths, cfg: MonitorConfig) -> Reference:
    from models.predictor import ArtifactError, load_predictor  # here: judging a stored reference needs none
    from pipelines.core.model_config import EvaluationConfig
    from pipelines.core.training import read_split

    dataset = section(params, "dataset", DatasetConfig)
    evaluation = section(params, "evaluation", EvaluationConfig)
    logged = list(params["serving"]["prediction_log"]["feature_fields"])
    numeric = [c for c in params["features"]["numeric"] if c in logged]
    categorical = [c for c in params["features"]["categorical"] if c in logged]
    slices = [[a] for a in evaluation.fairness.attributes] + [
        list(i) for i in evaluation.fairness.intersections
    ]
    groups = [s for s in slices if all(c in logged for c in s)]
    try:
        champion = load_predictor(paths.release("champion"))
    except ArtifactError as err:
        raise PipelineError(f"cannot load the champion: {err}") from None
    train, valid = read_split(paths.processed, "train"), read_split(paths.processed, "valid")
    scores = champion.predict_proba(valid)
    return build_reference(
        train, valid, scores, dataset.target.name, numeric, categorical, groups, evaluation.threshold, cfg
    )


def judge(
    reference: Reference,
    window: Path,
    cfg: MonitorConfig,
    gates: dict[str, Any],
    system: str,
    service: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Count the window's files and analyse them; ``service`` (requests, errors) overrides the scrape."""
    logs, labels, scrape = window_files(window)
    counts = count_log(logs, reference.spec, labels) if logs else WindowCounts()
    if service is None and scrape is not None:
        text = scrape.read_text(encoding="utf-8")
        service = json.loads(text) if scrape.suffix == ".json" else service_stats(text, system)
    result = analyse(reference, counts, cfg, gates, service)
    result["window"] = {"partitions": [p.name for p in logs], "label_files": [p.name for p in labels]}
    return result


@stage_main("monitor")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--collect", action="store_true", help="replace the window with the live logs, then stop"
    )
    parser.add_argument("--window", type=Path, help="judge this folder instead of data/<system>/production")
    parser.add_argument(
        "--out", type=Path, help="write the judgement here instead of reports/<system>/monitor"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="judge against this stored reference (artifacts/<system>/monitor/reference.json) instead of building "
        "it; needs --out: a quick look at a window, not the stage",
    )
    args = parser.parse_args(argv)
    if args.reference is not None and args.out is None:
        raise PipelineError(
            "--reference needs --out: the stage's own outputs come from the reference it builds"
        )
    paths = SystemPaths(args.system)
    params = load_system(args.params, args.system)
    cfg = section(params, "monitor", MonitorConfig)
    if args.collect:
        n = collect(paths)
        print(f"[monitor] collected {n} into {paths.production}")
        return
    started = time.perf_counter()
    if args.reference is not None:
        try:
            reference = Reference.from_dict(json.loads(args.reference.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise PipelineError(f"--reference {args.reference}: not a stored reference ({err})") from None
    else:
        reference = reference_for(params, paths, cfg)
    gates = {k: v for k, v in params["evaluation"]["gates"].items()}
    result = judge(reference, args.window or paths.production, cfg, gates, args.system)
    out = args.out or paths.monitor_reports
    if args.out is None:
        write_json_atomic(paths.monitor_reference, reference.to_dict())
    with atomic_dir(out) as staging:
        write_json_atomic(staging / "monitor.json", result)
        write_json_atomic(staging / "decision.json", summary(result))
        write_text_atomic(staging / "decision.txt", result["decision"] + "\n")
    runlog.record(
        "monitor", args.system, {"seconds": round(time.perf_counter() - started, 3), "rows": result["rows"]}
    )
    print(
        f"[monitor] {args.system}: {result['rows']} rows, decision {result['decision']}: {'; '.join(result['reasons'])}"
    )


if __name__ == "__main__":
    main()
