"""Stage ``mitigate``: a fairness-mitigated candidate by post-processing a trained one.

Usage: ``python -m pipelines.mitigate --model NAME``. Reads ``models.NAME`` (``family: mitigation``): the base
candidate, the sensitive attribute and the fairness constraint. Fits fairlearn's ThresholdOptimizer on the valid
split over the base artifact and writes ``artifacts/candidates/NAME/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.mitigation import ThresholdMitigator
from models.predictor import ArtifactError, SklearnPredictor, load_predictor
from pipelines.core import runlog
from pipelines.core.config import ConfigError, load_system
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.model_config import MitigationModel, model_for_stage
from pipelines.core.paths import SystemPaths
from pipelines.core.training import feature_spec, finish, read_split


@stage_main("mitigate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.data, args.artifacts = args.data or paths.processed, args.artifacts or paths.candidates
    params = load_system(args.params, args.system)
    cfg = model_for_stage(params, args.model, MitigationModel, "mitigate")
    features = feature_spec(params)
    try:
        base = load_predictor(args.artifacts / cfg.base)
    except ArtifactError as err:
        raise PipelineError(f"{params.key('models.' + args.model)}.base '{cfg.base}': {err}") from None
    valid = read_split(args.data, "valid")
    x, y = features.xy(valid)
    start = time.perf_counter()
    try:
        mitigator = ThresholdMitigator(
            base, cfg.sensitive, cfg.constraint, cfg.objective, cfg.grid_size, cfg.tol
        )
    except ValueError as err:
        raise ConfigError(f"{params.key('models.' + args.model)}: {err}") from None
    mitigator.fit(x, y)
    seconds = time.perf_counter() - start
    info = {
        "family": cfg.family,
        "base": cfg.base,
        "sensitive": cfg.sensitive,
        "constraint": cfg.constraint,
        "fit_rows": len(valid),
        "params": cfg.model_dump(),
    }
    out = args.out or paths.candidate(args.model)
    finish(SklearnPredictor(mitigator, features), cfg, valid, out, info)
    runlog.record(
        "mitigate", f"{args.system}/{args.model}", {"fit_seconds": round(seconds, 3), "fit_rows": len(valid)}
    )
    print(f"[mitigate] {args.model}: {cfg.constraint} on '{cfg.sensitive}' over {cfg.base} -> {out}")


if __name__ == "__main__":
    main()
