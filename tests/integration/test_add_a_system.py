"""The README's "Add a system" recipe, followed step by step in a temporary copy of the repository with a third,
synthetic data set written here, as a newcomer's credit-scoring file would come: no header, fields separated by one
space, ordinary words for column names (`status`, `duration`, `purpose`, `job`, `property`), coded categories and
a target coded `1`/`2`. Then `make params`, `make pipeline SYSTEM=credit` and the unit tests run there, so a
shared file or a test that only works for today's systems fails here before a user meets it.

Also: a change under one system's config reruns only that system's stages (real DVC), and the platform's shared
code knows nothing of the new system (it is config, data and text only).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.io import sha256_file
from pipelines.core.workspace import tool_env
from tests.conftest import ROOT, copy_repo, run

pytestmark = pytest.mark.integration
NAME = "credit"
README_STEPS = 7  # the numbered steps of README's "Add a system"
COLUMNS = {  # file order; codes as in the Statlog German credit file
    "status": ["A11", "A12", "A13", "A14"],
    "duration": (4, 73),
    "history": ["A30", "A31", "A32", "A33", "A34"],
    "purpose": ["A40", "A41", "A42", "A43", "A46", "A49"],
    "amount": (250, 18425),
    "savings": ["A61", "A62", "A63", "A64", "A65"],
    "job": ["A171", "A172", "A173", "A174"],
    "property": ["A121", "A122", "A123", "A124"],
    "age": (19, 76),
    "foreign": ["A201", "A202"],
}
FEATURES = {
    "categorical": ["status", "history", "purpose", "savings", "job", "property", "foreign"],
    "numeric": ["duration", "amount", "age"],
}


def credit_data(path: Path, rows: int = 1000, seed: int = 7) -> str:
    """A synthetic credit file: no header, one space between fields, the target last, coded 1 (good) or 2 (bad)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            name: rng.choice(spec, rows) if isinstance(spec, list) else rng.integers(*spec, rows)
            for name, spec in COLUMNS.items()
        }
    )
    logit = (
        -2.0 + 0.03 * frame["duration"] + 0.00008 * frame["amount"] + (frame["status"] == "A11") * 0.9
        - (frame["savings"] == "A65") * 0.6 + (frame["foreign"] == "A201") * 0.2 - 0.01 * (frame["age"] - 35)
    )  # fmt: skip
    frame["risk"] = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), 2, 1)
    path.write_text("".join(" ".join(map(str, row)) + "\n" for row in frame.itertuples(index=False)))
    return sha256_file(path)


def write_system(repo: Path) -> None:
    """The recipe's steps 1 to 6, as a user does them: data, config, curated text."""
    raw = repo / "data" / NAME / "raw"  # step 1: the data, with its provenance
    raw.mkdir(parents=True)
    digest = credit_data(raw / "credit.data")
    (raw / "README.md").write_text(
        "# Synthetic credit scoring\n\nWritten by tests/integration/test_add_a_system.py.\n"
    )
    conf = repo / "conf"
    categories = {c: {"categories": v} for c, v in COLUMNS.items() if isinstance(v, list)}
    dataset = {  # step 2: the data set, described (not pre-processed)
        "name": NAME, "title": "Synthetic credit scoring", "version": "1", "description": "Who repays.",
        "citation": "Synthetic.", "license": "CC0", "raw_dir": f"data/{NAME}/raw",
        "files": {"all": {"path": "credit.data", "sha256": digest}},
        "format": {"separator": " ", "header": False, "encoding": "utf-8", "quoting": "none", "missing_token": "?"},
        "columns": {**{c: "category" if isinstance(v, list) else "int" for c, v in COLUMNS.items()},
                    "risk": "category", "age_group": "category"},
        "derived": {"age_group": {"from": "age", "threshold": 25, "above": "25 or older", "below": "under 25"}},
        "target": {"column": "risk", "name": "target", "labels": {"1": 0, "2": 1},
                   "display": {"positive": "bad credit risk", "negative": "good credit risk"}},
        "sensitive": ["foreign", "age_group"],
        "contract": {
            "min_rows": {"all": 900}, "class_balance": {"min_positive_rate": 0.1, "max_positive_rate": 0.7},
            "duplicates": {"max_fraction": 0.01, "severity": "error"},
            "columns": {"duration": {"min": 1, "max": 120}, "amount": {"min": 0}, "age": {"min": 18, "max": 100},
                        **categories},
        },
    }  # fmt: skip
    (conf / "dataset" / f"{NAME}.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))
    (conf / "features" / f"{NAME}.yaml").write_text(yaml.safe_dump(FEATURES))  # step 3
    profile = yaml.safe_load((conf / "profile/hmda.yaml").read_text())
    profile |= {"intersections": [["foreign", "age_group"]], "summary_numeric": ["duration", "amount"]}
    (conf / "profile" / f"{NAME}.yaml").write_text(yaml.safe_dump(profile))
    evaluation = yaml.safe_load((conf / "evaluation/hmda.yaml").read_text())
    evaluation["fairness"] = {
        "attributes": ["foreign", "age_group"],
        "intersections": [],
        "min_group_size": 10,
    }
    evaluation["bootstrap"]["resamples"] = 100
    keep = ("min_roc_auc", "max_ece", "minimum_functionality", "max_latency_p95_ms")
    evaluation["gates"] = {k: v for k, v in evaluation["gates"].items() if k in keep}
    evaluation["gates"]["min_roc_auc"]["threshold"] = 0.55
    evaluation["gates"]["max_ece"]["threshold"] = 0.2
    (conf / "evaluation" / f"{NAME}.yaml").write_text(yaml.safe_dump(evaluation, sort_keys=False))
    behaviour = {
        "rows": 500, "seed": 0, "counterfactual": ["foreign"],
        "directional": {"duration": {"direction": "increase", "deltas": [12], "tolerance": 0.05}},
        "minimum_functionality": [],
    }  # fmt: skip
    (conf / "behaviour" / f"{NAME}.yaml").write_text(yaml.safe_dump(behaviour))
    monitor = {  # what the monitor's replay scenarios shift; thresholds from conf/monitor/default.yaml
        "defaults": ["default", "_self_"],
        "min_rows": 100, "min_labelled": 50,
        "calibration": {"windows": 50, "rows": 100, "seed": 0},
        "replay": {"rows": 150, "scenarios": {
            "none": {"kind": "none"},
            "covariate": {"kind": "covariate", "feature": "duration", "shift": 12},
            "broken_nulls": {"kind": "nulls", "feature": "purpose"},
        }},
    }  # fmt: skip
    (conf / "monitor" / f"{NAME}.yaml").write_text(yaml.safe_dump(monitor, sort_keys=False))
    (conf / NAME).mkdir()  # step 4: the system, composed from the groups
    system = (
        (conf / "hmda/system.yaml").read_text().replace("hmda", NAME).replace("rules_" + NAME, "rules_hmda")
    )
    system = system.split("\nmodels:")[0] + "\nserving:\n  port: 3002\n  prediction_log:\n"
    system += f"    feature_fields: {FEATURES['categorical'] + FEATURES['numeric']}\n".replace("'", "")
    system = system.replace("  - /model@models.rules: rules_hmda\n", "")
    (conf / NAME / "system.yaml").write_text(system)
    root = (conf / "config.yaml").read_text()  # step 5: listed in the root config, its models in `dag`
    last = yaml.safe_load(root)["systems"][-1]
    root = root.replace(f"  - {last}: system\n", f"  - {last}: system\n  - {NAME}: system\n")
    root = re.sub(r"systems: \[([^\]]*)\]", rf"systems: [\1, {NAME}]", root)
    dag = {"train_baselines": ["majority", "logreg", "hgb"], "train": ["tabular_nn"], "evaluate": []}
    dag["evaluate"] = [*dag["train_baselines"], *dag["train"]]
    for stage, models in dag.items():
        lines = "".join(f"    {NAME}-{m}: {{ system: {NAME}, model: {m} }}\n" for m in models)
        root = root.replace(f"  {stage}:\n", f"  {stage}:\n{lines}", 1)
    (conf / "config.yaml").write_text(root)
    curated = repo / "site/curated" / NAME  # step 6: the curated text of its documents
    shutil.copytree(repo / "site/curated/hmda", curated)


def make(target: str, repo: Path, **variables: str) -> str:
    """``make <target>`` in ``repo`` as a user runs it (a nested make must not join the outer one's jobs)."""
    env = {k: v for k, v in tool_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    args = ["make", target, *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"make {target} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("recipe"))
    for venv in (".venv", ".venv-policy"):  # this checkout's venvs, linked: the Makefile finds them installed
        if (ROOT / venv).is_dir():
            (repo / venv).symlink_to(ROOT / venv)
    write_system(repo)
    make("params", repo)  # step 7: compose, then build
    make("pipeline", repo, SYSTEM=NAME)
    return repo


def test_the_unit_tests_pass_with_the_third_system(added: Path) -> None:
    """Every unit test, run in the copy that has the third system: none may list today's systems by name or
    treat one system's words as every system's."""
    proc = run(
        ["python", "-m", "pytest", "tests/unit", "-q", "-x", "-p", "no:cacheprovider"], added, check=False
    )
    tail = "\n".join(proc.stdout.splitlines()[-40:])
    assert proc.returncode == 0, f"unit tests fail once a third system is added:\n{tail}"
    assert " passed" in tail


def test_answers_carry_the_display_label_beside_the_code(added: Path) -> None:
    spec = json.loads((added / f"artifacts/{NAME}/serving/serving.json").read_text())
    assert spec["labels"] == {"0": "1", "1": "2"}
    assert spec["display"] == {"0": "good credit risk", "1": "bad credit risk"}


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
    assert "Synthetic credit scoring" in (site / "index.html").read_text()
    gate = json.loads((added / f"reports/{NAME}/gate.json").read_text())
    assert gate["champion"] in card
    sheet = (site / "data/datasheet/index.html").read_text()
    assert (
        "Datasheet: Synthetic credit scoring" in sheet
        and "mean duration" in sheet
        and "bad credit risk" in sheet
    )
    release = json.loads((added / f"artifacts/{NAME}/champion/release.json").read_text())
    assert release["system"] == NAME
    assert next(iter(release["data"])) == f"data/{NAME}/raw/credit.data"  # the lineage names its own data
    assert all(p.startswith(f"data/{NAME}/") for p in release["data"])
    assert f"data/{NAME}/raw/credit.data" in (site / "index.html").read_text()
    spec = json.loads((added / f"artifacts/{NAME}/serving/serving.json").read_text())
    assert spec["system"] == NAME and spec["service_name"] == NAME
    assert [f["name"] for f in spec["input"]["fields"]] == FEATURES["categorical"] + FEATURES["numeric"]
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


def test_ingest_read_the_space_separated_file_and_derived_a_column(added: Path) -> None:
    table = pd.read_parquet(added / f"data/{NAME}/interim/all.parquet")
    assert list(table.columns) == [*COLUMNS, "risk", "age_group", "target"]
    assert len(table) == 1000 and set(table["risk"]) == {"1", "2"}
    assert (
        (table["risk"] == "2") == (table["target"] == 1)
    ).all()  # '2' is the positive class, as configured
    assert ((table["age"] >= 25) == (table["age_group"] == "25 or older")).all()
    split = json.loads((added / f"reports/{NAME}/data/split.json").read_text())["splits"]
    assert split["test"]["rows"] == 200 and sum(s["rows"] for s in split.values()) == 1000  # carved, 20%


def test_a_change_to_one_system_reruns_only_that_system(added: Path, tmp_path: Path) -> None:
    repo = Path(shutil.copytree(added, tmp_path / "repo", symlinks=True))
    before = set(json.loads(run(["dvc", "status", "--json"], repo).stdout))  # adult and hmda never ran here
    run(["python", "-m", "pipelines.compose", f"{NAME}.split.seed=3"], repo)
    changed = set(json.loads(run(["dvc", "status", "--json"], repo).stdout)) - before
    assert f"split@{NAME}" in changed and all(s == "check_params" or NAME in s for s in changed), changed
    proc = run(["dvc", "repro", f"report@{NAME}"], repo)
    ran = [line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '")]
    assert f"split@{NAME}" in ran and all(
        s == "check_params" or s.endswith(f"@{NAME}") or f"@{NAME}-" in s for s in ran
    )
