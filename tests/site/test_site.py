"""The built documentation site in a real headless Chromium (Debian's chromium, driven by Playwright): a reader
goes from the home page to the champion's model card, the metrics, the datasheet and the risk log; every internal
link resolves; nothing is left unrendered; a screenshot is saved. Also: a failed report keeps the previous site."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from playwright.sync_api import Page, sync_playwright

from pipelines.core.io import sha256_file
from pipelines.report import CARD_SECTIONS
from tests.conftest import run

pytestmark = pytest.mark.integration
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/adult-gitops-screenshots"))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def built(quick_repo: tuple[Path, str]) -> Path:
    repo, _ = quick_repo
    assert (repo / "site/build/index.html").is_file(), "make pipeline must end with the built site"
    return repo


@pytest.fixture(scope="module")
def url(built: Path) -> Iterator[str]:
    handler = functools.partial(Quiet, directory=str(built / "site/build"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def page(url: str) -> Iterator[Page]:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: run `make browser` (make test does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()


def rendered_cleanly(page: Page, lineage: bool = True) -> None:
    text = page.inner_text("article")
    assert "|---" not in text and "!!! " not in text and "{{" not in text, (
        "markdown or template left unrendered"
    )
    assert not lineage or "Lineage" in text, "every page of a system ends with its lineage"


def test_reader_journey(page: Page, url: str, built: Path) -> None:
    gate = json.loads((built / "reports/adult/gate.json").read_text())
    champion = gate["champion"]
    page.goto(url)
    assert "AI systems portfolio" in page.title()
    rendered_cleanly(page, lineage=False)

    page.get_by_role("link", name="Portfolio", exact=True).first.click()
    page.wait_for_url("**/portfolio/")
    portfolio = page.inner_text("article")
    assert gate["models"][champion]["version"] in portfolio and "UCI Adult" in portfolio
    rendered_cleanly(page, lineage=False)
    page.locator("article").get_by_role("link", name="adult", exact=True).first.click()
    page.wait_for_url("**/adult/")
    assert f"Champion: {gate['models'][champion]['version']}" in page.inner_text("article")
    rendered_cleanly(page)

    page.get_by_role("link", name="Models", exact=True).first.click()
    page.wait_for_url("**/models/")
    page.locator("article").get_by_role("link", name=champion, exact=True).first.click()
    page.wait_for_url(f"**/models/{champion}/")
    card = page.inner_text("article")
    assert f"Model card: {champion}" in card and "Champion" in card
    headings = page.locator("article h2").all_inner_texts()
    for number, title in enumerate(CARD_SECTIONS, start=1):
        assert any(h.startswith(f"{number}. {title}") for h in headings), (title, headings)
    assert "sex x race" in card and gate["models"][champion]["version"] in card
    rendered_cleanly(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "model-card.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000

    page.get_by_role("link", name="Metrics", exact=True).first.click()
    page.wait_for_url("**/metrics/")
    board = page.inner_text("article")
    assert "Leaderboard" in board and f"Champion: {champion}" in board
    assert page.locator(".admonition.success, details.success").count() >= 1  # the verdicts are admonitions
    rendered_cleanly(page)

    page.get_by_role("link", name="Datasheet").first.click()  # "Data" is a section label, not a page
    page.wait_for_url("**/data/datasheet/")
    sheet = page.inner_text("article")
    assert sheet.count("?") >= 57 and "Motivation" in sheet and "Maintenance" in sheet
    assert "32,561" in sheet  # computed from the pipeline's outputs
    rendered_cleanly(page)

    page.get_by_role("link", name="Risk log", exact=True).first.click()
    page.wait_for_url("**/risk/")
    risks = page.inner_text("article")
    assert "R-001" in risks and "MEASURE 2.11" in risks and "Coverage of the four functions" in risks
    for function in ("GOVERN", "MAP", "MEASURE", "MANAGE"):
        assert function in risks
    rendered_cleanly(page)


def test_monitoring_pages(page: Page, url: str, built: Path) -> None:
    decision = json.loads((built / "reports/adult/monitor/decision.json").read_text())
    page.goto(url + "adult/monitoring/")
    text = page.inner_text("article")
    assert f"Decision: {decision['decision']}" in text and "Running the loop" in text
    assert "make replay SYSTEM=adult SCENARIO=covariate" in text
    rendered_cleanly(page)
    page.locator("article").get_by_role("link", name="the history of windows").first.click()
    page.wait_for_url("**/monitoring/history/")
    assert "Monitoring history" in page.inner_text("article")
    rendered_cleanly(page)


def test_dark_mode_and_search(page: Page, url: str) -> None:
    page.goto(url)
    before = page.get_attribute("body", "data-md-color-scheme")
    page.locator("label.md-header__button[for^='__palette']").first.click()
    assert page.get_attribute("body", "data-md-color-scheme") != before
    search_button = page.locator("label.md-header__button[for='__search']").first
    if search_button.is_visible():  # narrow layouts hide the search box behind a button
        search_button.click()
    box = page.locator("input.md-search__input")
    box.click()
    meta = page.locator(".md-search-result__meta")
    # the index loads in a web worker; until then the result header says "Initializing search"
    page.wait_for_function(
        "el => !el.textContent.toLowerCase().includes('initializing')",
        arg=meta.element_handle(),
        timeout=60_000,
    )
    box.press_sequentially("equalized odds", delay=20)
    page.wait_for_selector(".md-search-result__item", timeout=30_000)
    assert page.locator(".md-search-result__item").count() > 0


def test_no_broken_internal_links(page: Page, url: str) -> None:
    seen: set[str] = set()
    queue = [url]
    broken: list[str] = []
    origin = urlparse(url).netloc
    while queue:
        current = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        response = page.goto(current)
        if response is None or response.status != 200:
            broken.append(f"{current}: {response.status if response else 'no response'}")
            continue
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            target, fragment = urldefrag(urljoin(current, href))
            if urlparse(target).netloc != origin:
                continue
            if fragment and target == current and not page.locator(f"[id='{fragment}']").count():
                broken.append(f"{current}: #{fragment} has no target")
            if target not in seen and target.endswith("/"):
                queue.append(target)
            elif not target.endswith("/") and target not in seen:
                seen.add(target)
                status = page.request.get(target).status
                if status != 200:
                    broken.append(f"{current} -> {target}: {status}")
    assert len(seen) >= 20 and not broken, broken


def test_failed_report_keeps_the_previous_site(built: Path, tmp_path: Path) -> None:
    repo = Path(shutil.copytree(built, tmp_path / "repo", symlinks=True))
    before = {p.relative_to(repo): sha256_file(p) for p in (repo / "site/build").rglob("*.html")}
    risks = repo / "site/curated/adult/risks.yaml"
    risks.write_text(risks.read_text().replace("nist: MAP 5.1", "nist: MAP 5.9"))
    proc = run(
        ["dvc", "repro", "report@adult"], repo, check=False
    )  # `make site` publishes only when this passes
    assert proc.returncode != 0
    assert "R-001: invalid NIST AI RMF subcategory: MAP 5 has subcategories MAP 5.1 to .2" in proc.stderr
    assert {p.relative_to(repo): sha256_file(p) for p in (repo / "site/build").rglob("*.html")} == before
