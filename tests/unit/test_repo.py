"""Repository conventions: the README's two commands, CI calls them, workflows are valid, and every DVC stage
has its module, declares params that exist and depends on its own code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.leak_check import Checker, own_words, vocabulary

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_readme_starts_with_the_two_commands() -> None:
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert lines.index("```bash") == 1, "the commands come right after the title"
    assert [line.split("#")[0].strip() for line in block] == ["make pipeline", "make test"]


def test_ci_runs_make_test() -> None:
    script = (ROOT / ".ci/run").read_text()
    assert "make test" in script and (ROOT / ".ci/run").stat().st_mode & 0o111


@pytest.mark.parametrize("workflow", sorted((ROOT / ".github/workflows").glob("*.yml")), ids=lambda p: p.name)
def test_workflow_is_valid(workflow: Path) -> None:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _lookup(key: str) -> object:
    node: object = PARAMS
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"params.yaml has no {key}"
        node = node[part]
    return node


def _value(key: str) -> object:
    """params.yaml's value at ``key``; for a key of a section that params.yaml leaves out, the default its
    section's model gives it (``adult.dataset.derived``: ``{}``), which is what the stage reads."""
    from pipelines.core.params import Params

    *parent, field = key.split(".")
    if not parent:
        return _lookup(key)
    node = _lookup(".".join(parent))
    if isinstance(node, dict) and field in node:
        return node[field]
    model = Params.model_fields[parent[-1]].annotation
    assert isinstance(model, type) and field in getattr(model, "model_fields", {}), (
        f"params.yaml has no {key}"
    )
    return model.model_validate(node).model_dump(mode="json")[field]  # type: ignore[attr-defined]


def _items(spec: dict) -> list[tuple[str, object]]:
    """The (key, item) pairs of a stage's foreach, which may name a list or mapping in params.yaml."""
    items = spec["foreach"]
    if isinstance(items, str):
        assert items.startswith("${") and items.endswith("}"), items
        items = _lookup(items[2:-1])
    return list(items.items()) if isinstance(items, dict) else [(i, i) for i in items]


def expand(stage: str) -> list[dict]:
    """The concrete stage definitions (one per foreach item), with ${item}/${key} substituted."""
    spec = DVC[stage]
    if "foreach" not in spec:
        return [spec]
    out = []
    for key, item in _items(spec):
        text = yaml.safe_dump(spec["do"]).replace("${key}", str(key))
        if isinstance(item, dict):
            for k, v in item.items():
                text = text.replace("${item." + k + "}", str(v))
        out.append(yaml.safe_load(text.replace("${item}", str(item))))
    return out


def declared(spec: dict) -> list[tuple[str, str]]:
    """(file, dotted key) for every key of params.yaml a stage depends on: its deps under reports/params/
    (``reports/params/adult/dataset/files.json`` is ``adult.dataset.files``; ``.../trainer.json``, ``trainer``)."""
    assert not spec.get("params"), "stages depend on reports/params/<system>/<key>.json, not on DVC params"
    out = []
    for dep in spec["deps"]:
        parts = Path(dep).parts
        if parts[:2] == ("reports", "params") and len(parts) > 3:
            system, keys = parts[2], [*parts[3:-1], Path(parts[-1]).stem]
            out.append((dep, ".".join(keys if keys[0] in ("trainer", "report") else [system, *keys])))
    return out


@pytest.mark.parametrize("stage", list(DVC))
def test_stage_module_params_and_deps(stage: str) -> None:
    """Each stage runs its own module, depends on its code, and declares keys that exist, each from the file of
    its section (reports/params/<system>/<section>.json), which holds that key with the value params.yaml has."""
    import json

    module = f"pipelines/{stage}.py"
    assert (ROOT / module).is_file(), f"stage {stage} has no module {module}"
    for spec in expand(stage):
        assert f"python -m pipelines.{stage}" in spec["cmd"]
        assert module in spec["deps"], f"stage {stage} must depend on its own code"
        for path, key in declared(spec):
            parts = key.split(".")
            node: object = json.loads((ROOT / path).read_text())
            for part in parts:
                assert isinstance(node, dict) and part in node, f"{path} has no {key}"
                node = node[part]
            assert node == _value(key), f"{path}'s {key} is not params.yaml's: run make params"


SYSTEMS = PARAMS["systems"]
PER_SYSTEM = [s for s, spec in DVC.items() if spec.get("foreach") == "${systems}"]


@pytest.mark.parametrize("stage", PER_SYSTEM)
def test_per_system_stages_touch_only_their_system(stage: str) -> None:
    """Every path and param of ``<stage>@<system>`` is the system's own (or shared code, config or a global)."""
    from pipelines.core.paths import SystemPaths

    for system, spec in zip(SYSTEMS, expand(stage), strict=True):
        paths = SystemPaths(system)
        assert f"--system {system}" in spec["cmd"]
        for path, key in declared(spec):
            assert key.split(".")[0] in (system, "trainer", "report"), (stage, key)
            assert Path(path).parts[:3] == ("reports", "params", system), (stage, path)
        for out in spec.get("outs", []) + spec.get("metrics", []):
            path = next(iter(out)) if isinstance(out, dict) else out
            assert Path(path).parts[:2] in (paths.data.parts, paths.artifacts.parts, paths.reports.parts), (
                path
            )
        for dep in spec["deps"]:
            top = Path(dep).parts[0]
            if top in ("data", "artifacts", "reports"):
                index = 2 if Path(dep).parts[:2] == ("reports", "params") else 1
                assert Path(dep).parts[index] == system, (stage, dep)


@pytest.mark.parametrize(
    ("stage", "family"), [("train_baselines", "sklearn"), ("train", "lightning"), ("mitigate", "mitigation")]
)
def test_training_stages_cover_each_family(stage: str, family: str) -> None:
    expected = sorted(
        f"{s}-{n}" for s in SYSTEMS for n, m in PARAMS[s]["models"].items() if m["family"] == family
    )
    assert sorted(k for k, _ in _items(DVC[stage])) == expected


def test_mitigation_bases_match_config() -> None:
    for _, item in _items(DVC["mitigate"]):
        assert isinstance(item, dict)
        assert item["base"] == PARAMS[item["system"]]["models"][item["model"]]["base"]


def test_every_model_is_evaluated() -> None:
    expected = sorted(f"{s}-{n}" for s in SYSTEMS for n in PARAMS[s]["models"])
    assert sorted(k for k, _ in _items(DVC["evaluate"])) == expected


@pytest.mark.parametrize("stage", list(DVC))
def test_stages_read_no_undeclared_state(stage: str) -> None:
    """A stage that reads dvc.lock or asks git depends on something DVC does not track as its input, so its
    outputs change when an unrelated stage re-runs (the site step, outside DVC, is the one place for both)."""
    source = (ROOT / f"pipelines/{stage}.py").read_text()
    for needle in ("dvc.lock", "git_state", '"git"', "rev-parse"):
        assert needle not in source, f"pipelines/{stage}.py reads {needle}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_select_declares_every_param_a_release_records(system: str) -> None:
    from pipelines.core.config import system_params
    from pipelines.select import release_params

    [keys] = [
        [k for _, k in declared(spec)] for spec in expand("select") if f"--system {system}" in spec["cmd"]
    ]
    view = system_params(PARAMS, system)
    for name in view["models"]:
        for top, value in release_params(view, name).items():
            leaves = [f"{top}.{k}" for k in value] if top == "dataset" else [top]
            for leaf in leaves:
                key = view.key(leaf)
                assert any(key == d or key.startswith(d + ".") for d in keys), (
                    f"select reads {key} undeclared"
                )


SHARED = sorted(
    p
    for pattern in (
        "pipelines/**/*.py",
        "models/**/*.py",
        "services/**/*.py",
        "services/**/*.j2",
        "site/templates/*.j2",
        "pipelines/templates/*.j2",
        "site/pages/*.md",
    )
    for p in ROOT.glob(pattern)
    # a walkthrough recorded on one real system: an example, not shared logic (its commands are checked below)
    if p.relative_to(ROOT).as_posix() != "site/pages/change-a-model.md"
)


@pytest.fixture(scope="module")
def leak_checker() -> Checker:
    return Checker(vocabulary(PARAMS), own_words(SHARED))


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_files_name_no_system_column_or_label(path: Path, leak_checker: Checker) -> None:
    """Shared code and templates serve every system: a system's name or file spelled in them, one of its columns
    indexed or one of its labels compared means a second system would get the first one's assumptions (a raw
    KeyError, a wrong heading). Read by syntax, so common words and digits pass (tests/leak_check.py)."""
    leaks = leak_checker.check(path, ROOT)
    assert not leaks, "\n".join(map(str, leaks))


def test_the_change_a_model_walkthrough_uses_real_targets() -> None:
    """The page's commands are this Makefile's targets, and it walks the whole loop: change, report, register,
    staging, prod, rollback."""
    page = (ROOT / "site/pages/change-a-model.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))
    used = set(re.findall(r"\$ make ([a-z][a-z0-9-]*)", page))
    assert used <= targets, used - targets
    for step in (
        "params",
        "pipeline",
        "pr-report",
        "register",
        "release-prs",
        "promote",
        "rollback",
        "deploy-status",
    ):
        assert step in used, step


def test_a_linked_venv_is_neither_reinstalled_nor_untracked(tmp_path: Path) -> None:
    """A clone whose .venv links to another clone's venv: `make` finds it installed (the stamp is the requirements'
    hash, not a file time) and git ignores the link; other requirements make it stale."""
    import hashlib
    import shutil

    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "requirements.lock", "pyproject.toml", ".gitignore"):
        shutil.copy(ROOT / name, clone / name)
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    venv = tmp_path / "elsewhere" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = hashlib.sha256((clone / "requirements.lock").read_bytes())
    (venv / f".installed-{stamp.hexdigest()[:16]}").touch()
    (clone / ".venv").symlink_to(venv)
    (clone / "requirements.lock").touch()  # newer than the stamp: time does not matter
    (clone / "pyproject.toml").write_text((clone / "pyproject.toml").read_text() + "\n# a tool setting\n")
    assert subprocess.run(["make", "-q", "venv"], cwd=clone).returncode == 0, "make would reinstall"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
    ).stdout
    assert ".venv" not in status, status
    (clone / "requirements.lock").write_text("other==1.0\n")
    assert subprocess.run(["make", "-q", "venv"], cwd=clone).returncode == 1, "other requirements: stale"


def test_dvc_lock_holds_only_the_stages_dvc_yaml_defines() -> None:
    """DVC keeps the lock entry of a renamed or removed stage forever (4,400 stale lines once); make pipeline drops
    them (pipelines.dvclock)."""
    from pipelines import dvclock

    text = (ROOT / "dvc.lock").read_text()
    assert dvclock.stale_entries(text, dvclock.defined_stages(ROOT)) == []
    stale = text.replace("\n  check_params:\n", "\n  old_stage:\n    cmd: gone\n  check_params:\n", 1)
    assert dvclock.stale_entries(stale, dvclock.defined_stages(ROOT)) == ["old_stage"]
    kept = [n for n in dvclock.stale_entries(stale, set()) if n != "old_stage"]
    assert dvclock.prune(stale, set(kept)) == text


def test_a_removed_stage_takes_its_outputs_with_its_lock_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renamed model's old outputs would be hashed into the deps of a stage that reads their folder here and be
    missing on a fresh clone (the lock flipping between machines): dvclock deletes what only a removed stage wrote,
    and nothing a defined stage writes, in a real DVC project."""
    from pipelines import dvclock

    def sh(*cmd: str) -> None:
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    stage = "  {0}:\n    cmd: mkdir -p eval/{1} && echo {1} > eval/{1}/m.json\n    outs:\n      - eval/{1}\n"
    pick = "  pick:\n    cmd: ls eval > picked.txt\n    deps:\n      - eval\n    outs:\n      - picked.txt\n"
    both = stage.format("rules", "rules") + stage.format("hgb", "hgb")
    (tmp_path / "dvc.yaml").write_text("stages:\n" + both + pick)
    sh("dvc", "repro", "-q")
    # rules renamed rulelist; hgb's stage renamed but writing the same folder: that folder is kept
    renamed = stage.format("rulelist", "rulelist") + stage.format("gbm", "hgb")
    (tmp_path / "dvc.yaml").write_text("stages:\n" + renamed + pick)
    monkeypatch.chdir(tmp_path)
    dvclock.main([])
    assert not (tmp_path / "eval/rules").exists()
    assert (tmp_path / "eval/hgb/m.json").read_text() == "hgb\n"
    assert dvclock.stale_entries((tmp_path / "dvc.lock").read_text(), dvclock.defined_stages()) == []
    sh("dvc", "repro", "-q")
    assert (tmp_path / "picked.txt").read_text().split() == ["hgb", "rulelist"]


def test_orphan_outputs_never_name_a_defined_output_or_its_folder() -> None:
    from pipelines import dvclock

    lock = "stages:\n  old:\n    outs:\n    - path: a/b\n    - path: a/c/d\n    - path: e\n    - path: f/g\n"
    assert dvclock.orphan_outputs(lock, ["old"], ["a/b", "a/c", "f/g/h"]) == ["e"]
    assert dvclock.orphan_outputs(lock, ["old"], []) == ["a/b", "a/c/d", "e", "f/g"]
    assert dvclock.orphan_outputs(lock, ["missing"], []) == []


def test_make_pipeline_says_which_stages_ran() -> None:
    from pipelines.repro import Summary

    summary = Summary()
    for line in [
        "Running stage 'ingest@a':",
        "> python -m pipelines.ingest --system a",
        "Stage 'split@a' didn't change, skipping",
        "Running stage 'train@a-nn':",
        "Stage 'train@a-nn' is cached - skipping run, checking out outputs",
    ]:
        summary.read(line)
    assert summary.lines(3.0, True) == [
        "[pipeline] done in 3.0 s: 1 ran, 1 restored from the run cache, 1 up to date",
        "  ran: ingest@a",
        "  restored: train@a-nn",
        "  up to date: split@a",
    ]
    assert summary.lines(1.0, False)[0].startswith("[pipeline] FAILED")
