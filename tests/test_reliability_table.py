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

ROWS = {
    "P1": "prose instead of JSON: bounded re-asks, then PlanningError with the raw outputs; no tool ran",
    "P2": "JSON cut off mid-way: the same, with its own message",
    "P3": "args that fail the tool's schema: re-asked with the field path",
    "P4": "unknown tool: rejected, the re-ask lists the registered tools",
    "P5": "extra args (device, path, trust_remote_code): rejected",
    "P6": "an attachment id that does not exist: rejected, never read as a path",
    "P7": "cycles, self and forward references, more than max_steps: rejected before any tool runs",
    "P8": "modality mismatch: rejected before any model loads",
    "P9": "a JSON tool call inside tool output: never parsed as a plan",
    "P10": "spoken instructions: tool calls unchanged, fusion treats the transcript as data",
    "A1": "paths outside the allowed roots: refused before open()",
    "A2": "symlinks out of a root, and files swapped after they were checked: refused",
    "A3": "content unlike its extension: sniffed from the bytes, typed error",
    "A4": "empty, truncated, garbage, corrupt files: typed error naming the file, no model loaded",
    "A5": "decompression bombs: refused from the header",
    "A6": "over byte, pixel or duration caps: typed error saying the cap and how to raise it",
    "A7": "silent, near-silent, 8 kHz stereo, 48 kHz float audio: resampled and downmixed right, 'no speech'",
    "A8": "video without audio, audio given as video, 0 frames: handled",
    "A9": "huge text, control characters, RTL overrides: bounded or escaped",
    "A10": "URL attachments: off by default with a clear message",
    "T1": "a tool hangs: ToolTimeout at its deadline, the request goes on",
    "T2": "a tool raises: the step records it, independent steps run, fusion says what failed",
    "T3": "out of memory: models evicted, one retry, then ResourceError; the process lives on",
    "T4": "model folder missing, hub unreachable: typed configuration error at once",
    "T5": "optional dependency missing: import works, the tool names its extra",
    "T6": "transient failures: bounded retries with backoff; non-transient ones fail at once",
    "T7": "secrets in error text: redacted before the LLM and the user",
    "T8": "trust_remote_code: never set from a plan",
    "T9": "concurrent requests on one GPU tool: bounded per device, no model loaded twice",
    "R1": "a batch with bad jobs and hostile lines: every job answered or recorded, valid JSONL",
    "R2": "a batch killed and restarted: resumes, nothing lost or done twice",
    "R3": "budgets exceeded: typed error with the partial results",
    "R4": "fusion cites a step that never ran: the citation is removed",
    "R5": "markup in output: kept raw in the reply, escaped when rendered",
}

_NAMED = re.compile(r"^\s*(?:async\s+)?def\s+test_((?:[PATR]\d{1,2}_)+)", re.M)


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
