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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.gitops import resolve_commit
from pipelines.core.io import write_text_atomic
from pipelines.core.render import render

OUT = Path("var/pr-report.md")
METRICS = ("roc_auc", "pr_auc", "f1", "brier", "ece", "log_loss")  # the champion table, in this order
PLOTS = ("roc", "pr", "calibration", "groups")
WORKTREE = "working tree"


class Unreadable(ValueError):
    """A file the report cannot use: its part of the report says so, ``(unreadable: <file>: <why>)``."""


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
        """The file's text, None when it does not exist; :class:`Unreadable` when it is not UTF-8 text."""
        if self.rev is None:
            file = self.repo / path
            if not file.exists():
                return None
            try:
                data = file.read_bytes()
            except OSError as err:
                raise Unreadable(f"{path} at {self.label}: {err.strerror}") from None
        else:
            proc = subprocess.run(
                ["git", "show", f"{self.sha}:{path}"], cwd=self.repo, capture_output=True, check=False
            )
            if proc.returncode != 0:
                return None
            data = proc.stdout
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Unreadable(
                f"{path} at {self.label}: not UTF-8 ({err.reason} at byte {err.start})"
            ) from None

    def json(self, path: str) -> dict[str, Any] | None:
        """A JSON object, None when the file does not exist; :class:`Unreadable` for anything else."""
        return self._mapping(path, json.loads, "JSON", json.JSONDecodeError)

    def params(self) -> dict[str, Any]:
        return self._mapping("params.yaml", yaml.safe_load, "YAML", yaml.YAMLError) or {}

    def _mapping(
        self, path: str, parse: Any, kind: str, errors: type[Exception] | tuple[type[Exception], ...]
    ) -> dict[str, Any] | None:
        text = self.text(path)
        if text is None:
            return None
        try:
            data = parse(text)
        except errors as err:
            raise Unreadable(f"{path} at {self.label}: not valid {kind}: {err}") from None
        if not isinstance(data, dict):
            raise Unreadable(f"{path} at {self.label}: a {kind} {type(data).__name__}, expected an object")
        return data


T = TypeVar("T")


def guarded(files: str, part: Callable[[], T]) -> T | str:
    """``part()``, or ``(unreadable: <file>: <why>)`` when a file it reads is missing a key, holds a value of the
    wrong type or cannot be parsed: one unreadable file spoils its own part of the report, not the report."""
    try:
        return part()
    except Unreadable as err:
        return f"(unreadable: {one_line(err)})"
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as err:
        return f"(unreadable: {files}: {type(err).__name__}: {one_line(err)})"


def one_line(err: Exception) -> str:
    return " ".join(str(err).split()).replace("|", "\\|")


def number(value: Any, what: str) -> float | None:
    """A metric's number (None when absent); a value of another type is an error naming ``what``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unreadable(f"{what} is {value!r}, expected a number")
    return float(value)


def mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is a {type(value).__name__}, expected a mapping")
    return value


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


def metric(entry: Any, what: str) -> tuple[float | None, float | None, float | None]:
    if entry is None:
        return None, None, None
    entry = mapping(entry, what)
    return tuple(number(entry.get(k), f"{what}.{k}") for k in ("value", "ci_low", "ci_high"))  # type: ignore[return-value]


def with_interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if low is not None and high is not None else f"{value:.4f}"


def delta(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{b - a:+.4f}"


def deployed(rev: Revision, path: str) -> str | None:
    """The version a desired-state file names, with its champion (``v1.0.3 (hmda-logreg:...)``)."""
    try:
        text = rev.text(path)
        if text is None:
            return None
        spec = mapping(mapping(yaml.safe_load(text), path).get("spec"), f"{path}: spec")
    except (yaml.YAMLError, Unreadable) as err:
        return f"(unreadable: {path}: {one_line(err)})"
    champion = spec.get("champion")
    return f"{spec.get('version')}" + (f" ({champion})" if champion else "")


def gate_models(
    bg: dict[str, Any], hg: dict[str, Any], base: Revision, head: Revision, path: str
) -> list[dict[str, str]]:
    bms = mapping(bg.get("models"), f"{path} at {base.label}: models")
    hms = mapping(hg.get("models"), f"{path} at {head.label}: models")
    models = []
    for name in sorted(set(bms) | set(hms)):
        b = mapping(bms.get(name), f"{path} at {base.label}: models.{name}")
        h = mapping(hms.get(name), f"{path} at {head.label}: models.{name}")
        hp = number(h.get("primary"), f"{path} at {head.label}: models.{name}.primary")
        bp = number(b.get("primary"), f"{path} at {base.label}: models.{name}.primary")
        failed = h.get("failed", [])
        if not isinstance(failed, list):
            raise Unreadable(f"{path} at {head.label}: models.{name}.failed is {failed!r}, expected a list")
        models.append(
            {
                "name": str(name),
                "base_status": str(b.get("status", "absent")),
                "head_status": str(h.get("status", "absent")),
                "value": f"{hp:.4f}" if hp is not None else "n/a",
                "failed": ", ".join(map(str, failed)),
                "delta": delta(bp, hp),
            }
        )
    return models


def champion_metrics(hm: dict[str, Any], bm: dict[str, Any] | None, path: str) -> list[dict[str, str]]:
    metrics = []
    for name in METRICS:
        value, low, high = metric(hm.get(name), f"{path}: {name}")
        old, old_low, old_high = metric((bm or {}).get(name), f"{path} (base): {name}")
        overlap = "n/a"
        if low is not None and high is not None and old_low is not None and old_high is not None:
            overlap = "yes" if low <= old_high and old_low <= high else "**no**"
        metrics.append(
            {
                "name": name,
                "base": with_interval(old, old_low, old_high),
                "head": with_interval(value, low, high),
                "delta": delta(old, value),
                "overlap": overlap,
            }
        )
    return metrics


def contract_line(hv: dict[str, Any] | None, bv: dict[str, Any] | None, path: str) -> str:
    if hv is None:
        return "no validation report"
    broken = [
        f"{table}: {len(t.get('errors') or [])} error(s)"
        for table, t in mapping(hv.get("tables"), f"{path}: tables").items()
        if isinstance(t, dict) and not t.get("passed", True)
    ]
    contract = "passed" if hv.get("passed") else f"**failed** ({'; '.join(broken) or 'see the report'})"
    contract += f", {len(hv.get('rules') or [])} rules"
    if bv is not None and bv.get("passed") != hv.get("passed"):
        contract += f" (was {'passed' if bv.get('passed') else 'failed'})"
    return contract


def monitor_line(hd: dict[str, Any] | None, path: str) -> str | None:
    if hd is None:
        return None
    reasons = hd.get("reasons") or []
    if not isinstance(reasons, list):
        raise Unreadable(f"{path}: reasons is {reasons!r}, expected a list")
    return f"`{hd.get('decision')}` ({hd.get('status')}): " + "; ".join(map(str, reasons[:3]))


Pair = tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]


def pair(base: Revision, head: Revision, base_path: str | None, head_path: str | None) -> Pair:
    """A JSON file at both revisions (None where it is absent or not asked for), and why one is unreadable."""
    try:
        return (
            base.json(base_path) if base_path else None,
            head.json(head_path) if head_path else None,
            None,
        )
    except Unreadable as err:
        return None, None, f"(unreadable: {one_line(err)})"


def system_report(base: Revision, head: Revision, system: str, repository: str) -> dict[str, Any] | None:
    """One system's section, or None when nothing the report shows changed. A part whose files cannot be read
    says so, ``(unreadable: <file>: <why>)``, and the rest of the report is still made."""
    params = guarded("params.yaml", lambda: param_changes(base.params(), head.params(), system))
    gate_path = f"reports/{system}/gate.json"
    bg, hg, gate_error = pair(base, head, gate_path, gate_path)
    bg, hg = bg or {}, hg or {}
    champion = hg.get("champion") if isinstance(hg.get("champion"), str) else None
    base_champion = bg.get("champion") if isinstance(bg.get("champion"), str) else None
    contract_path, decision_path = (
        f"reports/{system}/data/validation.json",
        f"reports/{system}/monitor/decision.json",
    )
    validation = pair(base, head, contract_path, contract_path)
    decision = pair(base, head, decision_path, decision_path)
    hm_path = f"reports/{system}/eval/{champion}/metrics.json"
    bm, hm, eval_error = pair(
        base,
        head,
        f"reports/{system}/eval/{base_champion}/metrics.json" if base_champion else None,
        hm_path if champion else None,
    )
    deployments = []
    for env in ("staging", "prod"):
        path = f"services/k8s/{system}/{env}/release.yaml"
        before, after = (deployed(r, path) for r in (base, head))
        if before != after:
            deployments.append(f"{env} {before or 'absent'} → {after or 'absent'}")
    errors = [isinstance(params, str), gate_error, validation[2], decision[2], eval_error]
    same = bg == hg and validation[0] == validation[1] and decision[0] == decision[1] and bm == hm
    if not any(errors) and not params and not deployments and same:
        return None
    primary = str(hg.get("primary_metric") or bg.get("primary_metric") or "roc_auc")
    models: list[dict[str, str]] | str = ""  # an unreadable gate report: the gate line says why
    if not gate_error:
        models = guarded(gate_path, lambda: gate_models(bg, hg, base, head, gate_path))
    metrics: list[dict[str, str]] | str = eval_error or []
    if not eval_error and hm is not None:
        metrics = guarded(hm_path, lambda: champion_metrics(hm, bm, hm_path))
    if gate_error:
        gate_line = gate_error
    elif champion:
        gate_line = f"champion {champion}, challenger {hg.get('challenger') or 'none'}"
    else:
        gate_line = "**no model passed the blocking gates**"
    contract = validation[2] or guarded(
        contract_path, lambda: contract_line(validation[1], validation[0], contract_path)
    )
    monitor = decision[2] or guarded(decision_path, lambda: monitor_line(decision[1], decision_path))
    plots = []
    if champion and head.rev is not None:
        for name in PLOTS:
            path = f"reports/{system}/eval/{champion}/plots/{name}.json"
            if guarded(path, lambda p=path: head.text(p)) is not None:  # type: ignore[misc]
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
        "base_champion": base_champion,
        "head_champion": champion,
        "champion_changes": not gate_error and base_champion != champion,
        "gate_line": gate_line,
        "contract": contract,
        "monitor": monitor,
        "plots": plots,
        "deployments": deployments,
    }


def report(repo: Path, base_rev: str, head_rev: str | None) -> str:
    """The report; the systems are those of either revision's params.yaml (one of them may be unreadable: its
    sections say so)."""
    base, head = Revision(repo, base_rev), Revision(repo, head_rev)
    hp, bp = guarded("params.yaml", head.params), guarded("params.yaml", base.params)
    if isinstance(hp, str) and isinstance(bp, str):
        raise PipelineError(f"no revision's params.yaml can be read: {hp}; {bp}")
    systems: list[str] = []
    for params in (hp, bp):
        names = params.get("systems") if isinstance(params, dict) else None
        systems += [
            s for s in (names if isinstance(names, list) else []) if isinstance(s, str) and s not in systems
        ]
    shared = hp.get("report") if isinstance(hp, dict) else None
    repository = str(shared.get("repository", "") if isinstance(shared, dict) else "").rstrip("/")
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
