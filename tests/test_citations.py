"""An answer cites only steps that produced output (RELIABILITY R4), in ``Reply.text`` and in the stream.

A step can fail (its tool raised), time out, or be skipped (it needed a failed step); fusion may
still cite it, and a citation of a step with no output points the reader at nothing. Every such
citation is removed from the reply, whether it came from ``chat``/``invoke`` or from the ``Done``
event of ``stream``; citations of steps that did run stay.
"""

from __future__ import annotations

import json

import pytest
from support.blocking import Gate, blocking_tool
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, tool
from polymodal.agent.events import Done
from polymodal.agent.executor import StepResult
from polymodal.agent.fusion import CitationFilter, keep_valid_citations

PLAN = json.dumps({"steps": [
    {"id": "s1", "tool": "echo", "args": {"text": "fine"}},
    {"id": "s2", "tool": "explode", "args": {"text": "x"}},
    {"id": "s3", "tool": "echo", "args": {"text": "after {s2}"}},
    {"id": "s4", "tool": "blocker", "args": {"text": "x"}},
]})
ANSWER = "It is fine [s1]; it failed [s2]; it was skipped [s3]; it hung [s4]. Fine again [s1]."
CLEANED = "It is fine [s1]; it failed; it was skipped; it hung. Fine again [s1]."


@tool
def echo(text: str) -> str:
    """Repeat the text."""
    return text.upper()


@tool
def explode(text: str) -> str:
    """Always fails."""
    raise RuntimeError("boom")


@pytest.fixture
def agent():
    gate = Gate()
    llm = ScriptedChatModel(responses=[PLAN, ANSWER])
    yield Agent(llm=llm, tools=[echo, explode, blocking_tool(gate, timeout=0.3)])
    gate.release.set()


def test_citations_of_failed_timed_out_and_skipped_steps_leave_reply_text(agent):
    reply = agent.chat("check everything")
    assert [s.status for s in reply.steps] == ["ok", "error", "skipped", "timeout"]
    assert reply.text == CLEANED
    assert agent.conversation.turns[-1].reply == CLEANED  # the next turn's history does not cite them either


def test_the_streamed_done_reply_is_cleaned_too(agent):
    events = list(agent.stream("check everything"))
    done = events[-1]
    assert isinstance(done, Done) and [s.status for s in done.reply.steps] == ["ok", "error", "skipped", "timeout"]
    assert done.reply.text == CLEANED


@pytest.mark.parametrize("pieces", [
    ["It is red", " [", "s1", "] and", " [s", "9]", " loud [s1]."],
    ["a [s2]", "[s1]", " ", " [s3] b", " [s12", "34]"],
    ["[s9] starts", " and ends [s9]"],
    ["grouped [s1,", " s9]", " and [S9; ", "s1 ] and [s9 ,s", "8] end"],
    ["a [", "x] b [s1", "0] c"],
])
def test_citation_filter_streams_exactly_what_the_whole_text_becomes(pieces):
    ok = {"s1"}
    results = [StepResult(id="s1", tool="t", status="ok")]
    citations = CitationFilter(ok)
    streamed = "".join(citations.feed(p) for p in pieces) + citations.finish()
    assert streamed == keep_valid_citations("".join(pieces), results)


def test_citation_filter_holds_back_only_what_could_still_become_a_citation():
    citations = CitationFilter({"s1"})
    pieces = ["It is red", " [", "s1", "] and", " [s", "9]", " loud [s1].", " "]
    assert [citations.feed(p) for p in pieces] == ["It is red", "", "", " [s1] and", "", "", " loud [s1].", ""]
    assert citations.finish() == " " and citations.finish() == ""
