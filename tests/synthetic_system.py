"""A synthetic credit-scoring system, added by config, data and text only: the README's "Add a system" steps 1 to
6, as a newcomer's file would come (no header, one space between fields, ordinary words for column names, coded
categories, a target coded `1`/`2`). Used by tests/integration/test_add_a_system.py and by the pipeline benchmark
(the cost of an added system).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipelines.core.io import sha256_file

NAME = "credit"
COLUMNS: dict[str, list[str] | tuple[int, int]] = {  # file order; codes as in the Statlog German credit file
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
    columns: dict[str, Any] = {}
    for name, spec in COLUMNS.items():
        if isinstance(spec, list):
            columns[name] = rng.choice(spec, rows)
        else:
            low, high = (int(x) for x in spec)
            columns[name] = rng.integers(low, high, rows)
    frame = pd.DataFrame(columns)
    logit = (
        -2.0 + 0.03 * frame["duration"] + 0.00008 * frame["amount"] + (frame["status"] == "A11") * 0.9
        - (frame["savings"] == "A65") * 0.6 + (frame["foreign"] == "A201") * 0.2 - 0.01 * (frame["age"] - 35)
    )  # fmt: skip
    frame["risk"] = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), 2, 1)
    path.write_text("".join(" ".join(map(str, row)) + "\n" for row in frame.itertuples(index=False)))
    return sha256_file(path)


def template_system(repo: Path) -> str:
    """The system whose groups a newcomer copies: the last one listed with a single data file (a carved split)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    return next(s for s in reversed(params["systems"]) if len(params[s]["dataset"]["files"]) == 1)


def write_system(repo: Path) -> None:
    """The recipe's steps 1 to 6, as a user does them: data, config, curated text (copied from a system's)."""
    template = template_system(repo)
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
    profile = yaml.safe_load((conf / f"profile/{template}.yaml").read_text())
    profile |= {"intersections": [["foreign", "age_group"]], "summary_numeric": ["duration", "amount"]}
    (conf / "profile" / f"{NAME}.yaml").write_text(yaml.safe_dump(profile))
    evaluation = yaml.safe_load((conf / f"evaluation/{template}.yaml").read_text())
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
        (conf / f"{template}/system.yaml")
        .read_text()
        .replace(template, NAME)
        .replace("rules_" + NAME, f"rules_{template}")
    )
    system = system.split("\nmodels:")[0] + "\nserving:\n  port: 3002\n  prediction_log:\n"
    system += f"    feature_fields: {FEATURES['categorical'] + FEATURES['numeric']}\n".replace("'", "")
    system = system.replace(f"  - /model@models.rules: rules_{template}\n", "")
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
    shutil.copytree(repo / "site/curated" / template, curated)
