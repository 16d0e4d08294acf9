"""Parity of the serving fast path with the reference pipeline: the same scores within 1e-9, the same decisions.

Checked by ``evaluate`` (a gate: a model whose fast path differs cannot be champion) and again by ``package``
(a model that fails is not packaged), on the whole test split as a client would send it (JSON values: strings or
null for categories, numbers or null for numerics) plus edge rows built from it: each feature missing in turn,
each categorical feature set to a category no training row had (what the service's ``unknown`` policy lets
through as missing, and what a caller of the model itself may pass raw), and a row with every feature missing.

A record's score must also not depend on the records that come with it: scored alone, in small batches (the
row-by-row encoder) and in large ones, each row's score is the same to the last bit (``batch_invariance``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.fastpath import FastScorer

TOLERANCE = 1e-9  # absolute, on P(target = 1)
UNSEEN = "(a category never seen in training)"
EDGE_BASE_ROWS = 20  # rows of the test split each edge case is applied to
SINGLE_ROWS = 500  # test rows also scored one per call
BATCH_SIZES = (2, 3, 7, 32, 100)  # batch invariance: the single rows scored again in batches of these sizes


def records_of(
    frame: pd.DataFrame, categorical: tuple[str, ...], numeric: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-like records: categories as ``str`` or None, numerics as float or None."""
    columns: dict[str, list[Any]] = {}
    for c in categorical:
        columns[c] = [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in frame[c].to_numpy(dtype=object, na_value=None)
        ]
    for c in numeric:
        values = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        columns[c] = [None if math.isnan(v) else float(v) for v in values]
    names = [*categorical, *numeric]
    return [dict(zip(names, row, strict=True)) for row in zip(*(columns[c] for c in names), strict=True)]


def edge_records(
    records: list[dict[str, Any]], categorical: tuple[str, ...], numeric: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Copies of the first rows with one feature missing, one category unseen, and one row all missing."""
    base = records[:EDGE_BASE_ROWS]
    out = []
    for column in [*categorical, *numeric]:
        out += [r | {column: None} for r in base]
    for column in categorical:
        out += [r | {column: UNSEEN} for r in base]
    if base:
        out.append(dict.fromkeys(base[0]))
    return out


def compare(reference: np.ndarray, fast: np.ndarray, threshold: float) -> dict[str, Any]:
    diff = np.abs(np.asarray(reference, dtype=np.float64) - np.asarray(fast, dtype=np.float64))
    finite = bool(np.isfinite(fast).all())
    worst = float(diff.max()) if diff.size else 0.0
    decisions = int(((reference >= threshold) != (fast >= threshold)).sum())
    return {"rows": int(diff.size), "max_abs_diff": worst, "decisions_differ": decisions, "finite": finite}


def check(
    reference: Callable[[pd.DataFrame], np.ndarray],
    fast: FastScorer,
    test: pd.DataFrame,
    threshold: float,
    tolerance: float = TOLERANCE,
    reference_scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare ``reference`` (frame -> scores) and ``fast`` on ``test`` and its edge rows.

    Returns ``{"tolerance", "test", "single_rows", "edge", "edge_single_rows", "batch_invariance", "max_abs_diff",
    "passed"}`` (``single_rows``: the first rows scored one per call, the path of a one-record request); each part
    gives rows, max |reference - fast| and how many decisions at ``threshold`` differ; ``batch_invariance`` gives
    the rows scored again in batches of each of ``BATCH_SIZES`` and how many scores differ by any bit from the
    same row scored alone (it must be none). ``reference_scores`` (the reference's
    scores of ``test``, when already computed) saves scoring it twice.
    """
    cat, num = fast.categorical, fast.numeric
    records = records_of(test, cat, num)
    ref = reference(test) if reference_scores is None else reference_scores
    parts = {"test": compare(ref, fast.score_records(records), threshold)}
    # one record per call takes the fast path's row-by-row encoder (models.fastpath.ROW_BY_ROW): check it too
    single = np.array([fast.score_records([r])[0] for r in records[:SINGLE_ROWS]])
    parts["single_rows"] = compare(ref[:SINGLE_ROWS], single, threshold)
    edge = edge_records(records, cat, num)
    if edge:
        edge_ref = reference(pd.DataFrame(edge, columns=[*cat, *num]))
        parts["edge"] = compare(edge_ref, fast.score_records(edge), threshold)
        edge_single = np.array([fast.score_records([r])[0] for r in edge])
        parts["edge_single_rows"] = compare(edge_ref, edge_single, threshold)
    worst = max(p["max_abs_diff"] for p in parts.values())
    alone = np.concatenate([single, edge_single]) if edge else single
    rows = [*records[:SINGLE_ROWS], *edge]
    invariance = batch_invariance(fast, rows, alone)
    passed = invariance["differ"] == 0 and all(
        p["max_abs_diff"] <= tolerance and not p["decisions_differ"] and p["finite"] for p in parts.values()
    )
    return {
        "tolerance": tolerance,
        **parts,
        "batch_invariance": invariance,
        "max_abs_diff": worst,
        "passed": passed,
    }


def comparisons(checked: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts of a :func:`check` result that compare with the reference (each has rows, max |diff|, decisions)."""
    return {k: v for k, v in checked.items() if isinstance(v, dict) and "max_abs_diff" in v}


def batch_invariance(fast: FastScorer, records: list[dict[str, Any]], alone: np.ndarray) -> dict[str, int]:
    """How many of ``records`` score differently (any bit) in batches of each of ``BATCH_SIZES`` than alone."""
    differ = 0
    for size in BATCH_SIZES:
        batched = np.concatenate(
            [fast.score_records(records[i : i + size]) for i in range(0, len(records), size)]
        )
        differ += int(np.count_nonzero(batched.view(np.int64) != alone.view(np.int64)))
    return {"rows": len(records) * len(BATCH_SIZES), "differ": differ}


def bound(diff: float) -> float:
    """The smallest power of ten at or above ``diff`` (at least 1e-15): what a tracked file records, so that
    the last bits of a sum (which vary with the machine's vector width) never change a tracked byte."""
    return 10.0 ** max(-15, math.ceil(math.log10(diff))) if diff > 0 else 1e-15
