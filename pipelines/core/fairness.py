"""Disaggregated evaluation: per-group rates and disparities, with bootstrap intervals, by one rule for undefined.

For each sensitive attribute and each intersection (``a x b``), every group gets its size, selection rate,
true and false positive rates and precision; the disparities (demographic parity difference and ratio, equalized
odds difference) are taken over the groups with at least ``min_group_size`` rows.

**Undefined rates.** A rate whose denominator is zero is undefined, not zero: TPR with no positives, FPR with no
negatives, precision with no positive decisions, any rate of an empty resampled group. (fairlearn's defaults give
0.0 there, so a group without positives would look like one the model fails completely.) The rule, the same for
the point estimate and for every bootstrap resample (the point estimate is the resample with unit weights):

- an undefined rate is reported as null (n/a) and lists why;
- a disparity is computed over the eligible groups whose rates it uses are defined; with fewer than two such
  groups it is undefined, and so is a ratio whose largest selection rate is 0;
- the equalized odds difference is the larger of the TPR and FPR differences that are defined.

With every rate defined, the values equal fairlearn's ``MetricFrame`` and disparity functions (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.groups import JOIN
from pipelines.core.metrics import with_ci

GROUP_METRICS = ("selection_rate", "tpr", "fpr", "precision")
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
MISSING = "(missing)"
UNDEFINED_WHY = {
    "selection_rate": "no rows",
    "tpr": "no positive labels",
    "fpr": "no negative labels",
    "precision": "no positive decisions",
}


def group_labels(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One label per row: the value of a single attribute, or the values of several joined by ' / '."""
    keys = frame[columns].astype("string").fillna(MISSING)
    labels = keys[columns[0]]
    for column in columns[1:]:
        labels = labels + JOIN + keys[column]
    return labels.astype(str).reset_index(drop=True)


def slices(
    frame: pd.DataFrame, attributes: list[str], intersections: list[list[str]]
) -> dict[str, pd.Series]:
    """Label series per slice name: each attribute, then each intersection ``a x b``"""
    out = {a: group_labels(frame, [a]) for a in attributes}
    out |= {" x ".join(cols): group_labels(frame, list(cols)) for cols in intersections}
    return out


def eligible_groups(slices_: dict[str, pd.Series], min_group_size: int) -> dict[str, list[str]]:
    return {
        name: sorted(g for g, n in labels.value_counts().items() if n >= min_group_size)
        for name, labels in slices_.items()
    }


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column (resample): max and min over the defined rows (groups), and how many are defined."""
    defined = np.isfinite(values)
    n = defined.sum(axis=0)
    hi = np.where(defined, values, -np.inf).max(axis=0)
    lo = np.where(defined, values, np.inf).min(axis=0)
    return hi, lo, n


def disparity_arrays(rates: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The three disparities for each resample, from eligible groups' rates (the rule in the module docstring)."""
    if not rates:
        return {}
    sel = np.stack([r["selection_rate"] for r in rates.values()])
    tpr = np.stack([r["tpr"] for r in rates.values()])
    fpr = np.stack([r["fpr"] for r in rates.values()])
    with np.errstate(divide="ignore", invalid="ignore"):
        s_hi, s_lo, s_n = _spread(sel)
        t_hi, t_lo, t_n = _spread(tpr)
        f_hi, f_lo, f_n = _spread(fpr)
        dp_diff = np.where(s_n >= 2, s_hi - s_lo, np.nan)
        dp_ratio = np.where((s_n >= 2) & (s_hi > 0), s_lo / np.where(s_hi > 0, s_hi, 1.0), np.nan)
        tpr_diff = np.where(t_n >= 2, t_hi - t_lo, np.nan)
        fpr_diff = np.where(f_n >= 2, f_hi - f_lo, np.nan)
    return {
        "demographic_parity_difference": dp_diff,
        "demographic_parity_ratio": dp_ratio,
        "equalized_odds_difference": np.fmax(tpr_diff, fpr_diff),
    }


class GroupBootstrap:
    """Per-group rates and disparities for rows of weights (resamples x rows); unit weights give the estimate."""

    def __init__(
        self, y: np.ndarray, d: np.ndarray, slices_: dict[str, pd.Series], eligible: dict[str, list[str]]
    ):
        self.y, self.d = y.astype(np.float64), d.astype(np.float64)
        self.masks = {
            name: {g: (labels == g).to_numpy() for g in sorted(labels.unique())}
            for name, labels in slices_.items()
        }
        self.eligible = eligible

    def rates(self, w: np.ndarray) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        y, d = self.y, self.d
        out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for name, groups in self.masks.items():
            out[name] = {}
            for group, m in groups.items():
                wm = w[:, m]
                n, pos = wm.sum(axis=1), wm @ y[m]
                tp, fp = wm @ (y[m] * d[m]), wm @ ((1 - y[m]) * d[m])
                out[name][group] = {
                    "selection_rate": _rate(tp + fp, n),
                    "tpr": _rate(tp, pos),
                    "fpr": _rate(fp, n - pos),
                    "precision": _rate(tp, tp + fp),
                }
        return out

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, groups in self.rates(w).items():
            for group, values in groups.items():
                for metric, v in values.items():
                    out[f"{name}::{group}::{metric}"] = v
            eligible = {g: groups[g] for g in self.eligible[name] if g in groups}
            for key, v in disparity_arrays(eligible).items():
                out[f"{name}::{key}"] = v
        return out


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def fairness_report(
    y: np.ndarray,
    d: np.ndarray,
    slices_: dict[str, pd.Series],
    min_group_size: int,
    intervals: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Any]:
    """Per slice: every group's rates (null when undefined, with the reason) and the disparities over eligible
    groups (null when undefined, with the reason); intervals come from :func:`pipelines.core.metrics.bootstrap`
    over the same :class:`GroupBootstrap`, so estimate and interval follow one rule."""
    intervals = intervals or {}
    eligible = eligible_groups(slices_, min_group_size)
    point = GroupBootstrap(y, d, slices_, eligible)(np.ones((1, len(y))))
    report: dict[str, Any] = {}
    for name, labels in slices_.items():
        counts = labels.value_counts()
        groups: dict[str, Any] = {}
        undefined: dict[str, list[str]] = {m: [] for m in GROUP_METRICS}
        for group in sorted(counts.index):
            n = int(counts[group])
            entry: dict[str, Any] = {"count": n, "eligible": n >= min_group_size}
            for metric in GROUP_METRICS:
                key = f"{name}::{group}::{metric}"
                value = _value(point[key][0])
                entry[metric] = with_ci(value, intervals.get(key, (None, None)))
                if value is None:
                    entry[metric]["undefined"] = UNDEFINED_WHY[metric]
                    if entry["eligible"]:
                        undefined[metric].append(group)
            groups[str(group)] = entry
        summary: dict[str, Any] = {}
        for key in DISPARITIES:
            value = _value(point[f"{name}::{key}"][0]) if f"{name}::{key}" in point else None
            summary[key] = with_ci(value, intervals.get(f"{name}::{key}", (None, None)))
            if value is None:
                summary[key]["undefined"] = disparity_reason(key, eligible[name], undefined, groups)
        report[name] = {
            "groups": groups,
            "eligible_groups": eligible[name],
            "excluded_undefined": {m: g for m, g in undefined.items() if g},
            **summary,
        }
    return report


def disparity_reason(
    key: str, eligible: list[str], undefined: dict[str, list[str]], groups: dict[str, Any]
) -> str:
    """Why a disparity is undefined, in words for the gate report and the model card."""
    if len(eligible) < 2:
        return f"fewer than two groups have the minimum size (eligible: {eligible or 'none'})"
    if key == "demographic_parity_ratio" and all(
        (groups[g]["selection_rate"]["value"] or 0) == 0 for g in eligible
    ):
        return "no eligible group has a positive decision (the ratio is 0/0)"
    missing = sorted(set(undefined["tpr"]) | set(undefined["fpr"]))
    return f"fewer than two eligible groups have the rates it compares defined (undefined in: {missing})"
