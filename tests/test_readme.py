"""The README stays a five-minute read, shows the commands CI runs, and its links and the docs/
pages' links lead somewhere.

The README keeps what a newcomer needs (the three commands, one output table, short examples,
the layout); the rest lives in docs/*.md, reached by relative links that these tests follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.cli_runs import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

#: The run command of the README, as it is typed (CI does not run it: it takes minutes).
RUN_COMMAND = ". .venv/bin/activate && python -m benchmark test --method lots"

FENCED_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The page without fenced blocks and inline code, whose brackets are not links."""
    return INLINE_CODE.sub("", FENCED_BLOCK.sub("", text))


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", FENCED_BLOCK.sub("", page.read_text()), re.MULTILINE)
    return {_anchor(heading) for heading in headings}


def _ci_commands() -> list[str]:
    """The install and test lines of .ci/run, without pip's -q (it only quiets pip's output)."""
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in lines if line.startswith(("python3 -m venv", ". .venv/bin/activate"))]
    assert len(commands) == 2, commands
    return [command.replace("pip install -q ", "pip install ") for command in commands]


def test_the_readme_is_under_250_lines():
    assert len(README.read_text().splitlines()) < 250


def test_the_readme_shows_the_three_commands_as_ci_runs_them():
    code_lines = {line.strip() for line in README.read_text().splitlines() if line.startswith("    ")}
    for command in [*_ci_commands(), RUN_COMMAND]:
        assert command in code_lines, command


def test_no_readme_paragraph_runs_over_six_lines():
    paragraphs = re.split(r"\n\s*\n", FENCED_BLOCK.sub("", README.read_text()))
    prose = [p for p in paragraphs if not p.startswith(("    ", "|", "#", "- "))]
    assert all(len(p.splitlines()) <= 6 for p in prose), [p for p in prose if len(p.splitlines()) > 6]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not a file of the repository
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_file(), f"{page.name}: {target} leads to no file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: {target} leads to no heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_the_pages_use_the_one_import_root_and_the_products_own_files(page):
    text = page.read_text()
    assert not re.search(r"^\s*(from|import) (methods|metrics|models|datamodules|core)\b", text, re.MULTILINE)
    assert "../shared" not in text and "SPEC.md" not in text


def test_every_docs_page_is_linked_from_the_readme():
    linked = {target.partition("#")[0] for target in LINK.findall(_prose(README.read_text()))}
    assert {f"docs/{page.name}" for page in PAGES[1:]} <= linked
