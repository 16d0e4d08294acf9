"""The Lightning tabular model: categorical embeddings plus periodic embeddings of numeric features, into an MLP.

Pieces, smallest first:
- ``TabularEncoder`` maps a frame to tensors (category vocabularies and numeric scaling fitted on training data).
- ``ShuffledBatches`` yields whole batches (one tensor gather each), sharded across ranks under DDP.
- ``TabularMLP`` is the plain ``nn.Module`` (also trained by a plain PyTorch loop in the benchmark).
- ``TabularDataModule`` and ``TabularClassifier`` are the Lightning wrappers, built from conf/ with ``_target_``.

Periodic embeddings (Gorishniy et al., 2022, "On Embeddings for Numerical Features in Tabular Deep Learning"):
each numeric x becomes ReLU(Linear([sin(2 pi c x), cos(2 pi c x)])) with trained frequencies c.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pydantic import ConfigDict, Field, with_config
from torch import nn
from torch.utils.data import DataLoader, IterableDataset
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC
from typing_extensions import TypedDict  # pydantic validates it (typing.TypedDict only on Python 3.12+)

from models import reproducible_ops as ops
from models.features import FeatureSpec

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# Constraints on the arguments conf/ sets: check_params validates config against these annotations.
Count = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Decay = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


@with_config(ConfigDict(extra="forbid"))
class Periodic(TypedDict):
    """Periodic embeddings of numeric features: frequencies per feature, output size, init scale."""

    frequencies: Count
    dim: Count
    sigma: Rate


@dataclass
class TabularEncoder:
    """Category vocabularies (index 0 = missing or unseen) and numeric mean/std, fitted on training data."""

    categorical: list[str]
    numeric: list[str]
    vocab: dict[str, list[str]] = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: FeatureSpec) -> TabularEncoder:
        enc = cls(list(features.categorical), list(features.numeric))
        for column in enc.categorical:
            enc.vocab[column] = sorted(str(v) for v in frame[column].dropna().unique())
        values = frame[enc.numeric].astype("float64")
        enc.mean = [float(v) for v in values.mean()]
        enc.std = [float(v) if v > 0 else 1.0 for v in values.std().fillna(1.0)]
        return enc

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    def _lookups(self) -> dict[str, dict[str, int]]:
        if not hasattr(self, "_lookup_cache"):
            self._lookup_cache = {
                c: {v: i + 1 for i, v in enumerate(self.vocab[c])} for c in self.categorical
            }
        return self._lookup_cache

    def transform(
        self, frame: pd.DataFrame, dtype: type[np.floating] = np.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Category indices (int64; 0 = missing or unseen) and standardized numerics (``dtype``: float32 to
        train, float64 to score; missing = mean)."""
        lookups = self._lookups()
        codes = np.zeros((len(frame), len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            lookup = lookups[column]
            codes[:, j] = [lookup.get(v, 0) for v in frame[column].to_numpy(dtype=object)]
        numbers = frame[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        numbers = (numbers - np.asarray(self.mean)) / np.asarray(self.std)
        numbers = np.nan_to_num(numbers, nan=0.0)
        return torch.from_numpy(codes), torch.from_numpy(numbers.astype(dtype))

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": self.categorical,
            "numeric": self.numeric,
            "vocab": self.vocab,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularEncoder:
        return cls(data["categorical"], data["numeric"], data["vocab"], data["mean"], data["std"])


class ShuffledBatches(IterableDataset):
    """Whole batches from in-memory tensors: a new seeded permutation per pass, one gather per batch.

    Under DDP each rank takes every ``world``-th row of the (padded) order, as ``DistributedSampler`` does, so all
    ranks see disjoint rows and the same number of batches.
    """

    def __init__(
        self, tensors: Sequence[torch.Tensor], batch_size: int, shuffle: bool, seed: int = 0
    ) -> None:
        self.tensors = list(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    @staticmethod
    def _world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _rows_per_rank(self) -> int:
        return math.ceil(len(self.tensors[0]) / self._world()[1])

    def __len__(self) -> int:
        return math.ceil(self._rows_per_rank() / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            self.epoch += 1
        else:
            order = torch.arange(n)
        rank, world = self._world()
        if world > 1:
            total = self._rows_per_rank() * world
            order = torch.cat([order, order[: total - n]])[rank:total:world]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


class PeriodicEmbedding(nn.Module):
    """Per numeric feature: ReLU(Linear([sin(2 pi c x), cos(2 pi c x)])) with ``frequencies`` trained c's."""

    def __init__(self, n_features: int, frequencies: Count = 16, dim: Count = 16, sigma: Rate = 1.0) -> None:
        super().__init__()
        self.coefficients = nn.Parameter(torch.randn(n_features, frequencies) * sigma)
        self.weight = nn.Parameter(torch.empty(n_features, 2 * frequencies, dim))
        self.bias = nn.Parameter(torch.empty(n_features, dim))
        bound = 1 / math.sqrt(2 * frequencies)  # nn.Linear's default initialization, per feature
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.out_features = n_features * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 2 * math.pi * self.coefficients[None] * x[..., None]  # (batch, features, frequencies)
        z = torch.cat(ops.sin_cos(v), dim=-1)  # (batch, features, 2 * frequencies)
        # (features, batch, 2 * frequencies) x (features, 2 * frequencies, dim), pinned as in models.reproducible_ops
        out = torch.relu(ops.matmul(z.transpose(0, 1), self.weight).transpose(0, 1) + self.bias)
        return out.flatten(1)


class TabularMLP(nn.Module):
    """Embeddings for categories, optional periodic embeddings for numerics, then a ReLU MLP to one logit."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        embedding_dim: Count = 8,
        hidden_dims: Sequence[Count] = (256, 128),
        dropout: Dropout = 0.1,
        periodic: Periodic | None = None,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(k, min(embedding_dim, k)) for k in cardinalities)
        self.periodic = PeriodicEmbedding(n_numeric, **periodic) if periodic else None
        width = sum(min(embedding_dim, k) for k in cardinalities) + n_numeric
        width += self.periodic.out_features if self.periodic else 0
        layers: list[nn.Module] = []
        for hidden in hidden_dims:
            layers += [ops.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(ops.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        parts.append(numeric)
        if self.periodic is not None:
            parts.append(self.periodic(numeric))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class TabularDataModule(pl.LightningDataModule):
    """Train and valid splits as in-memory tensors; the encoder is fitted on the training split."""

    def __init__(
        self,
        data_dir: str | Path,
        features: FeatureSpec,
        batch_size: Count = 512,
        eval_batch_size: Count = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.features = features
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.encoder: TabularEncoder | None = None
        self._train: Batch | None = None
        self._valid: Batch | None = None

    def tensors(self, frame: pd.DataFrame) -> Batch:
        assert self.encoder is not None
        x, y = self.features.xy(frame)
        cat, num = self.encoder.transform(x)
        return cat, num, torch.from_numpy(y.astype(np.float32))

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None:
            return
        train = pd.read_parquet(self.data_dir / "train.parquet")
        valid = pd.read_parquet(self.data_dir / "valid.parquet")
        self.encoder = TabularEncoder.fit(self.features.frame(train), self.features)
        self._train, self._valid = self.tensors(train), self.tensors(valid)

    @property
    def cardinalities(self) -> list[int]:
        assert self.encoder is not None, "call setup() first"
        return self.encoder.cardinalities

    @property
    def n_numeric(self) -> int:
        return len(self.features.numeric)

    def train_dataloader(self) -> DataLoader:
        assert self._train is not None
        return DataLoader(ShuffledBatches(self._train, self.batch_size, True, self.seed), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        assert self._valid is not None
        return DataLoader(ShuffledBatches(self._valid, self.eval_batch_size, False), batch_size=None)


class TabularClassifier(pl.LightningModule):
    """Binary classifier around ``TabularMLP``: BCE loss, AdamW with a one-cycle schedule, AUROC on validation."""

    logged_metrics = ("train_loss", "val_loss", "val_auroc", "val_accuracy")  # what callbacks may monitor

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        embedding_dim: Count = 8,
        hidden_dims: Sequence[Count] = (256, 128),
        dropout: Dropout = 0.1,
        periodic: Periodic | None = None,
        lr: Rate = 1e-3,
        weight_decay: Decay = 1e-4,
        one_cycle: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TabularMLP(cardinalities, n_numeric, embedding_dim, hidden_dims, dropout, periodic)
        self.loss = nn.BCEWithLogitsLoss()
        self.val_auroc = BinaryAUROC()
        self.val_accuracy = BinaryAccuracy()

    def architecture(self) -> dict[str, Any]:
        """The keyword arguments that rebuild ``self.net`` (saved next to its weights)."""
        h = self.hparams
        return {
            "cardinalities": list(h["cardinalities"]),
            "n_numeric": h["n_numeric"],
            "embedding_dim": h["embedding_dim"],
            "hidden_dims": list(h["hidden_dims"]),
            "dropout": h["dropout"],
            "periodic": dict(h["periodic"]) if h["periodic"] else None,
        }

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self.net(categorical, numeric)

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros(())
        self._loss_rows = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        cat, num, y = batch
        loss = self.loss(self(cat, num), y)
        # Accumulated here and logged once per epoch: self.log on every step costs about 1 ms in Lightning,
        # a sixth of a step of this small network (see benchmarks/results/training.md).
        self._loss_sum = self._loss_sum + loss.detach() * len(y)
        self._loss_rows += len(y)
        return loss

    def on_train_epoch_end(self) -> None:
        if self._loss_rows:
            self.log("train_loss", self._loss_sum / self._loss_rows, sync_dist=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        cat, num, y = batch
        logits = self(cat, num)
        self.log(
            "val_loss", self.loss(logits, y), on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True
        )
        probs = torch.sigmoid(logits)
        self.val_auroc.update(probs, y.long())
        self.val_accuracy.update(probs, y.long())
        self.log("val_auroc", self.val_auroc, on_step=False, on_epoch=True)
        self.log("val_accuracy", self.val_accuracy, on_step=False, on_epoch=True)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # On CPU the tensors are already where they belong; Lightning's generic traversal of the batch costs
        # about 0.5 ms per step, a tenth of a step of this network (benchmarks/results/training.md).
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        if not self.hparams["one_cycle"]:
            return opt
        steps = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams["lr"], total_steps=max(steps, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
