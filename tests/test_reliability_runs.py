"""RELIABILITY.md "Runs" rows (R1-R5): batches, budgets, citations, markup.

Each test is named by the row it keeps (``test_R1_...``). Batch tests use an agent with no LLM and
no tools (every job answers with the template at once): they are about the runner, not a model.
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, tool
from polymodal.agent.executor import StepResult
from polymodal.agent.fusion import keep_valid_citations
from polymodal.batch import BadLine, Job, completed_ids, encode_record, read_jobs, run_batch

HOSTILE_LINES = [
    b'{"id": "first", "prompt": "hello"}',
    b"[" * 200_000,  # deeper than the JSON parser's recursion limit
    b'{"id": "deep-dict", "prompt": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    b'{"id": "\\ud800lone", "prompt": "an id UTF-8 cannot encode"}',
    b'{"id": "bad-utf8", "prompt": "\xff\xfe not UTF-8"}',
    b'{"id": "sep", "prompt": "a line\xe2\x80\xa8separator and \xc2\x85 NEL inside a string"}',
    b'{"id": "big-number", "prompt": "x", "n": ' + b"9" * 5000 + b"}",
    b'{"id": "last", "prompt": "still answered"}',
]


def test_R1_hostile_lines_each_become_a_job_or_a_recorded_bad_line(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_bytes(b"\xef\xbb\xbf" + b"\n".join(HOSTILE_LINES) + b"\r\n")
    entries = list(read_jobs(jobs))
    assert len(entries) == len(HOSTILE_LINES)
    kinds = {e.id: type(e).__name__ for e in entries}
    assert kinds == {"first": "Job", "line-2": "BadLine", "line-3": "BadLine", "\ud800lone": "BadLine",
                     "line-5": "BadLine", "sep": "Job", "line-7": "BadLine", "last": "Job"}
    errors = {e.id: e.error for e in entries if isinstance(e, BadLine)}
    assert "nested too deeply" in errors["line-2"] and "nested too deeply" in errors["line-3"]
    assert "not valid UTF-8" in errors["line-5"] and "digits" in errors["line-7"]
    assert "unicode" in errors["\ud800lone"]  # pydantic refuses the lone surrogate; its id is kept
    assert [e for e in entries if isinstance(e, Job) and e.id == "sep"][0].prompt.startswith("a line\u2028separator")


def test_R1_R2_a_batch_with_hostile_lines_finishes_valid_jsonl_and_reruns_cleanly(tmp_path):
    jobs, output = tmp_path / "jobs.jsonl", tmp_path / "out.jsonl"
    jobs.write_bytes(b"\n".join(HOSTILE_LINES) + b"\n")
    agent = Agent(tools=[])
    summary = run_batch(agent, jobs, output)
    assert (summary.ok, summary.failed) == (3, 5)
    raw_lines = output.read_bytes().split(b"\n")
    assert raw_lines[-1] == b"" and len(raw_lines) == len(HOSTILE_LINES) + 1
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]  # str.splitlines too
    assert [r["id"] for r in records] == ["first", "line-2", "line-3", "\ud800lone", "line-5", "sep", "line-7", "last"]
    assert records[5]["ok"] and records[-1]["text"]
    again = run_batch(agent, jobs, output)  # the rerun neither dies at the same line nor repeats a job
    assert (again.skipped, again.ok, again.failed) == (8, 0, 0)
    assert completed_ids(output) == {r["id"] for r in records}


def test_R1_records_are_one_line_of_utf8_json_whatever_they_hold():
    for record in [{"id": "\udcff"}, {"text": "a\u2028b\u2029c\x85d"}, {"text": "naïve 日本"}]:
        line = encode_record(record)
        line.encode("utf-8")
        assert line.splitlines() == [line] and json.loads(line) == record
    assert "日本" in encode_record({"text": "日本"})  # readable UTF-8 where it can be


def test_R1_an_exception_that_cannot_be_printed_is_a_recorded_failure(tmp_path):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    class Failing(Agent):
        def run(self, *args, **kwargs):  # what a batch job calls
            raise Unprintable

    jobs, output = tmp_path / "jobs.jsonl", tmp_path / "out.jsonl"
    jobs.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n')
    summary = run_batch(Failing(tools=[]), jobs, output)
    assert summary.failed == 2
    record = json.loads(output.read_text().splitlines()[0])
    assert record["error_type"] == "internal" and "Unprintable" in record["error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A [s1] and B [s9].", "A [s1] and B."),
        ("Both [s1, s9].", "Both [s1]."),
        ("Both [s1,s3].", "Both [s1,s3]."),
        ("Failed [s1,s2].", "Failed [s1]."),
        ("None [s2, s9] here.", "None here."),
        ("Semicolons [s9; s1; s3].", "Semicolons [s1, s3]."),
        ("Upper [S1, S3] kept.", "Upper [S1, S3] kept."),
        ("Spaces [ s2 , s1 ] in.", "Spaces [s1] in."),
        ("Repeats [s1, s1, s9].", "Repeats [s1]."),
        ("Skipped [s4] and [s1, s4].", "Skipped and [s1]."),
        ("Not citations [a, s9] or [see s9].", "Not citations [a, s9] or [see s9]."),
    ],
)
def test_R4_grouped_citations_keep_only_steps_that_ran(text, expected):
    results = [StepResult(id="s1", tool="t", status="ok"), StepResult(id="s2", tool="t", status="error"),
               StepResult(id="s3", tool="t", status="ok"), StepResult(id="s4", tool="t", status="skipped")]
    assert keep_valid_citations(text, results) == expected


def test_R4_grouped_citations_end_to_end():
    @tool
    def works(text: str) -> str:
        """Echo text."""
        return text

    @tool
    def breaks(text: str) -> str:
        """Always fails."""
        raise RuntimeError("broken")

    plan = json.dumps({"steps": [{"id": "s1", "tool": "works", "args": {"text": "a"}},
                                 {"id": "s2", "tool": "breaks", "args": {"text": "b"}}]})
    llm = ScriptedChatModel(responses=[plan, "Found a [s1, s2] and b [s2,s3]."])
    reply = Agent(llm=llm, tools=[works, breaks]).chat("do both")
    assert reply.text == "Found a [s1] and b."
