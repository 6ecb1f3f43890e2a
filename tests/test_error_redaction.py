"""Secrets in polymodal's OWN errors are redacted too (RELIABILITY T7), not only in raw exceptions.

A tool that fails the polymodal way raises ``ToolError`` (or a ``ConfigurationError``, an
``AttachmentError``...) whose message may quote a URL with a token. The step's recorded error,
the fusion prompt and the answer written without an LLM must all be free of it.
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, AttachmentError, ConfigurationError, ToolError, tool

SECRET = "TOPSECRET42abc"
URL = f"https://svc.example.com/q?api_key={SECRET}"


@pytest.mark.parametrize("make", [
    lambda: ToolError("fetch", f"GET {URL} -> 403"),
    lambda: ConfigurationError(f"model folder {URL} is not reachable"),
    lambda: AttachmentError(URL, "not an image"),
    lambda: RuntimeError(f"GET {URL} -> 500"),
], ids=["ToolError", "ConfigurationError", "AttachmentError", "raw-exception"])
def test_a_failing_tools_error_is_redacted_everywhere(make):
    @tool
    def fetch(query: str) -> str:
        """Look something up remotely."""
        raise make()

    plan = json.dumps({"steps": [{"id": "s1", "tool": "fetch", "args": {"query": "x"}}]})
    llm = ScriptedChatModel(responses=[plan, "It failed."])
    reply = Agent(llm=llm, tools=[fetch]).chat("look it up")
    (step,) = reply.steps
    assert step.status == "error" and "api_key=***" in (step.error or "")
    assert SECRET not in (step.error or "") and SECRET not in llm.prompt(1)
    assert SECRET not in reply.model_dump_json()

    templated = Agent(tools=[fetch], planner=_Fixed(plan)).chat("look it up")  # no LLM: the template answer
    assert "api_key=***" in templated.text and SECRET not in templated.text


class _Fixed:
    """A planner returning one fixed plan (the plan is not under test)."""

    def __init__(self, raw: str) -> None:
        from polymodal.agent.planner import parse_plan

        self.fixed = parse_plan(raw)

    def plan(self, request, tools, *, config=None):
        from polymodal.agent.planner import PlanOutcome

        return PlanOutcome(plan=self.fixed, tier="defaults")


@pytest.mark.parametrize(("text", "expected"), [
    ('{"password": "hunter2"}', '{"password": "***"}'),
    ('{\\"token\\": \\"abc123\\"}', '{\\"token\\": \\"***\\"}'),
    ("api_key='xyz123' next", "api_key='***' next"),
    ("api_key=xyz123&x=1", "api_key=***&x=1"),
    ("token=Xyz123 next", "token=*** next"),
], ids=["json", "escaped-json", "single-quotes", "query", "unquoted"])
def test_a_masked_value_keeps_its_quotes(text, expected):
    from polymodal.redaction import redact

    assert redact(text) == expected  # the surrounding JSON or code stays readable (and parseable)
