"""Disaggregated evaluation with fairlearn's MetricFrame, plus bootstrap intervals per group and per disparity.

For each sensitive attribute and each intersection (e.g. sex x race), every group gets its size, selection rate,
true and false positive rates and precision. Disparities (demographic parity difference and ratio, equalized odds
difference) are computed by fairlearn over the groups with at least ``min_group_size`` rows.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score

GROUP_METRICS = ("selection_rate", "tpr", "fpr", "precision")
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
JOIN = " / "
MISSING = "(missing)"


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
    """Label series per slice name: 'sex', 'race', 'sex x race', ..."""
    out = {a: group_labels(frame, [a]) for a in attributes}
    out |= {" x ".join(cols): group_labels(frame, list(cols)) for cols in intersections}
    return out


def metric_frame(y: np.ndarray, d: np.ndarray, labels: pd.Series) -> MetricFrame:
    return MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": partial(precision_score, zero_division=0),
        },
        y_true=y,
        y_pred=d,
        sensitive_features=labels,
    )


def disparities(
    y: np.ndarray, d: np.ndarray, labels: pd.Series, eligible: list[str]
) -> dict[str, float | None]:
    """fairlearn's disparity measures over the ``eligible`` groups (None with fewer than two)."""
    mask = labels.isin(eligible).to_numpy()
    if len(eligible) < 2:
        return dict.fromkeys(DISPARITIES)
    sf = labels[mask]
    return {
        "demographic_parity_difference": float(
            demographic_parity_difference(y[mask], d[mask], sensitive_features=sf)
        ),
        "demographic_parity_ratio": float(demographic_parity_ratio(y[mask], d[mask], sensitive_features=sf)),
        "equalized_odds_difference": float(
            equalized_odds_difference(y[mask], d[mask], sensitive_features=sf)
        ),
    }


class GroupBootstrap:
    """Weighted per-group rates and disparities for bootstrap weights (see pipelines.core.metrics.bootstrap)."""

    def __init__(
        self, y: np.ndarray, d: np.ndarray, slices_: dict[str, pd.Series], eligible: dict[str, list[str]]
    ):
        self.y, self.d = y.astype(np.float64), d.astype(np.float64)
        self.masks = {
            name: {g: (labels == g).to_numpy() for g in sorted(labels.unique())}
            for name, labels in slices_.items()
        }
        self.eligible = eligible

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        y, d = self.y, self.d
        out: dict[str, np.ndarray] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, groups in self.masks.items():
                rates: dict[str, dict[str, np.ndarray]] = {}
                for group, m in groups.items():
                    wm = w[:, m]
                    n, pos = wm.sum(axis=1), wm @ y[m]
                    tp, fp = wm @ (y[m] * d[m]), wm @ ((1 - y[m]) * d[m])
                    rates[group] = {
                        "selection_rate": (tp + fp) / n,
                        "tpr": tp / pos,
                        "fpr": fp / (n - pos),
                        "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                    }
                    for metric, values in rates[group].items():
                        out[f"{name}::{group}::{metric}"] = values
                elig = [g for g in self.eligible[name] if g in rates]
                if len(elig) >= 2:
                    sel = np.stack([rates[g]["selection_rate"] for g in elig])
                    tpr = np.stack([rates[g]["tpr"] for g in elig])
                    fpr = np.stack([rates[g]["fpr"] for g in elig])
                    out[f"{name}::demographic_parity_difference"] = np.nanmax(sel, 0) - np.nanmin(sel, 0)
                    out[f"{name}::demographic_parity_ratio"] = np.nanmin(sel, 0) / np.nanmax(sel, 0)
                    out[f"{name}::equalized_odds_difference"] = np.maximum(
                        np.nanmax(tpr, 0) - np.nanmin(tpr, 0), np.nanmax(fpr, 0) - np.nanmin(fpr, 0)
                    )
        return out


def fairness_report(
    y: np.ndarray,
    d: np.ndarray,
    slices_: dict[str, pd.Series],
    min_group_size: int,
    intervals: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Any]:
    """Per slice: every group's metrics (with intervals when given) and the disparities over eligible groups."""
    intervals = intervals or {}
    report: dict[str, Any] = {}
    for name, labels in slices_.items():
        frame = metric_frame(y, d, labels).by_group
        groups: dict[str, Any] = {}
        for group, row in frame.iterrows():
            entry: dict[str, Any] = {
                "count": int(row["count"]),
                "eligible": int(row["count"]) >= min_group_size,
            }
            for metric in GROUP_METRICS:
                lo, hi = intervals.get(f"{name}::{group}::{metric}", (None, None))
                value = float(row[metric])
                entry[metric] = {"value": None if np.isnan(value) else value, "ci_low": lo, "ci_high": hi}
            groups[str(group)] = entry
        eligible = [g for g, e in groups.items() if e["eligible"]]
        summary = {}
        for key, disparity in disparities(y, d, labels, eligible).items():
            lo, hi = intervals.get(f"{name}::{key}", (None, None))
            summary[key] = {"value": disparity, "ci_low": lo, "ci_high": hi}
        report[name] = {"groups": groups, "eligible_groups": eligible, **summary}
    return report


def eligible_groups(slices_: dict[str, pd.Series], min_group_size: int) -> dict[str, list[str]]:
    return {
        name: sorted(g for g, n in labels.value_counts().items() if n >= min_group_size)
        for name, labels in slices_.items()
    }
