"""The serving fast path (models/fastpath.py, models/compile.py) against the reference pipeline it is compiled from.

Every model family the platform trains is fitted here on small synthetic data with missing values, then compiled;
property tests draw records (unseen categories, missing values, extreme numbers, batches of 1 to 20) and require
the fast path to give the reference's scores within 1e-9 with identical decisions. The real models of every
system are checked the same way on their whole test split by the evaluate and package stages
(tests/integration/test_model_pipeline.py asserts their verdicts).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from models import fastpath
from models.baselines import RuleListClassifier
from models.calibration import ScoreCalibrator
from models.compile import CompileError, compile_predictor
from models.fastpath import FastPathError, FastScorer
from models.features import FeatureSpec
from models.mitigation import ThresholdMitigator
from models.predictor import CalibratedPredictor, Predictor, SklearnPredictor, TorchTabularPredictor
from models.sklearn_models import build_pipeline
from pipelines.core import parity
from tests.conftest import ROOT

F = FeatureSpec(("color", "shape"), ("size", "weight"), "target", ("color",))
COLORS, SHAPES = ["red", "green", "blue"], ["a", "b", "c", "d"]
TOL = parity.TOLERANCE


def synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    color = rng.choice([*COLORS, None], n, p=[0.4, 0.3, 0.2, 0.1])
    shape = rng.choice(SHAPES, n)
    size = rng.normal(10, 3, n)
    size[rng.random(n) < 0.1] = np.nan
    weight = rng.exponential(50, n)
    logit = 0.3 * (np.nan_to_num(size, nan=10) - 10) + (color == "red") - 0.01 * weight + (shape == "a")
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"color": color, "shape": shape, "size": size, "weight": weight, "target": target})


TRAIN, VALID = synthetic(600, 0), synthetic(300, 1)
RULES = [
    {"name": "red and big", "when": {"color": {"in": ["red"]}, "size": {"ge": 11}}},
    {"name": "not a", "when": {"shape": {"not_in": ["a"]}, "weight": {"lt": 30}}},
    {"name": "heavy", "when": {"weight": {"gt": 80}}},
    {"name": "small", "when": {"size": {"le": 7}}},
]


def sklearn_model(estimator: Any, kind: str) -> Predictor:
    pipe = build_pipeline(estimator, kind, F)  # type: ignore[arg-type]
    x, y = F.xy(TRAIN)
    return SklearnPredictor(pipe.fit(x, y), F)


def torch_model(periodic: bool) -> Predictor:
    import torch

    from models.tabular import TabularEncoder, TabularMLP

    torch.manual_seed(0)
    enc = TabularEncoder.fit(F.frame(TRAIN), F)
    arch = {
        "cardinalities": enc.cardinalities,
        "n_numeric": 2,
        "embedding_dim": 3,
        "hidden_dims": [16, 8],
        "dropout": 0.1,
        "periodic": {"frequencies": 4, "dim": 5, "sigma": 1.0} if periodic else None,
    }
    return TorchTabularPredictor(TabularMLP(**arch), enc, arch, F)  # untrained: parity needs no training


def calibrated(base: Predictor, method: str) -> Predictor:
    y = VALID["target"].to_numpy()
    return CalibratedPredictor(base, ScoreCalibrator(method).fit(base.predict_proba(VALID), y))  # type: ignore[arg-type]


def mitigated(base: Predictor, constraint: str) -> Predictor:
    x, y = F.xy(VALID)
    return SklearnPredictor(ThresholdMitigator(base, "color", constraint, grid_size=200).fit(x, y), F)


def build(name: str) -> Predictor:
    hgb = HistGradientBoostingClassifier(max_iter=25, random_state=0, categorical_features=None)
    factories = {
        "hgb": lambda: sklearn_model(hgb, "ordinal"),
        "random_forest": lambda: sklearn_model(
            RandomForestClassifier(20, max_depth=6, random_state=0), "onehot"
        ),
        "extra_trees": lambda: sklearn_model(ExtraTreesClassifier(20, max_depth=6, random_state=0), "onehot"),
        "gradient_boosting": lambda: sklearn_model(
            GradientBoostingClassifier(n_estimators=20, random_state=0), "onehot"
        ),
        "logreg": lambda: sklearn_model(LogisticRegression(max_iter=5000), "onehot"),
        "majority": lambda: sklearn_model(DummyClassifier(strategy="prior"), "none"),
        "rules": lambda: sklearn_model(RuleListClassifier(RULES), "none"),
        "mlp": lambda: torch_model(periodic=True),
        "mlp_plain": lambda: torch_model(periodic=False),
        "hgb_isotonic": lambda: calibrated(build("hgb"), "isotonic"),
        "logreg_sigmoid": lambda: calibrated(build("logreg"), "sigmoid"),
        "mlp_sigmoid": lambda: calibrated(build("mlp"), "sigmoid"),
        "hgb_fair_dp": lambda: mitigated(build("hgb"), "demographic_parity"),
        "logreg_fair_eo": lambda: mitigated(build("logreg"), "equalized_odds"),
    }
    return factories[name]()


MODELS = [
    "hgb", "random_forest", "extra_trees", "gradient_boosting", "logreg", "majority", "rules", "mlp", "mlp_plain",
    "hgb_isotonic", "logreg_sigmoid", "mlp_sigmoid", "hgb_fair_dp", "logreg_fair_eo",
]  # fmt: skip
CACHE: dict[str, tuple[Predictor, FastScorer]] = {}


def compiled(name: str) -> tuple[Predictor, FastScorer]:
    if name not in CACHE:
        reference = build(name)
        CACHE[name] = reference, compile_predictor(reference)
    return CACHE[name]


def assert_parity(reference: Predictor, fast: FastScorer, records: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(records, columns=F.columns)
    expected = reference.predict_proba(frame)
    got = fast.score_records(records)
    assert got.shape == expected.shape and np.isfinite(got).all()
    assert np.abs(got - expected).max() <= TOL, (records, got, expected)
    assert ((got >= 0.5) == (expected >= 0.5)).all()
    one_by_one = np.array([fast.score_records([r])[0] for r in records])
    assert np.abs(one_by_one - expected).max() <= TOL  # the row-by-row encoder (models.fastpath.ROW_BY_ROW)


@pytest.mark.parametrize("name", MODELS)
def test_every_family_matches_its_reference_on_held_out_rows(name: str) -> None:
    reference, fast = compiled(name)
    checked = parity.check(reference.predict_proba, fast, synthetic(400, 7), 0.5)
    assert checked["passed"], checked
    assert checked["edge"]["rows"] > 0 and checked["single_rows"]["rows"] == 400


number = st.one_of(
    st.none(),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-300, 7.0, 11.0, 30.0, 80.0]),  # exactly on the rules' thresholds, too
)
record = st.fixed_dictionaries(
    {
        "color": st.one_of(st.none(), st.sampled_from([*COLORS, "purple", "", "RED"])),
        "shape": st.one_of(st.none(), st.sampled_from([*SHAPES, "z"])),
        "size": number,
        "weight": number,
    }
)


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(records=st.lists(record, min_size=1, max_size=20))
def test_fast_path_matches_the_reference_on_any_records(name: str, records: list[dict[str, Any]]) -> None:
    reference, fast = compiled(name)
    assert_parity(reference, fast, records)


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(records=st.lists(record, min_size=2, max_size=40))
def test_a_records_score_does_not_depend_on_its_batch(name: str, records: list[dict[str, Any]]) -> None:
    """Alone, in the whole batch (row-by-row encoder up to 8 records, columns above) and in halves: bit for bit
    (BLAS's matrix products gave a row 2e-16 apart between batch sizes; the fast path sums rows with einsum)."""
    _, fast = compiled(name)
    alone = np.array([fast.score_records([r])[0] for r in records])
    half = len(records) // 2
    for batched in (
        fast.score_records(records),
        np.concatenate([fast.score_records(records[:half]), fast.score_records(records[half:])]),
    ):
        assert batched.tobytes() == alone.tobytes(), np.flatnonzero(batched != alone)


def test_an_absent_key_is_a_missing_value_and_a_missing_column_is_named() -> None:
    _, fast = compiled("hgb")
    assert fast.score_records([{"shape": "a"}])[0] == pytest.approx(
        fast.score_records([{"shape": "a", "color": None, "size": None, "weight": None}])[0], abs=0
    )
    with pytest.raises(KeyError, match="weight"):
        fast.score_columns({"color": ["red"], "shape": ["a"], "size": [1.0]})


@pytest.mark.parametrize("name", ["hgb", "logreg_sigmoid", "mlp_sigmoid", "rules", "hgb_fair_dp", "majority"])
def test_saved_fast_paths_are_byte_identical_and_load_to_the_same_scores(name: str, tmp_path: Path) -> None:
    reference, fast = compiled(name)
    again = compile_predictor(reference)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    names = fast.save(tmp_path / "a")
    assert again.save(tmp_path / "b") == names
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    loaded = FastScorer.load(tmp_path / "a")
    records = parity.records_of(VALID, F.categorical, F.numeric)
    assert np.array_equal(loaded.score_records(records), fast.score_records(records))


def test_a_damaged_fast_path_is_an_error_naming_its_file(tmp_path: Path) -> None:
    _, fast = compiled("logreg")
    fast.save(tmp_path)
    spec = tmp_path / fastpath.SPEC_FILE
    good = spec.read_text()
    for damage, needle in [
        ("{not json", "cannot be read"),
        (good.replace('"format": 1', '"format": 99'), "format 99"),
        (good.replace('"kind": "linear"', '"kind": "quantum"'), r"unknown model kind 'quantum'"),
    ]:
        spec.write_text(damage)
        with pytest.raises(FastPathError, match=needle) as err:
            FastScorer.load(tmp_path)
        assert str(spec) in str(err.value)
    spec.write_text(good)
    (tmp_path / fastpath.ARRAYS_FILE).write_bytes(b"\0" * 8)  # truncated weights
    with pytest.raises(FastPathError, match=r"fastpath\.json"):
        FastScorer.load(tmp_path)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (
            lambda: sklearn_model(KNeighborsClassifier(3), "onehot"),
            "no fast path for estimator KNeighborsClassifier",
        ),
        (lambda: sklearn_model(DummyClassifier(strategy="uniform"), "none"), "random, not a constant"),
        (lambda: sklearn_model(DummyClassifier(strategy="prior"), "none") and drop_first(), "drop=None"),
        (lambda: polynomial(), "PolynomialFeatures"),
    ],
)
def test_a_model_without_a_fast_path_is_refused_by_name(make: Any, needle: str) -> None:
    with pytest.raises(CompileError, match=needle):
        compile_predictor(make())


def drop_first() -> Predictor:
    pipe = build_pipeline(LogisticRegression(max_iter=5000), "onehot", F)
    pipe.named_steps["preprocess"].transformers[0][1].steps[1][1].set_params(drop="first")
    return SklearnPredictor(pipe.fit(*F.xy(TRAIN)), F)


def polynomial() -> Predictor:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["color", "shape"],
            ),
            ("num", make_pipeline(SimpleImputer(), PolynomialFeatures(2)), ["size", "weight"]),
        ]
    )
    pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression(max_iter=5000))])
    return SklearnPredictor(pipe.fit(*F.xy(TRAIN)), F)


def test_loading_and_scoring_import_no_pandas_sklearn_or_torch(tmp_path: Path) -> None:
    """What a service worker holds: the fast path alone (adult's worker: 116 MiB, not 578 MiB with torch)."""
    for name in ("hgb", "logreg_sigmoid", "mlp_sigmoid", "rules", "hgb_fair_dp"):
        folder = tmp_path / name
        folder.mkdir()
        compiled(name)[1].save(folder)
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from models.fastpath import FastScorer\n"
        "record = {'color': 'red', 'shape': 'a', 'size': 12.0, 'weight': None}\n"
        f"scores = [float(FastScorer.load(p).score_records([record] * 9)[0]) for p in sorted(Path({str(tmp_path)!r}).iterdir())]\n"
        "print(json.dumps({'scores': scores, 'loaded': sorted(m for m in ('pandas', 'sklearn', 'torch', 'scipy.stats')"
        " if m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    import json

    out = json.loads(proc.stdout)
    assert out["loaded"] == [] and len(out["scores"]) == 5 and all(0 <= s <= 1 for s in out["scores"])
