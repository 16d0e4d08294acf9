"""Stage ``package``: put the champion and the challenger into the BentoML model store and build the bento.

Runs once per system. Reads the system's ``serving`` (routing, input policy, batching, log), ``dataset`` (the
contract the input schema mirrors), ``features`` and the promoted artifacts in ``artifacts/<system>/champion`` and
``challenger``. Writes, under the system's BentoML home (``artifacts/<system>/bentoml``): one model per role,
tagged ``<system>-<model>:<version>`` with the release metadata and every file's sha256, and the bento
``<system>`` (the generic service in ``services/tabular`` with this system's spec) with its Dockerfile. Also writes
``artifacts/<system>/serving/serving.json`` (the spec the service reads) and ``reports/<system>/package.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_json, sha256_file, write_json_atomic
from pipelines.core.model_config import EvaluationConfig
from pipelines.core.params import ServingConfig
from pipelines.core.paths import SystemPaths
from pipelines.core.render import render
from pipelines.core.training import read_split
from pipelines.core.workspace import ROOT


def bento_name(system: str) -> str:
    """The bento and BentoML service name of a system (``<system>``, ``_`` as ``-``; BentoML names allow no ``_``)."""
    return system.replace("_", "-")


CREATION_TIME = re.compile(r"^(\s*)creation_time: .*$", re.MULTILINE)
RUNTIME_PACKAGES = [
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "joblib",
    "pyarrow",
    "fairlearn",
    "narwhals",
    "torch",
    "treelite",
    "pydantic",
    "pyyaml",
]


def input_fields(dataset: DatasetConfig, features: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per model input, with the contract's type, range, categories and nullability."""
    fields = []
    for name in [*features["categorical"], *features["numeric"]]:
        rule = dataset.contract.columns.get(name)
        kind = dataset.columns[name]
        fields.append(
            {
                "name": name,
                "type": kind,
                "min": rule.min if rule else None,
                "max": rule.max if rule else None,
                "categories": rule.categories if rule else None,
                "nullable": bool(rule and rule.max_missing_fraction > 0),
            }
        )
    return fields


def pins(lock: Path, names: list[str]) -> list[str]:
    """``name==version`` for each runtime package, from requirements.lock (the versions the tests ran)."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    missing = [n for n in names if n not in found]
    if missing:
        raise PipelineError(f"{lock} does not pin {missing}, which the service needs")
    return [f"{n}=={found[n]}" for n in names]


def release(folder: Path) -> dict[str, Any] | None:
    path = folder / "release.json"
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the select stage first (dvc repro select)")
    data = read_json(path)
    return data if data.get("name") else None


def model_ref(system: str, rel: dict[str, Any]) -> dict[str, Any]:
    """The BentoML model of a release: ``<system>-<model>:<version>`` (``_`` written ``-``)."""
    version = rel["version"].removeprefix(rel["name"] + "-")
    return {
        "tag": f"{bento_name(system)}-{rel['name'].replace('_', '-')}:{version}",
        "name": rel["name"],
        "version": rel["version"],
        "files": rel["files"],
    }


def compile_fast_path(
    role: str, source: Path, test: pd.DataFrame, threshold: float, out: Path
) -> dict[str, Any]:
    """Compile the artifact in ``source`` to its serving fast path in ``out``, check parity on ``test`` and its
    edge rows, and return ``{"files": {name: sha256}, "info", "parity"}``. A PipelineError when the model has no
    fast path or it differs from the reference: such a model is not packaged."""
    from models.compile import CompileError, compile_predictor
    from models.predictor import load_predictor
    from pipelines.core import parity

    predictor = load_predictor(source)
    try:
        fast = compile_predictor(predictor)
    except CompileError as err:
        raise PipelineError(
            f"the {role} ({source}) has no serving fast path: {err}; it is not packaged"
        ) from None
    checked = parity.check(predictor.predict_proba, fast, test, threshold)
    if not checked["passed"]:
        parts = parity.comparisons(checked)
        invariance = checked["batch_invariance"]
        raise PipelineError(
            f"the {role}'s fast path differs from its reference pipeline ({source}); it is not packaged: "
            + "; ".join(
                f"{k}: {v['rows']} rows, max |diff| {v['max_abs_diff']:.3g} (tolerance {checked['tolerance']:g}), "
                f"{v['decisions_differ']} decisions differ{'' if v['finite'] else ', non-finite scores'}"
                for k, v in parts.items()
            )
            + f"; batch invariance: {invariance['differ']} of {invariance['rows']} batched scores differ from the "
            "same record scored alone"
        )
    out.mkdir(parents=True, exist_ok=True)
    names = fast.save(out)
    return {
        "files": {n: sha256_file(out / n) for n in names},
        "info": fast.info,
        "parity": {
            "tolerance": checked["tolerance"],
            "rows": sum(v["rows"] for v in parity.comparisons(checked).values()),
            "batch_invariant": checked["batch_invariance"]["differ"] == 0,
            "max_abs_diff_at_most": parity.bound(checked["max_abs_diff"]),
        },
    }


def store_model(ref: dict[str, Any], role: str, rel: dict[str, Any], source: Path, fast: Path) -> None:
    """Save the artifact's files and its fast path (``fast``) as a BentoML model (BENTOML_HOME must already point
    at the target store)."""
    import bentoml

    metadata = {
        "release_version": rel["version"],
        "params_hash": rel["params_hash"],
        "roc_auc": rel["metrics"]["roc_auc"]["value"],
        "files": json.dumps(ref["files"], sort_keys=True),
    }
    labels = {"role": role, "candidate": rel["name"], "kind": rel.get("kind") or "candidate"}
    with bentoml.models.create(ref["tag"], labels=labels, metadata=metadata) as model:
        for name in [*rel["files"], "predictor.json", "release.json"]:
            shutil.copy2(source / name, Path(model.path) / name)
        for name in ref["fast_path"]["files"]:
            shutil.copy2(fast / name, Path(model.path) / name)


def tree_digest(folder: Path) -> str:
    """sha256 over every file's relative path and content: a version that changes exactly with the content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def fixed_creation_time() -> str:
    """The creation time written into the store: $SOURCE_DATE_EPOCH, else 1980-01-01 (the ZIP epoch, as
    reproducible wheel builds use). BentoML stamps the wall clock, which would make two builds of the same
    content differ byte for byte; versions here are content hashes, so the stamp carries no information."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def normalize_store(home: Path) -> int:
    """Replace BentoML's wall-clock ``creation_time`` in every model.yaml and bento.yaml under ``home``."""
    stamp = f"creation_time: '{fixed_creation_time()}'"
    changed = 0
    for path in [*home.rglob("model.yaml"), *home.rglob("bento.yaml")]:
        text = path.read_text(encoding="utf-8")
        new = CREATION_TIME.sub(lambda m: m.group(1) + stamp, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def build_bento(home: Path, spec: dict[str, Any], params_hash: str) -> str:
    """Build the bento from a clean context (service and model code, the spec); return its tag."""
    with tempfile.TemporaryDirectory(prefix="bento-ctx-") as tmp:
        ctx = Path(tmp)
        for package in ("services", "models"):
            for path in (ROOT / package).rglob("*.py"):
                target = ctx / path.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        spec_file = ctx / "services/tabular/serving.json"
        spec_file.write_text(json.dumps(spec, indent=2) + "\n")
        bentofile = ctx / "bentofile.yaml"
        bentofile.write_text(
            render(
                "bentofile.yaml.j2",
                ROOT / "services/tabular",
                service_name=spec["service_name"],
                system=spec["system"],
                champion=spec["champion"]["tag"],
                challenger=spec["challenger"]["tag"] if spec["challenger"] else None,
                params_hash=params_hash,
                packages=pins(ROOT / "requirements.lock", RUNTIME_PACKAGES),
            )
        )
        env = dict(
            os.environ,
            BENTOML_HOME=str(home),
            BENTOML_DO_NOT_TRACK="True",
            SERVING_CONFIG=str(spec_file),
            PYTHONPATH=str(ctx),
        )
        bentoml_cli = Path(sys.executable).parent / "bentoml"
        version = tree_digest(ctx)[:16]  # the same context, the same bento version
        proc = subprocess.run(
            [
                str(bentoml_cli),
                "build",
                "-f",
                str(bentofile),
                str(ctx),
                "--version",
                version,
                "--output",
                "tag",
            ],
            cwd=ctx,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise PipelineError(f"bentoml build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        # the tag is known (name and --version are ours); stdout is not parsed: BentoML prints through Rich, which
        # turns a system name between colons ("__tag__:<name>:<version>") into an emoji when it names one
        name = spec["service_name"]
        if not (home / "bentos" / name / version / "bento.yaml").is_file():
            raise PipelineError(
                f"bentoml build reported success but {home}/bentos/{name}/{version} is missing"
            )
        return f"{name}:{version}"


@stage_main("package")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--spec", type=Path)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--data", type=Path, help="the processed splits (default data/<system>/processed)")
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.artifacts, args.home = args.artifacts or paths.artifacts, args.home or paths.bentoml
    args.spec, args.report = args.spec or paths.serving_spec, args.report or paths.package_report
    params = load_system(args.params, args.system)
    dataset = section(params, "dataset", DatasetConfig)
    section(
        params, "serving", ServingConfig
    )  # also checked by check_params; the stage never trusts its input
    champion = release(args.artifacts / "champion")
    if champion is None:
        raise PipelineError(f"{args.artifacts / 'champion'} has no model: nothing to package")
    challenger = release(args.artifacts / "challenger")
    evaluation = section(params, "evaluation", EvaluationConfig)
    test = read_split(args.data or paths.processed, evaluation.split)
    scratch = Path(tempfile.mkdtemp(prefix="fastpath-"))
    refs: dict[str, dict[str, Any] | None] = {"champion": None, "challenger": None}
    try:
        for role, rel in (("champion", champion), ("challenger", challenger)):
            if rel is None:
                continue
            fast = compile_fast_path(role, args.artifacts / role, test, evaluation.threshold, scratch / role)
            ref = model_ref(args.system, rel)
            ref["fast_path"] = {"info": fast["info"], "parity": fast["parity"], "files": fast["files"]}
            ref["files"] = {**ref["files"], **fast["files"]}  # the service verifies every file it may read
            refs[role] = ref
        package(args, paths, params, dataset, champion, challenger, refs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def package(
    args: argparse.Namespace,
    paths: SystemPaths,
    params: dict[str, Any],
    dataset: DatasetConfig,
    champion: dict[str, Any],
    challenger: dict[str, Any] | None,
    refs: dict[str, dict[str, Any] | None],
    scratch: Path,
) -> None:
    service_name = bento_name(args.system)
    serving = params["serving"]
    labels = {str(v): k for k, v in dataset.target.labels.items()}
    shown = dataset.target.display
    display = {"0": shown.negative, "1": shown.positive} if shown else dict(labels)
    spec = {
        "system": args.system,
        "service_name": service_name,
        "champion": refs["champion"],
        "challenger": refs["challenger"],
        "routing": serving["routing"],
        "input": {**serving["input"], "fields": input_fields(dataset, params["features"])},
        "decision_threshold": serving["decision_threshold"],
        "labels": labels,
        "display": display,
        "batching": serving["batching"],
        "workers": serving["workers"],
        "threads": serving["threads"],
        "native_threads": serving["native_threads"],
        "overload": serving["overload"],
        "prediction_log": serving["prediction_log"],
        "http": serving["http"],
        "port": serving["port"],
    }
    from services.tabular.spec import ServingSpec

    ServingSpec.model_validate(spec)  # the service must accept what we package
    home = args.home.resolve()
    with atomic_dir(home) as staging:
        os.environ["BENTOML_HOME"] = str(staging)
        os.environ["BENTOML_DO_NOT_TRACK"] = "True"
        store_model(spec["champion"], "champion", champion, args.artifacts / "champion", scratch / "champion")
        if challenger:
            store_model(
                spec["challenger"],
                "challenger",
                challenger,
                args.artifacts / "challenger",
                scratch / "challenger",
            )
        bento_tag = build_bento(staging, spec, champion["params_hash"])
        normalize_store(staging)
        shutil.rmtree(staging / "tmp", ignore_errors=True)  # BentoML's scratch space, not part of the store
        name, version = bento_tag.split(":")
        bento_dir = staging / "bentos" / name / version
        dockerfile = bento_dir / "env/docker/Dockerfile"
        if not dockerfile.is_file():
            raise PipelineError(f"the bento {bento_tag} has no env/docker/Dockerfile")
        size = sum(p.stat().st_size for p in bento_dir.rglob("*") if p.is_file())
        bento_yaml = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    write_json_atomic(args.spec, spec)
    write_json_atomic(
        args.report,
        {
            "bento": bento_tag,
            "system": args.system,
            "service": service_name,
            "champion": spec["champion"]["tag"],
            "challenger": spec["challenger"]["tag"] if challenger else None,
            "fast_path": {
                role: {"model": ref["fast_path"]["info"].get("model"), **ref["fast_path"]["parity"]}
                for role, ref in refs.items()
                if ref is not None
            },
            "routing": serving["routing"]["mode"],
            "challenger_weight": serving["routing"]["challenger_weight"],
            "dockerfile": "env/docker/Dockerfile",
            "bento_bytes": size,
            "models_in_bento": sorted(
                m["tag"] for svc in bento_yaml.get("services", []) for m in svc.get("models", [])
            ),
        },
    )
    print(
        f"[package] {spec['champion']['tag']} (champion), "
        f"{spec['challenger']['tag'] if challenger else 'no challenger'}; bento {bento_tag} with Dockerfile"
    )


if __name__ == "__main__":
    main()
