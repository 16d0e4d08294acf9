"""The prediction log: one JSON line per prediction, rotated by size, with configurable fields and redaction.

Monitoring reads these files later (`predictions-<worker>.jsonl` and their rotations `.1`, `.2`, ...).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

from services.adult.spec import LOG_FIELDS, PredictionLog

ALL_FIELDS = LOG_FIELDS


class PredictionLogger:
    """Writes the configured fields of each prediction; the ``redact`` features never reach the file."""

    def __init__(self, cfg: PredictionLog, worker: str) -> None:
        unknown = set(cfg.fields) - set(ALL_FIELDS)
        if unknown:
            raise ValueError(
                f"prediction_log.fields has unknown field(s) {sorted(unknown)}; choose from {ALL_FIELDS}"
            )
        self.cfg = cfg
        self.path = Path(cfg.dir) / f"predictions-{worker}.jsonl"
        self.logger = logging.getLogger(f"adult.predictions.{worker}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if cfg.enabled and not self.logger.handlers:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                self.path, maxBytes=cfg.max_bytes, backupCount=cfg.backup_count, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.cfg.enabled:
            return
        line = {k: entry.get(k) for k in self.cfg.fields}
        if "features" in line and isinstance(line["features"], dict):
            line["features"] = {k: v for k, v in line["features"].items() if k not in self.cfg.redact}
        self.logger.info(json.dumps(line, separators=(",", ":"), default=str))

    def close(self) -> None:
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)
