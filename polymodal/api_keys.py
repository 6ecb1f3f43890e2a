"""Whether an HTTP request carries the API key: one rule for ``polymodal serve`` and ``polymodal mcp``.

``Authorization: Bearer <key>`` (what OpenAI and MCP clients send) or ``X-API-Key: <key>``,
compared in constant time. Plain ASGI scope reading with no web framework, so the MCP server's
own HTTP transport (the ``mcp`` extra alone, no FastAPI) applies exactly the server's rule.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

__all__ = ["MISSING_KEY_MESSAGE", "carries_key"]

MISSING_KEY_MESSAGE = "missing or wrong API key: send it as 'Authorization: Bearer <key>'"


def carries_key(scope: Mapping[str, Any], key: bytes) -> bool:
    """True when the request of ``scope`` presents ``key`` (bearer token or ``X-API-Key``)."""
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"x-api-key", b"")
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() == b"bearer":
        given = token.strip()
    return hmac.compare_digest(given, key)
