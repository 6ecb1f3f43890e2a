"""Remove secrets from text before it reaches an LLM prompt, a Reply or a log line (RELIABILITY T7).

Tool errors often quote what failed — a URL with a token in its query, an authorization header, an
API key in a message from a client library. That text flows into the fusion prompt and the Reply,
so it is scrubbed where step errors are recorded and where an LLM call's failure is reported.

What is masked (each shape is a row of ``tests/test_reliability_tools.py``'s T7 table):

- URL userinfo: ``scheme://user:password@host`` and ``scheme://token@host`` become
  ``scheme://***@host``, also when the password itself holds ``@`` (the userinfo runs to the last
  ``@`` before the path);
- JWTs (``eyJ...``, three base64url parts) anywhere, and ``Bearer <token>`` anywhere;
- ``Authorization:`` header values (``Basic``, ``Bearer``, ``Token`` or bare);
- the value of a key whose name says secret — ``api_key``, ``apikey``, ``access_key``, ``token``,
  ``secret``, ``password``, ``passwd``, ``signature``, ``sig``, ``private_key``, ``credentials``
  (with any prefix: ``client_secret``, ``X-Api-Key``) — as ``key=value``, ``key: value``, a query
  parameter or JSON ``"key": "value"`` (a quoted value is masked whole, spaces and all);
- well-known key shapes on their own: OpenAI/Anthropic ``sk-...``, Hugging Face ``hf_...``,
  GitHub ``gh*_...``/``github_pat_...``, GitLab ``glpat-...``, AWS ``AKIA...``, Google ``AIza...``,
  Slack ``xox*-...``;
- PEM private key blocks.

Words that merely contain a key name (``tokens generated: 40``, ``max_tokens``) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["redact"]

MASK = "***"
_KEY_NAMES = r"token|secret|password|passwd|api[_-]?key|access[_-]?key|private[_-]?key|signature|sig|credentials?"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\\"(?:(?!\\").)*\\"'


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[:2] if value.startswith('\\"') else value[:1] if value[:1] in "\"'" else ""
    return f"{match.group('key')}{quote}{MASK}{quote}"


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # PEM private keys, whole
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), MASK),
    # userinfo inside a URL: scheme://user:p@ss@host -> the last "@" before the path ends it
    (re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^\s/?#@:]*(?::[^\s/]*)?@", re.I), rf"\g<scheme>{MASK}@"),
    # JSON web tokens, wherever they appear
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), MASK),
    # bearer tokens outside a header too ("sent Bearer abc...")
    (re.compile(r"(?P<key>\bbearer\s+)[A-Za-z0-9._~+/-]{8,}=*", re.I), rf"\g<key>{MASK}"),
    # authorization headers
    (re.compile(r"(?P<key>\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)?\s*)[^\s\"',;]+", re.I),
     rf"\g<key>{MASK}"),
    # key=value, key: value, ?key=value and JSON "key": "value" whose key name says "secret"
    (re.compile(rf"(?P<key>\b[\w-]*(?:{_KEY_NAMES})\b\\?[\"']?\s*[=:]\s*)"
                rf"(?P<value>{_QUOTED}|[^\s&\"',;)}}\]]+)", re.I), _mask_value),
    # well-known key shapes: OpenAI/Anthropic, Hugging Face, GitHub, GitLab, AWS, Google, Slack
    (re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
                r"|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}"
                r"|AIza[0-9A-Za-z_-]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})\b"), MASK),
]


def redact(text: str) -> str:
    """``text`` with credentials, tokens and keys replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
