"""The serving fast path: raw records to P(target = 1) with numpy (and treelite for trees), no pandas or sklearn.

A ``FastScorer`` is four steps, each a plain array operation, compiled from a fitted predictor by
``models.compile`` at packaging time and checked there against the reference pipeline (``pipelines.core.parity``):

1. **encode**: each raw column into one or more numeric columns of ``X`` (n, d) float64, as the fitted encoders
   do: category lookups (ordinal code, one-hot block, embedding index; unknown and missing as the encoder treats
   them), numeric imputation and scaling;
2. **model**: tree ensembles through treelite's GTIL predictor (no compilation: 0.03 ms a row for a model of
   97 trees, against 1.6 ms in scikit-learn), linear models as ``expit(X @ coef + intercept)``, the tabular
   network's forward pass in float64, a constant, or a rule list on the raw columns;
3. **calibrate**: isotonic (``np.interp`` on the fitted thresholds) or Platt's sigmoid on the logit;
4. **post-process**: the mitigated model's group thresholds (fairlearn's interpolated thresholder, evaluated the
   same way).

Saved as ``fastpath.json`` (structure and small parameters), ``fastpath.bin`` (float64 arrays, little-endian,
offsets in the JSON) and ``trees.tl`` (treelite's checkpoint): plain bytes, the same for the same fitted objects.
Loading imports numpy, and treelite only for trees; never torch, pandas or scikit-learn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPEC_FILE, ARRAYS_FILE, TREES_FILE = "fastpath.json", "fastpath.bin", "trees.tl"
FORMAT = 1
LARGEST = float(np.finfo(np.float64).max)  # what np.nan_to_num makes of an infinity
ROW_BY_ROW = 8  # up to this many records are encoded in plain Python: 14 columns in 6 us instead of 68 us
MISSING = "(missing)"  # the label of a missing value where a group name is needed (fairness, mitigation)


class FastPathError(Exception):
    """A fast path cannot be built, saved or loaded."""


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA: what ``FeatureSpec.frame`` turns into NaN."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def to_float(value: Any) -> float:
    """A numeric input as float64, NaN when missing or not a number (``pd.to_numeric(errors="coerce")``)."""
    if is_missing(value) or isinstance(value, bool):
        return float(value) if isinstance(value, bool) else math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- 1. encode ---------------------------------------------------------------------------------------------------


@dataclass
class Lookup:
    """A categorical column to one output: ``codes[value]``, ``default`` when unknown or missing."""

    column: str
    codes: dict[str, float]
    default: float
    missing: float

    width = 1

    def write(self, values: Sequence[Any], out: np.ndarray) -> None:
        get, default, missing = self.codes.get, self.default, self.missing
        out[:, 0] = [missing if is_missing(v) else get(v, default) for v in values]

    def row(self, v: Any) -> list[float]:
        return [self.missing if is_missing(v) else self.codes.get(v, self.default)]


@dataclass
class OneHot:
    """A categorical column to a block of indicators (all zero when unknown); missing is ``missing_as`` first."""

    column: str
    index: dict[str, int]
    missing_as: str | None

    @property
    def width(self) -> int:
        return len(self.index)

    def write(self, values: Sequence[Any], out: np.ndarray) -> None:
        out[:] = 0.0
        get, fill = self.index.get, self.missing_as
        for row, v in enumerate(values):
            j = get(fill if fill is not None and is_missing(v) else v)
            if j is not None:
                out[row, j] = 1.0

    def row(self, v: Any) -> list[float]:
        out = [0.0] * len(self.index)
        j = self.index.get(self.missing_as if self.missing_as is not None and is_missing(v) else v)
        if j is not None:
            out[j] = 1.0
        return out


@dataclass
class Number:
    """A numeric column to one output: ``fill`` where missing, then ``(x - mean) / scale``, then, with
    ``fill_after``, ``np.nan_to_num`` (missing to ``fill_after``, infinities to the largest floats)."""

    column: str
    fill: float | None = None
    mean: float = 0.0
    scale: float = 1.0
    scaled: bool = False
    fill_after: float | None = None

    width = 1

    def write(self, values: Sequence[Any], out: np.ndarray) -> None:
        x = np.fromiter((to_float(v) for v in values), dtype=np.float64, count=len(values))
        if self.fill is not None:
            x[np.isnan(x)] = self.fill
        if self.scaled:
            x = (x - self.mean) / self.scale
        if self.fill_after is not None:
            x = np.nan_to_num(x, nan=self.fill_after)
        out[:, 0] = x

    def row(self, v: Any) -> list[float]:
        """``write`` for one value in plain Python floats (the same IEEE operations, without numpy's overhead)."""
        x = to_float(v)
        if self.fill is not None and math.isnan(x):
            x = self.fill
        if self.scaled:
            x = (x - self.mean) / self.scale
        if self.fill_after is not None:
            x = self.fill_after if math.isnan(x) else min(max(x, -LARGEST), LARGEST)
        return [x]


Block = Lookup | OneHot | Number
BLOCKS: dict[str, type[Block]] = {"lookup": Lookup, "onehot": OneHot, "number": Number}


# -- 2. model ----------------------------------------------------------------------------------------------------


class Arrays:
    """Named float64 arrays written to (and read from) one flat little-endian file."""

    def __init__(self, data: dict[str, np.ndarray] | None = None) -> None:
        self.data: dict[str, np.ndarray] = dict(data or {})

    def put(self, name: str, array: Any) -> str:
        self.data[name] = np.ascontiguousarray(array, dtype="<f8")
        return name

    def save(self, path: Path) -> dict[str, Any]:
        index, offset = {}, 0
        with open(path, "wb") as fh:
            for name, array in self.data.items():
                fh.write(array.tobytes())
                index[name] = {"offset": offset, "shape": list(array.shape)}
                offset += array.nbytes
        return index

    @classmethod
    def load(cls, path: Path, index: Mapping[str, Any]) -> Arrays:
        raw = path.read_bytes() if index else b""
        out = {}
        for name, where in index.items():
            count = int(np.prod(where["shape"], dtype=np.int64))
            flat = np.frombuffer(raw, dtype="<f8", count=count, offset=where["offset"])
            out[name] = flat.reshape(where["shape"]).astype(np.float64)
        return cls(out)


@dataclass
class Trees:
    """A tree ensemble in treelite (GTIL predictor); the probability of the positive class.

    ``treelite.gtil.predict`` parses a JSON configuration and asks the model for its types and output shape on
    every call: 135 us for one row of 97 trees here, of which the prediction itself is about 50 us. The
    configuration and the shape are built once, and a float64 model is called as ``predict`` calls it (59 us);
    any other model goes through treelite's own path.
    """

    model: Any  # treelite.Model
    nthread: int = 1

    def __post_init__(self) -> None:
        from treelite.gtil.gtil import GTILConfig, _predict_impl

        self._config = GTILConfig(predict_type="default", nthread=self.nthread)
        probe = _predict_impl(self.model, np.zeros((1, self.model.num_feature)), config=self._config)
        self._tail = probe.shape[1:]
        self._direct = self.model.input_type == "float64" and self.model.output_type == "float64"

    def __call__(self, X: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        import ctypes

        from treelite.core import _LIB, _check_call
        from treelite.gtil.gtil import _predict_impl

        if self._direct and X.ndim == 2 and X.shape[1] == self.model.num_feature:
            X = np.ascontiguousarray(X, dtype=np.float64)
            out = np.zeros((len(X), *self._tail), dtype=np.float64)
            pointer = ctypes.POINTER(ctypes.c_double)
            _check_call(
                _LIB.TreeliteGTILPredict(
                    self.model.handle,
                    X.ctypes.data_as(pointer),
                    b"float64",
                    ctypes.c_uint64(len(X)),
                    out.ctypes.data_as(pointer),
                    self._config.handle,
                )
            )
        else:
            out = _predict_impl(self.model, X, config=self._config)
        return np.asarray(out, dtype=np.float64).reshape(len(X), -1)[:, -1]


@dataclass
class Linear:
    """``expit(X @ coef + intercept)``: a binary logistic regression's positive-class probability.

    The product is ``einsum``'s, not BLAS's: BLAS sums a row in an order that depends on how many rows came with
    it (a record scored alone and in a batch differed by 2e-16), einsum sums each row the same way whatever the
    batch (see :func:`rowwise`)."""

    coef: np.ndarray
    intercept: float

    def __call__(self, X: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        return expit(np.einsum("ij,j->i", X, self.coef) + self.intercept)


@dataclass
class Constant:
    """The same probability for every row (a prior)."""

    p: float

    def __call__(self, X: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        return np.full(len(X), self.p, dtype=np.float64)


def _rule_mask(op: str, values: Sequence[Any], arg: Any, numeric: bool) -> np.ndarray:
    """One rule condition on a raw column, as ``models.baselines.OPERATORS`` evaluates it on the frame."""
    if op in ("in", "not_in"):
        allowed = list(arg)
        hit = np.fromiter(
            (not is_missing(v) and any(v == a for a in allowed) for v in values),
            dtype=bool,
            count=len(values),
        )
        if op == "in":
            return hit
        present = np.fromiter((not is_missing(v) for v in values), dtype=bool, count=len(values))
        return ~hit & present
    x = np.fromiter((to_float(v) for v in values), dtype=np.float64, count=len(values)) if numeric else values
    compare = {"ge": np.greater_equal, "gt": np.greater, "le": np.less_equal, "lt": np.less}[op]
    with np.errstate(invalid="ignore"):
        return np.asarray(compare(x, arg), dtype=bool)


@dataclass
class Rules:
    """An ordered rule list: each row takes the rate of the first rule it matches (``models.baselines``)."""

    rules: list[dict[str, Any]]
    rates: np.ndarray
    numeric: frozenset[str] = frozenset()

    def __call__(self, X: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        n = len(X)
        leaf = np.full(n, len(self.rules), dtype=np.int64)
        free = np.ones(n, dtype=bool)
        for i, rule in enumerate(self.rules):
            match = np.ones(n, dtype=bool)
            for column, condition in rule["when"].items():
                for op, arg in condition.items():
                    match &= _rule_mask(op, raw[column], arg, column in self.numeric)
            take = match & free
            leaf[take] = i
            free &= ~take
        return self.rates[leaf]


def rowwise(X: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``X @ weight.T``, (n, in) x (out, in) -> (n, out), with each row's sums done the same way whatever ``n``:
    a row's score does not depend on the records that came with it (BLAS's blocking made it differ by about 3e-16
    between batch sizes; einsum's loop, measured here, is as fast for 1,000 rows)."""
    return np.einsum("ij,kj->ik", X, weight)


@dataclass
class MLP:
    """The tabular network's forward pass (``models.tabular.TabularMLP``, eval mode) in float64.

    ``X`` holds the embedding indices (the first ``len(embeddings)`` columns) then the standardized numerics.
    """

    embeddings: list[np.ndarray]
    periodic: dict[str, np.ndarray] | None
    layers: list[tuple[np.ndarray, np.ndarray]]

    def __call__(self, X: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        k = len(self.embeddings)
        codes, numeric = X[:, :k].astype(np.int64), X[:, k:]
        parts = [table[codes[:, i]] for i, table in enumerate(self.embeddings)]
        parts.append(numeric)
        if self.periodic is not None:
            p = self.periodic
            v = 2 * math.pi * p["coefficients"][None] * numeric[..., None]  # (batch, features, frequencies)
            z = np.concatenate([np.sin(v), np.cos(v)], axis=-1)
            out = np.maximum(np.einsum("bfk,fkd->bfd", z, p["weight"]) + p["bias"], 0.0)
            parts.append(out.reshape(len(X), -1))
        h = np.concatenate(parts, axis=1)
        for i, (weight, bias) in enumerate(self.layers):
            h = rowwise(h, weight) + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return expit(h[:, 0])


Model = Trees | Linear | Constant | Rules | MLP


# -- 3. calibrate, 4. post-process -------------------------------------------------------------------------------


@dataclass
class Isotonic:
    x: np.ndarray
    y: np.ndarray

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(p, self.x[0], self.x[-1]), self.x, self.y)


@dataclass
class Sigmoid:
    """Platt scaling on the logit of the clipped score (``models.calibration``)."""

    coef: float
    intercept: float
    eps: float

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(p, self.eps, 1 - self.eps)
        return expit(np.log(p / (1 - p)) * self.coef + self.intercept)


Calibration = Isotonic | Sigmoid


@dataclass
class GroupThresholds:
    """P(positive decision) per group: ``p0 * [s op0 t0] + p1 * [s op1 t1]`` (fairlearn's interpolated thresholder);
    ``p_ignore`` mixes in a constant; a group the optimizer never saw gets 0, as fairlearn gives it."""

    column: str
    groups: dict[str, dict[str, Any]]

    def __call__(self, p: np.ndarray, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        names = [MISSING if is_missing(v) else str(v) for v in raw[self.column]]
        out = np.zeros(len(p), dtype=np.float64)
        for row, name in enumerate(names):
            g = self.groups.get(name)
            if g is None:
                continue
            s = p[row]
            hit0 = s > g["t0"] if g["op0"] == ">" else s < g["t0"]
            hit1 = s > g["t1"] if g["op1"] == ">" else s < g["t1"]
            value = g["p0"] * float(hit0) + g["p1"] * float(hit1)
            if "p_ignore" in g:
                value = g["p_ignore"] * g["constant"] + (1 - g["p_ignore"]) * value
            out[row] = value
        return out


# -- the scorer --------------------------------------------------------------------------------------------------


@dataclass
class FastScorer:
    """Raw columns to P(target = 1): ``encode -> model -> calibrate -> post-process``."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    blocks: list[Block]
    model: Model
    calibration: Calibration | None = None
    post: GroupThresholds | None = None
    info: dict[str, Any] = field(default_factory=dict)  # what it was compiled from, for people

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    @property
    def width(self) -> int:
        return sum(b.width for b in self.blocks)

    def encode(self, raw: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
        X = np.empty((n, self.width), dtype=np.float64)
        j = 0
        for block in self.blocks:
            block.write(raw[block.column], X[:, j : j + block.width])
            j += block.width
        return X

    def score_columns(self, raw: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """P(target = 1) per row, float64 (n,), from ``raw``: column name -> values (missing as None or NaN).

        Raises ``KeyError`` naming a feature column that ``raw`` lacks.
        """
        missing = [c for c in self.columns if c not in raw]
        if missing:
            raise KeyError(f"input lacks feature column(s) {missing}")
        n = len(raw[self.columns[0]]) if self.columns else 0
        p = self.model(self.encode(raw, n), raw)
        if self.calibration is not None:
            p = self.calibration(p)
        if self.post is not None:
            p = self.post(p, raw)
        return np.asarray(p, dtype=np.float64)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """P(target = 1) per record (a mapping of feature name to raw value; an absent key is missing)."""
        if len(records) > ROW_BY_ROW or not self.columns:
            return self.score_columns({c: [r.get(c) for r in records] for c in self.columns})
        X = np.array(
            [[x for b in self.blocks for x in b.row(r.get(b.column))] for r in records], dtype=np.float64
        ).reshape(len(records), self.width)
        needs_raw = isinstance(self.model, Rules) or self.post is not None
        raw = {c: [r.get(c) for r in records] for c in self.columns} if needs_raw else {}
        p = self.model(X, raw)
        if self.calibration is not None:
            p = self.calibration(p)
        if self.post is not None:
            p = self.post(p, raw)
        return np.asarray(p, dtype=np.float64)

    # -- files ---------------------------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        """Write the fast path's files into ``folder`` (which must exist); return their names."""
        arrays = Arrays()
        spec: dict[str, Any] = {
            "format": FORMAT,
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "blocks": [{"kind": _kind(BLOCKS, b), **_fields(b)} for b in self.blocks],
            "info": self.info,
        }
        names = [SPEC_FILE, ARRAYS_FILE]
        m = self.model
        if isinstance(m, Trees):
            (folder / TREES_FILE).write_bytes(m.model.serialize_bytes())
            spec["model"] = {"kind": "trees"}
            names.append(TREES_FILE)
        elif isinstance(m, Linear):
            spec["model"] = {"kind": "linear", "coef": arrays.put("coef", m.coef), "intercept": m.intercept}
        elif isinstance(m, Constant):
            spec["model"] = {"kind": "constant", "p": m.p}
        elif isinstance(m, Rules):
            spec["model"] = {
                "kind": "rules",
                "rules": m.rules,
                "rates": arrays.put("rates", m.rates),
                "numeric": sorted(m.numeric),
            }
        else:
            spec["model"] = {
                "kind": "mlp",
                "embeddings": [arrays.put(f"embedding.{i}", t) for i, t in enumerate(m.embeddings)],
                "periodic": {k: arrays.put(f"periodic.{k}", v) for k, v in m.periodic.items()}
                if m.periodic
                else None,
                "layers": [
                    [arrays.put(f"layer.{i}.weight", w), arrays.put(f"layer.{i}.bias", b)]
                    for i, (w, b) in enumerate(m.layers)
                ],
            }
        c = self.calibration
        if isinstance(c, Isotonic):
            spec["calibration"] = {
                "kind": "isotonic",
                "x": arrays.put("iso.x", c.x),
                "y": arrays.put("iso.y", c.y),
            }
        elif isinstance(c, Sigmoid):
            spec["calibration"] = {"kind": "sigmoid", "coef": c.coef, "intercept": c.intercept, "eps": c.eps}
        else:
            spec["calibration"] = None
        spec["post"] = {"kind": "group_thresholds", **_fields(self.post)} if self.post else None
        spec["arrays"] = arrays.save(folder / ARRAYS_FILE)
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        return names

    @classmethod
    def load(cls, folder: Path, nthread: int = 1) -> FastScorer:
        """Read a fast path written by ``save``; a FastPathError names the file and what is wrong."""
        path = Path(folder) / SPEC_FILE
        try:
            spec = json.loads(path.read_text())
            if spec.get("format") != FORMAT:
                raise FastPathError(f"format {spec.get('format')!r}, this code reads {FORMAT}")
            arrays = Arrays.load(Path(folder) / ARRAYS_FILE, spec["arrays"]).data
            blocks = [BLOCKS[b.pop("kind")](**b) for b in spec["blocks"]]
            m = spec["model"]
            model: Model
            if m["kind"] == "trees":
                import treelite

                model = Trees(
                    treelite.Model.deserialize_bytes((Path(folder) / TREES_FILE).read_bytes()), nthread
                )
            elif m["kind"] == "linear":
                model = Linear(arrays[m["coef"]], float(m["intercept"]))
            elif m["kind"] == "constant":
                model = Constant(float(m["p"]))
            elif m["kind"] == "rules":
                model = Rules(m["rules"], arrays[m["rates"]], frozenset(m["numeric"]))
            elif m["kind"] == "mlp":
                model = MLP(
                    [arrays[n] for n in m["embeddings"]],
                    {k: arrays[n] for k, n in m["periodic"].items()} if m["periodic"] else None,
                    [(arrays[w], arrays[b]) for w, b in m["layers"]],
                )
            else:
                raise FastPathError(f"unknown model kind {m['kind']!r}")
            c = spec["calibration"]
            calibration: Calibration | None = None
            if c and c["kind"] == "isotonic":
                calibration = Isotonic(arrays[c["x"]], arrays[c["y"]])
            elif c and c["kind"] == "sigmoid":
                calibration = Sigmoid(float(c["coef"]), float(c["intercept"]), float(c["eps"]))
            post = spec["post"]
            return cls(
                tuple(spec["categorical"]),
                tuple(spec["numeric"]),
                blocks,
                model,
                calibration,
                GroupThresholds(post["column"], post["groups"]) if post else None,
                spec.get("info", {}),
            )
        except FastPathError as err:
            raise FastPathError(f"{path}: {err}") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise FastPathError(
                f"{path}: cannot be read as a fast path ({type(err).__name__}: {err})"
            ) from None


def _kind(table: Mapping[str, type], obj: object) -> str:
    return next(k for k, v in table.items() if isinstance(obj, v))


def _fields(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
