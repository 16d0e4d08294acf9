"""Which columns a model reads, and how a frame is put into the form every model expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureSpec:
    """Model inputs (categorical and numeric columns), the binary target and the sensitive attributes."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    target: str = "target"
    sensitive: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, features: Mapping[str, Any], dataset: Mapping[str, Any]) -> FeatureSpec:
        """Build from the ``features`` and ``dataset`` params sections."""
        spec = cls(
            categorical=tuple(features["categorical"]),
            numeric=tuple(features["numeric"]),
            target=dataset["target"]["name"],
            sensitive=tuple(dataset["sensitive"]),
        )
        known = set(dataset["columns"])
        unknown = [c for c in spec.columns if c not in known]
        if unknown:
            raise ValueError(f"features name columns that dataset.columns does not have: {unknown}")
        overlap = set(spec.categorical) & set(spec.numeric)
        if overlap:
            raise ValueError(f"features lists columns as both categorical and numeric: {sorted(overlap)}")
        return spec

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    def frame(self, data: pd.DataFrame) -> pd.DataFrame:
        """The model input frame: categoricals as Python strings (NaN when missing), numerics as float64."""
        missing = [c for c in self.columns if c not in data]
        if missing:
            raise KeyError(f"input lacks feature column(s) {missing}")
        index = data.index
        columns = {
            c: pd.Series(
                data[c].to_numpy(dtype=object, na_value=np.nan), index=index, dtype=object, copy=False
            )
            for c in self.categorical
        }
        for c in self.numeric:
            values = data[c]
            if not pd.api.types.is_numeric_dtype(values):
                values = pd.to_numeric(values, errors="coerce")
            columns[c] = pd.Series(
                values.to_numpy(dtype=np.float64, na_value=np.nan), index=index, copy=False
            )
        return pd.DataFrame(columns, copy=False)

    def xy(self, data: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Features and the 0/1 target as an int array."""
        return self.frame(data), data[self.target].astype("int64").to_numpy()
