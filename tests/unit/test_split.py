"""Split: deterministic, stratified, seed-dependent; the official test set is kept whole."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.core.config import SplitConfig
from pipelines.core.errors import PipelineError
from pipelines.split import split_metrics, split_tables


def cfg(**kw: object) -> SplitConfig:
    base = {"seed": 42, "valid_fraction": 0.2, "source": "train", "test": "test", "stratify": ["target"]}
    return SplitConfig.model_validate(base | kw)


def test_deterministic_and_stratified(adult_tables: dict[str, pd.DataFrame]) -> None:
    a = split_tables(adult_tables["train"], adult_tables["test"], cfg())
    b = split_tables(adult_tables["train"], adult_tables["test"], cfg())
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert len(a["valid"]) == math.ceil(0.2 * 32561)  # scikit-learn rounds the held-out part up
    assert len(a["train"]) + len(a["valid"]) == 32561
    rate = adult_tables["train"]["target"].mean()
    assert abs(a["train"]["target"].mean() - rate) < 1e-3 and abs(a["valid"]["target"].mean() - rate) < 1e-3
    pd.testing.assert_frame_equal(a["test"], adult_tables["test"].reset_index(drop=True))


def test_seed_changes_membership(adult_tables: dict[str, pd.DataFrame]) -> None:
    a = split_tables(adult_tables["train"], adult_tables["test"], cfg(seed=1))["valid"]
    b = split_tables(adult_tables["train"], adult_tables["test"], cfg(seed=2))["valid"]
    assert not a.equals(b)


def test_no_row_in_two_splits(adult_tables: dict[str, pd.DataFrame]) -> None:
    source = adult_tables["train"].assign(row=range(len(adult_tables["train"])))
    out = split_tables(source, adult_tables["test"], cfg())
    assert not set(out["train"]["row"]) & set(out["valid"]["row"])


def test_joint_stratification_and_sample(adult_tables: dict[str, pd.DataFrame]) -> None:
    out = split_tables(
        adult_tables["train"], adult_tables["test"], cfg(stratify=["target", "sex"], sample=0.1)
    )
    assert len(out["test"]) == pytest.approx(1628, abs=2)
    for frame in out.values():
        assert frame["sex"].eq("Female").mean() == pytest.approx(0.33, abs=0.02)
    metrics = split_metrics(out, "target", cfg())
    assert sum(m["rows"] for m in metrics["splits"].values()) == sum(len(f) for f in out.values())


def test_unknown_stratify_column(adult_tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(
        PipelineError, match=r"split.stratify names columns the data does not have: \['gender'\]"
    ):
        split_tables(adult_tables["train"], adult_tables["test"], cfg(stratify=["gender"]))


@pytest.mark.parametrize(("test_fraction", "valid_fraction"), [(0.999, 0.2), (0.99, 0.9), (0.995, 0.5)])
def test_a_degenerate_split_is_one_clean_error(test_fraction: float, valid_fraction: float) -> None:
    """Found by a newcomer: test_fraction=0.999 left 1 training row, then scikit-learn raised a traceback."""
    from pipelines.core.errors import PipelineError
    from pipelines.split import check_splits, split_tables

    rng = np.random.default_rng(0)
    source = pd.DataFrame({"x": rng.normal(size=2000), "target": (rng.uniform(size=2000) < 0.12).astype(int)})
    cfg = SplitConfig(seed=1, valid_fraction=valid_fraction, source="all", test=None, test_fraction=test_fraction,
                      stratify=["target"])  # fmt: skip
    with pytest.raises(
        PipelineError, match=r"change split\.test_fraction, split\.valid_fraction|cannot split \d+ rows"
    ):
        check_splits(split_tables(source, None, cfg), "target", cfg)


def test_a_carved_test_set_is_seeded_and_stratified() -> None:
    from pipelines.split import split_tables

    rng = np.random.default_rng(0)
    source = pd.DataFrame({"x": rng.normal(size=1000), "target": (rng.uniform(size=1000) < 0.2).astype(int)})
    cfg = SplitConfig(
        seed=3, valid_fraction=0.25, source="all", test=None, test_fraction=0.2, stratify=["target"]
    )
    a, b = split_tables(source, None, cfg), split_tables(source, None, cfg)
    assert {k: len(v) for k, v in a.items()} == {"train": 600, "valid": 200, "test": 200}
    assert all(a[k].equals(b[k]) for k in a)
    rates = [a[k]["target"].mean() for k in a]
    assert max(rates) - min(rates) < 0.01
