"""In-process inference latency: single rows and batches, timed call by call, reported as percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "calls": int(ms.size),
    }


ROUNDS = 3


def measure(
    predict: Callable[[Any], Any],
    frame: pd.DataFrame,
    warmup: int,
    single_row_repeats: int,
    batch_size: int,
    batch_repeats: int,
    prepare: Callable[[pd.DataFrame], Any] = lambda f: f,
) -> dict[str, Any]:
    """Time ``predict`` on one-row inputs (cycling through the data) and on batches of ``batch_size`` rows.

    ``prepare`` turns a slice of ``frame`` into what ``predict`` takes (records for the serving fast path); it
    runs before the clock starts.
    """
    rows = [prepare(frame.iloc[[i % len(frame)]]) for i in range(warmup + single_row_repeats)]
    times = []
    for i, row in enumerate(rows):
        start = time.perf_counter()
        predict(row)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    single: dict[str, Any] = dict(percentiles(times))
    # p95 of each of ROUNDS consecutive rounds: another process's burst inflates one round, rarely all of them
    size = max(1, len(times) // ROUNDS)
    single["round_p95_ms"] = [
        percentiles(times[i : i + size])["p95_ms"] for i in range(0, size * ROUNDS, size)
    ]
    batch_rows = min(batch_size, len(frame))
    batch_frame = prepare(frame.iloc[:batch_rows])
    predict(batch_frame)
    batch_times = []
    for _ in range(batch_repeats):
        start = time.perf_counter()
        predict(batch_frame)
        batch_times.append(time.perf_counter() - start)
    batch = percentiles(batch_times) | {"size": batch_rows}
    batch["rows_per_s"] = float(batch_rows / (batch["p50_ms"] / 1000))
    return {"single_row": single, "batch": batch}


def verdict(measured: dict[str, Any], budget_p95_ms: float) -> dict[str, Any]:
    """What a tracked metrics file keeps of a measurement: the budget and whether single-row p95 is within it.

    The measured milliseconds vary from run to run (20 to 30% on a shared 2-core machine, and hgb's p95 reached
    690 ms beside three heavy jobs); the verdict judges the lowest p95 of ``ROUNDS`` consecutive rounds, which a
    burst of contention during one round does not move, so reruns of the same commit give identical files unless
    the model itself crosses its budget or the machine is busy throughout.
    """
    single = measured["single_row"]
    p95 = min(single.get("round_p95_ms") or [single["p95_ms"]])
    return {"single_row": {"budget_p95_ms": budget_p95_ms, "within_budget": bool(p95 <= budget_p95_ms)}}
