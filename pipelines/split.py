"""Stage ``split``: a deterministic, stratified train/valid split; an official test file stays the test set, else a
seeded, stratified share of the source file (``split.test_fraction``) is carved off as the test set first.

Reads ``split`` params and the validated tables. Writes ``data/processed/{train,valid,test}.parquet`` and the DVC
metrics file ``reports/data/split.json`` (rows and class balance per split).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from pipelines.core.config import DatasetConfig, SplitConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_parquet, write_json_atomic, write_parquet
from pipelines.core.paths import SystemPaths


def _strata(frame: pd.DataFrame, columns: list[str]) -> pd.Series | None:
    if not columns:
        return None
    missing = [c for c in columns if c not in frame]
    if missing:
        raise PipelineError(f"split.stratify names columns the data does not have: {missing}")
    keys = frame[columns].astype("string").fillna("<NA>")
    strata = keys[columns[0]]
    for column in columns[1:]:
        strata = strata + "|" + keys[column]
    return strata


def _cut(
    frame: pd.DataFrame, size: float, seed: int, stratify: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        keep, cut = train_test_split(
            frame, test_size=size, random_state=seed, stratify=_strata(frame, stratify)
        )
    except ValueError as err:
        raise PipelineError(f"cannot split {len(frame)} rows stratified by {stratify}: {err}") from None
    return keep.sort_index(), cut.sort_index()


def split_tables(
    source: pd.DataFrame, test: pd.DataFrame | None, cfg: SplitConfig, extra: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Return train, valid and test frames (optionally sub-sampled, stratified, with the same seed).

    ``test`` is the official test file; when it is None, ``cfg.test_fraction`` of ``source`` is carved off first
    (stratified, seeded), then ``cfg.valid_fraction`` of the rest becomes the validation split.
    """
    if test is None:
        if cfg.test_fraction is None:
            raise PipelineError("split: no test file and no split.test_fraction to carve one")
        source, test = _cut(source, cfg.test_fraction, cfg.seed, cfg.stratify)
    train, valid = _cut(source, cfg.valid_fraction, cfg.seed, cfg.stratify)
    if extra is not None and len(extra):
        train = pd.concat([train, extra[train.columns]], ignore_index=True)
    splits = {"train": train, "valid": valid, "test": test}
    if cfg.sample is not None and cfg.sample < 1.0:
        splits = {
            name: _cut(frame, 1.0 - cfg.sample, cfg.seed, cfg.stratify)[0] for name, frame in splits.items()
        }
    return {name: frame.reset_index(drop=True) for name, frame in splits.items()}


MIN_ROWS_PER_CLASS = 2  # fewer and a classifier cannot be fitted, early-stopped or evaluated on that split


def check_splits(splits: dict[str, pd.DataFrame], target: str, cfg: SplitConfig) -> None:
    """Every split must hold each class at least ``MIN_ROWS_PER_CLASS`` times; else one error naming the split
    keys to change (a degenerate split failed later inside scikit-learn with a traceback)."""
    problems = []
    for name, frame in splits.items():
        counts = frame[target].value_counts()
        few = {int(c): int(counts.get(c, 0)) for c in (0, 1) if counts.get(c, 0) < MIN_ROWS_PER_CLASS}
        if few:
            problems.append(
                f"{name}: {len(frame)} rows, class counts {few} (at least {MIN_ROWS_PER_CLASS} of each)"
            )
    if problems:
        keys = "split.test_fraction, split.valid_fraction" + (", split.sample" if cfg.sample else "")
        raise PipelineError(
            f"the split leaves a set without enough rows of a class; change {keys}:\n  "
            + "\n  ".join(problems)
        )


def split_metrics(splits: dict[str, pd.DataFrame], target: str, cfg: SplitConfig) -> dict[str, Any]:
    """Rows, share of all rows and positive rate per split."""
    total = sum(len(f) for f in splits.values())
    return {
        "seed": cfg.seed,
        "valid_fraction": cfg.valid_fraction,
        "splits": {
            name: {
                "rows": len(frame),
                "share": round(len(frame) / total, 6),
                "positives": int(frame[target].sum()),
                "positive_rate": round(float(frame[target].mean()), 6),
            }
            for name, frame in splits.items()
        },
    }


@stage_main("split")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--metrics", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data, args.out = args.data or paths.validated, args.out or paths.processed
    args.metrics = args.metrics or paths.data_reports / "split.json"
    params = load_system(args.params, args.system)
    cfg = section(params, "split", SplitConfig)
    dataset = section(params, "dataset", DatasetConfig)
    for key in (cfg.source, cfg.test, *cfg.extra_train):
        if key is not None and key not in dataset.files:
            raise PipelineError(f"split names file '{key}', which dataset.files does not define")
    source = read_parquet(args.data / f"{cfg.source}.parquet")
    test = read_parquet(args.data / f"{cfg.test}.parquet") if cfg.test else None
    extra = [read_parquet(args.data / f"{key}.parquet") for key in cfg.extra_train]
    splits = split_tables(source, test, cfg, pd.concat(extra, ignore_index=True) if extra else None)
    check_splits(splits, dataset.target.name, cfg)
    with atomic_dir(args.out) as staging:
        for name, frame in splits.items():
            write_parquet(frame, staging / f"{name}.parquet")
    metrics = split_metrics(splits, dataset.target.name, cfg)
    write_json_atomic(args.metrics, metrics)
    for name, m in metrics["splits"].items():
        print(f"[split] {name}: {m['rows']} rows, positive rate {m['positive_rate']:.4f}")


if __name__ == "__main__":
    main()
