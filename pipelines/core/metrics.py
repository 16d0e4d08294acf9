"""Evaluation math: point metrics (scikit-learn), calibration error, and bootstrap intervals.

A metric whose denominator is zero is undefined (NaN, reported as null): precision without positive decisions,
recall without positives, ROC-AUC with one class; the bootstrap follows the same rule in every resample.

The bootstrap draws ``resamples`` multinomial weight vectors over the test rows (each a resample with
replacement) and evaluates every metric as a weighted metric, so the scores are sorted once for all resamples.
With unit weights every weighted metric equals scikit-learn's (tests check this).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

EPS = 1e-15
THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1")
SCORE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
METRICS = THRESHOLD_METRICS + SCORE_METRICS


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float, bins: int) -> dict[str, float]:
    """Every headline metric on the whole set, computed by scikit-learn (ECE by :func:`ece`)."""
    d = (p >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, d)),
        "precision": float(skm.precision_score(y, d, zero_division=np.nan)),
        "recall": float(skm.recall_score(y, d, zero_division=np.nan)),
        "f1": float(skm.f1_score(y, d, zero_division=np.nan)),
        "roc_auc": float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if y.any() else float("nan"),
        "log_loss": float(skm.log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": ece(y, p, bins),
    }


def bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width probability bins; 1.0 falls in the last bin."""
    return np.minimum((p * bins).astype(int), bins - 1)


def ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Expected calibration error: bin-weighted mean |mean score - positive rate| over equal-width bins."""
    idx = bin_index(p, bins)
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, weights=p, minlength=bins) - np.bincount(idx, weights=y, minlength=bins))
    return float(gap.sum() / max(count.sum(), 1))


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> list[dict[str, Any]]:
    """The reliability diagram's points: per bin, its range, size, mean score and observed positive rate."""
    idx = bin_index(p, bins)
    out = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        out.append(
            {
                "bin": b,
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": n,
                "mean_score": float(p[mask].mean()) if n else None,
                "positive_rate": float(y[mask].mean()) if n else None,
            }
        )
    return out


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    tn, fp, fn, tp = skm.confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def resample_weights(n: int, resamples: int, seed: int, chunk: int = 100) -> Iterator[np.ndarray]:
    """Multinomial bootstrap weights, ``chunk`` resamples at a time (rows = resamples)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        done += size


@dataclass
class Prepared:
    """Per-row quantities every weighted metric needs, computed once."""

    y: np.ndarray
    p: np.ndarray
    d: np.ndarray
    order: np.ndarray  # rows sorted by score, descending
    starts: np.ndarray  # first position of each distinct score in ``order``
    bins: np.ndarray
    n_bins: int

    @classmethod
    def of(cls, y: np.ndarray, p: np.ndarray, threshold: float, n_bins: int) -> Prepared:
        order = np.argsort(-p, kind="mergesort")
        sorted_p = p[order]
        starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
        return cls(
            y.astype(np.float64),
            p.astype(np.float64),
            (p >= threshold).astype(np.float64),
            order,
            starts,
            bin_index(p, n_bins),
            n_bins,
        )


def weighted_metrics(prep: Prepared, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of weights ``w`` (shape resamples x rows); unit weights give sklearn's values."""
    y, p, d = prep.y, prep.p, prep.d
    total = w.sum(axis=1)
    tp, fp = w @ (y * d), w @ ((1 - y) * d)
    fn = w @ (y * (1 - d))
    pos = w @ y
    neg = total - pos
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = (tp + (neg - fp)) / total
        out["precision"] = np.where(tp + fp > 0, tp / (tp + fp), np.nan)  # undefined, as in fairness
        out["recall"] = np.where(pos > 0, tp / pos, np.nan)
        out["f1"] = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        # ranking metrics over distinct scores, highest first
        ws = w[:, prep.order]
        ys = y[prep.order]
        pos_g = np.add.reduceat(ws * ys, prep.starts, axis=1)
        neg_g = np.add.reduceat(ws * (1 - ys), prep.starts, axis=1)
        neg_above = np.cumsum(neg_g, axis=1) - neg_g
        # P(score_pos > score_neg) + 0.5 P(tie): negatives ranked below a positive are neg - neg_above - neg_g
        below = neg[:, None] - neg_above - neg_g
        out["roc_auc"] = (pos_g * (below + 0.5 * neg_g)).sum(axis=1) / (pos * neg)
        tp_cum, fp_cum = np.cumsum(pos_g, axis=1), np.cumsum(neg_g, axis=1)
        precision_at = np.where(tp_cum + fp_cum > 0, tp_cum / (tp_cum + fp_cum), 0.0)
        out["pr_auc"] = (pos_g * precision_at).sum(axis=1) / pos
        pc = np.clip(p, EPS, 1 - EPS)
        out["log_loss"] = w @ (-(y * np.log(pc) + (1 - y) * np.log(1 - pc))) / total
        out["brier"] = w @ ((p - y) ** 2) / total
        onehot = np.eye(prep.n_bins)[prep.bins]
        gap = np.abs(w @ (onehot * p[:, None]) - w @ (onehot * y[:, None]))
        out["ece"] = gap.sum(axis=1) / total
    return out


def with_ci(value: float | None, ci: tuple[float | None, float | None]) -> dict[str, Any]:
    """``{"value", "ci_low", "ci_high"}`` with the estimate always inside its interval.

    An undefined estimate (None or NaN) has no interval. A percentile interval can miss the estimate when the
    statistic is biased under resampling (a disparity, max minus min over small groups, or ECE, grows in most
    resamples): the interval is then extended to the estimate and ``ci_extended`` says so, rather than printing
    an estimate outside its own interval.
    """
    if value is None or not np.isfinite(value):
        return {"value": None, "ci_low": None, "ci_high": None}
    lo, hi = ci
    entry: dict[str, Any] = {"value": float(value), "ci_low": lo, "ci_high": hi}
    if lo is not None and hi is not None and not lo <= value <= hi:
        entry["ci_low"], entry["ci_high"] = min(lo, float(value)), max(hi, float(value))
        entry["ci_extended"] = True
    return entry


def interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite values (None when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    n_bins: int,
    resamples: int,
    confidence: float,
    seed: int,
    extra: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals for every metric (and for ``extra(weights)``'s, e.g. per-group rates)."""
    prep = Prepared.of(y, p, threshold, n_bins)
    draws: dict[str, list[np.ndarray]] = {}
    for w in resample_weights(len(y), resamples, seed):
        batch = weighted_metrics(prep, w)
        if extra is not None:
            batch |= extra(w)
        for key, values in batch.items():
            draws.setdefault(key, []).append(values)
    return {key: interval(np.concatenate(parts), confidence) for key, parts in draws.items()}


def curve_points(x: np.ndarray, y: np.ndarray, limit: int = 200) -> list[dict[str, float]]:
    """Down-sample a curve to at most ``limit`` points, keeping both ends."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(limit, len(x))).round().astype(int))
    return [{"x": float(x[i]), "y": float(y[i])} for i in keep]


def roc_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> list[dict[str, float]]:
    fpr, tpr, _ = skm.roc_curve(y, p)
    return [{"fpr": q["x"], "tpr": q["y"]} for q in curve_points(fpr, tpr, limit)]


def pr_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> list[dict[str, float]]:
    precision, recall, _ = skm.precision_recall_curve(y, p)
    return [
        {"recall": q["x"], "precision": q["y"]} for q in curve_points(recall[::-1], precision[::-1], limit)
    ]
