"""The site step fails on every MkDocs warning, names the warning, and keeps the last good site.

MkDocs 1.6 with ``--quiet`` does not count warnings, so ``--strict --quiet`` passed broken anchors and links; the
step runs ``mkdocs build --strict`` without it and also refuses any WARNING line. Each case breaks one link in the
real rendered source of the quick pipeline, the way a template or a hand-written page could.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.core.io import sha256_file
from tests.conftest import run

pytestmark = pytest.mark.integration

# (page under docs/, Markdown appended to it, text the error must contain)
BROKEN = {
    # a GitHub-style slug: MkDocs' toc makes `female-amer-indian-eskimo` of this heading
    "github_style_anchor": (
        "metrics/index.md",
        "\n## Female / Amer-Indian-Eskimo\n\nSee [the group](#female--amer-indian-eskimo).\n",
        "#female--amer-indian-eskimo",
    ),
    "link_outside_docs": ("index.md", "\nRead [the README](../../README.md).\n", "../../README.md"),
    "missing_page": ("index.md", "\nSee [the old page](models/retired.md).\n", "models/retired.md"),
    "anchor_on_other_page": (
        "index.md",
        "\nSee [gates](metrics/index.md#no-such-heading).\n",
        "no-such-heading",
    ),
    "absolute_link": ("index.md", "\nSee [the root](/metrics/index.md).\n", "/metrics/index.md"),
    "unrecognized_link": ("index.md", "\nSee [the models](models/).\n", "models/"),
    # raw HTML, which MkDocs does not check: the built pages are checked instead
    "raw_html_anchor": ("index.md", '\n<a href="#nope">nowhere</a>\n', "no element with id 'nope'"),
    "raw_html_page": ("index.md", '\n<a href="missing.md">gone</a>\n', "missing.md -> no such file"),
    "raw_html_image": (
        "metrics/index.md",
        '\n<img src="../assets/plots/nope.png">\n',
        "nope.png -> no such file",
    ),
}


def pages(site: Path) -> dict[Path, str]:
    return {p.relative_to(site): sha256_file(p) for p in site.rglob("*.html")}


@pytest.fixture(scope="module")
def published(quick_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the quick pipeline's repository with its published site."""
    repo, _ = quick_repo
    return Path(shutil.copytree(repo, tmp_path_factory.mktemp("strict") / "repo", symlinks=True))


def test_clean_source_builds_without_warnings(published: Path, tmp_path: Path) -> None:
    proc = run(["python", "-m", "pipelines.site", "--out", str(tmp_path / "site")], published)
    assert "[site]" in proc.stdout and "WARNING" not in proc.stdout + proc.stderr
    assert (
        tmp_path / "site/adult/metrics/history/index.html"
    ).is_file()  # git pages are added when publishing
    assert (tmp_path / "site/portfolio/index.html").is_file() and (
        tmp_path / "site/changelog/index.html"
    ).is_file()
    assert "Built from commit" in (tmp_path / "site/index.html").read_text()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_warning_fails_and_keeps_the_last_good_site(case: str, published: Path, tmp_path: Path) -> None:
    page, markdown, needle = BROKEN[case]
    target = published / "reports/adult/site/docs" / page  # a system's page, as the report stage wrote it
    original = target.read_text(encoding="utf-8")
    target.write_text(original + markdown, encoding="utf-8")
    site = published / "site/build"
    before = pages(site)
    try:
        proc = run(["python", "-m", "pipelines.site", "--out", str(site)], published, check=False)
    finally:
        target.write_text(original, encoding="utf-8")
    assert proc.returncode == 1, proc.stdout
    assert "ERROR [site]" in proc.stderr and needle in proc.stderr, proc.stderr
    assert "WARNING" in proc.stderr or "do not resolve" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert pages(site) == before


@pytest.mark.parametrize("out", [".", "reports/adult/site/docs", "README.md"])
def test_the_site_never_replaces_what_is_not_its_own(published: Path, out: str) -> None:
    before = sha256_file(published / "README.md")
    proc = run(["python", "-m", "pipelines.site", "--out", out], published, check=False)
    assert proc.returncode == 1 and "ERROR [site] --out" in proc.stderr and "Traceback" not in proc.stderr
    assert (
        sha256_file(published / "README.md") == before
        and (published / "reports/adult/site/docs/index.md").is_file()
    )
