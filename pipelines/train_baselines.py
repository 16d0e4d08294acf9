"""Stage ``train_baselines``: fit one scikit-learn model (a baseline or a classical candidate).

Usage: ``python -m pipelines.train_baselines --model NAME``. Reads ``models.NAME`` (a ``model`` config with
``family: sklearn``), ``features`` and the train/valid splits. The estimator comes from ``models.NAME.estimator``
(``_target_`` + arguments) behind the preprocessing that ``models.NAME.preprocessing`` names. Writes the artifact
to ``artifacts/candidates/NAME/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.baselines import RuleListClassifier
from models.predictor import SklearnPredictor
from models.sklearn_models import build_pipeline
from pipelines.core import runlog
from pipelines.core.config import load_system
from pipelines.core.errors import stage_main
from pipelines.core.model_config import SklearnModel, model_for_stage
from pipelines.core.paths import SystemPaths
from pipelines.core.training import feature_spec, finish, instantiate, read_split


@stage_main("train_baselines")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data = args.data or paths.processed
    params = load_system(args.params, args.system)
    cfg = model_for_stage(params, args.model, SklearnModel, "train_baselines")
    features = feature_spec(params)
    train, valid = read_split(args.data, "train"), read_split(args.data, "valid")
    estimator = instantiate(cfg.estimator, params.key(f"models.{args.model}.estimator"))
    model = build_pipeline(estimator, cfg.preprocessing, features)
    x, y = features.xy(train)
    start = time.perf_counter()
    model.fit(x, y)
    seconds = time.perf_counter() - start
    info = {"family": cfg.family, "train_rows": len(train), "params": cfg.model_dump()}
    if isinstance(estimator, RuleListClassifier):
        info["rules"] = estimator.describe()
    out = args.out or paths.candidate(args.model)
    finish(SklearnPredictor(model, features), cfg, valid, out, info)
    runlog.record(
        "train_baselines",
        f"{args.system}/{args.model}",
        {"fit_seconds": round(seconds, 3), "train_rows": len(train)},
    )
    print(f"[train_baselines] {args.model}: fitted on {len(train)} rows in {seconds:.2f}s -> {out}")


if __name__ == "__main__":
    main()
