"""Suite ``monitoring``: the monitor on 1,000,000 logged predictions with delayed labels, time and peak memory.

A window of Adult's test split with a covariate shift is scored in process by the champion and written as the
service writes its log (``pipelines.replay.simulate``); it is repeated with fresh request ids to 1,000,000 lines in
10 partitions of 100,000 (about 420 MB of JSONL), with a label for every other request. Measured in a fresh process
each (the launcher reads the peak resident set of the process tree, ``benchmarks/measure.py``):

- ``counting``: DuckDB reads the 10 partitions and the label feed and reduces them to window counts
  (``pipelines.core.window.count_log``, 2 threads);
- ``judging``: from JSONL to the decision against the stored reference, as an on-call engineer runs it
  (``python -m pipelines.monitor --window ... --out ... --reference artifacts/<system>/monitor/reference.json``):
  start-up and imports, counting, analysis, reports;
- ``monitor``: the whole judgement as the stage runs it (``python -m pipelines.monitor --window ... --out ...``):
  loading the splits and the champion, building and calibrating the reference, counting, analysing, writing.

Medians over the repeats. The aim (issue: monitoring) is at most 5 s and 1 GB on 2 cores.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import Sample, run_measured, summarize
from pipelines.core.workspace import ROOT

SYSTEM = "adult"
ROWS = 1_000_000
PARTITIONS = 10

COUNT = """
import sys, time, json
from pathlib import Path
from pipelines.core.monitoring import Reference
from pipelines.core.window import count_log
folder = Path(sys.argv[1])
ref = Reference.from_dict(json.loads(Path(sys.argv[2]).read_text()))
start = time.perf_counter()
counts = count_log(sorted((folder / "predictions").glob("*.jsonl")), ref.spec, sorted((folder / "labels").glob("*.jsonl")))
print(json.dumps({"rows": counts.rows, "labelled": float(counts.arrays["label:count"].sum()),
                  "seconds_inside": time.perf_counter() - start}))
"""


def build_window(folder: Path) -> dict[str, Any]:
    """Write the 1M-row window (not timed)."""
    from models.predictor import load_predictor
    from pipelines.core.config import DatasetConfig, load_system, section
    from pipelines.core.monitor_config import MonitorConfig
    from pipelines.core.paths import SystemPaths
    from pipelines.core.training import read_split
    from pipelines.replay import generate, simulate
    from services.tabular.spec import load_spec

    params = load_system(ROOT / "params.yaml", SYSTEM)
    paths = SystemPaths(SYSTEM)
    cfg = section(params, "monitor", MonitorConfig)
    dataset = section(params, "dataset", DatasetConfig)
    test = read_split(ROOT / paths.processed, "test")
    champion = load_predictor(ROOT / paths.release("champion"))
    spec = load_spec(ROOT / paths.serving_spec)
    block = 10_000
    frame, y = generate(test, cfg.replay.scenarios["covariate"], block, 0, dataset)
    ids = [f"b-{i:07d}" for i in range(block)]
    log, labels, _ = simulate(frame, y, champion, spec, ids, datetime(2026, 1, 1, tzinfo=UTC), 3600)
    log_lines, label_lines = log.splitlines(), labels.splitlines()
    (folder / "predictions").mkdir(parents=True)
    (folder / "labels").mkdir()
    per_part = ROWS // PARTITIONS
    written = 0
    with (folder / "labels/labels.jsonl").open("w") as lab:
        for part in range(PARTITIONS):
            with (folder / f"predictions/predictions-{part:02d}.jsonl").open("w") as out:
                for rep in range(per_part // len(log_lines)):
                    prefix = f"p{part}r{rep}-"
                    out.write("\n".join(x.replace('"b-', f'"{prefix}b-', 1) for x in log_lines) + "\n")
                    lab.write("\n".join(x.replace('"b-', f'"{prefix}b-', 1) for x in label_lines[::2]) + "\n")
                    written += len(log_lines)
    size = sum(p.stat().st_size for p in (folder / "predictions").glob("*"))
    return {"rows": written, "jsonl_mb": round(size / 1e6, 1)}


def run(repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        window = Path(tmp) / "window"
        facts = build_window(window)
        reference = ROOT / "artifacts" / SYSTEM / "monitor" / "reference.json"
        counting: list[Sample] = []
        monitor: list[Sample] = []
        judging: list[Sample] = []
        inside: list[float] = []
        for i in range(repeats):
            s = run_measured(["python", "-c", COUNT, str(window), str(reference)], ROOT)
            report = json.loads(s.output.strip().splitlines()[-1])
            assert report["rows"] == facts["rows"], report
            inside.append(report["seconds_inside"])
            counting.append(s)
            out = Path(tmp) / f"out{i}"
            cmd = [
                "python",
                "-m",
                "pipelines.monitor",
                "--system",
                SYSTEM,
                "--window",
                str(window),
                "--out",
                str(out),
            ]
            monitor.append(run_measured(cmd, ROOT))
            stored = [*cmd[:-1], str(Path(tmp) / f"judged{i}"), "--reference", str(reference)]
            judging.append(run_measured(stored, ROOT))
        result = json.loads((Path(tmp) / "out0" / "decision.json").read_text())
    return {
        "repeats": repeats,
        "window": facts | {"labelled": report["labelled"], "partitions": PARTITIONS},
        "counting": summarize(counting) | {"seconds_inside": round(sorted(inside)[len(inside) // 2], 3)},
        "monitor": summarize(monitor),
        "judging": summarize(judging),
        "decision": result["decision"],
    }
