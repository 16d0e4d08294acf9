"""Continuous training: monitor a system and, on ``retrain``, rebuild it with the labelled production window and
leave the result on a branch for a pull request.

Usage: ``python -m pipelines.ct --system NAME [--override KEY=VALUE ...] [--no-collect]`` (``make ct SYSTEM=<name>``).

1. Collect the live logs into ``data/<system>/production`` and run ``monitor@<system>`` (``--no-collect``: judge the
   window already there). On ``ok``, ``block`` or ``rollback`` nothing is built; the result says why (ct.yml opens
   an issue for ``block`` and ``rollback``).
2. On ``retrain``: the window's labelled rows (every input the log keeps, the label from the delayed feed) are
   written to ``data/<system>/raw/production-<sha12>.csv`` with a header, declared in ``conf/<system>/system.yaml``
   (``dataset.files.<key>`` pinned by sha256 with its own format; ``split.extra_train``), so they pass through the
   same ingest, contract and split as any data: they join the training split only, and valid and test stay as they
   were.
3. ``params.yaml`` is recomposed (with ``--override``s, as ``dvc exp run -S`` would) and ``dvc repro report@<system>``
   retrains every model; the same gates judge them. The new champion must not fall more than
   ``monitor.ct.max_regression`` below the current champion's primary metric on the same test split, else nothing
   is promoted: the working tree is restored and the result says ``rejected``.
4. Accepted: a branch ``ct/<system>/<sha12>`` with the window, the data file, the config, ``params.yaml``,
   ``dvc.lock`` and the reports (gate, metrics, model cards pinned by the lock), committed; the pull-request body
   is written to ``var/ct/<system>/pr.md``.

The outcome is printed and written to ``var/ct/<system>/result.json`` (``decision``, ``outcome``, ``branch``).
The working tree must be clean apart from the window, the logs and what ``make monitor`` writes (its reports and
``dvc.lock``): CT commits what it changes and nothing else.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipelines.check_params import write_stage_params
from pipelines.core.config import STAGE_PARAMS_DIR, DatasetConfig, load_params, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.gitops import prepare_runner, resolve_commit
from pipelines.core.io import copy_private, private_dir, write_json_atomic, write_text_atomic
from pipelines.core.monitor_config import MonitorConfig
from pipelines.core.paths import SystemPaths
from pipelines.core.render import render
from pipelines.core.training import read_split
from pipelines.monitor import window_files

HERE = Path(__file__).resolve().parent


def run(cmd: list[str], what: str) -> str:
    """Run a command of the repository; a failure is a PipelineError with its output's tail."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PipelineError(f"{what}: `{cmd[0]}` is not installed or not on PATH") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise PipelineError(f"{what} failed ({' '.join(cmd)}):\n{tail}")
    return proc.stdout


def git(*args: str) -> str:
    return run(["git", *args], f"git {args[0]}")


def labelled_rows(window: Path, dataset: DatasetConfig, logged: list[str]) -> list[dict[str, Any]]:
    """The window's answered requests that have a delayed label: the logged inputs and the raw label, one per
    request id (the last label wins), in request-id order (deterministic)."""
    logs, labels, _ = window_files(window)
    if not logs or not labels:
        return []
    raw_label = {v: k for k, v in dataset.target.labels.items()}  # 0/1 -> the first raw label of each class
    con = duckdb.connect(config={"threads": 2})
    try:
        features = ", ".join(f'"{c}" VARCHAR' for c in logged)
        columns = {"request_id": "VARCHAR", "shadow": "BOOLEAN", "features": f"STRUCT({features})"}
        select = ", ".join(f'l.features."{c}" AS "{c}"' for c in logged)
        rows = con.execute(
            f"SELECT {select}, b.label FROM read_json(?, format='newline_delimited', columns=?, "
            "ignore_errors=true) l JOIN (SELECT request_id, arg_max(label, time) AS label FROM read_json(?, "
            "format='newline_delimited', columns={'request_id': 'VARCHAR', 'label': 'INTEGER', 'time': 'VARCHAR'}, "
            "ignore_errors=true) GROUP BY request_id) b USING (request_id) WHERE NOT coalesce(l.shadow, false) "
            "AND b.label IN (0, 1) ORDER BY l.request_id",
            [[str(p) for p in logs], columns, [str(p) for p in labels]],
        ).fetchall()
    finally:
        con.close()
    out = []
    for *values, label in rows:
        record = dict(zip(logged, values, strict=True))
        record[dataset.target.column] = raw_label[int(label)]
        out.append(record)
    return out


def export_csv(rows: list[dict[str, Any]], dataset: DatasetConfig) -> str:
    """The rows as CSV text with a header, in the data's column order; missing values as empty fields."""
    buf = io.StringIO()
    columns = dataset.file_columns
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return buf.getvalue()


def declare(system_yaml: Path, key: str, path: str, sha256: str) -> None:
    """Add the file to ``dataset.files`` and to ``split.extra_train`` in the system's config, keeping its comments."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the file's flow lists
    yaml.indent(mapping=2, sequence=4, offset=2)  # the repository's style: "  - item" under a key
    doc = yaml.load(system_yaml.read_text(encoding="utf-8"))
    files = doc.setdefault("dataset", {}).setdefault("files", {})
    files[key] = {
        "path": path,
        "sha256": sha256,
        "format": {
            "separator": ",",
            "header": True,
            "encoding": "utf-8",
            "quoting": "minimal",
            "missing_token": "",
        },
    }
    extra = doc.setdefault("split", {}).setdefault("extra_train", [])
    if key not in extra:
        extra.append(key)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    write_text_atomic(system_yaml, buf.getvalue())


def near_duplicates(rows: list[dict[str, Any]], evaluation: pd.DataFrame, columns: list[str]) -> int:
    """How many production rows equal a row of the evaluation splits on every input column but at most one (a
    covariate-shifted copy still matches). Such rows leak the evaluation data into training and make the retrained
    candidate's test figures optimistic; replayed windows, drawn from the test split, are all of this kind."""
    if not rows or evaluation.empty:
        return 0
    prod = pd.DataFrame(rows)[columns].astype("string").fillna("").reset_index(names="_row")
    ev = evaluation[columns].astype("string").fillna("").drop_duplicates()
    for c in columns:  # numbers as the log wrote them: 40 and 40.0 are one value
        prod[c] = prod[c].str.replace(r"\.0$", "", regex=True)
        ev[c] = ev[c].str.replace(r"\.0$", "", regex=True)
    hit: set[int] = set()
    for skip in columns:
        keys = [c for c in columns if c != skip]
        hit |= set(prod.merge(ev[keys].drop_duplicates(), on=keys)["_row"])
    return len(hit)


def rejection(before: dict[str, Any], after: dict[str, Any], max_regression: float) -> str | None:
    """Why the retrained system must not be proposed, or None: no candidate passed the gates, or the new champion's
    primary metric (same test split) is more than ``max_regression`` below the current champion's."""
    _, old = primary(before)
    champion, new = primary(after)
    if champion is None or new is None:
        return "no candidate passed the gates"
    if old is not None and new < old - max_regression:
        metric = after.get("primary_metric", "the primary metric")
        return (
            f"the retrained champion {champion} has {metric} {new:.4f}, more than {max_regression} below the "
            f"current champion's {old:.4f} on the same test split"
        )
    return None


def primary(gate: dict[str, Any]) -> tuple[str | None, float | None]:
    champion = gate.get("champion")
    return champion, (gate["models"][champion].get("primary") if champion else None)


def dirty_paths(allowed: list[str]) -> list[str]:
    """Changed or untracked paths outside ``allowed`` prefixes."""
    out = []
    for line in git("status", "--porcelain", "--untracked-files=all").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed):
            out.append(path)
    return out


def retrain(
    system: str, overrides: list[str], cfg: MonitorConfig, decision: dict[str, Any]
) -> dict[str, Any]:
    paths = SystemPaths(system)
    params = load_system("params.yaml", system)
    dataset = section(params, "dataset", DatasetConfig)
    logged = list(params["serving"]["prediction_log"]["feature_fields"])
    rows = labelled_rows(paths.production, dataset, [c for c in dataset.file_columns if c in logged])
    if len(rows) < cfg.ct.min_labelled_rows:
        return {
            "outcome": "deferred",
            "why": f"{len(rows)} labelled rows in the window, fewer than monitor.ct.min_labelled_rows "
            f"({cfg.ct.min_labelled_rows})",
        }
    inputs = [c for c in dataset.feature_columns if c in logged]
    evaluation = pd.concat([read_split(paths.processed, s) for s in ("valid", "test")], ignore_index=True)
    overlap = near_duplicates(rows, evaluation, inputs)
    text = export_csv(rows, dataset)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    name = f"production-{digest[:12]}.csv"
    gate_before = json.loads(paths.gate.read_text(encoding="utf-8"))
    data_file = Path(dataset.raw_dir) / name
    system_yaml = Path("conf") / system / "system.yaml"
    branch = f"ct/{system}/{digest[:12]}"
    if resolve_commit(Path.cwd(), f"refs/heads/{branch}") is not None:
        raise PipelineError(
            f"branch {branch} exists: this window's rows were already trained on (see its pull request); "
            f"delete the branch (git branch -D {branch}) to train on them again. Nothing was changed."
        )
    write_text_atomic(data_file, text)
    try:
        return rebuild(system, overrides, cfg, decision, rows, overlap, digest, system_yaml, gate_before)
    except BaseException:  # whatever stops it (a failed commit, ^C): the tree goes back as it was
        if git("rev-parse", "--abbrev-ref", "HEAD").strip() != branch:
            restore(system_yaml, data_file, paths.reports)
        raise


def rebuild(
    system: str,
    overrides: list[str],
    cfg: MonitorConfig,
    decision: dict[str, Any],
    rows: list[dict[str, Any]],
    overlap: int,
    digest: str,
    system_yaml: Path,
    gate_before: dict[str, Any],
) -> dict[str, Any]:
    """Declare the written rows (``production-<digest>.csv``), rebuild the system and judge the candidate: a branch
    ``ct/<system>/<digest>`` with the result, or the tree restored (outcome ``rejected``)."""
    paths = SystemPaths(system)
    dataset = section(load_system("params.yaml", system), "dataset", DatasetConfig)
    old_champion, old_primary = primary(gate_before)
    data_file = Path(dataset.raw_dir) / f"production-{digest[:12]}.csv"
    branch = f"ct/{system}/{digest[:12]}"
    declare(system_yaml, f"production_{digest[:12]}", data_file.name, digest)
    try:
        run([sys.executable, "-m", "pipelines.compose", *overrides], "composing params.yaml")
        run(["dvc", "repro", f"report@{system}"], f"dvc repro report@{system}")
    except PipelineError as err:  # e.g. the rows break the data contract: nothing is promoted
        restore(system_yaml, data_file, paths.reports)
        problems = [x.strip() for x in str(err).splitlines() if x.startswith("  ") or "ERROR" in x]
        return {
            "rows": len(rows),
            "outcome": "rejected",
            "why": "the rebuild failed: " + " | ".join(problems[-4:]),
        }
    gate = json.loads(paths.gate.read_text(encoding="utf-8"))
    new_champion, new_primary = primary(gate)
    result: dict[str, Any] = {
        "rows": len(rows),
        "near_duplicates_of_evaluation_rows": overlap,
        "data_file": str(data_file),
        "metric": gate.get("primary_metric"),
        "before": {
            "champion": old_champion,
            "primary": old_primary,
            "version": version(gate_before, old_champion),
        },
        "after": {"champion": new_champion, "primary": new_primary, "version": version(gate, new_champion)},
        "gates": {
            n: {"status": m.get("status"), "failed": m.get("failed", [])} for n, m in gate["models"].items()
        },
    }
    why = rejection(gate_before, gate, cfg.ct.max_regression)
    if why:
        restore(system_yaml, data_file, paths.reports)
        return result | {"outcome": "rejected", "why": why}
    git("switch", "-c", branch)
    changed = [
        str(system_yaml),
        "params.yaml",
        "dvc.lock",
        str(data_file),
        str(paths.production),
        str(paths.reports),
    ]
    git("add", "-A", "--", *changed, "reports/params")
    body = render(
        "ct_pr.md.j2", HERE / "templates", system=system, decision=decision, result=result, branch=branch
    )
    git("commit", "-q", "-m", f"CT {system}: retrain on {len(rows)} labelled production rows ({digest[:12]})")
    pr = Path("var/ct") / system / "pr.md"
    pr.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(pr, body)
    return result | {"outcome": "candidate", "branch": branch, "pr_body": str(pr)}


def version(gate: dict[str, Any], name: str | None) -> str | None:
    return gate["models"].get(name, {}).get("version") if name else None


def restore(system_yaml: Path, data_file: Path, reports: Path) -> None:
    """Put the config, params, lock and reports back as committed, and the workspace outputs with them (the
    collected window stays)."""
    git("checkout", "--", str(system_yaml), "params.yaml", "dvc.lock", str(reports))
    # the stage params as params.yaml gives them again: a key the retrain added (split.extra_train) has a file of
    # its own, which checking out would leave behind
    write_stage_params(load_params("params.yaml"), STAGE_PARAMS_DIR)
    data_file.unlink(missing_ok=True)
    run(["dvc", "checkout", "--quiet"], "dvc checkout")


ISSUE = """The monitor decided `{decision}` for `{system}` on the last window; continuous training promoted nothing.

{reasons}

See the system's monitoring page and `reports/{system}/monitor/monitor.json`. `block`: fix the feed first;
`rollback`: revert the champion by pull request (the previous version is in the registry's history) and find why
it breaks a gate that no drift explains.
"""


def publish(system: str, dry_run: bool) -> dict[str, Any]:
    """What CT's result asks of GitHub, done with the ``gh`` CLI: push the branch and open a pull request
    (``candidate``), or open an issue (``block``, ``rollback``, a rejected candidate); nothing for ``ok`` or a
    deferred retrain. The plan is written to ``var/ct/<system>/action.json``; ``dry_run`` stops there."""
    folder = Path("var/ct") / system
    if not (folder / "result.json").is_file():
        raise PipelineError(f"{folder / 'result.json'} not found: run make ct SYSTEM={system} first")
    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    decision, outcome = result["decision"], result.get("outcome")
    commands: list[list[str]] = []
    if outcome == "candidate":
        title = f"CT {system}: retrain on {result['rows']} labelled production rows"
        commands = [
            ["git", "push", "--set-upstream", "origin", result["branch"]],
            [
                "gh",
                "pr",
                "create",
                "--head",
                result["branch"],
                "--title",
                title,
                "--body-file",
                result["pr_body"],
            ],
        ]
        action = "pull_request"
    elif decision in ("block", "rollback") or outcome == "rejected":
        body = folder / "issue.md"
        reasons = "\n".join(f"- {r}" for r in result["reasons"])
        if outcome == "rejected":
            reasons += f"\n\nThe retrained candidate was rejected: {result.get('why')}"
        write_text_atomic(body, ISSUE.format(decision=decision, system=system, reasons=reasons))
        title = f"Monitor: {decision} for {system}" + (
            " (candidate rejected)" if outcome == "rejected" else ""
        )
        commands = [["gh", "issue", "create", "--title", title, "--body-file", str(body)]]
        action = "issue"
    else:
        action = "none"
    plan = {
        "system": system,
        "decision": decision,
        "outcome": outcome,
        "action": action,
        "commands": commands,
    }
    write_json_atomic(folder / "action.json", plan)
    if not dry_run:
        for cmd in commands:
            run(cmd, cmd[0] + " " + cmd[1])
    return plan


def fetch(system: str, source: Path) -> dict[str, int]:
    """Copy a system's production logs from ``source`` (``<source>/<system>/{predictions,labels,metrics}``: a
    mounted bucket or a synced folder) into ``logs/``, where ``make monitor`` collects them. Files are replaced,
    never appended: the source is the truth."""

    paths = SystemPaths(system)
    root = source / system
    if not root.is_dir():
        raise PipelineError(
            f"{root} does not exist: CT_SOURCE must hold <system>/predictions, labels, metrics"
        )
    copied = {}
    for sub, dest in (
        ("predictions", paths.prediction_logs),
        ("labels", paths.label_logs),
        ("metrics", Path("logs/metrics") / system),
    ):
        files = sorted(p for p in (root / sub).glob("*") if p.is_file())
        private_dir(dest)  # as the service keeps them: folder 0700, files 0600
        for f in files:
            copy_private(f, dest / f.name)
        copied[sub] = len(files)
    if not copied["predictions"]:
        raise PipelineError(
            f"{root / 'predictions'} holds no prediction log: nothing to monitor (is CT_SOURCE right?)"
        )
    return copied


@stage_main("ct")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True)
    parser.add_argument("--override", action="append", default=[], help="a Hydra override for params.yaml")
    parser.add_argument("--no-collect", action="store_true", help="judge the window already collected")
    parser.add_argument(
        "--publish", action="store_true", help="act on the last result (gh): PR, issue or nothing"
    )
    parser.add_argument("--dry-run", action="store_true", help="with --publish: write the plan, run nothing")
    parser.add_argument("--fetch", type=Path, metavar="SOURCE", help="copy the production logs from SOURCE")
    args = parser.parse_args(argv)
    prepare_runner(Path.cwd())  # on a runner: the bot's identity, and pushes with GH_TOKEN
    if args.fetch:
        print(f"[ct] {args.system}: fetched {fetch(args.system, args.fetch)} from {args.fetch}")
        return
    if args.publish:
        plan = publish(args.system, args.dry_run)
        print(f"[ct] {args.system}: {plan['action']}" + ("" if not args.dry_run else " (dry run)"))
        for cmd in plan["commands"]:
            print("  " + shlex.join(cmd))
        return
    paths = SystemPaths(args.system)
    params = load_system("params.yaml", args.system)
    cfg = section(params, "monitor", MonitorConfig)
    allowed = [
        str(paths.production),
        str(paths.monitor_reports),
        "dvc.lock",
        "logs",
        "var",
    ]  # make monitor's own
    dirty = dirty_paths(allowed)
    if dirty:
        raise PipelineError(
            "the working tree has changes CT would commit with its own; commit or stash them first:\n  "
            + "\n  ".join(dirty[:20])
        )
    for stale in (
        "result.json",
        "action.json",
    ):  # a failed run leaves no result for make ct-publish to act on
        (Path("var/ct") / args.system / stale).unlink(missing_ok=True)
    if not args.no_collect:
        run(
            [sys.executable, "-m", "pipelines.monitor", "--system", args.system, "--collect"],
            "collecting the window",
        )
    run(["dvc", "repro", f"monitor@{args.system}"], f"dvc repro monitor@{args.system}")
    decision = json.loads((paths.monitor_reports / "decision.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {
        "system": args.system,
        "decision": decision["decision"],
        "reasons": decision["reasons"],
    }
    if decision["decision"] == "retrain":
        result |= retrain(args.system, args.override, cfg, decision)
    else:
        result["outcome"] = "none"
    write_json_atomic(Path("var/ct") / args.system / "result.json", result)
    print(f"[ct] {args.system}: decision {result['decision']}, outcome {result['outcome']}")
    for key in ("why", "branch", "pr_body"):
        if result.get(key):
            print(f"[ct] {key}: {result[key]}")


if __name__ == "__main__":
    main()
