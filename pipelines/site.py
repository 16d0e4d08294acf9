"""The site step: publish one documentation site for every system with ``mkdocs build --strict`` (MkDocs Material).

Runs after ``dvc repro`` (``make pipeline``, ``make site``), outside the DVC graph. It assembles the platform pages
(``site/pages``), a portfolio page comparing the systems' champions and gate verdicts, and each system's section
(``docs/<system>/``, the pages its ``report`` stage rendered into ``reports/<system>/site``: DVC outputs that never
read git, so they are the same for the same commit and data) with what only git knows: each system's history page
(the champion on every commit and DVC experiment), the changelog, and the commit the site is built from, in every
page's footer. The built site
``site/build`` is git-ignored and not a DVC output, so publishing never changes ``dvc.lock``.

Every MkDocs warning fails the build, with the warnings in the message (a broken link or anchor, a page missing
from the docs folder, a link outside it), and so does any link in the built HTML that does not resolve (raw HTML
in a page, which MkDocs does not check: ``pipelines.core.linkcheck``); the previous site stays. ``mkdocs build --quiet`` is not used: with
it MkDocs 1.6 does not count warnings, and ``--strict`` passes a build it should stop.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipelines.core import history
from pipelines.core.config import load_params, system_params, systems_of
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_json
from pipelines.core.lineage import git_state
from pipelines.core.linkcheck import broken_links
from pipelines.core.paths import SystemPaths
from pipelines.core.render import environment
from pipelines.core.workspace import ROOT
from pipelines.report import GIT_PAGES, ci, page_lineage

SITE = ROOT / "site"
WARNING = re.compile(r"^(WARNING|ERROR)\b")


class SiteBuildError(PipelineError):
    """MkDocs reported a warning or an error: the site is not published."""


@dataclass
class SystemSection:
    """One system's part of the site: its pages (from the report stage), gate, releases and nav."""

    name: str
    pages: Path
    gate: dict[str, Any]
    releases: dict[str, Any]
    nav: list[Any]
    title: str
    package: dict[str, Any] | None
    test_rows: int | None


def load_section(params: dict[str, Any], system: str) -> SystemSection:
    paths = SystemPaths(system)
    source = paths.site_pages
    for required, stage in ((source / "nav.yml", "report"), (paths.gate, "select")):
        if not required.is_file():
            raise PipelineError(
                f"{required} not found: run the {stage} stage first (dvc repro {stage}@{system})"
            )
    releases = {}
    for role in ("champion", "challenger"):
        path = paths.release(role) / "release.json"
        if path.is_file() and read_json(path).get("name"):
            releases[role] = read_json(path)
    package = read_json(paths.package_report) if paths.package_report.is_file() else None
    split = paths.data_reports / "split.json"
    view = system_params(params, system)
    return SystemSection(
        name=system,
        pages=source / "docs",
        gate=read_json(paths.gate),
        releases=releases,
        nav=yaml.safe_load((source / "nav.yml").read_text(encoding="utf-8")) or [],
        title=str(view["dataset"].get("title") or system),
        package=package,
        test_rows=read_json(split)["splits"].get("test", {}).get("rows") if split.is_file() else None,
    )


def git_context(params: dict[str, Any], section: SystemSection) -> dict[str, Any]:
    state = git_state()
    limit = params["report"]["history_limit"]
    gate_file = str(SystemPaths(section.name).gate)
    return {
        "system": section.name,
        "git": {**state, "short": state["commit"][:10]},
        "history": {
            "commits": history.commits(limit, gate=gate_file),
            "experiments": history.experiments(limit, gate=gate_file),
            "windows": history.windows(
                limit, str(SystemPaths(section.name).monitor_reports / "decision.json")
            ),
        },
        "gate": section.gate,
        "lineage": page_lineage(
            system_params(params, section.name), section.gate, section.releases.get("champion")
        ),
    }


def render_page(env: jinja2.Environment, template: str, page: str, docs: Path, **ctx: Any) -> None:
    try:
        text = env.get_template(template).render(**ctx, root="../" * page.count("/"), page=page)
    except (jinja2.TemplateError, TypeError, ValueError) as err:  # a missing value used by a filter too
        raise PipelineError(f"site/templates/{template} ({page}): {type(err).__name__}: {err}") from None
    (docs / page).parent.mkdir(parents=True, exist_ok=True)
    (docs / page).write_text(text, encoding="utf-8")


def assemble(params: dict[str, Any], source: Path) -> dict[str, Any]:
    """Write the whole MkDocs source into ``source``: the platform pages (site/pages), the portfolio, the
    changelog, and each system's section under ``docs/<system>/`` with its history page."""
    docs = source / "docs"
    docs.mkdir(parents=True)
    for page in sorted((SITE / "pages").glob("*.md")):
        shutil.copy2(page, docs / page.name)
    if (SITE / "assets").is_dir():
        shutil.copytree(SITE / "assets", docs / "assets")
    env = environment(SITE / "templates")
    env.filters["ci"] = ci
    sections = [load_section(params, s) for s in systems_of(params)]
    contexts = {}
    for sec in sections:
        shutil.copytree(sec.pages, docs / sec.name)
        ctx = git_context(params, sec)
        contexts[sec.name] = ctx
        for git_page, template in GIT_PAGES.items():
            render_page(env, template, git_page, docs / sec.name, **ctx)
    git = next(iter(contexts.values()))["git"]
    render_page(env, "portfolio.md.j2", "portfolio.md", docs, sections=sections, contexts=contexts, git=git)
    render_page(env, "changelog.md.j2", "changelog.md", docs, sections=sections, contexts=contexts, git=git)
    config = source / "mkdocs.yml"
    config.write_text(
        env.get_template("mkdocs.yml.j2").render(report=params["report"], sections=sections), encoding="utf-8"
    )
    stamp_commit(config, git)
    return git


def stamp_commit(config: Path, git: dict[str, Any]) -> None:
    """Put the commit in every page's footer (MkDocs ``copyright``)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    dirty = " with uncommitted changes" if git["dirty"] else ""
    data["copyright"] = f"Built from commit {git['short']}{dirty}"
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def mkdocs_build(config: Path, out: Path) -> list[str]:
    """Run ``mkdocs build --strict``; return its output lines. Any warning or error raises SiteBuildError."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(config), "-d", str(out.resolve())],
        capture_output=True,
        text=True,
    )
    lines = [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    problems = [line for line in lines if WARNING.match(line)]
    if proc.returncode != 0 or problems:
        shown = problems or lines[-30:]
        raise SiteBuildError(
            f"mkdocs build --strict failed with {len(problems)} warning(s) or error(s); the previous site stays:\n  "
            + "\n  ".join(shown[:40])
        )
    return lines


def check_out(out: Path, source: Path) -> None:
    """The site replaces ``out`` as a whole: it must be a folder of its own, not the project or its source."""
    resolved = out.resolve()
    if not out.name or resolved == Path.cwd().resolve() or resolved in source.resolve().parents:
        raise PipelineError(
            f"--out {out}: the site replaces this folder as a whole; give it a folder of its own"
        )
    if resolved == source.resolve() or source.resolve() in resolved.parents:
        raise PipelineError(f"--out {out} is inside the source {source}")
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out} is a file, not a folder: the site will not replace it")


@stage_main("site")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("site/build"))
    parser.add_argument("--systems", nargs="+", help="only these systems' sections (default: every system)")
    args = parser.parse_args(argv)
    check_out(args.out, Path("reports"))
    params = load_params(args.params)
    if args.systems:
        unknown = sorted(set(args.systems) - set(systems_of(params)))
        if unknown:
            raise PipelineError(f"--systems {unknown}: not in params.yaml systems {systems_of(params)}")
        params = {**params, "systems": [s for s in systems_of(params) if s in args.systems]}
    with tempfile.TemporaryDirectory(prefix="site-src-") as tmp:
        source = Path(tmp) / "site"
        git = assemble(params, source)
        with atomic_dir(args.out) as staging:
            mkdocs_build(source / "mkdocs.yml", staging)
            broken = broken_links(staging)
            if broken:
                raise SiteBuildError(
                    f"{len(broken)} link(s) in the built pages do not resolve (raw HTML is not checked by MkDocs); "
                    "the previous site stays:\n  " + "\n  ".join(broken[:40])
                )
    pages = sum(1 for _ in args.out.rglob("*.html"))
    print(f"[site] {pages} HTML pages from commit {git['short']} -> {args.out}")


if __name__ == "__main__":
    main()
