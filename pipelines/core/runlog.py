"""Run records: figures that vary from run to run by nature (wall time, throughput, latency).

They are kept out of every DVC output and every tracked file, so that the same commit and data give byte-identical
artifacts, metrics and ``dvc.lock`` (the stages print them too). Each record is one JSON file under
``$RUN_LOG_DIR`` (default ``logs/runs``, git-ignored): ``<stage>/<name>.json``. ``make bench`` is where these
figures are measured properly (medians over repeats, side by side).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.core.io import write_json_atomic

ENV = "RUN_LOG_DIR"
DEFAULT = Path("logs/runs")


def run_log_dir() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


def record(stage: str, name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` (with the wall-clock time it was measured) to ``<run log dir>/<stage>/<name>.json``."""
    entry = {
        "stage": stage,
        "name": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **data,
    }
    return write_json_atomic(run_log_dir() / stage / f"{name}.json", entry)
