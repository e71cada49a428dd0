"""The README and the docs link to files and headings that exist.

The README sums up; the measurement logs it moved out live in ``docs/*.md``. A link that
points nowhere (a file renamed, a heading reworded, a path written from the wrong folder)
is the usual way such a split rots, so every relative link and image is followed here.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path):
    """Every heading's anchor (outside fenced code; a repeated heading gets -1, -2, ...)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(m.group(1))
        seen[base] = seen.get(base, -1) + 1
        yield base if seen[base] == 0 else f"{base}-{seen[base]}"


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", t)]


def test_slug_follows_github():
    assert slug("The whole run again on the AVX-512 machine: `runs/full15`") == \
        "the-whole-run-again-on-the-avx-512-machine-runsfull15"
    assert slug("Kernels: pruned convolutions that are really faster (CPU)") == \
        "kernels-pruned-convolutions-that-are-really-faster-cpu"
    assert slug("Why filter and channel miss their targets, and what was tried") == \
        "why-filter-and-channel-miss-their-targets-and-what-was-tried"


def test_link_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Part\n\n## Part\n\n[ok](#title) [gone](#nowhere) "
                    "[file](missing.md) [again](#part-1) [thrice](#part-2) "
                    "`[code](not-a-link.md)`\n```\n[fenced](also-not.md)\n```\n")
    assert broken(page) == ["#nowhere", "missing.md", "#part-2"]


def broken(page: Path) -> list[str]:
    bad = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in set(anchors(dest)):
            bad.append(target)
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    assert links(page) or page.name != "README.md", "the README links to nothing?"
    assert broken(page) == []


def test_every_log_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    logs = sorted((ROOT / "docs").glob("*.md"))
    assert logs, "docs/ has no measurement logs"
    assert [p.name for p in logs if p.resolve() not in linked] == []
