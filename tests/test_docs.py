"""The docs match the code they describe (issue 14.7, 22.5): README.md and every page under docs/.

Fields they name exist, sections the code cites exist on the page it names, every ``python`` block
compiles, every ``polymodal <command>`` shown is a command, every relative link reaches its page
and heading, and docs/api.md lists every name the public packages export.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

import polymodal
import polymodal.agent
import polymodal.errors
import polymodal.evaluation
import polymodal.integrations.langchain
import polymodal.llms
import polymodal.profiles
import polymodal.serving
import polymodal.tools
from polymodal.agent import Reply, StepResult
from polymodal.commands import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app

ROOT = Path(__file__).resolve().parents[1]
PAGES = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
         for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]}
EVERYTHING = "\n".join(PAGES.values())
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# How code cites a section: `README, "Section"` / `README's "Section"` for the front page, and
# `docs/page.md, "Section"` / `docs/page.md "Section"` / `docs/page.md's "Section"` for a docs page.
CITATION = re.compile(r'\b(README|docs/[\w/-]+\.md)(?:\'s|,)?\s*"([^"]+)"')


def attributes(cls: type) -> set[str]:
    return set(getattr(cls, "model_fields", {})) | {name for name in dir(cls) if not name.startswith("_")}


def headings(text: str) -> list[str]:
    """Markdown headings outside fenced blocks (a ``# comment`` in a bash block is not one)."""
    prose = FENCE.sub("", text)
    return [line.lstrip("#").strip() for line in prose.splitlines() if re.match(r"#{1,6} ", line)]


def anchor(heading: str) -> str:
    """The id Python-Markdown's toc gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def page_of(cited: str) -> str:
    return "README.md" if cited == "README" else cited


def test_every_reply_attribute_the_docs_use_exists():
    used = set(re.findall(r"\breply\.(\w+)", EVERYTHING))
    assert used and used <= attributes(Reply), used - attributes(Reply)
    per_step = re.search(r"reply\.steps\s+# per step: ([^\n]+)", EVERYTHING)
    assert per_step is not None
    named = {word for word in re.findall(r"[a-z_]+", per_step.group(1))}
    assert named <= attributes(StepResult), named - attributes(StepResult)


def citations() -> dict[tuple[str, str], str]:
    cited: dict[tuple[str, str], str] = {}
    sources = [*(ROOT / "polymodal").rglob("*.py"), *(ROOT / "examples").glob("*.py"),
               *(ROOT / "bench").glob("*.py"), *(ROOT / "tests").rglob("*.py")]
    for path in sources:
        if path.name == "test_docs.py":
            continue
        text = " ".join(path.read_text(encoding="utf-8").split())  # a citation may be split across lines
        for page, section in CITATION.findall(text):
            cited[(page_of(page), section)] = str(path.relative_to(ROOT))
    return cited


def test_every_section_the_code_cites_exists_on_the_page_it_names():
    cited = citations()
    assert any(page.startswith("docs/") for page, _ in cited), "no docs/ citation found: the pattern is wrong"
    missing = {f"{page} {section!r}": where for (page, section), where in cited.items()
               if page not in PAGES or section not in headings(PAGES[page])}
    assert not missing, missing


def test_a_citation_of_a_section_that_moved_off_the_readme_fails():
    """The check above is not vacuous: a README citation of a section now on a docs page is caught."""
    assert "Command line" in headings(PAGES["docs/cli.md"])
    assert "Command line" not in headings(PAGES["README.md"])
    assert CITATION.findall('exit codes (README, "Command line")') == [("README", "Command line")]
    assert CITATION.findall('see docs/cli.md "Command line"') == [("docs/cli.md", "Command line")]


def test_the_exit_codes_table_is_the_cli_s():
    table = dict(re.findall(r"^\| (\d) \| ([a-z]+)", PAGES["docs/cli.md"], re.MULTILINE))
    assert table == {str(EXIT_OK): "answered", str(EXIT_FAILED): "failed", str(EXIT_USAGE): "usage",
                     str(EXIT_PARTIAL): "answered"}
    assert "<jobs>.results.jsonl" in PAGES["docs/cli.md"]  # where batch writes without -o


def python_blocks() -> list[tuple[str, str]]:
    return [(page, match.group(2)) for page, text in PAGES.items() for match in FENCE.finditer(text)
            if match.group(1) == "python"]


@pytest.mark.parametrize(("page", "code"), python_blocks(), ids=lambda value: value[:40])
def test_every_python_block_in_the_docs_compiles(page, code):
    compile(code, page, "exec")


RUNS = "<!-- runs in tests/test_docs.py -->"  # the line before a block that needs nothing it does not define


def runnable_blocks() -> list[tuple[str, str]]:
    found = re.compile(re.escape(RUNS) + r"\n```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return [(page, match.group(1)) for page, text in PAGES.items() for match in found.finditer(text)]


@pytest.mark.parametrize(("page", "code"), runnable_blocks(), ids=lambda value: value[:40])
def test_the_blocks_marked_runnable_run(page, code, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # paths in the docs are relative to the repository, as the README's are
    exec(compile(code, page, "exec"), {"__name__": "__docs__"})


def test_the_python_blocks_are_found():
    assert len(python_blocks()) >= 15, "the fence pattern is wrong"
    assert runnable_blocks(), "the runnable marker pattern is wrong"


def test_the_readme_s_first_block_is_what_the_quickstart_example_runs():
    """The README says `python examples/quickstart.py` runs exactly its first block (which runs in test_examples)."""
    first = python_blocks()[0]
    assert first[0] == "README.md"
    example = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    for call in ('build_agent(', "agent.chat(", "sign.png", "voice-note.wav"):
        assert call in first[1] and call in example, call


def shown_commands() -> set[str]:
    """`polymodal X` in shell blocks (at a line's start or after env assignments) and in inline code."""
    shown: set[str] = set()
    for text in PAGES.values():
        for match in FENCE.finditer(text):
            if match.group(1) in ("bash", "sh", "shell", "console"):
                shown |= set(re.findall(r"^(?:[A-Z_]+=\S+\s+)*polymodal\s+([a-z][\w-]*)", match.group(2), re.MULTILINE))
        for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
            shown |= set(re.findall(r"(?:^|\s)polymodal\s+([a-z][\w-]*)", span))
    return shown


def test_every_polymodal_command_the_docs_show_exists():
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    shown = shown_commands()
    assert {"run", "serve", "batch"} <= shown, "the command pattern is wrong"
    assert shown <= commands, shown - commands


def test_every_relative_link_reaches_a_page_and_its_heading():
    broken = []
    for name, text in PAGES.items():
        here = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text)):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not a page of ours
            path, _, fragment = target.partition("#")
            page = (here / path).resolve() if path else ROOT / name
            if not page.exists():
                broken.append(f"{name}: {target} (no such file)")
            elif fragment and page.suffix == ".md":
                ids = {anchor(h) for h in headings(page.read_text(encoding="utf-8"))}
                if fragment not in ids:
                    broken.append(f"{name}: {target} (no such heading)")
    assert not broken, broken


def test_every_page_is_in_the_site_s_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {name.removeprefix("docs/") for name in PAGES if name.startswith("docs/")}
    assert pages, "no docs pages"
    assert {page for page in pages if f": {page}" not in nav} == set()


PUBLIC = [polymodal, polymodal.tools, polymodal.agent, polymodal.errors, polymodal.profiles, polymodal.llms,
          polymodal.evaluation, polymodal.serving, polymodal.integrations.langchain]


@pytest.mark.parametrize("module", PUBLIC, ids=lambda module: module.__name__)
def test_the_api_page_lists_every_name_a_public_package_exports(module):
    api = PAGES["docs/api.md"]
    assert f"`{module.__name__}`" in api
    listed = set(re.findall(r"`([\w.]+)`", api))
    names = set(module.__all__) if module is not polymodal.errors else set()  # errors: "the same names"
    assert names - listed == set()
