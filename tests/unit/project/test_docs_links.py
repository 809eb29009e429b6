"""Every relative link of README.md and docs/*.md leads somewhere: its file exists and, for a
Markdown file, its ``#anchor`` is one of that file's headings (GitHub's slug rules). Sections
move between these pages; a move that leaves a dead link fails here, not in a reader's browser.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.checkout import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target up to whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans blanked out."""
    out, fence = [], None
    for line in text.splitlines():
        marker = FENCE.match(line)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif marker.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append(CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup and punctuation dropped, lower case,
    each space a hyphen (``Out: `anomalies` `` -> ``out-anomalies``)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w: letters and digits of any script, and _
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    fence = None
    for line in path.read_text().splitlines():
        marker = FENCE.match(line)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif marker.group(1) == fence:
                fence = None
            continue
        match = HEADING.match(line) if fence is None else None
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text()):
        for match in LINK.finditer(line):
            target = match.group(1)
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):
                continue  # http:, https:, mailto:
            targets.append(target)
    return targets


def test_the_slug_rules() -> None:
    assert slug("Out: `anomalies`") == "out-anomalies"
    assert slug("Producer (`python -m producer`)") == "producer-python--m-producer"
    assert slug("Run Prometheus locally: `scripts/prometheus.sh`") == (
        "run-prometheus-locally-scriptsprometheussh"
    )
    assert slug("Why a sensor is not a Bytewax key") == "why-a-sensor-is-not-a-bytewax-key"
    assert slug("`rpk` without Docker") == "rpk-without-docker"


def test_the_pages_exist() -> None:
    assert (ROOT / "README.md").exists()
    assert len(PAGES) > 1, "the reference lives in docs/*.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    dead = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not dest.exists():
            dead.append(f"{target}: no file {dest}")
            continue
        if anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            dead.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not dead, f"{page.relative_to(ROOT)}: dead links:\n" + "\n".join(dead)


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in relative_links(ROOT / "README.md")
        if target.partition("#")[0]
    }
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"
