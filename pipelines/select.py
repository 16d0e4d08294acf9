"""Stage ``select``: hold every evaluated model to the gates and promote a champion and a challenger.

Reads ``evaluation`` (gates, primary metric, who is eligible), ``models`` (the candidate list) and each
``reports/eval/<model>/metrics.json``. Writes ``reports/gate.json`` (every gate: value, threshold, verdict) and
``reports/gate.md`` on every run. The champion is the eligible model that passes every blocking gate with the best
primary metric; the challenger is the runner-up. Both are copied to ``artifacts/champion/`` and
``artifacts/challenger/`` with ``release.json``: name, version, sha256 of the raw (pinned) and split files, params hash, metrics,
gate verdicts and the sha256 of every file. No git commit: a file inside a commit cannot name that commit, so the
commit that ships a release is recorded by the registry (GTO tags) and on the published site, never in an output. If no model passes, the stage exits 1 and the previous
champion stays.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from models.predictor import ArtifactError, read_manifest, verify_files
from pipelines.core.config import load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.gates import evaluate_gates
from pipelines.core.io import atomic_dir, read_json, to_json, write_json_atomic, write_text_atomic
from pipelines.core.lineage import content_version, data_lineage, params_hash
from pipelines.core.model_config import EvaluationConfig
from pipelines.core.paths import SystemPaths
from pipelines.core.render import render

RELEASE = "release.json"


class NoChampion(PipelineError):
    """No model passed every blocking gate."""


def release_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The params that determine model ``name``: its config (and its base's), features, split, data pins."""
    models = params["models"]
    chosen = {name: models[name]}
    base = models[name].get("base")
    if base:
        chosen[base] = models[base]
    out = {
        "models": chosen,
        "features": params["features"],
        "split": params["split"],
        "dataset": {"files": params["dataset"]["files"], "target": params["dataset"]["target"]},
    }
    if any(m.get("family") == "lightning" for m in chosen.values()):
        out["trainer"] = params["trainer"]
    return out


def promote(
    role: str,
    name: str,
    params: dict[str, Any],
    gate: dict[str, Any],
    metrics: dict[str, Any],
    artifacts: Path,
    out: Path,
    processed: Path,
) -> dict[str, Any]:
    """Copy a verified candidate to ``out`` with its release metadata."""
    source = artifacts / name
    try:
        manifest = read_manifest(source)
        verify_files(source, manifest)
    except ArtifactError as err:
        raise PipelineError(f"cannot promote {name}: {err}") from None
    files = {**manifest["files"]}
    release_inputs = release_params(params, name)
    release = {
        "role": role,
        "system": getattr(params, "system", None),
        "name": name,
        "version": f"{name}-{content_version(files)}",
        "kind": manifest["info"].get("kind"),
        "family": manifest["info"].get("family"),
        "description": manifest["info"].get("description"),
        "format": manifest["format"],
        "data": data_lineage(params["dataset"], processed),
        "params_hash": params_hash(release_inputs),
        "params": release_inputs,
        "metrics": metrics,
        "gates": gate["models"][name],
        "files": files,
    }
    with atomic_dir(out) as staging:
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        (staging / RELEASE).write_text(to_json(release))
    return release


def empty_role(role: str, out: Path) -> None:
    with atomic_dir(out) as staging:
        (staging / RELEASE).write_text(to_json({"role": role, "name": None}))


@stage_main("select")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument("--evals", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--gate", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--processed", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.evals, args.artifacts = args.evals or paths.evals, args.artifacts or paths.candidates
    args.gate, args.out = args.gate or paths.gate, args.out or paths.artifacts
    args.processed = args.processed or paths.processed
    params = load_system(args.params, args.system)
    cfg = section(params, "evaluation", EvaluationConfig)
    metrics: dict[str, dict[str, Any]] = {}
    for name in params.get("models", {}):
        path = args.evals / name / "metrics.json"
        if not path.is_file():
            raise PipelineError(
                f"{path} not found: evaluate every model first (dvc repro evaluate@{args.system}-{name})"
            )
        metrics[name] = read_json(path)
    gate = evaluate_gates(metrics, cfg)
    for name, entry in gate["models"].items():
        try:
            entry["version"] = f"{name}-{content_version(read_manifest(args.artifacts / name)['files'])}"
        except ArtifactError as err:
            raise PipelineError(f"{params.key('models.' + name)}: {err}") from None
    gate["gates"] = {n: g.model_dump() for n, g in cfg.gates.items()}
    write_json_atomic(args.gate, gate)
    write_text_atomic(args.gate.with_suffix(".md"), render("gate.md.j2", gate=gate, gates=gate["gates"]))
    if gate["champion"] is None:
        lines = [
            f"  {n}: {', '.join(r['failed']) or 'not eligible (' + r['kind'] + ')'}"
            for n, r in gate["models"].items()
        ]
        raise NoChampion(
            "no model passes every blocking gate; the previous champion stays. Blocked by:\n"
            + "\n".join(lines)
            + f"\nreport: {args.gate.with_suffix('.md')}"
        )
    champion = promote(
        "champion",
        gate["champion"],
        params,
        gate,
        metrics[gate["champion"]],
        args.artifacts,
        args.out / "champion",
        args.processed,
    )
    if gate["challenger"]:
        promote(
            "challenger",
            gate["challenger"],
            params,
            gate,
            metrics[gate["challenger"]],
            args.artifacts,
            args.out / "challenger",
            args.processed,
        )
    else:
        empty_role("challenger", args.out / "challenger")
    for name, r in gate["models"].items():
        print(f"[select] {name:<12} {r['status']:<22} {cfg.primary_metric} {r['primary']}")
    print(f"[select] champion {champion['version']}, challenger {gate['challenger']}")


if __name__ == "__main__":
    main()
