"""Classification metrics from binned window counts: realized (labels known) and estimated (labels not yet known).

Inputs are per-score-bin vectors over equal-width bins of [0, 1] (``pipelines.core.window``): rows, the sum of
scores, label counts and positives. Ties within a bin count half, so ROC AUC from 100 bins is within a bin's
resolution of the row-level value (tests/unit/test_drift.py: within 0.002 on 5,000 rows).

The estimate is confidence-based performance estimation (CBPE, as NannyML describes it): with calibrated scores,
a row with score s is a positive with probability s, so expected positives per bin are the sum of scores and
expected negatives the rest; ROC AUC, F1 and the Brier score follow from these expected counts. It holds under
covariate shift (P(y|x) unchanged) and fails under concept drift, which only labels reveal.
"""

from __future__ import annotations

import numpy as np


def auc_from_bins(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC from positives and negatives per ascending score bin (Mann-Whitney, ties counted half)."""
    pos, neg = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    p_total, n_total = pos.sum(), neg.sum()
    if p_total <= 0 or n_total <= 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    return float(np.sum(pos * (below + 0.5 * neg)) / (p_total * n_total))


def ece_from_bins(
    count: np.ndarray, score_sum: np.ndarray, positives: np.ndarray, bins: int = 10
) -> float | None:
    """Expected calibration error over ``bins`` equal-width bins (the fine bins merged): the rows-weighted mean of
    |mean score - positive rate|."""
    count, score_sum, positives = (np.asarray(a, dtype=float) for a in (count, score_sum, positives))
    n = count.sum()
    if n <= 0:
        return None
    groups = np.arange(count.size) * bins // count.size
    c = np.bincount(groups, weights=count, minlength=bins)
    s = np.bincount(groups, weights=score_sum, minlength=bins)
    y = np.bincount(groups, weights=positives, minlength=bins)
    used = c > 0
    return float(np.sum(np.abs(s[used] - y[used])) / n)


def f1_from_confusion(tp: float, fp: float, fn: float) -> float | None:
    denom = 2 * tp + fp + fn
    return None if denom <= 0 else float(2 * tp / denom)


def realized(
    label_count: np.ndarray,
    label_positive: np.ndarray,
    label_score_sum: np.ndarray,
    sum_sq: float,
    sum_score_label: float,
    confusion: np.ndarray,
    ece_bins: int = 10,
) -> dict[str, float | None]:
    """ROC AUC, F1, Brier, ECE and the positive rate of the labelled rows. ``confusion``: tn, fp, fn, tp."""
    n = float(np.sum(label_count))
    if n <= 0:
        return {"roc_auc": None, "f1": None, "brier": None, "ece": None, "positive_rate": None}
    positives = float(np.sum(label_positive))
    _tn, fp, fn, tp = (float(x) for x in confusion)
    # Brier = mean((s - y)^2) = (sum s^2 - 2 sum s*y + sum y) / n
    brier = (sum_sq - 2 * sum_score_label + positives) / n
    return {
        "roc_auc": auc_from_bins(label_positive, label_count - label_positive),
        "f1": f1_from_confusion(tp, fp, fn),
        "brier": float(brier),
        "ece": ece_from_bins(label_count, label_score_sum, label_positive, ece_bins),
        "positive_rate": positives / n,
    }


def estimated(
    count: np.ndarray, score_sum: np.ndarray, decided: np.ndarray, sum_sq: float
) -> dict[str, float | None]:
    """CBPE: expected ROC AUC, F1, Brier and positive rate of rows whose labels are unknown, from their scores.

    ``decided``: rows per bin whose decision was positive (the decision threshold may cut a bin; its rows are
    apportioned by the bin's decided share)."""
    count, score_sum, decided = (np.asarray(a, dtype=float) for a in (count, score_sum, decided))
    n = count.sum()
    if n <= 0:
        return {"roc_auc": None, "f1": None, "brier": None, "positive_rate": None}
    exp_pos = score_sum
    exp_neg = count - score_sum
    share = np.divide(decided, count, out=np.zeros_like(count), where=count > 0)
    tp = float(np.sum(exp_pos * share))
    fp = float(np.sum(exp_neg * share))
    fn = float(np.sum(exp_pos * (1 - share)))
    return {
        "roc_auc": auc_from_bins(exp_pos, exp_neg),
        "f1": f1_from_confusion(tp, fp, fn),
        "brier": float((score_sum.sum() - sum_sq) / n),  # E[(s - y)^2] = s (1 - s) when y ~ Bernoulli(s)
        "positive_rate": float(score_sum.sum() / n),
    }


def realized_intervals(
    label_count: np.ndarray,
    label_positive: np.ndarray,
    label_score_sum: np.ndarray,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 10,
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile bootstrap intervals of the labelled rows' ROC AUC and ECE: the (bin, label) cells are resampled
    as a multinomial (each cell's rows keep their bin's mean score), which is the row bootstrap seen through the
    bins."""
    n_bins = np.asarray(label_count, dtype=float)
    pos = np.asarray(label_positive, dtype=float)
    cells = np.concatenate([pos, n_bins - pos])
    total = int(cells.sum())
    if total <= 0:
        return {"roc_auc": (None, None), "ece": (None, None)}
    mean_score = np.divide(label_score_sum, n_bins, out=np.zeros_like(n_bins), where=n_bins > 0)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, cells / total, size=resamples)
    aucs: list[float | None] = []
    eces: list[float | None] = []
    b = n_bins.size
    for d in draws:
        p, q = d[:b].astype(float), d[b:].astype(float)
        auc = auc_from_bins(p, q)
        if auc is not None:
            aucs.append(auc)
        eces.append(ece_from_bins(p + q, mean_score * (p + q), p, ece_bins))
    lo, hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2

    def interval(values: list[float | None]) -> tuple[float | None, float | None]:
        vals = [v for v in values if v is not None]
        if not vals:
            return None, None
        return float(np.quantile(vals, lo)), float(np.quantile(vals, hi))

    return {"roc_auc": interval(aucs), "ece": interval(eces)}
