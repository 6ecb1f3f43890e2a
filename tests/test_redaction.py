"""Secrets in error text never reach the LLM or the user (RELIABILITY T7)."""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, tool
from polymodal.redaction import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://alice:hunter2@example.com/x failed", "hunter2"),
        ("GET https://api.example.com/v1?token=abc123def&x=1 returned 500", "abc123def"),
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789xyz", "sk-proj-AbCdEf0123456789xyz"),
        ("header Authorization: Bearer eyJhbGciOi.payload.sig rejected", "eyJhbGciOi.payload.sig"),
        ("hub said 401 for hf_abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwx"),
        ('{"api_key": "s3cr3t-value"}', "s3cr3t-value"),
    ],
)
def test_secrets_are_masked(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "***" in cleaned


def test_ordinary_text_is_left_alone():
    text = "the captioner timed out after 30 s on image_1 (photo.png); tokens generated: 40"
    assert redact(text) == text


def test_a_failing_tool_error_is_redacted_in_the_fusion_prompt_and_the_reply():
    @tool
    def fetch(query: str) -> str:
        """Look something up remotely."""
        raise RuntimeError("GET https://svc.example.com/q?api_key=TOPSECRET42 -> 403")

    plan = json.dumps({"steps": [{"id": "s1", "tool": "fetch", "args": {"query": "x"}}]})
    llm = ScriptedChatModel(responses=[plan, "It failed."])
    reply = Agent(llm=llm, tools=[fetch]).chat("look it up")
    assert "TOPSECRET42" not in (reply.steps[0].error or "") and "api_key=***" in (reply.steps[0].error or "")
    assert "TOPSECRET42" not in llm.prompt(1)
