"""Remove secrets from text before it reaches an LLM prompt, a Reply or a log line (RELIABILITY T7).

Tool errors often quote what failed — a URL with a token in its query, an authorization header, an
API key in a message from a client library. That text flows into the fusion prompt and the Reply,
so it is scrubbed at the one place step errors are recorded.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

MASK = "***"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # credentials inside a URL: scheme://user:password@host
    (re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I), rf"\g<scheme>{MASK}@"),
    # query parameters and key=value pairs whose name says "secret"
    (re.compile(r"(?P<key>\b[\w-]*(?:token|secret|password|passwd|api[_-]?key|access[_-]?key|signature|sig)"
                r"\b[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;)]+", re.I), rf"\g<key>{MASK}"),
    # authorization headers
    (re.compile(r"(?P<key>\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)?\s*)[^\s\"',;]+", re.I),
     rf"\g<key>{MASK}"),
    # well-known key shapes: OpenAI, Hugging Face, GitHub, AWS, Google, Slack
    (re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
                r"|AIza[0-9A-Za-z_-]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})\b"), MASK),
]


def redact(text: str) -> str:
    """``text`` with credentials, tokens and keys replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
