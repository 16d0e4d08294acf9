"""The site step: publish the documentation site with ``mkdocs build --strict`` (MkDocs Material).

Runs after ``dvc repro`` (``make pipeline``, ``make site``), outside the DVC graph: the MkDocs source that the
``report`` stage rendered (``reports/site``, a DVC output that never reads git, so it is the same for the same
commit and data) is combined here with what only git knows: the history and changelog pages (the champion on every
commit and DVC experiment) and the commit the site is built from, in every page's footer. The built site
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
from pathlib import Path
from typing import Any

import jinja2
import yaml

from pipelines.core import history
from pipelines.core.config import load_params
from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir, read_json
from pipelines.core.lineage import git_state
from pipelines.core.linkcheck import broken_links
from pipelines.core.render import environment
from pipelines.core.workspace import ROOT
from pipelines.report import GIT_PAGES, page_lineage

WARNING = re.compile(r"^(WARNING|ERROR)\b")


class SiteBuildError(PipelineError):
    """MkDocs reported a warning or an error: the site is not published."""


def _champion_release() -> dict[str, Any] | None:
    path = Path("artifacts/champion/release.json")
    return read_json(path) if path.is_file() else None


def git_context(params: dict[str, Any], gate: dict[str, Any]) -> dict[str, Any]:
    state = git_state()
    limit = params["report"]["history_limit"]
    return {
        "git": {**state, "short": state["commit"][:10]},
        "history": {"commits": history.commits(limit), "experiments": history.experiments(limit)},
        "gate": gate,
        "lineage": page_lineage(params, gate, _champion_release()),
    }


def add_git_pages(docs: Path, ctx: dict[str, Any]) -> None:
    """Render the pages read from git history into ``docs``."""
    env = environment(ROOT / "site" / "templates")
    for page, template in GIT_PAGES.items():
        try:
            text = env.get_template(template).render(**ctx, root="../" * page.count("/"), page=page)
        except jinja2.UndefinedError as err:
            raise PipelineError(f"site/templates/{template} ({page}): {err}") from None
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        (docs / page).write_text(text, encoding="utf-8")


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
    parser.add_argument("--source", type=Path, default=Path("reports/site"))
    parser.add_argument("--gate", type=Path, default=Path("reports/gate.json"))
    parser.add_argument("--out", type=Path, default=Path("site/build"))
    args = parser.parse_args(argv)
    check_out(args.out, args.source)
    config = args.source / "mkdocs.yml"
    if not config.is_file():
        raise PipelineError(f"{config} not found: run the report stage first (dvc repro report)")
    if not args.gate.is_file():
        raise PipelineError(f"{args.gate} not found: run the select stage first (dvc repro select)")
    ctx = git_context(load_params(args.params), read_json(args.gate))
    with tempfile.TemporaryDirectory(prefix="site-src-") as tmp:
        source = Path(shutil.copytree(args.source, Path(tmp) / "site"))
        add_git_pages(source / "docs", ctx)
        stamp_commit(source / "mkdocs.yml", ctx["git"])
        with atomic_dir(args.out) as staging:
            mkdocs_build(source / "mkdocs.yml", staging)
            broken = broken_links(staging)
            if broken:
                raise SiteBuildError(
                    f"{len(broken)} link(s) in the built pages do not resolve (raw HTML is not checked by MkDocs); "
                    "the previous site stays:\n  " + "\n  ".join(broken[:40])
                )
    pages = sum(1 for _ in args.out.rglob("*.html"))
    print(f"[site] {pages} HTML pages from commit {ctx['git']['short']} -> {args.out}")


if __name__ == "__main__":
    main()
