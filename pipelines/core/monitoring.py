"""The monitor's judgement: a window's counts against the reference's, per feature, prediction, label, performance,
fairness and service, and the decision that follows (``ok``, ``retrain``, ``block``, ``rollback``) with its reasons.

The reference holds the training split's feature counts (the bins come from it), the champion's scores, decisions
and labels on the valid split, and thresholds calibrated on the valid split (independent of the training split): a
feature's threshold is the (1 - false_alarm_rate / features) quantile of its statistic over seeded windows of
``calibration.rows`` rows, never below the configured floor. A drift alarm needs both a significant G-test (Holm
across every check, so the family-wise false-alarm rate is at most ``false_alarm_rate``) and an effect above its
threshold (scaled to the window's size: PSI as 1/n, the distances as 1/sqrt(n)). A window below ``min_rows`` is
"insufficient data", never an alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

# chdtrc: chi-square survival function; ndtr: normal CDF (scipy.stats takes 1 s to import)
from scipy import special

from pipelines.core import drift
from pipelines.core import performance as perf
from pipelines.core.monitor_config import MonitorConfig
from pipelines.core.window import (
    FeatureBins,
    WindowCounts,
    WindowSpec,
    _numeric_bins,
    count_table,
)

if TYPE_CHECKING:  # pandas loads where a frame is counted (building the reference), not to judge a window
    import pandas as pd

DECISIONS = ("ok", "retrain", "block", "rollback")
MIN_GROUP_ROWS = 30  # groups smaller than this are shown but not compared (their rates are noise)
WINDOW_METRICS = {"roc_auc", "f1", "brier", "ece"}


def feature_bins(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], cfg: MonitorConfig
) -> list[FeatureBins]:
    """Bins fixed by the training split: quantile cuts per numeric feature, the most frequent categories."""
    out = []
    for name in numeric:
        values = frame[name].dropna().astype(float).to_numpy()
        if values.size == 0:
            cuts = [0.0, 0.0]
        else:
            qs = np.quantile(values, np.linspace(0.0, 1.0, cfg.numeric_bins + 1))
            cuts = [float(v) for v in np.unique(qs)]
            if len(cuts) == 1:
                cuts = cuts * 2
        out.append(FeatureBins(name, "numeric", cuts=cuts))
    for name in categorical:
        counts = frame[name].dropna().astype(str).value_counts()
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.max_categories]
        out.append(FeatureBins(name, "categorical", categories=[str(k) for k, _ in ordered]))
    return out


def row_bins(frame: pd.DataFrame, f: FeatureBins) -> np.ndarray:
    """The bin of each row of ``frame`` for feature ``f`` (the same bins :func:`count_table` counts)."""
    import pandas as pd

    if f.kind == "numeric":
        return _numeric_bins(frame[f.name].astype(float).to_numpy(), f.cuts)
    position = {c: i for i, c in enumerate(f.categories)}
    return np.array(
        [f.size - 1 if pd.isna(v) else position.get(str(v), f.size - 2) for v in frame[f.name].tolist()],
        dtype=int,
    )


def count_frame(frame: pd.DataFrame, spec: WindowSpec) -> WindowCounts:
    """Counts of an in-memory table through the same SQL as a log (columns as :func:`count_table` expects)."""
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("frame_view", frame)
        con.execute("CREATE TEMP TABLE w AS SELECT * FROM frame_view")
        return count_table(con, "w", spec)
    finally:
        con.close()


@dataclass
class Reference:
    """What windows are compared with (``reference.json``): see the module docstring."""

    spec: WindowSpec
    train: WindowCounts
    valid: WindowCounts
    thresholds: dict[str, dict[str, float]]
    calibration_rows: int
    stds: dict[str, float]
    threshold: float  # the decision threshold the service applies

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "train": self.train.to_dict(),
            "valid": self.valid.to_dict(),
            "thresholds": self.thresholds,
            "calibration_rows": self.calibration_rows,
            "stds": self.stds,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        return cls(
            WindowSpec.from_dict(d["spec"]),
            WindowCounts.from_dict(d["train"]),
            WindowCounts.from_dict(d["valid"]),
            d["thresholds"],
            d["calibration_rows"],
            d["stds"],
            d["threshold"],
        )


def _bin_values(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Each numeric bin's mean value (where it has rows), the point its mass sits at for Wasserstein."""
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def feature_stats(
    f: FeatureBins, ref: WindowCounts, cur: WindowCounts, std: float | None, test: bool = True
) -> dict[str, float]:
    """PSI and the G-test for every feature; normed Wasserstein for numeric, Jensen-Shannon for categorical
    features. Numeric bins' values: the reference's bin means for the reference, the window's for the window."""
    rc, cc = ref.arrays[f"feature:{f.name}"], cur.arrays[f"feature:{f.name}"]
    out = {"psi": drift.psi(rc, cc)}
    if test:
        out["g"], out["p_value"] = drift.g_test(rc, cc)
    if f.kind == "numeric":
        rv = _bin_values(rc, ref.arrays[f"sums:{f.name}"])[:-1]
        cv = _bin_values(cc, cur.arrays[f"sums:{f.name}"])[:-1]
        out["wasserstein"] = drift.wasserstein_normed(rv, rc[:-1], cv, cc[:-1], std or 0.0)
    else:
        out["js"] = drift.js_distance(rc, cc)
    return out


def calibrate(
    valid: pd.DataFrame, spec: WindowSpec, train: WindowCounts, stds: dict[str, float], cfg: MonitorConfig
) -> dict[str, dict[str, float]]:
    """Per feature and statistic, the (1 - false_alarm_rate / features) quantile over ``calibration.windows``
    seeded windows of ``calibration.rows`` valid rows (drawn with replacement only when the split is smaller)."""
    c = cfg.calibration
    rng = np.random.default_rng(c.seed)
    bins = {f.name: row_bins(valid, f) for f in spec.features}
    values = {
        f.name: np.nan_to_num(valid[f.name].astype(float).to_numpy())
        for f in spec.features
        if f.kind == "numeric"
    }
    samples: dict[str, dict[str, list[float]]] = {f.name: {} for f in spec.features}
    replace = c.rows > len(valid)
    for _ in range(c.windows):
        rows = rng.choice(len(valid), size=c.rows, replace=replace)
        arrays: dict[str, np.ndarray] = {}
        for f in spec.features:
            idx = bins[f.name][rows]
            arrays[f"feature:{f.name}"] = np.bincount(idx, minlength=f.size).astype(float)
            if f.kind == "numeric":
                arrays[f"sums:{f.name}"] = np.bincount(idx, weights=values[f.name][rows], minlength=f.size)
        window = WindowCounts(c.rows, arrays)
        for f in spec.features:
            for stat, value in feature_stats(f, train, window, stds.get(f.name), test=False).items():
                samples[f.name].setdefault(stat, []).append(value)
    q = 1.0 - cfg.false_alarm_rate / max(len(spec.features), 1)
    floors = cfg.effect_floor.model_dump()
    return {
        name: {stat: round(max(floors[stat], float(np.quantile(v, q))), 6) for stat, v in stats.items()}
        for name, stats in samples.items()
    }


def scaled(threshold: float, stat: str, calibration_rows: int, rows: int, floor: float) -> float:
    """A threshold calibrated at ``calibration_rows`` rows, for a window of ``rows`` rows (never below the floor):
    PSI's null distribution scales as 1/n, the distances' as 1/sqrt(n)."""
    ratio = calibration_rows / max(rows, 1)
    return max(floor, threshold * (ratio if stat == "psi" else math.sqrt(ratio)))


def _share(counts: np.ndarray, index: slice | list[int]) -> float:
    total = counts.sum()
    return float(counts[index].sum() / total) if total > 0 else 0.0


def _rates(group: list[float]) -> dict[str, Any]:
    rows, selected, labelled, positive, tp, fp = group
    negatives = labelled - positive
    out: dict[str, Any] = {"rows": int(rows), "labelled": int(labelled)}
    for name, num, den in (
        ("selection_rate", selected, rows),
        ("tpr", tp, positive),
        ("fpr", fp, negatives),
    ):
        lo, hi = drift.wilson(num, den)
        out[name] = {"value": None if den <= 0 else num / den, "ci_low": lo, "ci_high": hi}
    return out


def fairness(window: WindowCounts) -> dict[str, Any]:
    """Per group set: each group's selection rate, TPR and FPR (Wilson 95% intervals), the demographic-parity
    ratio (min / max selection rate) and the equalized-odds difference (the larger of the TPR and FPR ranges),
    over groups with at least MIN_GROUP_ROWS rows (and labels, for TPR and FPR)."""
    out: dict[str, Any] = {}
    for slice_name, groups in window.groups.items():
        rates = {g: _rates(c) for g, c in groups.items()}
        big = [r for r in rates.values() if r["rows"] >= MIN_GROUP_ROWS]
        sel = [r["selection_rate"] for r in big if r["selection_rate"]["value"] is not None]
        dp = dp_hi = None
        if len(sel) >= 2 and max(s["value"] for s in sel) > 0:
            dp = min(s["value"] for s in sel) / max(s["value"] for s in sel)
            # the largest ratio the groups' Wilson intervals allow: min of the upper bounds / max of the lower
            top = max(s["ci_low"] for s in sel)
            dp_hi = min(1.0, min(s["ci_high"] for s in sel) / top) if top > 0 else 1.0
        ranges, floors = [], []
        for key in ("tpr", "fpr"):
            vals = [r[key] for r in big if r["labelled"] >= MIN_GROUP_ROWS and r[key]["value"] is not None]
            if len(vals) >= 2:
                ranges.append(max(v["value"] for v in vals) - min(v["value"] for v in vals))
                # the smallest range the intervals allow
                floors.append(max(0.0, max(v["ci_low"] for v in vals) - min(v["ci_high"] for v in vals)))
        out[slice_name] = {
            "groups": rates,
            "demographic_parity_ratio": dp,
            "equalized_odds_difference": max(ranges) if ranges else None,
            # the most favourable values the 95% Wilson intervals allow: a gate is broken only beyond them
            "bounds": {
                "demographic_parity_ratio": dp_hi,
                "equalized_odds_difference": max(floors) if floors else None,
            },
        }
    return out


def performance(window: WindowCounts, threshold_bins: int = 10) -> dict[str, Any]:
    """Realized metrics on the labelled rows, CBPE estimates on the unlabelled rows and on all rows."""
    a = window.arrays
    all_sq, labelled_sq = (float(x) for x in a["score:sum_sq"])
    realized_now = perf.realized(
        a["label:count"],
        a["label:positive"],
        a["label:score_sum"],
        labelled_sq,
        float(a["label:score_label"].sum()),
        a["confusion"],
        threshold_bins,
    )
    unl_count = a["score:count"] - a["label:count"]
    unl_sum = a["score:sum"] - a["label:score_sum"]
    decided_share = np.divide(
        a["score:decided"], a["score:count"], out=np.zeros_like(unl_count), where=a["score:count"] > 0
    )
    labelled: dict[str, Any] = dict(realized_now)
    labelled["intervals"] = perf.realized_intervals(
        a["label:count"], a["label:positive"], a["label:score_sum"]
    )
    return {
        "rows": int(a["score:count"].sum()),
        "labelled": int(a["label:count"].sum()),
        "label_coverage": float(a["label:count"].sum() / a["score:count"].sum())
        if a["score:count"].sum()
        else 0.0,
        "realized": labelled,
        "estimated_unlabelled": perf.estimated(
            unl_count, unl_sum, unl_count * decided_share, all_sq - labelled_sq
        ),
        "estimated_all": perf.estimated(a["score:count"], a["score:sum"], a["score:decided"], all_sq),
    }


def build_reference(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    valid_scores: np.ndarray,
    label: str,
    numeric: list[str],
    categorical: list[str],
    groups: list[list[str]],
    threshold: float,
    cfg: MonitorConfig,
) -> Reference:
    """The reference: bins and feature counts from ``train``; the champion's ``valid_scores`` on ``valid`` with
    its labels (column ``label``, 0/1); thresholds calibrated on ``valid``."""
    import pandas as pd

    features = feature_bins(train, numeric, categorical, cfg)
    spec = WindowSpec(features, groups, cfg.score_bins)
    cols = [f.name for f in features]
    group_cols = sorted({c for g in groups for c in g} - set(cols))
    train_frame = train[cols + group_cols].copy()
    train_frame["score"] = np.nan
    train_frame["decision"] = 0
    train_frame["label"] = train[label].astype(int).to_numpy()  # for P(x | y); train has no scores
    train_frame["time"] = pd.array([None] * len(train), dtype="string")
    train_frame["label_time"] = train_frame["time"]
    valid_frame = valid[cols + group_cols].copy()
    valid_frame["score"] = valid_scores.astype(float)
    valid_frame["decision"] = (valid_scores >= threshold).astype(int)
    valid_frame["label"] = valid[label].astype(int).to_numpy()
    valid_frame["time"] = pd.array([None] * len(valid), dtype="string")
    valid_frame["label_time"] = valid_frame["time"]
    train_counts = count_frame(train_frame, spec)
    valid_counts = count_frame(valid_frame, spec)
    stds = {f: float(np.std(train[f].dropna().astype(float).to_numpy())) for f in numeric}
    thresholds = calibrate(valid, spec, train_counts, stds, cfg)
    return Reference(spec, train_counts, valid_counts, thresholds, cfg.calibration.rows, stds, threshold)


def _value(metrics: dict[str, Any], fair: dict[str, Any], metric: str, op: str | None = None) -> float | None:
    """A gate's metric in a window: a plain metric (``roc_auc``) or ``fairness.<slice>.<measure>``. With ``op``,
    the most favourable value its 95% interval allows (so only a sure failure counts)."""
    parts = metric.split(".")
    if metric in WINDOW_METRICS:
        value = metrics.get(metric)
        lo, hi = metrics.get("intervals", {}).get(metric, (None, None))
        if op is not None and lo is not None:
            value = hi if op == ">=" else lo
    elif len(parts) == 3 and parts[0] == "fairness" and parts[1] in fair:
        value = fair[parts[1]].get(parts[2])
        if op is not None:
            value = fair[parts[1]]["bounds"].get(parts[2], value)
    else:
        return None
    return float(value) if isinstance(value, float | int) else None


def _passes(value: float, op: str, limit: float) -> bool:
    return value >= limit if op == ">=" else value <= limit


def gate_failures(
    now: dict[str, Any],
    ref: dict[str, Any],
    now_fair: dict[str, Any],
    ref_fair: dict[str, Any],
    gates: dict[str, Any],
) -> tuple[list[str], list[str]]:
    """The blocking gates (``severity: block``, every model, not relative to a baseline) that the window's values
    break while the reference's pass: (plain-metric failures, fairness failures). A gate the reference already
    breaks is not news from this window."""
    plain: list[str] = []
    fair: list[str] = []
    for name, gate in gates.items():
        if (
            gate.get("severity", "block") != "block"
            or gate.get("relative_to")
            or gate.get("applies_to", "all") != "all"
        ):
            continue
        metric, op, limit = gate["metric"], gate["op"], gate["threshold"]
        value, before = _value(now, now_fair, metric), _value(ref, ref_fair, metric)
        favourable = _value(now, now_fair, metric, op)
        if value is None or favourable is None:
            continue

        if not _passes(favourable, op, limit) and (before is None or _passes(before, op, limit)):
            text = f"{name}: {metric} is {value:.3f} in this window ({op} {limit} required"
            text += f"; {before:.3f} on the reference)" if before is not None else ")"
            (fair if metric.startswith("fairness.") else plain).append(text)
    return plain, fair


def service_broken(service: dict[str, Any] | None, cfg: MonitorConfig) -> str | None:
    """Why the service's own counts say the feed is broken (most requests refused), or None."""
    if not service or service.get("error_rate") is None:
        return None
    if service["error_rate"] > cfg.broken_feed.max_error_rate:
        return (
            f"the service refused {service['error_rate']:.0%} of {service['requests']} requests (4xx/5xx), "
            f"above {cfg.broken_feed.max_error_rate:.0%}"
        )
    return None


def feed_quality(window: WindowCounts) -> dict[str, int]:
    """The log's and the label feed's line counts (``pipelines.core.window.count_log``)."""
    q = np.concatenate(
        [window.arrays.get("quality", np.zeros(3)), window.arrays.get("label_quality", np.zeros(3))]
    )
    keys = ("log_lines", "log_parsed", "invalid_answers", "label_lines", "labels_parsed", "invalid_labels")
    return {k: int(v) for k, v in zip(keys, q, strict=True)}


def unreadable(q: dict[str, int], cfg: MonitorConfig) -> str | None:
    """Why the log or the label feed is broken (too many lines unreadable or invalid), or None."""
    limit = cfg.broken_feed.max_error_rate
    out = []
    for what, lines, bad in (
        ("prediction-log", q["log_lines"], q["log_lines"] - q["log_parsed"] + q["invalid_answers"]),
        ("label", q["label_lines"], q["label_lines"] - q["labels_parsed"] + q["invalid_labels"]),
    ):
        if lines and bad / lines > limit:
            out.append(f"{bad} of {lines} {what} lines are unreadable or invalid (above {limit:.0%})")
    return "; ".join(out) or None


def coarse(counts: np.ndarray, bins: int = 10) -> np.ndarray:
    """Equal-width fine bins merged into ``bins`` (exact: counts add)."""
    groups = np.arange(counts.size) * bins // counts.size
    return np.bincount(groups, weights=counts, minlength=bins)


def analyse(
    ref: Reference,
    window: WindowCounts,
    cfg: MonitorConfig,
    gates: dict[str, Any],
    service: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the monitor reports on one window, ending with ``decision`` and ``reasons``."""
    rows = window.rows
    result: dict[str, Any] = {
        "rows": rows,
        "first": window.first,
        "last": window.last,
        "service": service,
        "features": {},
        "prediction": None,
        "label": None,
        "performance": None,
        "performance_check": None,
        "fairness": None,
        "ranking": [],
        "other_reasons": {},
        "quality": None,
    }
    result["quality"] = feed_quality(window)
    refused = [r for r in (service_broken(service, cfg), unreadable(result["quality"], cfg)) if r]
    if refused:  # the feed is broken whatever reached the log: refused requests, unreadable lines
        result |= {"status": "judged", "decision": "block", "reasons": [f"broken feed: {r}" for r in refused]}
        return result
    if rows < cfg.min_rows:
        result |= {
            "status": "insufficient data",
            "decision": "ok",
            "reasons": [
                f"insufficient data: {rows} answered requests in the window, fewer than {cfg.min_rows}"
            ],
            "features": {},
            "ranking": [],
        }
        return result
    floors = cfg.effect_floor.model_dump()
    checks: dict[str, dict[str, Any]] = {}
    broken: list[str] = []
    for f in ref.spec.features:
        stats = feature_stats(f, ref.train, window, ref.stds.get(f.name))
        limits = {
            s: scaled(t, s, ref.calibration_rows, rows, floors[s])
            for s, t in ref.thresholds[f.name].items()
            if s in stats
        }
        rc, cc = ref.train.arrays[f"feature:{f.name}"], window.arrays[f"feature:{f.name}"]
        null_ref, null_cur = _share(rc, [-1]), _share(cc, [-1])
        entry = {
            "kind": f.kind,
            **{k: round(v, 6) for k, v in stats.items()},
            "thresholds": {k: round(v, 6) for k, v in limits.items()},
            "severity": max(stats[s] / limits[s] for s in limits),
            "null_share": {"reference": null_ref, "window": null_cur},
            "bins": f.labels,
            "reference_share": [round(x, 6) for x in drift.shares(rc)],
            "window_share": [round(x, 6) for x in drift.shares(cc)],
        }
        if null_cur - null_ref > cfg.broken_feed.max_null_increase:
            broken.append(f"{f.name}: {null_cur:.0%} null in this window, {null_ref:.0%} in training")
        if f.kind == "numeric":
            nonnull = cc[:-1].sum()
            out_share = float((cc[0] + cc[-2]) / nonnull) if nonnull > 0 else 0.0
            entry["out_of_range_share"] = out_share
            if out_share > cfg.broken_feed.max_out_of_range:
                broken.append(
                    f"{f.name}: {out_share:.0%} of values outside the training range [{f.cuts[0]:g}, {f.cuts[-1]:g}]"
                )
        checks[f"feature:{f.name}"] = entry
    # prediction drift: the champion's scores against its scores on the valid split
    # 10 score bins: with 100, the PSI of a 1,000-row window without drift is already ~0.1 ((bins - 1) / n)
    rs, cs = coarse(ref.valid.arrays["score:count"]), coarse(window.arrays["score:count"])
    g, p = drift.g_test(rs, cs)
    psi_scores = drift.psi(rs, cs)
    ref_rate = float(ref.valid.arrays["score:decided"].sum() / max(rs.sum(), 1))
    cur_rate = float(window.arrays["score:decided"].sum() / max(cs.sum(), 1))
    checks["prediction"] = {
        "kind": "prediction",
        "psi": psi_scores,
        "g": g,
        "p_value": p,
        "positive_rate": {"reference": ref_rate, "window": cur_rate},
        "thresholds": {"psi": floors["psi"]},
        "severity": max(
            psi_scores / floors["psi"], abs(cur_rate - ref_rate) / cfg.decay.max_positive_rate_change
        ),
    }
    # label shift: the labelled rows' base rate against the valid split's
    labelled = float(window.arrays["label:count"].sum())
    if labelled >= cfg.min_labelled:
        ref_pos = float(ref.valid.arrays["label:positive"].sum())
        ref_n = float(ref.valid.arrays["label:count"].sum())
        cur_pos = float(window.arrays["label:positive"].sum())
        g, p = drift.g_test([ref_pos, ref_n - ref_pos], [cur_pos, labelled - cur_pos])
        change = cur_pos / labelled - ref_pos / ref_n
        checks["label"] = {
            "kind": "label",
            "base_rate": {"reference": ref_pos / ref_n, "window": cur_pos / labelled},
            "g": g,
            "p_value": p,
            "severity": abs(change) / cfg.decay.max_positive_rate_change,
        }
    if "label" in checks:
        for f in ref.spec.features:  # is this feature's drift only the label's? (P(x | y) unchanged)
            tests = [
                drift.g_test(ref.train.arrays[f"class{y}:{f.name}"], window.arrays[f"class{y}:{f.name}"])
                for y in (0, 1)
            ]
            g_sum = sum(t[0] for t in tests)
            dof = sum(
                max(
                    drift.pooled(ref.train.arrays[f"class{y}:{f.name}"], window.arrays[f"class{y}:{f.name}"])[
                        0
                    ].size
                    - 1,
                    0,
                )
                for y in (0, 1)
            )
            checks[f"feature:{f.name}"]["p_value_given_label"] = (
                float(special.chdtrc(dof, g_sum)) if dof else 1.0
            )
    tested = {k: c for k, c in checks.items() if "p_value" in c}
    adjusted = drift.holm([c["p_value"] for c in tested.values()])
    for c, p_adj in zip(tested.values(), adjusted, strict=True):
        c["p_adjusted"] = p_adj
        c["alarm"] = bool(p_adj < cfg.false_alarm_rate and c["severity"] >= 1.0)
    perf_now = performance(window)
    perf_ref = performance(ref.valid)
    ref_auc = perf_ref["realized"]["roc_auc"]
    now_auc = perf_now["realized"]["roc_auc"] if perf_now["labelled"] >= cfg.min_labelled else None
    if ref_auc is not None and now_auc is not None:  # decay is ranked with the drift checks
        # material (a drop over max_auc_drop) and significant: a one-sided z-test at false_alarm_rate on the
        # difference, each side's standard error read from its 95% bootstrap interval (width / 3.92); the
        # reference is a sample too (a small valid split's AUC is uncertain as well)
        se = [
            (hi - lo) / 3.92 if lo is not None and hi is not None else 0.0
            for lo, hi in (
                perf_now["realized"]["intervals"]["roc_auc"],
                perf_ref["realized"]["intervals"]["roc_auc"],
            )
        ]
        se_diff = math.hypot(*se)
        z = (ref_auc - now_auc) / se_diff if se_diff > 0 else math.inf
        p_decay = float(special.ndtr(-z)) if math.isfinite(z) else 0.0
        checks["performance"] = {
            "kind": "performance",
            "roc_auc": {"reference": ref_auc, "window": now_auc},
            "p_value_decay": p_decay,
            "severity": max(0.0, ref_auc - now_auc) / cfg.decay.max_auc_drop,
            "alarm": ref_auc - now_auc > cfg.decay.max_auc_drop and p_decay < cfg.false_alarm_rate,
        }
    # Alarms first, causes before consequences: inputs and labels, then the scores they move, then performance;
    # by severity within each.
    # A feature whose drift vanishes within each label class (p given the label >= false_alarm_rate) is explained
    # by a label shift and ranks after the label.
    order = {"numeric": 0, "categorical": 0, "label": 0, "prediction": 2, "performance": 3}
    label_alarm = bool(checks.get("label", {}).get("alarm"))

    def rank(k: str) -> tuple[bool, int, float]:
        c = checks[k]
        explained = label_alarm and c.get("p_value_given_label", 0.0) >= cfg.false_alarm_rate
        return (not c["alarm"], 1 if explained else order[c["kind"]], -c["severity"])

    ranking = sorted(checks, key=rank)
    result["features"] = {k.split(":", 1)[1]: v for k, v in checks.items() if k.startswith("feature:")}
    result["prediction"] = checks["prediction"]
    result["label"] = checks.get("label")
    result["performance_check"] = checks.get("performance")
    result["ranking"] = [
        {"check": k, "severity": round(checks[k]["severity"], 4), "alarm": checks[k]["alarm"]}
        for k in ranking
    ]
    result["performance"] = {"window": perf_now, "reference": perf_ref["realized"]}
    result["fairness"] = {"window": fairness(window), "reference": fairness(ref.valid)}
    reasons: dict[str, list[str]] = {d: [] for d in DECISIONS}
    reasons["block"] += [f"broken feed: {b}" for b in broken]
    if perf_now["labelled"] >= cfg.min_labelled:
        realized = perf_now["realized"]
        plain, fair_fail = gate_failures(
            realized,
            perf_ref["realized"],
            result["fairness"]["window"],
            result["fairness"]["reference"],
            gates,
        )
        reasons["rollback"] += [f"the live champion fails a gate: {r}" for r in plain]
        if "performance" in checks and checks["performance"]["alarm"]:
            reasons["retrain"].append(
                f"decay: realized ROC AUC {realized['roc_auc']:.3f} on {perf_now['labelled']} labelled rows, "
                f"{ref_auc - realized['roc_auc']:.3f} below the reference {ref_auc:.3f}"
            )
        reasons["retrain"] += [f"fairness drift: {r}" for r in fair_fail]
    else:
        est = perf_now["estimated_all"]["roc_auc"]
        if ref_auc is not None and est is not None and est < ref_auc - cfg.decay.max_auc_drop:
            reasons["retrain"].append(
                f"estimated decay (CBPE, no labels yet): ROC AUC {est:.3f}, {ref_auc - est:.3f} below the reference"
            )
    drifted = [  # the causes first, in the ranking's order; decay and gate failures after them
        f"drift in {name.replace('feature:', 'feature ')}: severity {checks[name]['severity']:.2f} (effect over "
        f"threshold), Holm-adjusted p {checks[name]['p_adjusted']:.2g}"
        for name in ranking
        if checks[name]["alarm"] and name != "performance"  # decay has its own reason
    ]
    reasons["retrain"] = drifted + reasons["retrain"]
    # A gate failure that drift in the inputs or the labels explains is the world changing: retrain. One that no
    # drift explains (same inputs, same base rate, worse answers: a bad release or a changed concept) rolls the
    # live champion back and asks a human (ct.yml opens an issue).
    explained = any(c["alarm"] for k, c in checks.items() if k.startswith("feature:") or k == "label")
    if explained and reasons["rollback"]:
        reasons["retrain"] += reasons["rollback"]
        reasons["rollback"] = []
    decision = next((d for d in ("block", "rollback", "retrain") if reasons[d]), "ok")
    result["status"] = "judged"
    result["decision"] = decision
    result["reasons"] = reasons[decision] or ["no drift, decay or broken feed beyond the thresholds"]
    result["other_reasons"] = {d: r for d, r in reasons.items() if r and d != decision}
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the history of windows keeps (``decision.json``)."""
    perf_ = result.get("performance") or {}
    window = perf_.get("window") or {}
    fair = (result.get("fairness") or {}).get("window") or {}
    alarms = [r["check"] for r in result.get("ranking", []) if r["alarm"]]
    return {
        "decision": result["decision"],
        "status": result["status"],
        "reasons": result["reasons"],
        "rows": result["rows"],
        "first": result["first"],
        "last": result["last"],
        "labelled": window.get("labelled"),
        "realized_auc": (window.get("realized") or {}).get("roc_auc"),
        "estimated_auc": (window.get("estimated_all") or {}).get("roc_auc"),
        "top_alarm": alarms[0] if alarms else None,
        "dp_ratio": {k: v["demographic_parity_ratio"] for k, v in fair.items()},
    }
