"""One timed training run of the tabular network, with Lightning or with a plain PyTorch loop (same model,
data, batches, optimizer, schedule and epochs). Run as a subprocess by benchmarks/training.py; prints JSON."""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
import yaml

from models import reproducible_ops
from models.features import FeatureSpec
from models.tabular import TabularClassifier, TabularDataModule


def build(repo: Path, batch_size: int, seed: int) -> tuple[TabularDataModule, TabularClassifier]:
    params = yaml.safe_load((repo / "params.yaml").read_text())[
        "adult"
    ]  # the system whose network is measured
    features = FeatureSpec.from_params(params["features"], params["dataset"])
    module_cfg = {k: v for k, v in params["models"]["tabular_nn"]["module"].items() if k != "_target_"}
    torch.manual_seed(seed)
    dm = TabularDataModule(repo / "data/adult/processed", features, batch_size=batch_size, seed=seed)
    dm.setup("fit")
    return dm, TabularClassifier(dm.cardinalities, dm.n_numeric, **module_cfg)


def lightning_fit(dm: TabularDataModule, module: TabularClassifier, epochs: int) -> float:
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return time.perf_counter() - start


def plain_fit(dm: TabularDataModule, module: TabularClassifier, epochs: int) -> float:
    torch.use_deterministic_algorithms(True)
    net, loss_fn = module.net, torch.nn.BCEWithLogitsLoss()
    hp = module.hparams
    loader = dm.train_dataloader()
    opt = torch.optim.AdamW(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=epochs * len(loader))
    start = time.perf_counter()
    net.train()
    for _ in range(epochs):
        for cat, num, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(cat, num), y)
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["lightning", "plain"], required=True)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--products",
        choices=["pinned", "mkl"],
        default="pinned",
        help="the network's products, sine and cosine: models.reproducible_ops (pinned) or torch's own (MKL)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.products == "mkl":

        def torch_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.matmul(a, b)

        def torch_sin_cos(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.sin(v), torch.cos(v)

        # the operations before issue 23, to measure what pinning them costs
        reproducible_ops.matmul = torch_matmul
        reproducible_ops.sin_cos = torch_sin_cos
    dm, module = build(args.repo, args.batch_size, args.seed)
    fit = lightning_fit if args.mode == "lightning" else plain_fit
    seconds = fit(dm, module, args.epochs)
    assert dm._train is not None
    rows = len(dm._train[0])
    print(
        json.dumps(
            {
                "mode": args.mode,
                "products": args.products,
                "seconds": seconds,
                "rows": rows,
                "epochs": args.epochs,
                "samples_per_s": rows * args.epochs / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
