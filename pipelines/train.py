"""Stage ``train``: the PyTorch Lightning tabular model.

Usage: ``python -m pipelines.train --model NAME``. Reads ``models.NAME`` (``family: lightning``): the data module,
the LightningModule and the callbacks, each built from ``_target_``; and ``trainer`` (``conf/trainer/``: cpu, gpu
or ddp). Seeds everything, trains with early stopping and checkpointing on validation AUROC, logs the curves with
dvclive (``reports/train/NAME/``, seen by ``dvc exp show`` and ``dvc plots``), then exports the best checkpoint
as a predictor to ``artifacts/candidates/NAME/``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from models.predictor import TorchTabularPredictor
from models.tabular import TabularClassifier
from pipelines.core import runlog
from pipelines.core.config import ConfigError, load_system
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir
from pipelines.core.model_config import LightningModel, model_for_stage
from pipelines.core.paths import SystemPaths
from pipelines.core.training import feature_spec, finish, instantiate, read_split


def quiet() -> None:
    """Keep the stage log to what matters (Lightning prints hints meant for notebooks)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")


def build_trainer(trainer_cfg: dict[str, Any], callbacks: list[Any], logger: Any) -> Any:
    if "_target_" not in trainer_cfg:
        raise ConfigError("trainer needs a _target_ (pytorch_lightning.Trainer)")
    return instantiate(trainer_cfg, "trainer", callbacks=callbacks, logger=logger)


@stage_main("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--logs", type=Path)
    parser.add_argument("--checkpoints", type=Path)
    args = parser.parse_args(argv)
    quiet()
    import pytorch_lightning as pl
    from dvclive.lightning import DVCLiveLogger

    params = load_system(args.params, args.system)
    paths = SystemPaths(args.system)
    args.data = args.data or paths.processed
    cfg = model_for_stage(params, args.model, LightningModel, "train")
    out = args.out or paths.candidate(args.model)
    logs = args.logs or paths.train_reports / args.model
    # Lightning's checkpoints hold absolute paths and callback state: scratch state of this run, kept outside every
    # DVC output (they made two cold runs in two clones differ); the exported predictor is the artifact.
    checkpoints = args.checkpoints or paths.var / "train" / args.model / "checkpoints"
    features = feature_spec(params)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    where = params.key(f"models.{args.model}")
    datamodule = instantiate(
        cfg.datamodule, f"{where}.datamodule", data_dir=args.data, features=features, seed=cfg.seed
    )
    datamodule.setup("fit")
    module = instantiate(
        cfg.module, f"{where}.module", cardinalities=datamodule.cardinalities, n_numeric=datamodule.n_numeric
    )
    if not isinstance(module, TabularClassifier):
        raise ConfigError(f"{where}.module must build a models.tabular.TabularClassifier")
    callbacks = []
    for name, spec in cfg.callbacks.items():
        extra = {"dirpath": str(checkpoints)} if spec.get("_target_", "").endswith("ModelCheckpoint") else {}
        callbacks.append(instantiate(spec, f"{where}.callbacks.{name}", **extra))
    checkpoint = next((c for c in callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)), None)
    if checkpoint is None:
        raise ConfigError(f"{where}.callbacks needs a ModelCheckpoint: the best epoch is what gets exported")
    shutil.rmtree(checkpoints, ignore_errors=True)
    # dvclive writes its curves into scratch space; they replace reports/train/<model> only when training succeeds
    live = paths.var / "train" / args.model / "dvclive"
    shutil.rmtree(live, ignore_errors=True)
    logger = DVCLiveLogger(dir=str(live), save_dvc_exp=False, dvcyaml=False, report=None)
    trainer = build_trainer(dict(params["trainer"]), callbacks, logger)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return  # other DDP ranks stop here; rank 0 exports
    if not checkpoint.best_model_path:
        raise PipelineError("training produced no checkpoint (did validation run?)")
    best = TabularClassifier.load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
    assert datamodule.encoder is not None
    predictor = TorchTabularPredictor(best.net, datamodule.encoder, best.architecture(), features)
    epochs = trainer.current_epoch
    rows = len(datamodule._train[0]) if datamodule._train is not None else 0
    info = {
        "family": cfg.family,
        "train_rows": rows,
        "epochs": epochs,
        "best_checkpoint": Path(checkpoint.best_model_path).name,
        "best_val_auroc": float(checkpoint.best_model_score)
        if checkpoint.best_model_score is not None
        else None,
        "trainer": {k: v for k, v in params["trainer"].items() if k != "_target_"},
        "params": cfg.model_dump(),
    }
    valid = read_split(args.data, "valid")
    finish(predictor, cfg, valid, out, info)
    with atomic_dir(logs) as staging:
        shutil.copytree(live, staging, dirs_exist_ok=True)
    speed = round(rows * epochs / seconds, 1) if seconds else None
    runlog.record(
        "train",
        f"{args.system}/{args.model}",
        {"fit_seconds": round(seconds, 3), "epochs": epochs, "samples_per_second": speed},
    )
    print(
        f"[train] {args.model}: {epochs} epochs in {seconds:.1f}s, best val AUROC "
        f"{info['best_val_auroc']:.4f} -> {out}"
    )


if __name__ == "__main__":
    main()
