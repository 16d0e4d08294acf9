"""The whole model pipeline under real DVC on a small sample (experiment=quick) in a temporary repository:
every stage runs, the gate report and the champion's lineage hold, caching follows the model and gate config,
a gate nobody passes keeps the previous champion, a queued sweep runs, and DDP trains on two CPU processes."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from pipelines.core.config import system_params
from pipelines.core.io import sha256_file
from pipelines.core.lineage import params_hash
from pipelines.select import release_params
from tests.conftest import SYSTEMS, run

pytestmark = pytest.mark.integration
MODELS = ["majority", "rules", "logreg", "hgb", "tabular_nn", "hgb_fair"]


def ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def compose(repo: Path, *overrides: str) -> None:
    run(["python", "-m", "pipelines.compose", "experiment=quick", *overrides], repo)


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(folder)}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def baseline(quick_repo: tuple[Path, str]) -> Path:
    repo, stdout = quick_repo
    stages = ran(stdout)
    assert [f"train_baselines@adult-{m}" for m in MODELS[:4]] == [
        s for s in stages if s.startswith("train_baselines@adult-")
    ]
    expected = {"train@adult-tabular_nn", "mitigate@adult-hgb_fair", "select@adult"}
    assert expected | {f"evaluate@adult-{m}" for m in MODELS} <= set(stages)
    return repo


@pytest.fixture()
def repo(baseline: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(baseline, tmp_path / "repo", symlinks=True))


def test_every_model_has_metrics_plots_and_verdicts(baseline: Path) -> None:
    gate = json.loads((baseline / "reports/adult/gate.json").read_text())
    params = yaml.safe_load((baseline / "params.yaml").read_text())
    for name in MODELS:
        folder = baseline / "reports/adult/eval" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece"):
            m = metrics[key]
            if m["value"] is None:  # undefined (e.g. precision of a model that never says yes): no interval
                assert m["ci_low"] is None and m["ci_high"] is None, (name, key)
            else:
                assert m["ci_low"] <= m["value"] <= m["ci_high"], (name, key)
        assert set(metrics["fairness"]) == {"sex", "race", "sex x race"}
        assert metrics["latency"] == {"single_row": {"budget_p95_ms": 5, "within_budget": True}}
        record = json.loads((baseline / "logs/runs/evaluate/adult" / f"{name}.json").read_text())
        assert record["latency"]["path"] == "fast"  # the latency gate times what the service runs
        single = record["latency"]["single_row"]
        assert single["p99_ms"] >= single["p50_ms"] > 0  # the measurement itself is a run record
        assert {p.name for p in (folder / "plots").iterdir()} == {
            "roc.json",
            "pr.json",
            "calibration.json",
            "groups.json",
        }
        verdicts = gate["models"][name]["gates"]
        expected = {
            g
            for g, spec in params["adult"]["evaluation"]["gates"].items()
            if spec.get("applies_to", "all") == "all" or metrics["kind"] == "candidate"
        }
        assert {v["gate"] for v in verdicts} == expected
    champion = gate["champion"]
    assert champion and gate["models"][champion]["failed"] == []
    assert not any(gate["models"][n]["eligible"] for n in MODELS if gate["models"][n]["failed"])


def test_every_model_of_every_system_has_a_fast_path_within_1e9(baseline: Path) -> None:
    """Parity on each system's whole test split and edge rows, as evaluate (a gate) and package (a refusal) check."""
    for system in SYSTEMS:
        for folder in sorted((baseline / "reports" / system / "eval").iterdir()):
            evaluation = json.loads((folder / "evaluation.json").read_text())["serving"]
            parity = evaluation["parity"]
            assert parity["passed"] and parity["decisions_differ"] == 0, (system, folder.name, parity)
            assert parity["max_abs_diff_at_most"] <= 1e-12 and parity["rows"]["test"] > 0
            assert parity["rows"]["edge"] > 0 and parity["rows"]["single_rows"] > 0
            assert parity["batch_invariance"]["differ"] == 0 < parity["batch_invariance"]["rows"]
        package = json.loads((baseline / "reports" / system / "package.json").read_text())
        assert package["fast_path"]["champion"]["max_abs_diff_at_most"] <= 1e-12
        assert package["fast_path"]["champion"]["batch_invariant"] is True


def test_champion_carries_its_lineage(baseline: Path) -> None:
    release = json.loads((baseline / "artifacts/adult/champion/release.json").read_text())
    gate = json.loads((baseline / "reports/adult/gate.json").read_text())
    assert release["role"] == "champion" and release["name"] == gate["champion"]
    assert release["version"].startswith(release["name"] + "-")
    assert "git" not in release  # the commit that ships it is recorded by the registry, not inside an output
    params = yaml.safe_load((baseline / "params.yaml").read_text())
    # the data lineage: the raw pins and a sha256 of every split file, in that order, read from declared inputs
    expected = {
        f"data/adult/raw/{f['path']}": f["sha256"] for f in params["adult"]["dataset"]["files"].values()
    }
    expected |= {
        f"data/adult/processed/{s}.parquet": sha256_file(baseline / f"data/adult/processed/{s}.parquet")
        for s in ("test", "train", "valid")
    }
    assert release["data"] == expected and list(release["data"]) == list(expected)
    assert release["params_hash"] == params_hash(
        release_params(system_params(params, "adult"), release["name"])
    )
    for name, digest in release["files"].items():
        assert sha256_file(baseline / "artifacts/adult/champion" / name) == digest
    assert release["metrics"]["roc_auc"]["value"] == gate["models"][release["name"]]["primary"]


def test_dvc_sees_metrics_and_plots(baseline: Path) -> None:
    shown = run(["dvc", "metrics", "show", "--json"], baseline).stdout
    assert (
        "reports/adult/eval/hgb/metrics.json" in shown
        and "reports/adult/train/tabular_nn/metrics.json" in shown
    )
    plots = run(["dvc", "plots", "show", "--json"], baseline).stdout
    assert "reports/adult/eval/hgb/plots/roc.json" in plots and "val/auroc.tsv" in plots


def test_gate_change_reruns_only_select_and_package(repo: Path) -> None:
    compose(repo, "adult.evaluation.gates.max_ece.threshold=0.06")
    # the champion's release.json records the new gate verdicts, so the package and the documents follow, and
    # the monitor (it judges the live champion against the gates); no model retrains, nothing is re-evaluated
    stages = ran(run(["dvc", "repro"], repo).stdout)
    assert stages[0] == "check_params" and stages[-1] == "report@adult", stages
    assert sorted(stages) == sorted(
        ["check_params", "select@adult", "package@adult", "monitor@adult", "report@adult"]
    )


def test_model_change_reruns_only_what_depends_on_it(repo: Path) -> None:
    compose(repo, "adult.models.hgb.estimator.max_iter=50")
    stages = ran(run(["dvc", "repro"], repo).stdout)
    expected = {
        "train_baselines@adult-hgb",
        "mitigate@adult-hgb_fair",
        "evaluate@adult-hgb",
        "evaluate@adult-hgb_fair",
        "select@adult",
    }
    downstream = {
        "check_params",
        "package@adult",
        "monitor@adult",
        "report@adult",
    }  # package and monitor follow when hgb is champion or challenger
    assert set(stages) - downstream == expected, stages


def test_no_champion_keeps_the_previous_one(repo: Path) -> None:
    before = tree_hash(repo / "artifacts/adult/champion")
    compose(repo, "adult.evaluation.gates.min_roc_auc.threshold=0.999")
    proc = run(["dvc", "repro"], repo, check=False)
    assert proc.returncode != 0
    assert "no model passes every blocking gate; the previous champion stays" in proc.stderr
    assert tree_hash(repo / "artifacts/adult/champion") == before
    gate = json.loads((repo / "reports/adult/gate.json").read_text())
    assert gate["champion"] is None and all("min_roc_auc" in m["failed"] for m in gate["models"].values())


def test_queued_sweep(repo: Path) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "quick baseline"], repo)
    run(
        [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-S",
            "experiment=quick",
            "-S",
            "adult.split.seed=1,2",
            "evaluate@adult-logreg",
        ],
        repo,
    )
    run(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    seeds = set()
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                seeds.add(rev["data"]["params"]["params.yaml"]["data"]["adult"]["split"]["seed"])
    assert {1, 2} <= seeds


def test_ddp_on_two_cpu_processes(repo: Path, tmp_path: Path) -> None:
    params = tmp_path / "ddp.yaml"
    run(
        [
            "python",
            "-m",
            "pipelines.compose",
            "--output",
            str(params),
            "experiment=quick",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
        ],
        repo,
    )
    out = tmp_path / "ddp-model"
    proc = run(
        [
            "python",
            "-m",
            "pipelines.train",
            "--system",
            "adult",
            "--model",
            "tabular_nn",
            "--params",
            str(params),
            "--out",
            str(out),
            "--logs",
            str(tmp_path / "logs"),
            "--checkpoints",
            str(tmp_path / "ckpt"),
        ],
        repo,
    )
    info = json.loads((out / "predictor.json").read_text())["info"]
    assert info["trainer"]["strategy"] == "ddp" and info["trainer"]["devices"] == 2
    assert info["best_val_auroc"] > 0.6  # 3 epochs on 10% of the data, split over 2 ranks (chance = 0.5)
    assert proc.stdout.count("[train] tabular_nn:") == 1  # only rank 0 exports
