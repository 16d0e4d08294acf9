"""Suite `training`: Lightning against a plain PyTorch loop, the time to train each candidate, in-process
inference latency, and peak memory.

Each repeat runs, in a fresh copy of the repository prepared with `dvc repro split`: (1) the tabular network
trained for the same epochs on the same data, batches, optimizer and schedule, once by Lightning and once by a
plain PyTorch loop, in separate processes, alternating which goes first (`benchmarks/train_loop.py`; validation,
logging and checkpointing off in both; time covers the fit only); (2) every training stage's command from
dvc.yaml, timed with its peak RSS. The plain loop also runs with torch's own matrix products (MKL, as before
issue 23) beside the pinned ones of `models.reproducible_ops`, for the cost of training the same bytes on every CPU. Latency is measured in this process on the artifacts the last repeat produced,
with the `evaluation.latency` settings: single-row calls and batches, as in the `evaluate` stage. Medians over
the repeats.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmarks.measure import median, run_measured, summarize
from models.predictor import load_predictor
from pipelines.core import latency
from pipelines.core.workspace import ROOT, copy_worktree

EPOCHS = 10
MKL = "plain, MKL products"


def training_stages(repo: Path) -> list[tuple[str, str]]:
    """(stage@item, command) for every training stage, in DAG order."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    out = []
    dag = yaml.safe_load((repo / "params.yaml").read_text())["dag"]
    for stage in ("train_baselines", "train", "mitigate"):
        cmd = stages[stage]["do"]["cmd"]
        for key, item in dag[stage].items():
            if item["system"] == "adult":  # the system whose training is measured
                filled = cmd.replace("${item.system}", item["system"]).replace("${item.model}", item["model"])
                out.append((f"{stage}@{key}", filled))
    return out


def run(repeats: int) -> dict[str, Any]:
    # "plain, MKL products": the plain loop with torch's own matrix products, as before issue 23 (MKL_CBWR=AVX2),
    # against the pinned products of models.reproducible_ops: what byte-identical training on Intel and AMD costs
    loops: dict[str, list[dict[str, Any]]] = {"lightning": [], "plain": [], MKL: []}
    stage_runs: dict[str, list[Any]] = {}
    latencies: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        repo = copy_worktree(Path(tmp), ROOT, "benchmark copy")
        run_measured(["dvc", "repro", "split"], repo)
        for r in range(repeats):
            order = ["lightning", "plain", MKL] if r % 2 == 0 else [MKL, "plain", "lightning"]
            for mode in order:
                loop = "plain" if mode == MKL else mode
                sample = run_measured(
                    [
                        *(["env", "MKL_CBWR=AVX2"] if mode == MKL else []),
                        "python",
                        "-m",
                        "benchmarks.train_loop",
                        "--mode",
                        loop,
                        "--products",
                        "mkl" if mode == MKL else "pinned",
                        "--repo",
                        str(repo),
                        "--epochs",
                        str(EPOCHS),
                        "--seed",
                        str(r),
                    ],
                    repo,
                )
                loops[mode].append(
                    json.loads(sample.output.strip().splitlines()[-1]) | {"peak_rss_mib": sample.peak_rss_mib}
                )
            for name, cmd in training_stages(repo):
                stage_runs.setdefault(name, []).append(run_measured(["bash", "-c", cmd], repo))
        params = yaml.safe_load((repo / "params.yaml").read_text())["adult"]
        lat = params["evaluation"]["latency"]
        test = pd.read_parquet(repo / "data/adult/processed/test.parquet")
        for folder in sorted(p for p in (repo / "artifacts/adult/candidates").iterdir() if p.is_dir()):
            predictor = load_predictor(folder)
            latencies[folder.name] = latency.measure(
                predictor.predict_proba,
                test,
                lat["warmup"],
                lat["single_row_repeats"],
                lat["batch_size"],
                lat["batch_repeats"],
            )
    speed = {m: median([s["samples_per_s"] for s in samples]) for m, samples in loops.items()}
    return {
        "repeats": repeats,
        "epochs": EPOCHS,
        "loops": {
            m: {
                "samples_per_s": speed[m],
                "seconds": median([s["seconds"] for s in samples]),
                "peak_rss_mib": median([s["peak_rss_mib"] for s in samples]),
                "runs": [round(s["samples_per_s"]) for s in samples],
            }
            for m, samples in loops.items()
        },
        # each repeat runs both loops back to back; the median of those paired ratios resists machine noise
        "lightning_over_plain": median(
            [
                a["samples_per_s"] / b["samples_per_s"]
                for a, b in zip(loops["lightning"], loops["plain"], strict=True)
            ]
        ),
        "pinned_over_mkl": median(
            [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(loops["plain"], loops[MKL], strict=True)]
        ),
        "pinned_runs": [
            round(a["samples_per_s"] / b["samples_per_s"], 3)
            for a, b in zip(loops["plain"], loops[MKL], strict=True)
        ],
        "ratio_runs": [
            round(a["samples_per_s"] / b["samples_per_s"], 3)
            for a, b in zip(loops["lightning"], loops["plain"], strict=True)
        ],
        "stages": {name: summarize(runs, 2) for name, runs in stage_runs.items()},
        "latency": latencies,
    }
