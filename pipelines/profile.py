"""Stage ``profile``: statistics per column and per sensitive group, for the datasheet and as the drift reference.

Reads ``profile`` params and ``dataset`` column types. Numeric columns get summaries, quantiles and a histogram on
bin edges fixed by the reference split (so later traffic can be binned the same way); categorical columns get their
category counts. Each sensitive attribute and each configured intersection gets counts, share, positive rate,
missing values and numeric summaries per group. Writes ``reports/data/profile.json``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import DatasetConfig, ProfileConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import read_parquet, write_json_atomic
from pipelines.core.paths import SystemPaths

OTHER = "(other)"
MISSING = "(missing)"
JOIN = " / "


def _num(x: Any) -> float | None:
    value = float(x)
    return None if math.isnan(value) else round(value, 6)


def histogram_edges(values: pd.Series, bins: int) -> list[float]:
    """Equal-width bin edges over the observed range (one bin if the column is constant)."""
    data = values.dropna().astype(float)
    if data.empty:
        return []
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        return [lo, hi]
    return [round(float(e), 6) for e in np.linspace(lo, hi, bins + 1)]


def numeric_profile(values: pd.Series, edges: list[float], quantiles: list[float]) -> dict[str, Any]:
    """Count, missing, moments, quantiles and histogram counts (values outside the edges are counted apart)."""
    data = values.dropna().astype(float)
    out: dict[str, Any] = {"type": "numeric", "count": int(data.size), "missing": int(values.isna().sum())}
    out["missing_fraction"] = _num(out["missing"] / max(len(values), 1))
    if data.empty:
        return out
    out |= {
        "mean": _num(data.mean()),
        "std": _num(data.std()),
        "min": _num(data.min()),
        "max": _num(data.max()),
        "zeros": int((data == 0).sum()),
    }
    out["quantiles"] = {f"{q:g}": _num(data.quantile(q)) for q in quantiles}
    if edges:
        inside = data[(data >= edges[0]) & (data <= edges[-1])]
        counts, _ = np.histogram(inside, bins=edges)
        out["histogram"] = {
            "edges": edges,
            "counts": [int(c) for c in counts],
            "below": int((data < edges[0]).sum()),
            "above": int((data > edges[-1]).sum()),
        }
    return out


def categorical_profile(values: pd.Series, top: int) -> dict[str, Any]:
    """Count, missing, distinct values and category counts (the ``top`` most frequent, the rest summed)."""
    counts = values.value_counts(dropna=True)
    shown = {str(k): int(v) for k, v in counts.head(top).items()}
    rest = int(counts.iloc[top:].sum())
    if rest:
        shown[OTHER] = rest
    missing = int(values.isna().sum())
    return {
        "type": "categorical",
        "count": int(values.notna().sum()),
        "missing": missing,
        "missing_fraction": _num(missing / max(len(values), 1)),
        "unique": int(counts.size),
        "counts": shown,
    }


def group_profile(frame: pd.DataFrame, columns: list[str], dataset: DatasetConfig) -> dict[str, Any]:
    """Per group of ``columns`` (one attribute or an intersection): size, share, base rate, missing, numerics."""
    keys = frame[columns].astype("string").fillna(MISSING)
    labels = keys[columns[0]]
    for column in columns[1:]:
        labels = labels + JOIN + keys[column]
    target = dataset.target.name
    groups: dict[str, Any] = {}
    for label, part in frame.groupby(labels, sort=True):
        groups[str(label)] = {
            "rows": len(part),
            "share": _num(len(part) / len(frame)),
            "positives": int(part[target].sum()),
            "positive_rate": _num(part[target].mean()),
            "missing": {c: int(n) for c, n in part[dataset.feature_columns].isna().sum().items() if n},
            "numeric": {
                c: {
                    "mean": _num(part[c].astype(float).mean()),
                    "median": _num(part[c].astype(float).median()),
                }
                for c in dataset.numeric_columns()
            },
        }
    return groups


def profile_splits(
    splits: dict[str, pd.DataFrame], dataset: DatasetConfig, cfg: ProfileConfig
) -> dict[str, Any]:
    """The whole profile: one entry per split, histogram edges fixed by the reference split."""
    if cfg.reference not in splits:
        raise PipelineError(
            f"profile.reference '{cfg.reference}' is not one of profile.splits {list(splits)}"
        )
    reference = splits[cfg.reference]
    edges = {c: histogram_edges(reference[c], cfg.histogram_bins) for c in dataset.numeric_columns()}
    attributes = [[a] for a in dataset.sensitive] + [list(i) for i in cfg.intersections]
    for combo in attributes:
        unknown = [c for c in combo if c not in dataset.columns]
        if unknown:
            raise PipelineError(f"profile.intersections names unknown columns {unknown}")
    out: dict[str, Any] = {
        "dataset": dataset.name,
        "version": dataset.version,
        "reference": cfg.reference,
        "target": dataset.target.name,
        "sensitive": dataset.sensitive,
        "splits": {},
    }
    for name, frame in splits.items():
        columns: dict[str, Any] = {}
        for column in dataset.feature_columns:
            if dataset.columns[column] == "category":
                columns[column] = categorical_profile(frame[column], cfg.top_categories)
            else:
                columns[column] = numeric_profile(frame[column], edges[column], cfg.quantiles)
        out["splits"][name] = {
            "rows": len(frame),
            "positive_rate": _num(frame[dataset.target.name].mean()),
            "columns": columns,
            "groups": {" x ".join(combo): group_profile(frame, combo, dataset) for combo in attributes},
        }
    return out


@stage_main("profile")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data, args.out = args.data or paths.processed, args.out or paths.data_reports / "profile.json"
    params = load_system(args.params, args.system)
    cfg = section(params, "profile", ProfileConfig)
    dataset = section(params, "dataset", DatasetConfig)
    splits = {}
    for name in cfg.splits:
        path = args.data / f"{name}.parquet"
        if not path.is_file():
            raise PipelineError(
                f"{path} not found (profile.splits lists '{name}'); run the split stage first"
            )
        splits[name] = read_parquet(path)
    write_json_atomic(args.out, profile_splits(splits, dataset, cfg))
    print(f"[profile] {', '.join(f'{n}: {len(f)} rows' for n, f in splits.items())} -> {args.out}")


if __name__ == "__main__":
    main()
