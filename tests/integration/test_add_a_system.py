"""The README's "Add a system" recipe, followed step by step in a temporary copy of the repository with a third,
small data set written here (not Adult, not HMDA), through `dvc repro` to the built site and the packaged service.

Also: a change under one system's config reruns only that system's stages (real DVC), and the platform's shared
code knows nothing of the new system (it is config, data and text only).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import copy_repo, run

pytestmark = pytest.mark.integration
NAME = "churn"
README_STEPS = 7  # the numbered steps of README's "Add a system"


def churn_csv(path: Path, rows: int = 900, seed: int = 7) -> str:
    """A synthetic telecom-churn table with a header, a repeated header name and a derivable column."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, rows)
    monthly = np.round(rng.uniform(15, 120, rows), 2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    senior = rng.choice(["yes", "no"], rows, p=[0.2, 0.8])
    logit = -1.0 - 0.04 * tenure + 0.02 * monthly + (plan == "basic") * 0.8 + (senior == "yes") * 0.3
    churned = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {"id": np.arange(rows), "tenure": tenure, "monthly": monthly, "plan": plan, "region": region,
         "senior": senior, "churned": churned, "note": "x"}
    )  # fmt: skip
    frame.insert(6, "region_dup", frame["region"])
    frame.columns = [
        *frame.columns[:6],
        "region",
        *frame.columns[7:],
    ]  # a repeated header name: region, region
    frame.to_csv(path, index=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_system(repo: Path) -> None:
    """The recipe's steps 1 to 6, as a user does them: data, config, curated text."""
    raw = repo / "data" / NAME / "raw"  # step 1: the data, with its provenance
    raw.mkdir(parents=True)
    digest = churn_csv(raw / "churn.csv")
    (raw / "README.md").write_text(
        "# Synthetic churn\n\nWritten by tests/integration/test_add_a_system.py.\n"
    )
    conf = repo / "conf"
    dataset = {  # step 2: the data set, described (not pre-processed)
        "name": NAME, "title": "Synthetic telecom churn", "version": "1", "description": "Who cancels.",
        "citation": "Synthetic.", "license": "CC0", "raw_dir": f"data/{NAME}/raw",
        "files": {"all": {"path": "churn.csv", "sha256": digest}},
        "format": {"separator": ",", "header": True, "encoding": "utf-8", "quoting": "minimal", "missing_token": "NA"},
        "columns": {"churned": "category", "tenure": "int", "monthly": "float", "plan": "category",
                    "region_2": "category", "senior": "category", "long_tenure": "category"},
        "derived": {"long_tenure": {"from": "tenure", "threshold": 24, "above": "long", "below": "short"}},
        "target": {"column": "churned", "name": "target", "labels": {"no": 0, "yes": 1},
                   "display": {"positive": "churned", "negative": "stayed"}},
        "sensitive": ["senior"],
        "contract": {
            "min_rows": {"all": 800}, "class_balance": {"min_positive_rate": 0.05, "max_positive_rate": 0.8},
            "duplicates": {"max_fraction": 0.01, "severity": "error"},
            "columns": {"tenure": {"min": 1, "max": 72}, "plan": {"categories": ["basic", "plus", "pro"]},
                        "senior": {"categories": ["no", "yes"]}},
        },
    }  # fmt: skip
    (conf / "dataset" / f"{NAME}.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))
    features = {"categorical": ["plan", "region_2", "senior"], "numeric": ["tenure", "monthly"]}  # step 3
    (conf / "features" / f"{NAME}.yaml").write_text(yaml.safe_dump(features))
    profile = yaml.safe_load((conf / "profile/hmda.yaml").read_text())
    profile |= {"intersections": [["senior", "long_tenure"]], "summary_numeric": ["tenure", "monthly"]}
    (conf / "profile" / f"{NAME}.yaml").write_text(yaml.safe_dump(profile))
    evaluation = yaml.safe_load((conf / "evaluation/hmda.yaml").read_text())
    evaluation["fairness"] = {"attributes": ["senior"], "intersections": [], "min_group_size": 10}
    evaluation["bootstrap"]["resamples"] = 100
    keep = ("min_roc_auc", "max_ece", "minimum_functionality", "max_latency_p95_ms")
    evaluation["gates"] = {k: v for k, v in evaluation["gates"].items() if k in keep}
    evaluation["gates"]["min_roc_auc"]["threshold"] = 0.55
    evaluation["gates"]["max_ece"]["threshold"] = 0.2
    (conf / "evaluation" / f"{NAME}.yaml").write_text(yaml.safe_dump(evaluation, sort_keys=False))
    behaviour = {
        "rows": 500, "seed": 0, "counterfactual": ["senior"],
        "directional": {"monthly": {"direction": "increase", "deltas": [10], "tolerance": 0.05}},
        "minimum_functionality": [],
    }  # fmt: skip
    (conf / "behaviour" / f"{NAME}.yaml").write_text(yaml.safe_dump(behaviour))
    monitor = {  # what the monitor's replay scenarios shift; thresholds from conf/monitor/default.yaml
        "defaults": ["default", "_self_"],
        "min_rows": 100, "min_labelled": 50,
        "calibration": {"windows": 50, "rows": 100, "seed": 0},
        "replay": {"rows": 150, "scenarios": {
            "none": {"kind": "none"},
            "covariate": {"kind": "covariate", "feature": "tenure", "shift": 12},
            "broken_nulls": {"kind": "nulls", "feature": "plan"},
        }},
    }  # fmt: skip
    (conf / "monitor" / f"{NAME}.yaml").write_text(yaml.safe_dump(monitor, sort_keys=False))
    (conf / NAME).mkdir()  # step 4: the system, composed from the groups
    system = (
        (conf / "hmda/system.yaml").read_text().replace("hmda", NAME).replace("rules_" + NAME, "rules_hmda")
    )
    system = system.split("\nmodels:")[0] + "\nserving:\n  port: 3002\n  prediction_log:\n"
    system += "    feature_fields: [plan, region_2, senior, tenure, monthly]\n"
    system = system.replace("  - /model@models.rules: rules_hmda\n", "")
    (conf / NAME / "system.yaml").write_text(system)
    root = (conf / "config.yaml").read_text()  # step 5: listed in the root config, its models in `dag`
    root = root.replace("  - hmda: system\n", f"  - hmda: system\n  - {NAME}: system\n")
    root = re.sub(r"systems: \[([^\]]*)\]", rf"systems: [\1, {NAME}]", root)
    dag = {"train_baselines": ["majority", "logreg", "hgb"], "train": ["tabular_nn"], "evaluate": []}
    dag["evaluate"] = [*dag["train_baselines"], *dag["train"]]
    for stage, models in dag.items():
        lines = "".join(f"    {NAME}-{m}: {{ system: {NAME}, model: {m} }}\n" for m in models)
        root = root.replace(f"  {stage}:\n", f"  {stage}:\n{lines}", 1)
    (conf / "config.yaml").write_text(root)
    curated = repo / "site/curated" / NAME  # step 6: the curated text of its documents
    shutil.copytree(repo / "site/curated/hmda", curated)


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("recipe"))
    write_system(repo)
    run(["python", "-m", "pipelines.compose", "trainer.max_epochs=3"], repo)  # step 7: compose, then build
    run(["dvc", "repro", f"report@{NAME}"], repo)
    run(["python", "-m", "pipelines.site", "--systems", NAME], repo)
    return repo


def test_the_readme_lists_every_step() -> None:
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    section = text.split("## Add a system", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^(\d+)\. ", section, flags=re.M)
    assert [int(s) for s in steps] == list(range(1, README_STEPS + 1)), steps
    for needle in ("data/<system>/raw", "conf/dataset/<system>.yaml", "conf/<system>/system.yaml", "dag",
                   "conf/monitor/<system>.yaml",
                   "site/curated/<system>/", "make params", "make pipeline SYSTEM=<system>",
                   "make manifests"):  # fmt: skip
        assert needle in section, needle


def test_the_new_system_has_its_pages_service_and_lineage(added: Path) -> None:
    site = added / "site/build" / NAME
    card = (site / "models/index.html").read_text()
    assert "Synthetic telecom churn" in (site / "index.html").read_text()
    gate = json.loads((added / f"reports/{NAME}/gate.json").read_text())
    assert gate["champion"] in card
    sheet = (site / "data/datasheet/index.html").read_text()
    assert "Datasheet: Synthetic telecom churn" in sheet and "mean tenure" in sheet and "churned" in sheet
    release = json.loads((added / f"artifacts/{NAME}/champion/release.json").read_text())
    assert release["system"] == NAME
    assert next(iter(release["data"])) == f"data/{NAME}/raw/churn.csv"  # the lineage names its own data
    assert all(p.startswith(f"data/{NAME}/") for p in release["data"])
    assert f"data/{NAME}/raw/churn.csv" in (site / "index.html").read_text()
    spec = json.loads((added / f"artifacts/{NAME}/serving/serving.json").read_text())
    assert spec["system"] == NAME and spec["service_name"] == NAME
    assert [f["name"] for f in spec["input"]["fields"]] == ["plan", "region_2", "senior", "tenure", "monthly"]
    assert (added / f"artifacts/{NAME}/bentoml/bentos/{NAME}/latest").is_file()


def test_the_new_system_gets_its_manifests(added: Path) -> None:
    run(["python", "-m", "pipelines.deploy", "manifests"], added)
    run(["python", "-m", "pipelines.deploy", "manifests", "--check"], added)
    release = yaml.safe_load((added / f"services/k8s/{NAME}/prod/release.yaml").read_text())
    assert release["spec"]["system"] == NAME and release["spec"]["version"] == "unreleased"
    assert (added / f"services/k8s/argocd/{NAME}-staging.yaml").is_file()
    if shutil.which("kubectl"):
        rendered = run(["kubectl", "kustomize", f"services/k8s/{NAME}/prod"], added).stdout
        assert f"namespace: ml-{NAME}-prod" in rendered and f"{NAME.upper()}_EXPECTED_CHAMPION" in rendered


def test_ingest_selected_columns_by_name_and_derived_one(added: Path) -> None:
    table = pd.read_parquet(added / f"data/{NAME}/interim/all.parquet")
    assert list(table.columns) == [
        "churned", "tenure", "monthly", "plan", "region_2", "senior", "long_tenure", "target"
    ]  # fmt: skip
    assert set(table["long_tenure"]) == {"long", "short"}
    assert ((table["tenure"] >= 24) == (table["long_tenure"] == "long")).all()
    split = json.loads((added / f"reports/{NAME}/data/split.json").read_text())["splits"]
    assert split["test"]["rows"] == 180 and sum(s["rows"] for s in split.values()) == 900  # carved, 20%


def test_a_change_to_one_system_reruns_only_that_system(added: Path, tmp_path: Path) -> None:
    repo = Path(shutil.copytree(added, tmp_path / "repo", symlinks=True))
    before = set(json.loads(run(["dvc", "status", "--json"], repo).stdout))  # adult and hmda never ran here
    run(["python", "-m", "pipelines.compose", "trainer.max_epochs=3", f"{NAME}.split.seed=3"], repo)
    changed = set(json.loads(run(["dvc", "status", "--json"], repo).stdout)) - before
    assert f"split@{NAME}" in changed and all(s == "check_params" or NAME in s for s in changed), changed
    proc = run(["dvc", "repro", f"report@{NAME}"], repo)
    ran = [line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '")]
    assert f"split@{NAME}" in ran and all(
        s == "check_params" or s.endswith(f"@{NAME}") or f"@{NAME}-" in s for s in ran
    )
