"""The prediction log: one JSON line per prediction, for monitoring and audit.

What it keeps is explicit in config (``serving.prediction_log``): the answer's ``fields`` and an allowlist of input
``feature_fields`` (a feature added to the model is not logged until someone decides it should be). Files are
private to the service's user (folder 0700, files 0600), rotate by size (``retention.max_bytes``, keeping
``retention.backup_count`` older files) and rotated files older than ``retention.max_age_days`` are deleted.

A write that fails (a full disk, a folder made read-only or removed) never fails the request: it is counted
(``failures``), the logger reports itself unhealthy, and it retries on the next write, so it recovers by itself.
The service turns ``healthy`` into readiness when the policy is ``fail_closed``. Python's logging handlers were not
used: they swallow write errors (``Handler.handleError``), so a broken log went unnoticed.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pydantic_core

from services.tabular.spec import PredictionLog

logger = logging.getLogger("bentoml.service.predlog")
DIR_MODE = 0o700
FILE_MODE = 0o600


def picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function from a mapping to the tuple of its values at ``names``; KeyError when one is missing."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda mapping: tuple(mapping[name] for name in names)


class PredictionLogger:
    """Appends the configured fields of each prediction to ``predictions-<instance>-w<worker>.jsonl`` in
    ``cfg.dir``: two instances sharing a folder never write into one file."""

    def __init__(self, cfg: PredictionLog, worker: str, instance: str = "") -> None:
        self.cfg = cfg
        name = f"predictions-{instance}-w{worker}" if instance else f"predictions-w{worker}"
        self.path = Path(cfg.dir) / f"{name}.jsonl"
        self.fields = tuple(cfg.fields)
        self.features = set(cfg.feature_fields)
        self.feature_order = tuple(
            dict.fromkeys(cfg.feature_fields)
        )  # the allowlist: a few names, not every input
        self._pick, self._pick_features = picker(self.fields), picker(self.feature_order)
        self.failures = 0
        self.written = 0
        self.last_error: str | None = None
        self._fh: Any = None
        self._size = 0
        self._lock = threading.Lock()
        self._last_warning = 0.0
        if cfg.enabled:
            with self._lock:
                self._open()  # a failure here is counted, never raised: the worker starts and reports it

    @property
    def healthy(self) -> bool:
        """False after a failed write (or open), until a write succeeds again."""
        return not self.cfg.enabled or self.last_error is None

    def _fail(self, err: OSError) -> None:
        self.failures += 1
        self.last_error = f"{type(err).__name__}: {err}"
        self._close()
        now = time.monotonic()
        if now - self._last_warning > 10:  # one warning per 10 s, the counter has the rest
            self._last_warning = now
            logger.warning("prediction log %s cannot be written (%s); counted in /metrics", self.path, err)

    def _open(self) -> bool:
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # an older file keeps its mode otherwise
            self._fh = os.fdopen(fd, "ab")
            self._size = os.fstat(fd).st_size
            return True
        except OSError as err:
            self._fail(err)
            return False

    def _still_there(self) -> bool:
        """Whether the open file is still the one at ``path`` (one stat per write, about 2 us)."""
        try:
            here, opened = os.stat(self.path), os.fstat(self._fh.fileno())
        except OSError:
            return False
        return (here.st_ino, here.st_dev) == (opened.st_ino, opened.st_dev)

    def _close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def _rotate(self) -> None:
        """predictions.jsonl -> .1 -> .2 ... (the oldest beyond backup_count is deleted), then prune by age."""
        self._close()
        keep = self.cfg.retention.backup_count
        for i in range(keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if i == keep and older.exists():
                older.unlink()
            newer = self.path.with_name(f"{self.path.name}.{i - 1}") if i > 1 else self.path
            if newer.exists():
                os.replace(newer, older)
        if keep == 0 and self.path.exists():
            self.path.unlink()
        self.prune()

    def prune(self, now: float | None = None) -> list[Path]:
        """Delete rotated files older than retention.max_age_days; return them."""
        limit = (now or time.time()) - self.cfg.retention.max_age_days * 86400
        removed = []
        for path in self.path.parent.glob(f"{self.path.name}.*"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
        return removed

    def line(self, entry: dict[str, Any]) -> bytes:
        """One JSON line (UTF-8) of the configured fields (a missing one is null) and, of the features, those
        allowed, in the configured orders; what JSON cannot hold is written as its ``str``. pydantic-core's
        serializer: 3.4 us a line of 14 features against 11 us for the standard library's ``json.dumps``."""
        try:  # an entry with every field, features with every allowed one (the service's): 1.4 us less a line
            out = dict(zip(self.fields, self._pick(entry), strict=True))
            if "features" in out and isinstance(out["features"], dict):
                out["features"] = dict(
                    zip(self.feature_order, self._pick_features(out["features"]), strict=True)
                )
        except (KeyError, TypeError, ValueError):
            out = {k: entry.get(k) for k in self.fields}
            features = out.get("features")
            if isinstance(features, dict):
                out["features"] = {k: features[k] for k in self.feature_order if k in features}
        return pydantic_core.to_json(out, fallback=str) + b"\n"

    def write(self, entry: dict[str, Any]) -> bool:
        """Append one prediction; return whether it reached the file."""
        return self.write_many([entry])

    def write_many(self, entries: list[dict[str, Any]]) -> bool:
        """Append the predictions of one request in one write (one stat, one flush: a batch of 32 costs about
        what one line did); return whether they reached the file. A batch is never split across a rotation."""
        if not self.cfg.enabled or not entries:
            return True
        text = b"".join([self.line(e) for e in entries])
        size = len(text)
        with self._lock:
            try:
                if self._fh is not None and not self._still_there():
                    self._close()  # the file was removed or replaced: writing on would log into nothing
                if self._fh is None and not self._open():
                    return False
                if self._size and self._size + size > self.cfg.retention.max_bytes:
                    self._rotate()
                    if not self._open():
                        return False
                self._fh.write(text)
                self._fh.flush()
                self._size += size
                self.written += len(entries)
                self.last_error = None
                return True
            except OSError as err:
                self._fail(err)
                return False

    def write_probe(self) -> bool:
        """Reopen the file if needed, writing nothing: whether the log can be written now (for readiness)."""
        with self._lock:
            if self._fh is not None and not self._still_there():
                self._close()
            if self._fh is None and not self._open():
                return False
            self.last_error = None
            return True

    def close(self) -> None:
        with self._lock:
            self._close()
