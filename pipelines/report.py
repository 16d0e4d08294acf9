"""Stage ``report``: one system's documents, rendered from measured data and that system's curated text.

Runs once per system. Renders site/templates (Jinja) with the system's outputs (evaluations, gates, profile,
contract, release and package metadata, training curves) and its curated YAML in ``site/curated/<system>/``, into
``reports/<system>/site``: ``docs/`` (the system's section of the site) and ``nav.yml`` (its navigation). Pages: a
model card per model (Mitchell et al.'s nine sections), the datasheet (Gebru et al.'s 57 questions), metrics pages
with the leaderboard against the gates, the risk log mapped to the NIST AI RMF with its coverage table, the serving
page. Nothing here reads git, so the same commit and data give the same bytes; the site step assembles every
system's section with the platform pages, the portfolio, history and changelog. Every page ends with its lineage. Completeness is enforced: an empty model-card section,
an unanswered datasheet question or a risk with an invalid NIST subcategory stops the stage, naming it.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipelines.core import plots
from pipelines.core.config import DatasetConfig, load_system, section
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_json
from pipelines.core.lineage import params_hash
from pipelines.core.nist import Framework
from pipelines.core.paths import SystemPaths
from pipelines.core.render import environment
from pipelines.core.workspace import ROOT

SITE = ROOT / "site"
CARD_SECTIONS = [
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
]
DATASHEET_COUNTS = {
    "motivation": 4,
    "composition": 16,
    "collection": 12,
    "preprocessing": 4,
    "uses": 6,
    "distribution": 7,
    "maintenance": 8,
}
# Pages of each system's section read from git history; the site step renders them when it publishes.
GIT_PAGES = {"metrics/history.md": "history.md.j2", "monitoring/history.md": "monitoring_history.md.j2"}
LEVELS = ("low", "medium", "high")
STATUSES = ("open", "monitoring", "mitigated", "accepted", "closed")


class IncompleteReport(PipelineError):
    """A document misses something it must contain."""


def _json(path: Path, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise PipelineError(f"{path} not found: run the stages before report (dvc repro report)")
        return None
    return read_json(path)


def _curves(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """dvclive's per-metric TSV files (step, value) under ``folder``."""
    series: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        name = str(path.relative_to(folder).with_suffix(""))
        if name in ("epoch", "step"):
            continue
        with path.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        key = next((k for k in rows[0] if k not in ("step", "timestamp")), None) if rows else None
        if key:
            series[name] = [(float(r["step"]), float(r[key])) for r in rows]
    return series


def target_display(target: dict[str, Any]) -> dict[str, str]:
    """How pages name the two classes: ``target.display`` from the dataset config, else the raw labels."""
    by_value = {v: k for k, v in target["labels"].items()}
    display = target.get("display") or {}
    return {
        "positive": display.get("positive") or by_value[1],
        "negative": display.get("negative") or by_value[0],
    }


def gather(params: dict[str, Any], reports: Path, artifacts: Path) -> dict[str, Any]:
    """Everything the templates show, read from the pipeline's outputs."""
    names = list(params["models"])
    gate = _json(reports / "gate.json")
    ctx: dict[str, Any] = {
        "reports_dir": reports,
        "params": params,
        "report": params["report"],
        "dataset": params["dataset"],
        "evaluation": params["evaluation"],
        "target": target_display(params["dataset"]["target"]),
        "gate": gate,
        "names": names,
        "evals": {n: _json(reports / "eval" / n / "evaluation.json") for n in names},
        "metrics": {n: _json(reports / "eval" / n / "metrics.json") for n in names},
        "manifests": {n: _json(artifacts / "candidates" / n / "predictor.json") for n in names},
        "releases": {
            r: _json(artifacts / r / "release.json", required=False) for r in ("champion", "challenger")
        },
        "profile": _json(reports / "data" / "profile.json"),
        "validation": _json(reports / "data" / "validation.json"),
        "split": _json(reports / "data" / "split.json"),
        "package": _json(reports / "package.json", required=False),
        "monitoring": _json(reports / "monitor" / "monitor.json", required=False),
        "curves": {n: _curves(reports / "train" / n / "plots" / "metrics") for n in names},
    }
    ctx["releases"] = {r: v for r, v in ctx["releases"].items() if v and v.get("name")}
    ctx["lineage"] = page_lineage(params, gate, ctx["releases"].get("champion"))
    return ctx


def page_lineage(
    params: dict[str, Any], gate: dict[str, Any], champion: dict[str, Any] | None
) -> dict[str, Any]:
    """What every page's lineage block names: params hash, champion version, verdicts, data hashes (sha256 of the
    raw and split files, as the champion's ``release.json`` records them; empty without a champion).

    No git commit: the report is a DVC output, and an output that named a commit could never match the
    lock file committed with it. The site step (``pipelines.site``) adds the commit when it publishes.
    """
    return {
        "data": (champion or {}).get("data", {}),
        "params_hash": params_hash(params)[:16],
        "champion": gate.get("champion"),
        "champion_version": gate["models"][gate["champion"]]["version"] if gate.get("champion") else None,
        "verdicts": {
            s: sum(1 for m in gate["models"].values() if m["status"] == s)
            for s in ("passed", "passed with warnings", "blocked")
        },
    }


# -- datasheet ------------------------------------------------------------------------------------------------


def computed_answers(ctx: dict[str, Any], dataset: DatasetConfig) -> dict[str, Any]:
    """Tables the datasheet computes from the pipeline's own outputs."""
    validation, split, profile = ctx["validation"], ctx["split"], ctx["profile"]
    train = profile["splits"][profile["reference"]]
    return {
        "rows": {
            "files": {k: v["stats"]["rows"] for k, v in validation["tables"].items()},
            "splits": {k: v["rows"] for k, v in split["splits"].items()},
        },
        "columns": [
            {"name": c, "type": t, "rule": dataset.contract.columns.get(c)}
            for c, t in dataset.columns.items()
        ],
        "label": {
            "column": dataset.target.column,
            "labels": dataset.target.labels,
            "rates": {k: v["positive_rate"] for k, v in split["splits"].items()},
        },
        "missing": {
            k: {"rows": v["stats"]["rows"], "missing": v["stats"]["missing"]}
            for k, v in validation["tables"].items()
        },
        "splits": split["splits"],
        "duplicates": {k: v["stats"]["duplicate_rows"] for k, v in validation["tables"].items()},
        "subgroups": {name: groups for name, groups in train["groups"].items()},
        "preprocessing": validation["rules"],
        "files": {
            k: {"path": f"{dataset.raw_dir}/{f.path}", "sha256": f.sha256} for k, f in dataset.files.items()
        },
    }


def check_datasheet(sheet: dict[str, Any], computed: dict[str, Any]) -> None:
    problems = []
    sections = {s["id"]: s for s in sheet["sections"]}
    for sid, count in DATASHEET_COUNTS.items():
        if sid not in sections:
            problems.append(f"section '{sid}' is missing")
            continue
        questions = sections[sid]["questions"]
        if len(questions) != count:
            problems.append(f"section '{sid}' has {len(questions)} questions, Gebru et al. ask {count}")
        for q in questions:
            answer = str(q.get("answer") or "").strip()
            key = q.get("computed")
            if key and key not in computed:
                problems.append(f"{sid}.{q['id']}: computed answer '{key}' does not exist")
            elif not answer and not (key and computed.get(key)):
                problems.append(f"{sid}.{q['id']} ({q['question']!r}) has no answer")
    if problems:
        raise IncompleteReport(
            "datasheet incomplete (site/curated/<system>/datasheet.yaml):\n  " + "\n  ".join(problems)
        )


# -- risks ----------------------------------------------------------------------------------------------------


def measured_risks(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Risks raised by the measured results of the served models."""
    risks: list[dict[str, Any]] = []
    gate, cfg = ctx["gate"], ctx["report"]["risk"]
    served = [(role, rel["name"]) for role, rel in ctx["releases"].items()]
    for role, name in served:
        verdicts = gate["models"][name]["gates"]
        for v in verdicts:
            if v["verdict"] in ("warn", "fail") and v["metric"].startswith("fairness."):
                attribute = v["metric"].split(".")[1]
                risks.append(
                    {
                        "title": f"Fairness gate {v['gate']} {'warned' if v['verdict'] == 'warn' else 'failed'} for the {role} ({name})",
                        "nist": "MEASURE 2.11",
                        "description": f"{v['detail']}. Disparity by {attribute} in the {role}'s decisions.",
                        "likelihood": "high",
                        "impact": "medium" if v["verdict"] == "warn" else "high",
                        "owner": "product",
                        "status": "open",
                        "mitigation": "Human review of the trade-off before promotion; compare the mitigated candidate; "
                        "keep the use out of decisions about people.",
                        "evidence": f"metrics/{name}.md",
                    }
                )
            if v["verdict"] in ("warn", "fail") and v["metric"].startswith("behaviour."):
                kind = v["metric"].split(".")[1]
                risks.append(
                    {
                        "title": f"Behavioural gate {v['gate']} {'warned' if v['verdict'] == 'warn' else 'failed'} for the {role} ({name})",
                        # a counterfactual flip is a fairness finding; the others concern validity and robustness
                        "nist": "MEASURE 2.11" if kind == "counterfactual" else "MEASURE 2.5",
                        "description": f"{v['detail']}.",
                        "likelihood": "high",
                        "impact": "medium" if v["verdict"] == "warn" else "high",
                        "owner": "ml",
                        "status": "open",
                        "mitigation": "Review the behavioural table on the model card; constrain the model "
                        "(e.g. monotonic constraints) or accept the behaviour with a written reason.",
                        "evidence": f"metrics/{name}.md",
                    }
                )
        ece = ctx["metrics"][name]["ece"]["value"]
        if ece is not None and ece > cfg["ece_threshold"]:
            risks.append(
                {
                    "title": f"Poor calibration of the {role} ({name})",
                    "nist": "MEASURE 2.5",
                    "description": f"Expected calibration error {ece:.3f} exceeds {cfg['ece_threshold']}; scores misstate probabilities.",
                    "likelihood": "medium",
                    "impact": "medium",
                    "owner": "ml",
                    "status": "open",
                    "mitigation": "Enable post-hoc calibration (models.<name>.calibration) and re-evaluate.",
                    "evidence": f"metrics/{name}.md",
                }
            )
    risks += monitoring_risks(ctx.get("monitoring"))
    for i, risk in enumerate(risks, start=1):
        risk["id"] = f"M-{i:03d}"
        risk["source"] = "measured"
    return risks


MONITOR_RISKS = {  # decision -> (title, NIST subcategory, owner, mitigation)
    "block": (
        "Broken input feed in production",
        "MEASURE 2.4",
        "sre",
        "Fix the upstream feed; retraining is blocked until a window passes the broken-feed checks.",
    ),
    "rollback": (
        "The live champion breaks a gate in production",
        "MANAGE 4.1",
        "ml",
        "Roll back to the previous champion by pull request and investigate the release or a changed concept.",
    ),
    "retrain": (
        "Drift or decay in production traffic",
        "MEASURE 2.4",
        "ml",
        "make ct builds a candidate on the labelled window; the same gates judge it in a pull request.",
    ),
}


def monitoring_risks(monitoring: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Risks raised by the monitor's decision on the last collected window (none for ok). Fairness drift is
    MEASURE 2.11; drift and decay MEASURE 2.4 (monitored in production) with the response under MANAGE 4.1."""
    if not monitoring or monitoring.get("decision") not in MONITOR_RISKS:
        return []
    title, nist, owner, mitigation = MONITOR_RISKS[monitoring["decision"]]
    reasons = monitoring.get("reasons", [])
    fair = [r for r in reasons if r.startswith("fairness drift")]
    risks = [
        {
            "title": title,
            "nist": nist,
            "description": f"Window of {monitoring['rows']} requests ({monitoring.get('first')} to "
            f"{monitoring.get('last')}): " + "; ".join(r for r in reasons if r not in fair) + ".",
            "likelihood": "high",
            "impact": "high",
            "owner": owner,
            "status": "open",
            "mitigation": mitigation,
            "evidence": "monitoring/index.md",
        }
    ]
    if fair:
        risks.append(
            {
                "title": "Fairness drift in production",
                "nist": "MEASURE 2.11",
                "description": "; ".join(fair) + ".",
                "likelihood": "medium",
                "impact": "high",
                "owner": "product",
                "status": "open",
                "mitigation": "Review the groups' rates on the monitoring page; retrain or mitigate through the gates.",
                "evidence": "monitoring/index.md",
            }
        )
    if monitoring["decision"] != "block":
        risks.append(
            {
                "title": "Respond to the monitor's decision",
                "nist": "MANAGE 4.1",
                "description": f"The monitor decided `{monitoring['decision']}`; the continuous-training workflow "
                "(ct.yml) opens a pull request for retrain and an issue for rollback.",
                "likelihood": "high",
                "impact": "medium",
                "owner": "ml",
                "status": "open",
                "mitigation": mitigation,
                "evidence": "monitoring/index.md",
            }
        )
    return risks


def check_risks(
    risks: list[dict[str, Any]], framework: Framework, pages: set[str], owners: dict[str, str]
) -> None:
    problems = []
    seen: set[str] = set()
    for risk in risks:
        rid = risk.get("id", "?")
        if rid in seen:
            problems.append(f"{rid}: duplicate id")
        seen.add(rid)
        for key in (
            "title",
            "nist",
            "description",
            "likelihood",
            "impact",
            "owner",
            "mitigation",
            "status",
            "evidence",
        ):
            if not str(risk.get(key) or "").strip():
                problems.append(f"{rid}: '{key}' is empty")
        why = framework.problem(str(risk.get("nist", "")))
        if why:
            problems.append(f"{rid}: invalid NIST AI RMF subcategory: {why}")
        for key, allowed in (("likelihood", LEVELS), ("impact", LEVELS), ("status", STATUSES)):
            if risk.get(key) and risk[key] not in allowed:
                problems.append(f"{rid}: {key} '{risk[key]}' is not one of {list(allowed)}")
        if risk.get("owner") and risk["owner"] not in owners:
            problems.append(f"{rid}: owner '{risk['owner']}' is not one of {sorted(owners)}")
        if risk.get("evidence") and risk["evidence"] not in pages:
            problems.append(f"{rid}: evidence '{risk['evidence']}' is not a page of the site")
    if problems:
        raise IncompleteReport(
            "risk log invalid (site/curated/<system>/risks.yaml or measured risks):\n  "
            + "\n  ".join(problems)
        )


# -- model cards ----------------------------------------------------------------------------------------------


def check_card(name: str, text: str) -> None:
    """Each of the nine sections must be present, in order, with content."""
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^## \d\. (.+)$", text, flags=re.M)]
    titles = [t for _, t in headings]
    missing = [s for s in CARD_SECTIONS if s not in titles]
    problems = [f"section '{s}' is missing" for s in missing]
    bounds = [*(p for p, _ in headings), len(text)]
    for (start, title), end in zip(headings, bounds[1:], strict=True):
        body = text[start:end].split("\n", 1)[1] if "\n" in text[start:end] else ""
        body = re.sub(r"^!!! info \"Lineage\".*", "", body, flags=re.S | re.M)
        if not re.search(r"[A-Za-z0-9]", body):
            problems.append(f"section '{title}' is empty")
    if problems:
        raise IncompleteReport(f"model card for '{name}' incomplete:\n  " + "\n  ".join(problems))


# -- rendering ------------------------------------------------------------------------------------------------


def make_plots(ctx: dict[str, Any], assets: Path) -> dict[str, str]:
    dpi = ctx["report"]["plot_dpi"]
    out: dict[str, str] = {}
    evals = ctx["reports_dir"] / "eval"
    roc = {n: _json(evals / n / "plots/roc.json") for n in ctx["names"]}
    pr = {n: _json(evals / n / "plots/pr.json") for n in ctx["names"]}
    plots.curves(roc, "fpr", "tpr", "ROC on the test split", assets / "roc.png", dpi, diagonal=True)
    plots.curves(pr, "recall", "precision", "Precision-recall on the test split", assets / "pr.png", dpi)
    out["roc"], out["pr"] = "roc.png", "pr.png"
    for n in ctx["names"]:
        ev = ctx["evals"][n]
        bins = {"calibrated" if ev["calibration"]["method"] else "scores": ev["calibration"]["bins"]}
        if ev["calibration"].get("before"):
            bins = {"before calibration": ev["calibration"]["before"]["bins"], **bins}
        plots.reliability(
            bins, f"Reliability: {n}", assets / f"calibration-{n}.png", dpi, ctx["target"]["positive"]
        )
        for attribute in ctx["evaluation"]["fairness"]["attributes"]:
            groups = ev["fairness"][attribute]["groups"]
            plots.group_rates(
                groups,
                "selection_rate",
                f"{n}: selection rate by {attribute}",
                assets / f"selection-{attribute}-{n}.png",
                dpi,
            )
            plots.group_rates(
                groups,
                "tpr",
                f"{n}: true positive rate by {attribute}",
                assets / f"tpr-{attribute}-{n}.png",
                dpi,
            )
        if ctx["curves"][n]:
            plots.training(ctx["curves"][n], f"Training curves: {n}", assets / f"training-{n}.png", dpi)
    return out


def pages(ctx: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Page path (under docs/) -> (template, extra context)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {
        "index.md": ("system_index.md.j2", {}),
        "models/index.md": ("models_index.md.j2", {}),
        "metrics/index.md": ("leaderboard.md.j2", {}),
        "data/datasheet.md": ("datasheet.md.j2", {}),
        "data/contract.md": ("contract.md.j2", {}),
        "risk/index.md": ("risk_log.md.j2", {}),
        "operations/serving.md": ("serving.md.j2", {}),
        "monitoring/index.md": ("monitoring.md.j2", {}),
    }
    for n in ctx["names"]:
        out[f"models/{n}.md"] = ("model_card.md.j2", {"name": n})
        out[f"metrics/{n}.md"] = ("model_metrics.md.j2", {"name": n})
    return out


def ci(entry: dict[str, Any] | None, digits: int = 3) -> str:
    """``0.863 [0.858, 0.868]`` from a ``{"value", "ci_low", "ci_high"}`` entry; ``n/a`` when undefined, and a
    dagger when the percentile interval was extended to include the estimate."""
    if not entry or entry.get("value") is None:
        return "n/a"
    text = f"{entry['value']:.{digits}f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{entry['ci_low']:.{digits}f}, {entry['ci_high']:.{digits}f}]"
        if entry.get("ci_extended"):
            text += "†"
    return text


def role_of(ctx: dict[str, Any], name: str) -> str | None:
    return next((r for r, rel in ctx["releases"].items() if rel["name"] == name), None)


@stage_main("report")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", required=True, help="the system (a key of params.yaml systems)")
    parser.add_argument(
        "--params", help="a params file (default: reports/params/<system>.json, as dvc.yaml declares)"
    )
    parser.add_argument("--reports", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--curated", type=Path, help="default site/curated/<system>")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    paths = SystemPaths(args.system)
    args.reports, args.artifacts = args.reports or paths.reports, args.artifacts or paths.artifacts
    args.curated, args.out = args.curated or SITE / "curated" / args.system, args.out or paths.site_pages
    params = load_system(args.params, args.system)
    dataset = section(params, "dataset", DatasetConfig)
    ctx = gather(params, args.reports, args.artifacts)
    ctx["system"] = args.system
    curated = {}
    for name in ("model_card", "datasheet", "risks"):
        path = args.curated / f"{name}.yaml"
        if not path.is_file():
            raise IncompleteReport(f"{path} not found: every system keeps its curated {name} there")
        curated[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    framework = Framework(SITE / "curated" / "nist_ai_rmf.yaml")
    ctx["card"] = curated["model_card"]
    ctx["datasheet"] = curated["datasheet"]
    ctx["computed"] = computed_answers(ctx, dataset)
    check_datasheet(curated["datasheet"], ctx["computed"])

    site_pages = pages(ctx)
    platform = {
        f"../{p.name}" for p in (SITE / "pages").glob("*.md")
    }  # evidence on a platform page: ../<page>
    all_pages = set(site_pages) | set(GIT_PAGES) | platform
    risks = [{**r, "source": "curated"} for r in curated["risks"]["risks"]] + measured_risks(ctx)
    check_risks(risks, framework, all_pages, curated["risks"]["owners"])
    ctx["risks"] = risks
    ctx["owners"] = curated["risks"]["owners"]
    ctx["coverage"] = framework.coverage([r["nist"] for r in risks])
    ctx["role_of"] = lambda n: role_of(ctx, n)

    env = environment(SITE / "templates")
    env.filters["ci"] = ci
    env.filters["yaml"] = lambda data: yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()
    with atomic_dir(args.out) as staging:
        docs = staging / "docs"
        ctx["plots"] = make_plots(ctx, docs / "assets" / "plots")
        for path, (template, extra) in site_pages.items():
            depth = path.count("/")
            try:
                text = env.get_template(template).render(**ctx, **extra, root="../" * depth, page=path)
            except (
                jinja2.TemplateError,
                TypeError,
                ValueError,
            ) as err:  # a missing value used by a filter too
                raise PipelineError(
                    f"site/templates/{template} ({path}): {type(err).__name__}: {err}"
                ) from None
            if template == "model_card.md.j2":
                check_card(extra["name"], text)
            (docs / path).parent.mkdir(parents=True, exist_ok=True)
            (docs / path).write_text(text, encoding="utf-8")
        (staging / "nav.yml").write_text(
            env.get_template("system_nav.yml.j2").render(**ctx), encoding="utf-8"
        )
    print(f"[report] {args.system}: {len(site_pages)} pages, {len(risks)} risks -> {args.out}")


if __name__ == "__main__":
    main()
