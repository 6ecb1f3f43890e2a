"""Limits on request bodies, enforced where the bytes arrive: one ASGI layer around the whole app.

Every route reads its body through :class:`BodyLimits` (the completions endpoint, FastAPI's
routes, the chat page, and whatever is mounted later: ``/mcp``, ``/metrics``), so no route can
forget a limit. A body is read here, whole, before any route sees it, under four bounds
(RELIABILITY S3-S5):

- **size**: a declared ``Content-Length`` over ``max_request_bytes`` is a 413 before one byte is
  read; a chunked body is a 413 as soon as the bytes read pass it.
- **time**: the whole body must arrive within ``body_timeout`` seconds (408 past it), so a client
  trickling a byte a second cannot hold a connection and its buffer for ever.
- **memory across connections**: bytes buffered by all requests together stay under
  ``max_buffered_bytes``. A declared length is reserved up front, so the 61st slow client is told
  503 with ``Retry-After`` at once instead of adding its megabytes; a request keeps its share until
  its route has answered (the route holds the bytes until then).
- **nesting**: a JSON body nested deeper than ``max_json_depth`` is a 400 saying so, before any
  parser recurses into it (``json.loads`` would raise ``RecursionError`` and log a traceback).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from polymodal.serving.errors import APIError

__all__ = ["BodyLimits", "json_too_deep", "replay"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STRUCTURE = re.compile(rb'[\[\]{}"\\]')
_SCAN_INLINE = 256 * 1024  # bodies up to this size are scanned on the event loop


class BodyLimits:
    """ASGI middleware: read each request body whole under the size, time, memory and depth bounds."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_buffered_bytes: int, body_timeout: float,
                 max_json_depth: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_buffered_bytes = max(max_buffered_bytes, max_request_bytes)
        self.body_timeout = body_timeout
        self.max_json_depth = max_json_depth
        self.buffered = 0
        """Bytes reserved by the requests being read or answered now (all on the event loop: a plain int)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _has_body(headers):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        reserved = int(declared) if declared.isdigit() else 0
        refusal = self._too_big(reserved) if reserved > self.max_request_bytes else self._reserve(reserved)
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return
        try:
            body, reserved, refusal = await self._read(receive, reserved)
            if refusal is None and body is not None and _looks_like_json(headers, body):
                deep = (await asyncio.to_thread(json_too_deep, body, self.max_json_depth) if len(body) > _SCAN_INLINE
                        else json_too_deep(body, self.max_json_depth))
                if deep:
                    msg = (f"the request body is JSON nested more than {self.max_json_depth} levels deep "
                           "(the server's max_json_depth); send a flatter document")
                    refusal = APIError(400, msg, code="json_too_deep")
            if refusal is not None:
                await _answer(refusal, scope, receive, send)
            elif body is not None:  # None: the client left while sending; nobody to answer
                await self.app(scope, replay(body, receive), send)
        finally:
            self.buffered -= reserved

    async def _read(self, receive: Receive, reserved: int) -> tuple[bytes | None, int, APIError | None]:
        """The body, the bytes now reserved for it, and the refusal that stopped reading, if any."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:  # asyncio.timeout_at is 3.11+; wait_for works on 3.10 too
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (TimeoutError, asyncio.TimeoutError):
                msg = (f"the request body did not arrive within {self.body_timeout:g} s (the server's "
                       f"body_timeout; {size:,} bytes came); send it faster or smaller")
                return None, reserved, APIError(408, msg, code="body_timeout", headers={"Connection": "close"})
            if message["type"] == "http.disconnect":
                return None, reserved, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                return None, reserved, self._too_big(size)
            if size > reserved:  # more than declared (or chunked): reserve as it comes
                refusal = self._reserve(size - reserved)
                if refusal is not None:
                    return None, reserved, refusal
                reserved = size
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), reserved, None

    def _reserve(self, nbytes: int) -> APIError | None:
        if self.buffered + nbytes > self.max_buffered_bytes:
            msg = (f"the server is receiving {self.buffered:,} bytes of other requests, its limit "
                   f"(max_buffered_bytes {self.max_buffered_bytes:,}); retry shortly")
            return APIError(503, msg, type="server_busy", code="buffers_full",
                            headers={"Retry-After": "5", "Connection": "close"})
        self.buffered += nbytes
        return None

    def _too_big(self, size: int) -> APIError:
        msg = (f"the request body is over the {self.max_request_bytes:,} byte limit (the server's max_request_bytes; "
               f"{size:,} bytes); send smaller or fewer attachments")
        return APIError(413, msg, type="request_too_large", code="body_too_large", headers={"Connection": "close"})


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the client's own messages (its disconnect)."""
    given = False

    async def again() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether the JSON in ``body`` nests arrays and objects more than ``limit`` deep (without parsing it).

    Counting brackets settles almost every body at C speed; only one with more brackets than
    ``limit`` is scanned, jumping from one structural byte to the next (base64 is skipped whole).
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    skip = -1
    for match in _STRUCTURE.finditer(body):
        at = match.start()
        if at == skip:
            continue
        char = body[at]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                skip = at + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


def _has_body(headers: Headers) -> bool:
    declared = headers.get("content-length", "")
    if declared.isdigit():
        return int(declared) > 0
    return bool(declared) or "transfer-encoding" in headers


def _looks_like_json(headers: Headers, body: bytes) -> bool:
    kind = headers.get("content-type", "").lower()
    if "multipart/" in kind or "x-www-form-urlencoded" in kind:
        return False
    return "json" in kind or body.lstrip()[:1] in (b"{", b"[")


async def _answer(error: APIError, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse(error.body(), status_code=error.status, headers=error.headers)(scope, receive, send)
