"""The Lightning tabular model: encoder, batching, network, and deterministic training through the stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from models.features import FeatureSpec
from models.predictor import load_predictor, sha256_file
from models.tabular import ShuffledBatches, TabularEncoder, TabularMLP
from pipelines import train
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def features(params: dict) -> FeatureSpec:
    return FeatureSpec.from_params(params["features"], params["dataset"])


def test_encoder_maps_unseen_and_missing_to_zero(features: FeatureSpec) -> None:
    frame = pd.DataFrame(
        {c: ["a", "b", None] for c in features.categorical} | {c: [1.0, 3.0, None] for c in features.numeric}
    )
    enc = TabularEncoder.fit(features.frame(frame), features)
    other = frame.copy()
    other[features.categorical[0]] = ["b", "zzz", None]
    cat, num = enc.transform(features.frame(other))
    assert cat[:, 0].tolist() == [2, 0, 0]  # vocab ['a', 'b'] -> 1, 2; unseen and missing -> 0
    assert num[:, 0].tolist() == pytest.approx([-0.7071068, 0.7071068, 0.0])  # (x - 2) / std; missing -> mean
    again = TabularEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert torch.equal(again.transform(features.frame(other))[0], cat)


def test_shuffled_batches_cover_every_row_and_repeat_by_seed() -> None:
    rows = torch.arange(1000)
    epoch = lambda ds: torch.cat([b[0] for b in ds])  # noqa: E731
    a, b = (
        ShuffledBatches([rows], 128, shuffle=True, seed=3),
        ShuffledBatches([rows], 128, shuffle=True, seed=3),
    )
    first = epoch(a)
    assert sorted(first.tolist()) == list(range(1000)) and len(a) == 8
    assert torch.equal(first, epoch(b))
    assert not torch.equal(first, epoch(a))  # the next pass is a new permutation
    assert torch.equal(epoch(ShuffledBatches([rows], 128, shuffle=False)), rows)


def test_network_output_shape_and_periodic_width() -> None:
    net = TabularMLP(
        [5, 3], n_numeric=4, embedding_dim=8, hidden_dims=[16], periodic={"frequencies": 4, "dim": 6}
    )
    out = net(torch.tensor([[1, 2], [4, 0]]), torch.randn(2, 4))
    assert out.shape == (2,)
    assert net.mlp[0].in_features == 5 + 3 + 4 + 4 * 6  # embeddings (min(8, k)) + raw numerics + periodic


@pytest.fixture(scope="module")
def small_workspace(tmp_path_factory: pytest.TempPathFactory, adult_tables: dict, params: dict) -> Path:
    ws = tmp_path_factory.mktemp("tabular")
    (ws / "data").mkdir()
    source = adult_tables["train"].sample(4000, random_state=0)
    source.iloc[:3000].to_parquet(ws / "data/train.parquet")
    source.iloc[3000:].to_parquet(ws / "data/valid.parquet")
    small = yaml.safe_load((ROOT / "params.yaml").read_text())  # the whole file: stages read it by system
    small["trainer"]["max_epochs"] = 3
    (ws / "params.yaml").write_text(yaml.safe_dump(small, sort_keys=False))
    return ws


def run_training(ws: Path, name: str) -> dict:
    train.main(
        [
            "--system",
            "adult",
            "--model",
            "tabular_nn",
            "--params",
            str(ws / "params.yaml"),
            "--data",
            str(ws / "data"),
            "--out",
            str(ws / name),
            "--logs",
            str(ws / f"logs-{name}"),
            "--checkpoints",
            str(ws / f"ckpt-{name}"),
        ]
    )
    return json.loads((ws / name / "predictor.json").read_text())


def test_training_is_deterministic_on_cpu(small_workspace: Path, adult_tables: dict) -> None:
    first, second = run_training(small_workspace, "a"), run_training(small_workspace, "b")
    assert first["info"]["best_val_auroc"] == second["info"]["best_val_auroc"]
    assert first["files"]["net.pt"] != "" and sha256_file(small_workspace / "a/net.pt") == sha256_file(
        small_workspace / "b/net.pt"
    )
    test = adult_tables["test"].iloc[:2000]
    p = load_predictor(small_workspace / "a").predict_proba(test)
    np.testing.assert_array_equal(p, load_predictor(small_workspace / "b").predict_proba(test))
    assert first["info"]["best_val_auroc"] > 0.75  # learns even from 3000 rows in 3 epochs (chance = 0.5)
    curves = small_workspace / "logs-a/plots/metrics"
    assert (curves / "val/auroc.tsv").is_file() and (curves / "train/loss.tsv").is_file()  # dvclive curves


def test_batches_shard_across_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = torch.arange(1001)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(ShuffledBatches, "_world", staticmethod(lambda r=rank: (r, 2)))
        ds = ShuffledBatches([rows], 100, shuffle=True, seed=5)
        got = torch.cat([b[0] for b in ds])
        assert len(got) == 501 and len(ds) == 6  # ceil(1001 / 2) rows each, padded like DistributedSampler
        seen.append(set(got.tolist()))
    assert seen[0] | seen[1] == set(range(1001)) and len(seen[0] & seen[1]) <= 1  # disjoint but for the pad
