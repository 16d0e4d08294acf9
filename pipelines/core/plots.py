"""The site's figures (matplotlib, headless): ROC and PR curves, reliability diagrams, group rates, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {"figure.figsize": (6.0, 4.2), "axes.grid": True, "grid.alpha": 0.3, "font.size": 9}


def _style(**extra: Any) -> Any:
    """rc params for one figure (typed loosely: matplotlib's stubs list every key as a literal)."""
    return {**STYLE, **{k.replace("__", "."): v for k, v in extra.items()}}


def _save(fig: Any, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return path


def curves(
    series: dict[str, list[dict[str, float]]],
    x: str,
    y: str,
    title: str,
    path: Path,
    dpi: int,
    diagonal: bool = False,
) -> Path:
    """One line per model (ROC: fpr/tpr, PR: recall/precision)."""
    with plt.rc_context(_style()):
        fig, ax = plt.subplots()
        for name, points in series.items():
            ax.plot([p[x] for p in points], [p[y] for p in points], label=name, linewidth=1.4)
        if diagonal:
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(loc="lower right" if diagonal else "lower left", fontsize=8)
        return _save(fig, path, dpi)


def reliability(
    bins: dict[str, list[dict[str, Any]]],
    title: str,
    path: Path,
    dpi: int,
    positive: str = "the positive class",
) -> Path:
    """Mean score against observed positive rate per bin, for each labelled set of bins (e.g. before/after)."""
    with plt.rc_context(_style()):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
        for label, rows in bins.items():
            used = [r for r in rows if r["count"]]
            ax.plot(
                [r["mean_score"] for r in used], [r["positive_rate"] for r in used], marker="o", label=label
            )
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel(f"observed rate of {positive}")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
        return _save(fig, path, dpi)


def group_rates(groups: dict[str, dict[str, Any]], metric: str, title: str, path: Path, dpi: int) -> Path:
    """A horizontal bar per group with its bootstrap interval."""
    names = list(groups)
    values = [groups[g][metric]["value"] or 0.0 for g in names]
    lo = [
        max(0.0, v - (groups[g][metric]["ci_low"] if groups[g][metric]["ci_low"] is not None else v))
        for g, v in zip(names, values, strict=True)
    ]
    hi = [
        max(0.0, (groups[g][metric]["ci_high"] if groups[g][metric]["ci_high"] is not None else v) - v)
        for g, v in zip(names, values, strict=True)
    ]
    with plt.rc_context(_style(figure__figsize=(6.0, 0.35 * len(names) + 1.2))):
        fig, ax = plt.subplots()
        ax.barh(names, values, xerr=[lo, hi], color="#3f7fbf", ecolor="#333333", capsize=2)
        ax.invert_yaxis()
        ax.set_xlabel(metric.replace("_", " "))
        ax.set_title(title)
        return _save(fig, path, dpi)


def training(series: dict[str, list[tuple[float, float]]], title: str, path: Path, dpi: int) -> Path:
    """Training curves by step (dvclive's TSV files)."""
    with plt.rc_context(_style()):
        fig, ax = plt.subplots()
        for name, points in series.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(fontsize=8)
        return _save(fig, path, dpi)
