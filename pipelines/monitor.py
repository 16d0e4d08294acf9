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
from pipelines.core.io import atomic_dir, copy_private, private_dir, write_json_atomic, write_text_atomic
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
            private_dir(staging / folder)  # as the service keeps them: folder 0700, files 0600
            for f in files:
                copy_private(f, staging / folder / f.name)
        counts = [metrics / n for n in ("metrics.prom", "service.json") if (metrics / n).is_file()]
        counts.sort(key=lambda f: f.stat().st_mtime, reverse=True)
        for f in counts[:1]:  # the newer of a scrape of the service and in-process counts
            shutil.copyfile(f, staging / f.name)
    return {k: len(v) for k, v in sources.items()} | {"service counts": len(counts[:1])}


def stored_reference(path: Path, system: str) -> Reference:
    """A reference the stage stored; refused when unreadable or built for another system."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PipelineError(f"--reference {path}: cannot read a stored reference ({err})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"--reference {path}: expected a JSON object, got {type(data).__name__}")
    built_for = data.get("system")
    if built_for != system:
        raise PipelineError(
            f"--reference {path} was built for system {built_for!r}, not {system!r} "
            f"(use artifacts/{system}/monitor/reference.json)"
        )
    try:
        return Reference.from_dict(data)
    except KeyError as err:
        raise PipelineError(f"--reference {path}: not a stored reference (missing key {err})") from None
    except (ValueError, TypeError) as err:
        raise PipelineError(f"--reference {path}: not a stored reference ({err})") from None


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


OUTPUTS = {"monitor.json", "decision.json", "decision.txt"}


def checked_out(out: Path) -> Path:
    """``--out`` as a folder the judgement may replace: new, or holding only an earlier judgement. A file, a
    folder with anything else in it (it would be deleted) or the working directory itself is refused."""
    resolved = out.resolve()
    if resolved == Path.cwd().resolve() or resolved.parent == resolved:
        raise PipelineError(f"--out {out}: give a folder of its own for the judgement, not {resolved}")
    if resolved.exists() and not resolved.is_dir():
        raise PipelineError(f"--out {out} is a file: give a folder (it gets {', '.join(sorted(OUTPUTS))})")
    if resolved.is_dir():
        others = sorted(p.name for p in resolved.iterdir() if p.name not in OUTPUTS)
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise PipelineError(
                f"--out {out} holds other files ({shown}), which writing the judgement would delete: "
                "give a new or empty folder"
            )
    return out


def checked_window(window: Path) -> Path:
    """``--window`` must be a collected window: a folder with ``predictions/`` (the log partitions)."""
    if not window.is_dir():
        raise PipelineError(
            f"--window {window}: no such folder (a window is a folder with predictions/, labels/)"
        )
    if not (window / "predictions").is_dir():
        raise PipelineError(
            f"--window {window} has no predictions/ folder: a window holds predictions/*.jsonl (the service's "
            "log partitions), and optionally labels/*.jsonl and metrics.prom"
        )
    return window


def service_counts(path: Path, system: str) -> dict[str, Any]:
    """The service's requests and errors from a ``metrics.prom`` scrape or a replay's ``service.json``."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else service_stats(text, system)
    except (ValueError, UnicodeDecodeError, OSError) as err:  # JSONDecodeError is a ValueError
        kind = "JSON" if path.suffix == ".json" else "a Prometheus text scrape"
        raise PipelineError(f"{path} is not {kind}: {err}") from None
    if not isinstance(data, dict):
        raise PipelineError(
            f"{path}: expected a JSON object of the service's counts, got {type(data).__name__}"
        )
    return data


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
        service = service_counts(scrape, system)
    result = analyse(reference, counts, cfg, gates, service)
    result["window"] = {"partitions": [p.name for p in logs], "label_files": [p.name for p in labels]}
    return result


@stage_main("monitor")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
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
    if args.out is not None:
        checked_out(args.out)
    if args.window is not None:
        checked_window(args.window)
    paths = SystemPaths(args.system)
    params = load_system(args.params, args.system)
    cfg = section(params, "monitor", MonitorConfig)
    if args.collect:
        n = collect(paths)
        print(f"[monitor] collected {n} into {paths.production}")
        return
    started = time.perf_counter()
    if args.reference is not None:
        reference = stored_reference(args.reference, args.system)
    else:
        reference = reference_for(params, paths, cfg)
    gates = {k: v for k, v in params["evaluation"]["gates"].items()}
    result = judge(reference, args.window or paths.production, cfg, gates, args.system)
    out = args.out or paths.monitor_reports
    if args.out is None:
        write_json_atomic(paths.monitor_reference, {"system": args.system, **reference.to_dict()})
    try:
        with atomic_dir(out) as staging:
            write_json_atomic(staging / "monitor.json", result)
            write_json_atomic(staging / "decision.json", summary(result))
            write_text_atomic(staging / "decision.txt", result["decision"] + "\n")
    except OSError as err:
        raise PipelineError(f"cannot write the judgement to {out}: {err.strerror or err}") from None
    runlog.record(
        "monitor", args.system, {"seconds": round(time.perf_counter() - started, 3), "rows": result["rows"]}
    )
    print(
        f"[monitor] {args.system}: {result['rows']} rows, decision {result['decision']}: {'; '.join(result['reasons'])}"
    )


if __name__ == "__main__":
    main()
