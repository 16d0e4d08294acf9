"""What every training stage shares: reading splits, the feature spec, building from ``_target_``, calibrating on
the valid split and saving the artifact atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.calibration import ScoreCalibrator
from models.features import FeatureSpec
from models.predictor import CalibratedPredictor, Predictor, save_predictor
from pipelines.core.config import ConfigError
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_dir, read_parquet
from pipelines.core.metrics import ece
from pipelines.core.model_config import ModelBase


def read_split(data_dir: Path, name: str) -> pd.DataFrame:
    path = data_dir / f"{name}.parquet"
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the split stage first (dvc repro split)")
    return read_parquet(path)


def feature_spec(params: dict[str, Any]) -> FeatureSpec:
    try:
        return FeatureSpec.from_params(params["features"], params["dataset"])
    except (KeyError, ValueError) as err:
        raise ConfigError(f"features: {err}") from None


def instantiate(config: dict[str, Any], where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain containers; a failure names the params key.

    ``kwargs`` are passed to the built callable as they are (Hydra would turn dataclasses into configs).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        factory = hydra_instantiate(config, _convert_="all", _partial_=True)
        return factory(**kwargs)
    except (InstantiationException, TypeError, ImportError, ValueError) as err:
        raise ConfigError(f"{where}: cannot instantiate {config.get('_target_')}: {err}") from None


def calibration_summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import brier_score_loss, log_loss

    return {
        "ece": ece(y, p, 10),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


def finish(
    predictor: Predictor, cfg: ModelBase, valid: pd.DataFrame, out: Path, info: dict[str, Any]
) -> dict[str, Any]:
    """Calibrate on ``valid`` if the config asks, then write the artifact to ``out`` (replacing it atomically)."""
    y = valid[predictor.features.target].astype(int).to_numpy()
    raw = predictor.predict_proba(valid)
    info = {
        "name": cfg.name,
        "kind": cfg.kind,
        "description": cfg.description,
        **info,
        "valid": {"rows": len(valid), "uncalibrated": calibration_summary(y, raw)},
    }
    if cfg.calibration:
        calibrator = ScoreCalibrator(cfg.calibration).fit(raw, y)
        predictor = CalibratedPredictor(predictor, calibrator)
        info["valid"]["calibrated"] = calibration_summary(y, predictor.predict_proba(valid))
    with atomic_dir(out) as staging:
        manifest = save_predictor(predictor, staging, info)
    return manifest
