"""RELIABILITY.md "Tools and models" rows (T1-T9): faults of tools, models and the LLM behind them.

Each test is named by the row it keeps (``test_T2_...``). Fakes stand only at the boundary a test
is not about: a chat model that fails on cue (the executor, planner and fusion are under test), a
loader that runs out of memory on cue (the model cache is under test).
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, tool
from polymodal.errors import exception_text
from polymodal.redaction import redact


class Unprintable(Exception):
    """An exception whose message cannot be built: ``str()`` on it raises."""

    def __str__(self) -> str:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a library's broken __str__")


# ---------------------------------------------------------------- T2: a tool raises


def test_T2_a_tool_exception_that_cannot_be_printed_stays_inside_its_step():
    @tool
    def fine(text: str) -> str:
        """Echo text."""
        return f"echo {text}"

    @tool
    def weird(text: str) -> str:
        """Fails with an exception that cannot be printed."""
        raise Unprintable

    plan = json.dumps({"steps": [{"id": "s1", "tool": "weird", "args": {"text": "a"}},
                                 {"id": "s2", "tool": "fine", "args": {"text": "b"}}]})
    llm = ScriptedChatModel(responses=[plan, "b was echoed [s2]; a failed."])
    reply = Agent(llm=llm, tools=[weird, fine]).chat("do both")
    assert [s.status for s in reply.steps] == ["error", "ok"]
    assert reply.steps[1].content == "echo b"  # the sibling's output is kept
    assert reply.steps[0].error_type == "Unprintable" and "could not be printed" in (reply.steps[0].error or "")
    assert 'step="s1" tool="weird" status="error"' in llm.prompt(1)
    assert reply.text == "b was echoed [s2]; a failed."


def test_T2_exception_text_names_the_class_when_str_fails():
    assert exception_text(ValueError("plain")) == "plain"
    assert exception_text(Unprintable()) == "<Unprintable whose message could not be printed (UnicodeDecodeError)>"


# ---------------------------------------------------------------- T7: secrets in error text

SECRETS = [
    ("url-userinfo", "GET https://alice:hunter2@example.com/x failed", "hunter2"),
    ("url-password-with-at", "connect postgres://app:p@ss@w0rd@db.internal:5432/x refused", "ss@w0rd"),
    ("url-token-as-user", "clone https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r failed",
     "ghp_abcdefghijklmnopqrstuvwxyz0123"),
    ("url-query-token", "GET https://api.example.com/v1?token=abc123def&x=1 returned 500", "abc123def"),
    ("api_key=", "request failed: api_key=AbC123xyz&model=m", "AbC123xyz"),
    ("api-key-header", "X-Api-Key: 9f8e7d6c5b4a rejected", "9f8e7d6c5b4a"),
    ("jwt-bare", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U expired",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("jwt-header", "header Authorization: Bearer eyJhbGciOi.eyJwYXlsb2Fk.sig rejected", "eyJwYXlsb2Fk"),
    ("bearer-anywhere", "the proxy forwarded Bearer 0a1b2c3d4e5f6a7b8c9d and failed", "0a1b2c3d4e5f6a7b8c9d"),
    ("basic-auth-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("hf-token", "hub said 401 for hf_abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwx"),
    ("sk-key", "Incorrect API key provided: sk-proj-AbCdEf0123456789xyz", "sk-proj-AbCdEf0123456789xyz"),
    ("json-api-key", '{"api_key": "s3cr3t-value"}', "s3cr3t-value"),
    ("json-password-with-spaces", '{"user": "bob", "password": "correct horse battery staple"}', "horse"),
    ("escaped-json-password", 'body was "{\\"password\\": \\"two words\\"}"', "two words"),
    ("client-secret", "client_secret='a b c' invalid", "b c"),
    ("pem-private-key", "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
     "MIIEvQIBADANBg"),
]


@pytest.mark.parametrize(("text", "secret"), [pytest.param(t, s, id=i) for i, t, s in SECRETS])
def test_T7_secret_shapes_are_masked(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "***" in cleaned
    assert redact(cleaned) == cleaned  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "the captioner timed out after 30 s on image_1 (photo.png); tokens generated: 40, max_tokens: 512",
        "see https://host:8080/api/@scope/pkg and mailto:bob@example.com",
        "the bearer of bad news",
        "token_count: 12 and password is required",
    ],
)
def test_T7_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_T7_url_redaction_keeps_the_host():
    assert redact("GET https://u:p@ss@db.example.com:5432/x") == "GET https://***@db.example.com:5432/x"
