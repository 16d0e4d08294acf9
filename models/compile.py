"""Compile a fitted predictor (``models.predictor``) into its serving fast path (``models.fastpath.FastScorer``).

Reads the fitted objects, never refits: a ``ColumnTransformer`` of ``SimpleImputer``, ``OrdinalEncoder``,
``OneHotEncoder``, ``StandardScaler`` and passthrough steps; then a tree ensemble that treelite imports
(histogram or classic gradient boosting, random forest, extra trees), a binary ``LogisticRegression``, a
``DummyClassifier`` with a constant answer, the rule list, or the tabular network; the score calibrator; the
mitigated model's group thresholds. Anything else raises ``CompileError`` naming the step, so a model without a
fast path is refused at packaging rather than served some other way.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from models import fastpath as fp
from models.calibration import EPS, ScoreCalibrator
from models.predictor import CalibratedPredictor, Predictor, SklearnPredictor, TorchTabularPredictor


class CompileError(Exception):
    """The predictor has a part the fast path does not implement; the message names it."""


def compile_predictor(predictor: Predictor, nthread: int = 1) -> fp.FastScorer:
    """The fast path of ``predictor``; ``nthread`` is treelite's thread count for tree ensembles."""
    f = predictor.features
    calibration = None
    if isinstance(predictor, CalibratedPredictor):
        calibration = compile_calibrator(predictor.calibrator)
        predictor = predictor.base
    if isinstance(predictor, TorchTabularPredictor):
        blocks, model = compile_torch(predictor)
        info = {"reference": "torch-tabular", "model": "TabularMLP", "encoder": "TabularEncoder"}
        scorer = fp.FastScorer(f.categorical, f.numeric, blocks, model, calibration, None, info)
    elif isinstance(predictor, SklearnPredictor):
        scorer = compile_sklearn(predictor.model, predictor, nthread)
        if calibration is not None:
            if scorer.calibration is not None or scorer.post is not None:
                raise CompileError("a calibrator over a model that already calibrates or post-processes")
            scorer.calibration = calibration
    else:
        raise CompileError(f"no fast path for predictor {type(predictor).__name__}")
    if calibration is not None:
        scorer.info["calibration"] = type(calibration).__name__.lower()
    return scorer


def compile_sklearn(model: Any, predictor: Predictor, nthread: int) -> fp.FastScorer:
    from sklearn.pipeline import Pipeline

    from models.mitigation import ThresholdMitigator

    f = predictor.features
    if isinstance(model, ThresholdMitigator):
        base = compile_predictor(model.base, nthread)
        if base.post is not None:
            raise CompileError("mitigation over a mitigated model")
        base.post = compile_thresholds(model)
        base.info["post"] = f"group thresholds on {model.sensitive} (fairlearn ThresholdOptimizer)"
        return base
    if isinstance(model, Pipeline):
        if len(model.steps) != 2:
            raise CompileError(
                f"a pipeline of {len(model.steps)} steps; the fast path reads preprocess + model"
            )
        (_, pre), (_, estimator) = model.steps
        blocks = compile_columns(pre, list(f.columns))
    else:
        estimator, blocks = model, []
    width = sum(b.width for b in blocks)
    compiled = compile_estimator(estimator, width, f.numeric, nthread)
    info = {
        "reference": type(model).__name__,
        "model": type(estimator).__name__,
        "encoder": type(model.steps[0][1]).__name__ if isinstance(model, Pipeline) else None,
    }
    return fp.FastScorer(f.categorical, f.numeric, blocks, compiled, None, None, info)


# -- encoders ----------------------------------------------------------------------------------------------------


def compile_columns(pre: Any, columns: list[str]) -> list[fp.Block]:
    """The blocks of a fitted ``ColumnTransformer``, in its output order."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pre, ColumnTransformer):
        raise CompileError(f"no fast path for preprocessing {type(pre).__name__} (a ColumnTransformer is)")
    blocks: list[fp.Block] = []
    for name, transformer, selected in pre.transformers_:
        if transformer == "drop":
            continue
        names = list(selected)
        if any(not isinstance(c, str) or c not in columns for c in names):
            raise CompileError(f"transformer {name!r} selects {names}: the fast path selects feature names")
        steps = list(transformer.steps) if isinstance(transformer, Pipeline) else [(name, transformer)]
        for j, column in enumerate(names):
            blocks.append(compile_column(column, j, [s for _, s in steps], name))
    return blocks


def compile_column(column: str, j: int, steps: list[Any], where: str) -> fp.Block:
    """One input column through a chain of fitted per-column steps (``j`` = its index in those steps)."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    fill: Any = None
    number = fp.Number(column)
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        label = f"{where} step {i} ({type(step).__name__}) on {column!r}"
        if (isinstance(step, str) and step == "passthrough") or (
            isinstance(step, FunctionTransformer) and step.func is None  # what a fitted "passthrough" becomes
        ):
            continue
        if isinstance(step, SimpleImputer):
            missing = step.missing_values
            if not (isinstance(missing, float) and math.isnan(missing)) or step.add_indicator:
                raise CompileError(f"{label}: only missing_values=nan without an indicator")
            fill = step.statistics_[j]
            if isinstance(fill, float) and math.isnan(fill):
                raise CompileError(f"{label}: the column was empty at fit (no statistic)")
        elif isinstance(step, OrdinalEncoder) and last:
            categories = _categories(step, j, label)
            if step.handle_unknown != "use_encoded_value":
                raise CompileError(f"{label}: handle_unknown must be use_encoded_value")
            codes = {c: float(k) for k, c in enumerate(categories)}
            missing_code = float(step.encoded_missing_value)
            if fill is not None:  # an imputer before: missing becomes the fill value's code
                missing_code = codes.get(fill, float(step.unknown_value))
            return fp.Lookup(column, codes, float(step.unknown_value), missing_code)
        elif isinstance(step, OneHotEncoder) and last:
            categories = _categories(step, j, label)
            if step.drop is not None or step.handle_unknown not in ("ignore", "infrequent_if_exist"):
                raise CompileError(f"{label}: only drop=None with handle_unknown=ignore")
            if len(categories) != len(step.categories_[j]):
                raise CompileError(f"{label}: missing values among the categories; impute them first")
            return fp.OneHot(column, {c: k for k, c in enumerate(categories)}, fill)
        elif isinstance(step, StandardScaler):
            if not hasattr(step, "scale_") and step.with_std:
                raise CompileError(f"{label}: not fitted")
            number.scaled = True
            number.mean = float(step.mean_[j]) if step.with_mean else 0.0
            number.scale = float(step.scale_[j]) if step.with_std else 1.0
            if i != len(steps) - 1:
                raise CompileError(f"{label}: a scaler must be the last step")
        else:
            raise CompileError(f"no fast path for {label}")
    if fill is not None:
        number.fill = float(fill)
    return number


def _categories(step: Any, j: int, label: str) -> list[str]:
    if getattr(step, "_infrequent_enabled", False):
        raise CompileError(
            f"{label}: infrequent categories (min_frequency, max_categories) are not supported"
        )
    categories = [c for c in step.categories_[j] if not fp.is_missing(c)]
    if not all(isinstance(c, str) for c in categories):
        raise CompileError(
            f"{label}: categories must be strings, got {sorted({type(c).__name__ for c in categories})}"
        )
    return categories


# -- models ------------------------------------------------------------------------------------------------------

TREE_ENSEMBLES = (
    "HistGradientBoostingClassifier",
    "GradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
)


def _binary(estimator: Any) -> None:
    classes = list(getattr(estimator, "classes_", []))
    if [int(c) for c in classes] != [0, 1]:
        raise CompileError(f"{type(estimator).__name__}: classes {classes}, the fast path scores 0/1 targets")


def compile_estimator(estimator: Any, width: int, numeric: tuple[str, ...], nthread: int) -> fp.Model:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from models.baselines import RuleListClassifier

    name = type(estimator).__name__
    if isinstance(estimator, RuleListClassifier):
        return fp.Rules(
            estimator._validate_rules(),
            np.asarray(estimator.leaf_rates_, dtype=np.float64),
            frozenset(numeric),
        )
    _binary(estimator)
    if isinstance(estimator, DummyClassifier):
        if estimator.strategy not in ("prior", "most_frequent", "constant"):
            raise CompileError(f"DummyClassifier(strategy={estimator.strategy!r}) is random, not a constant")
        probe = np.zeros((1, max(1, int(getattr(estimator, "n_features_in_", 1)))))
        return fp.Constant(float(estimator.predict_proba(probe)[0, 1]))
    if getattr(estimator, "n_features_in_", width) != width:
        raise CompileError(f"{name} reads {estimator.n_features_in_} features, the encoders write {width}")
    if isinstance(estimator, LogisticRegression):
        return fp.Linear(np.asarray(estimator.coef_[0], dtype=np.float64), float(estimator.intercept_[0]))
    if name in TREE_ENSEMBLES:
        import treelite.sklearn

        with warnings.catch_warnings():  # treelite casts HistGradientBoosting's NaN category slot (harmless)
            warnings.simplefilter("ignore", RuntimeWarning)
            return fp.Trees(treelite.sklearn.import_model(estimator), nthread)
    raise CompileError(f"no fast path for estimator {name}")


def compile_torch(predictor: TorchTabularPredictor) -> tuple[list[fp.Block], fp.MLP]:
    from torch import nn

    enc, net = predictor.encoder, predictor.net
    blocks: list[fp.Block] = [
        fp.Lookup(c, {v: float(i + 1) for i, v in enumerate(enc.vocab[c])}, 0.0, 0.0) for c in enc.categorical
    ]
    blocks += [
        fp.Number(c, None, float(m), float(s), True, 0.0)
        for c, m, s in zip(enc.numeric, enc.mean, enc.std, strict=True)
    ]

    def array(t: Any) -> np.ndarray:
        return t.detach().cpu().double().numpy().copy()

    layers, modules = [], list(net.mlp)
    for i, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            layers.append((array(module.weight), array(module.bias)))
        elif not isinstance(module, nn.ReLU | nn.Dropout):
            raise CompileError(
                f"TabularMLP layer {i} is {type(module).__name__}: the fast path has Linear, ReLU, Dropout"
            )
    kinds = [type(m).__name__ for m in modules]
    expected = ["Linear", "ReLU", "Dropout"] * (len(layers) - 1) + ["Linear"]
    if kinds != expected:
        raise CompileError(f"TabularMLP layers {kinds}; the fast path implements {expected}")
    periodic = None
    if net.periodic is not None:
        periodic = {k: array(getattr(net.periodic, k)) for k in ("coefficients", "weight", "bias")}
    return blocks, fp.MLP([array(e.weight) for e in net.embeddings], periodic, layers)


# -- calibration and post-processing -----------------------------------------------------------------------------


def compile_calibrator(calibrator: ScoreCalibrator) -> fp.Calibration:
    model = calibrator.model_
    if calibrator.method == "isotonic":
        return fp.Isotonic(
            np.asarray(model.X_thresholds_, dtype=np.float64),
            np.asarray(model.y_thresholds_, dtype=np.float64),
        )
    return fp.Sigmoid(float(model.coef_[0, 0]), float(model.intercept_[0]), EPS)


def compile_thresholds(mitigator: Any) -> fp.GroupThresholds:
    groups: dict[str, dict[str, Any]] = {}
    for group, interp in mitigator.optimizer_.interpolated_thresholder_.interpolation_dict.items():
        g = {
            "p0": float(interp.p0),
            "op0": interp.operation0.operator,
            "t0": float(interp.operation0.threshold),
            "p1": float(interp.p1),
            "op1": interp.operation1.operator,
            "t1": float(interp.operation1.threshold),
        }
        if "p_ignore" in interp:
            g |= {"p_ignore": float(interp.p_ignore), "constant": float(interp.prediction_constant)}
        groups[str(group)] = g
    return fp.GroupThresholds(mitigator.sensitive, groups)
