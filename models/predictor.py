"""Predictors: one interface over every trained artifact, saved with a manifest of file hashes.

A predictor maps a frame of raw feature columns to P(target = 1). An artifact folder holds the model files and
``predictor.json`` (format, features, calibration, extra info, sha256 of every file). ``load_predictor`` refuses
an artifact whose files do not match their recorded hashes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import joblib
import numpy as np
import pandas as pd

from models.calibration import ScoreCalibrator
from models.checksums import sha256_file
from models.features import FeatureSpec

if TYPE_CHECKING:  # torch and Lightning load only when a torch artifact is used (about 3 s and 300 MiB)
    from models.tabular import TabularEncoder, TabularMLP

MANIFEST = "predictor.json"


class ArtifactError(Exception):
    """An artifact is missing, incomplete or altered."""


class Predictor(ABC):
    """Scores raw rows. Subclasses define a ``format`` name, ``save_files`` and ``load_files``."""

    format: ClassVar[str]

    def __init__(self, features: FeatureSpec) -> None:
        self.features = features

    @abstractmethod
    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        """P(target = 1) per row, as float64."""

    @abstractmethod
    def save_files(self, folder: Path) -> None:
        """Write the model files into ``folder``."""

    @classmethod
    @abstractmethod
    def load_files(cls, folder: Path, features: FeatureSpec, info: dict[str, Any]) -> Predictor:
        """Rebuild from ``folder``."""

    def predict(self, data: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(data) >= threshold).astype(np.int64)


class SklearnPredictor(Predictor):
    """Any fitted object with ``predict_proba(X) -> (n, 2)``, pickled with joblib."""

    format = "sklearn"

    def __init__(self, model: Any, features: FeatureSpec) -> None:
        super().__init__(features)
        self.model = model

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.features.frame(data))[:, 1], dtype=np.float64)

    def save_files(self, folder: Path) -> None:
        joblib.dump(self.model, folder / "model.joblib")

    @classmethod
    def load_files(cls, folder: Path, features: FeatureSpec, info: dict[str, Any]) -> SklearnPredictor:
        return cls(joblib.load(folder / "model.joblib"), features)


class TorchTabularPredictor(Predictor):
    """The tabular network's weights, its architecture and the fitted encoder; inference in eval mode, float64.

    Trained in float32, scored in float64 (an exact copy of the weights): float32 matrix products differ with the
    batch's shape (about 1e-7 between one row and a batch), so a row's score would depend on what it was batched
    with; in float64 it does not (below 1e-15), and the serving fast path (``models.fastpath``) matches it to 1e-9.
    """

    format = "torch-tabular"

    def __init__(
        self, net: TabularMLP, encoder: TabularEncoder, architecture: dict[str, Any], features: FeatureSpec
    ):
        import copy

        super().__init__(features)
        self.net = net.eval()
        self.net64 = copy.deepcopy(net).double().eval()
        self.encoder = encoder
        self.architecture = architecture

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        import torch

        cat, num = self.encoder.transform(self.features.frame(data), np.float64)
        with torch.inference_mode():
            return torch.sigmoid(self.net64(cat, num)).numpy()

    def save_files(self, folder: Path) -> None:
        import torch

        torch.save(self.net.state_dict(), folder / "net.pt")
        (folder / "architecture.json").write_text(json.dumps(self.architecture, indent=2) + "\n")
        (folder / "encoder.json").write_text(json.dumps(self.encoder.to_dict(), indent=2) + "\n")

    @classmethod
    def load_files(cls, folder: Path, features: FeatureSpec, info: dict[str, Any]) -> TorchTabularPredictor:
        import torch

        from models.tabular import TabularEncoder, TabularMLP

        architecture = json.loads((folder / "architecture.json").read_text())
        net = TabularMLP(**architecture)
        net.load_state_dict(torch.load(folder / "net.pt", map_location="cpu", weights_only=True))
        encoder = TabularEncoder.from_dict(json.loads((folder / "encoder.json").read_text()))
        return cls(net, encoder, architecture, features)


class CalibratedPredictor(Predictor):
    """A base predictor whose scores pass through a calibrator fitted on held-out data."""

    def __init__(self, base: Predictor, calibrator: ScoreCalibrator) -> None:
        super().__init__(base.features)
        self.base = base
        self.calibrator = calibrator
        self.format = base.format  # type: ignore[misc]

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return self.calibrator.transform(self.base.predict_proba(data))

    def save_files(self, folder: Path) -> None:
        self.base.save_files(folder)
        joblib.dump(self.calibrator, folder / "calibrator.joblib")

    @classmethod
    def load_files(cls, folder: Path, features: FeatureSpec, info: dict[str, Any]) -> Predictor:
        raise NotImplementedError("loaded through load_predictor")


FORMATS: dict[str, type[Predictor]] = {"sklearn": SklearnPredictor, "torch-tabular": TorchTabularPredictor}


def uncalibrated(predictor: Predictor) -> Predictor:
    """The predictor without its calibrator (itself when it has none)."""
    return predictor.base if isinstance(predictor, CalibratedPredictor) else predictor


def save_predictor(predictor: Predictor, folder: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the predictor's files and its manifest into ``folder`` (which must exist); return the manifest."""
    predictor.save_files(folder)
    calibration = predictor.calibrator.method if isinstance(predictor, CalibratedPredictor) else None
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {
        "format": predictor.format,
        "features": {
            "categorical": list(predictor.features.categorical),
            "numeric": list(predictor.features.numeric),
            "target": predictor.features.target,
            "sensitive": list(predictor.features.sensitive),
        },
        "calibration": calibration,
        "info": info or {},
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path} not found: {folder} is not a trained artifact")
    return json.loads(path.read_text())


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Raise ``ArtifactError`` naming every file that is missing or whose sha256 differs from the manifest."""
    problems = []
    for name, expected in manifest["files"].items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{path}: sha256 {actual} != recorded {expected}")
    if problems:
        raise ArtifactError("artifact failed verification:\n  " + "\n  ".join(problems))


def load_predictor(folder: str | Path, verify: bool = True) -> Predictor:
    """Load the artifact in ``folder``, checking every file's sha256 first unless ``verify`` is false."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if verify:
        verify_files(folder, manifest)
    f = manifest["features"]
    features = FeatureSpec(tuple(f["categorical"]), tuple(f["numeric"]), f["target"], tuple(f["sensitive"]))
    fmt = manifest["format"]
    if fmt not in FORMATS:
        raise ArtifactError(f"{folder}: unknown predictor format {fmt!r}")
    predictor = FORMATS[fmt].load_files(folder, features, manifest["info"])
    if manifest.get("calibration"):
        predictor = CalibratedPredictor(predictor, joblib.load(folder / "calibrator.joblib"))
    return predictor
