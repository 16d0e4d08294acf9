"""Links in a built static site: every internal link and image resolves, and every #fragment names an element.

MkDocs validates the links it sees in Markdown; raw HTML in a page (``<a href>``, ``<img src>``) passes it unchecked
(a newcomer's break test found ``<a href="missing.md">`` and ``<img src="nope.png">`` built without a warning).
This reads the built HTML instead, so nothing a reader can click is exempt. External links are not fetched
(no network); ``mailto:``, ``javascript:`` and ``data:`` links are skipped.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src"}
SKIP_SCHEMES = {"http", "https", "mailto", "javascript", "data", "tel", "ftp"}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[int, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(str(values[key]))
        attr = LINK_ATTRS.get(tag)
        if attr and values.get(attr) is not None:
            self.links.append((self.getpos()[0], str(values[attr])))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def target_file(site: Path, page: Path, link: str) -> Path:
    path = unquote(urlparse(link).path)
    base = site if path.startswith("/") else page.parent
    target = (base / path.lstrip("/")).resolve() if path else page.resolve()
    return target / "index.html" if target.is_dir() else target


def broken_links(site: Path) -> list[str]:
    """``page:line: link -> reason`` for every internal link that does not resolve."""
    site = site.resolve()
    pages = {p.resolve(): parse(p) for p in sorted(site.rglob("*.html"))}
    problems = []
    for page, parsed in pages.items():
        for line, link in parsed.links:
            if not link or urlparse(link).scheme in SKIP_SCHEMES or link.startswith("//"):
                continue
            url, fragment = urldefrag(link)
            target = target_file(site, page, url)
            where = f"{page.relative_to(site)}:{line}: {link}"
            if site not in target.parents and target != site:
                problems.append(f"{where} -> outside the site")
            elif not target.is_file():
                problems.append(f"{where} -> no such file")
            elif fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if fragment not in ids:
                    problems.append(f"{where} -> no element with id '{fragment}'")
    return problems
