"""The pull-request report: what a change does to every system it touches, from two revisions of the repository.

``make pr-report BASE=<rev>`` (``python -m pipelines.pr_report --base <rev> [--head <rev>]``) compares the committed
params and reports at ``base`` with those at ``head`` (default: the working tree, after ``make pipeline``) and
renders Markdown (pipelines/templates/pr_report.md.j2) to ``var/pr-report.md`` and stdout. Per system whose params,
gate report, metrics, data-contract verdict or monitoring decision differ: the params changed (dotted keys), the
champion's metrics with their deltas and bootstrap intervals, every model's gate verdict and whether the champion
changes, the data contract's verdict, the monitoring decision, and links to the champion's plots.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.gitops import resolve_commit
from pipelines.core.io import write_text_atomic
from pipelines.core.render import render

OUT = Path("var/pr-report.md")
METRICS = ("roc_auc", "pr_auc", "f1", "brier", "ece", "log_loss")  # the champion table, in this order
PLOTS = ("roc", "pr", "calibration", "groups")
WORKTREE = "working tree"


class Revision:
    """Files at a git revision, or in the working tree when ``rev`` is None."""

    def __init__(self, repo: Path, rev: str | None) -> None:
        self.repo, self.rev = repo, rev
        if rev is not None:
            sha = resolve_commit(repo, rev)
            if sha is None:
                raise PipelineError(f"--base/--head {rev!r} is not a revision of this repository")
            self.sha = sha

    @property
    def label(self) -> str:
        return WORKTREE if self.rev is None else f"{self.rev} ({self.sha[:8]})"

    def text(self, path: str) -> str | None:
        if self.rev is None:
            file = self.repo / path
            return file.read_text(encoding="utf-8") if file.is_file() else None
        proc = subprocess.run(
            ["git", "show", f"{self.sha}:{path}"], cwd=self.repo, capture_output=True, text=True, check=False
        )
        return proc.stdout if proc.returncode == 0 else None

    def json(self, path: str) -> dict[str, Any] | None:
        text = self.text(path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PipelineError(f"{path} at {self.label} is not valid JSON: {err}") from None
        return data if isinstance(data, dict) else None

    def params(self) -> dict[str, Any]:
        text = self.text("params.yaml")
        if text is None:
            return {}
        data = yaml.safe_load(text)
        return data if isinstance(data, dict) else {}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return {prefix: value}


def shown(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    text = text.replace("|", "\\|")
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def param_changes(base: dict[str, Any], head: dict[str, Any], system: str) -> list[dict[str, str]]:
    a, b = flatten(base.get(system, {}), system), flatten(head.get(system, {}), system)
    for shared in ("trainer", "report"):
        a |= flatten(base.get(shared, {}), shared)
        b |= flatten(head.get(shared, {}), shared)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [{"key": k, "base": shown(a.get(k)), "head": shown(b.get(k))} for k in keys]


def metric(entry: Any) -> tuple[float | None, float | None, float | None]:
    if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)):
        return entry["value"], entry.get("ci_low"), entry.get("ci_high")
    return None, None, None


def with_interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if low is not None and high is not None else f"{value:.4f}"


def delta(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{b - a:+.4f}"


def deployed(text: str | None) -> str | None:
    """The version a desired-state file names, with its champion (``v1.0.3 (hmda-logreg:...)``)."""
    if text is None:
        return None
    try:
        spec = (yaml.safe_load(text) or {}).get("spec") or {}
    except (yaml.YAMLError, AttributeError):
        return "(unreadable)"
    champion = spec.get("champion")
    return f"{spec.get('version')}" + (f" ({champion})" if champion else "")


def system_report(base: Revision, head: Revision, system: str, repository: str) -> dict[str, Any] | None:
    """One system's section, or None when nothing the report shows changed."""
    bp, hp = base.params(), head.params()
    params = param_changes(bp, hp, system)
    bg = base.json(f"reports/{system}/gate.json") or {}
    hg = head.json(f"reports/{system}/gate.json") or {}
    bv = base.json(f"reports/{system}/data/validation.json")
    hv = head.json(f"reports/{system}/data/validation.json")
    bd = base.json(f"reports/{system}/monitor/decision.json")
    hd = head.json(f"reports/{system}/monitor/decision.json")
    champion = hg.get("champion")
    hm = head.json(f"reports/{system}/eval/{champion}/metrics.json") if champion else None
    bm = base.json(f"reports/{system}/eval/{bg.get('champion')}/metrics.json") if bg.get("champion") else None
    deployments = []
    for env in ("staging", "prod"):
        path = f"services/k8s/{system}/{env}/release.yaml"
        before, after = (deployed(r.text(path)) for r in (base, head))
        if before != after:
            deployments.append(f"{env} {before or 'absent'} → {after or 'absent'}")
    if not params and not deployments and bg == hg and bv == hv and bd == hd and bm == hm:
        return None
    primary = hg.get("primary_metric") or bg.get("primary_metric") or "roc_auc"
    models = []
    for name in sorted(set(bg.get("models", {})) | set(hg.get("models", {}))):
        b, h = bg.get("models", {}).get(name, {}), hg.get("models", {}).get(name, {})
        models.append(
            {
                "name": name,
                "base_status": b.get("status", "absent"),
                "head_status": h.get("status", "absent"),
                "value": f"{h['primary']:.4f}" if isinstance(h.get("primary"), (int, float)) else "n/a",
                "failed": ", ".join(h.get("failed", [])),
                "delta": delta(b.get("primary"), h.get("primary")),
            }
        )
    metrics = []
    if hm is not None:
        for name in METRICS:
            value, low, high = metric(hm.get(name))
            old, old_low, old_high = metric((bm or {}).get(name))
            overlap = "n/a"
            if None not in (low, high, old_low, old_high):
                overlap = "yes" if low <= old_high and old_low <= high else "**no**"  # type: ignore[operator]
            metrics.append(
                {
                    "name": name,
                    "base": with_interval(old, old_low, old_high),
                    "head": with_interval(value, low, high),
                    "delta": delta(old, value),
                    "overlap": overlap,
                }
            )
    gate_line = (
        f"champion {champion}, challenger {hg.get('challenger') or 'none'}"
        if champion
        else "**no model passed the blocking gates**"
    )
    if hv is None:
        contract = "no validation report"
    else:
        broken = [
            f"{table}: {len(t.get('errors', []))} error(s)"
            for table, t in (hv.get("tables") or {}).items()
            if isinstance(t, dict) and not t.get("passed", True)
        ]
        contract = "passed" if hv.get("passed") else f"**failed** ({'; '.join(broken) or 'see the report'})"
        contract += f", {len(hv.get('rules', []))} rules"
        if bv is not None and bv.get("passed") != hv.get("passed"):
            contract += f" (was {'passed' if bv.get('passed') else 'failed'})"
    monitor = None
    if hd is not None:
        monitor = f"`{hd.get('decision')}` ({hd.get('status')}): " + "; ".join(hd.get("reasons", [])[:3])
    plots = []
    if champion and head.rev is not None:
        for name in PLOTS:
            path = f"reports/{system}/eval/{champion}/plots/{name}.json"
            if head.text(path) is not None:
                plots.append({"name": name, "url": f"{repository}/blob/{head.sha}/{path}"})
    elif champion:
        plots = [
            {"name": n, "url": f"reports/{system}/eval/{champion}/plots/{n}.json"}
            for n in PLOTS
            if (head.repo / f"reports/{system}/eval/{champion}/plots/{n}.json").is_file()
        ]
    return {
        "name": system,
        "params": params,
        "primary": primary,
        "models": models,
        "metrics": metrics,
        "base_champion": bg.get("champion"),
        "head_champion": champion,
        "champion_changes": bg.get("champion") != champion,
        "gate_line": gate_line,
        "contract": contract,
        "monitor": monitor,
        "plots": plots,
        "deployments": deployments,
    }


def report(repo: Path, base_rev: str, head_rev: str | None) -> str:
    base, head = Revision(repo, base_rev), Revision(repo, head_rev)
    hp = head.params()
    systems = [s for s in hp.get("systems", []) if isinstance(s, str)]
    systems += [s for s in base.params().get("systems", []) if isinstance(s, str) and s not in systems]
    repository = str((hp.get("report") or {}).get("repository", "")).rstrip("/")
    sections = [r for s in systems if (r := system_report(base, head, s, repository)) is not None]
    return render("pr_report.md.j2", head_label=head.label, base_label=base.label, systems=sections)


def comment(body: Path, pr: str, dry_run: bool) -> None:
    """Post ``body`` on pull request ``pr`` with gh, replacing this report's last comment."""
    if not pr.isdigit():
        raise PipelineError(f"PR={pr!r}: expected a pull-request number")
    if not body.is_file():
        raise PipelineError(f"{body} not found: run make pr-report BASE=<rev> first")
    command = ["gh", "pr", "comment", pr, "--body-file", str(body), "--edit-last", "--create-if-none"]
    print(("would run: " if dry_run else "") + " ".join(command))
    if not dry_run and subprocess.run(command, check=False).returncode != 0:
        raise PipelineError(f"gh pr comment {pr} failed")


@stage_main("pr-report")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="the revision the change is compared with (origin/main)")
    parser.add_argument("--head", default=None, help="the changed revision (default: the working tree)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--comment", metavar="PR", help="post the report on pull request PR (gh), editing the last"
    )
    parser.add_argument("--dry-run", action="store_true", help="with --comment: print the gh command only")
    args = parser.parse_args(argv)
    if args.comment is not None:
        comment(args.out, args.comment, args.dry_run)
        return
    if args.base is None:
        raise PipelineError(
            "--base is required: the revision to compare with (make pr-report BASE=origin/main)"
        )
    text = report(Path.cwd(), args.base, args.head)
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
