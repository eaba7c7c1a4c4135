"""The bibliography and the seed-paper coverage data (book/references.bib, book/seed_papers.yml)."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIB = ROOT / "book" / "references.bib"
PAPERS = yaml.safe_load((ROOT / "book" / "seed_papers.yml").read_text())
# The seed list ships with the project's planning material, beside the repository.
SEED_FILE = ROOT.parent / "shared" / "seeds" / "000_5bc3ee633a1d2015.txt"


def bib_entries() -> dict[str, str]:
    from pybtex.database import parse_file

    data = parse_file(str(BIB))
    return {key: _plain(entry.fields["title"]) for key, entry in data.entries.items()}


def _plain(title: str) -> str:
    return re.sub(r"\\([&%_#$])", r"\1", title.replace("{", "").replace("}", ""))


def written_chapters() -> dict[int, str]:
    toc = (ROOT / "_toc.yml").read_text()
    import sys

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from lossbook_sphinx import BY_NUMBER

    return {n: page for n, (_, page) in BY_NUMBER.items() if page and f"book/{page}" in toc}


def test_every_seed_paper_is_in_the_bibliography_with_its_exact_title():
    entries = bib_entries()
    assert len(PAPERS) == 119
    assert len({p["key"] for p in PAPERS}) == 119
    for paper in PAPERS:
        assert paper["key"] in entries, f"{paper['key']} is not in references.bib"
        assert entries[paper["key"]] == paper["title"]


def test_seed_titles_match_the_seed_list():
    if not SEED_FILE.exists():
        pytest.skip(f"the seed list {SEED_FILE} lies outside the repository and is absent here")
    lines = SEED_FILE.read_text().splitlines()[2:]
    titles = [line.strip() for line in lines[0::2]]
    titles[0] = titles[0].removeprefix("Subscribe")
    assert titles == [p["title"] for p in PAPERS]


def test_every_paper_has_a_planned_chapter_and_role():
    for paper in PAPERS:
        assert 1 <= paper["chapter"] <= 19
        assert paper["role"] in {"core", "section-R", "weak"}
        assert paper["treatment"]


def test_papers_of_written_chapters_are_cited_there():
    chapters = written_chapters()
    assert chapters, "no chapter is written yet"
    for paper in PAPERS:
        page = chapters.get(paper["chapter"])
        if page:
            text = (ROOT / "book" / f"{page}.ipynb").read_text()
            assert f"`{paper['key']}`" in text, f"{paper['key']} is not cited in book/{page}.ipynb"


def test_every_citation_in_the_book_resolves():
    entries = bib_entries()
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for keys in re.findall(r"\{(?:foot)?cite(?::[pt])?\}`([^`]+)`", path.read_text()):
            for key in keys.split(","):
                assert key.strip() in entries, f"{path.name} cites unknown key {key!r}"
