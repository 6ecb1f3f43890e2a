"""The reliability table is the test suite's own table: every promise has tests named by its row.

The project's reliability document lists what polymodal promises for hostile inputs and faults,
one row per promise (P planner output, A attachments, T tools and models, R runs). A test that
keeps a row is named by it — ``test_A2_symlink_...``, ``test_R1_R2_...`` for one keeping two — so
``pytest -k A2`` runs a row's tests and a reader sees which promise each test keeps. This test
fails when a row has no test left.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
ROWS = dict(re.findall(r"^\| ([PATRSH]\d{1,2}) \| (.+?) \|", TABLE.read_text(encoding="utf-8"), re.M))
"""The rows of docs/reliability.md (the table itself is the source: P, A, T, R, S server, H hosts)."""
_CITED = re.compile(r"RELIABILITY(?:\.md)?[ ,:]+((?:[PATRSH]\d{1,2}(?:[-/, ]+(?:and )?)?)+)")

_NAMED = re.compile(r"^\s*(?:async\s+)?def\s+test_((?:[PATRSH]\d{1,2}_)+)", re.M)


def _tests_by_row() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for match in _NAMED.finditer(path.read_text(encoding="utf-8")):
            for row in match.group(1).rstrip("_").split("_"):
                found.setdefault(row, []).append(path.name)
    return found


@pytest.mark.parametrize("row", list(ROWS))
def test_every_row_has_a_test_named_by_it(row):
    assert row in _tests_by_row(), f"no test is named test_{row}_...: which test keeps '{ROWS[row]}'?"


def test_every_row_named_by_a_test_is_in_the_table():
    assert set(_tests_by_row()) <= set(ROWS)


def test_the_table_has_every_kind_of_row():
    assert {row[0] for row in ROWS} == set("PATRSH") and len(ROWS) >= 40


def test_every_row_cited_in_code_is_in_the_table():
    root = Path(__file__).resolve().parents[1]
    cited: dict[str, str] = {}
    for path in sorted([*(root / "polymodal").rglob("*.py"), *(root / "tests").glob("*.py")]):
        for match in _CITED.finditer(path.read_text(encoding="utf-8")):
            for row in re.findall(r"[PATRSH]\d{1,2}", match.group(1)):
                cited.setdefault(row, str(path.relative_to(root)))
    missing = {row: where for row, where in cited.items() if row not in ROWS}
    assert cited and not missing, f"cited but not in docs/reliability.md: {missing}"
