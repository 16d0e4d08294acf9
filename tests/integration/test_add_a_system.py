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

import pandas as pd
import pytest
import yaml

from pipelines.core.workspace import tool_env
from tests.conftest import ROOT, copy_repo, run
from tests.synthetic_system import COLUMNS, FEATURES, NAME, write_system

pytestmark = pytest.mark.integration
README_STEPS = 7  # the numbered steps of README's "Add a system"


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
    # what DVC would run (--dry: the stages downstream follow through the system's own data, whose paths
    # tests/unit/test_repo.py holds to the system)
    proc = run(["dvc", "repro", "--dry", f"report@{NAME}"], repo)
    ran = [line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '")]
    assert f"split@{NAME}" in ran and all(
        s == "check_params" or s.endswith(f"@{NAME}") or f"@{NAME}-" in s for s in ran
    ), ran
