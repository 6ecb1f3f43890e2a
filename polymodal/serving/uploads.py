"""The chat page reads only files uploaded to it: a guard in front of Gradio's API (RELIABILITY S1, S2).

Gradio's HTTP API takes file objects by path (``{"path": "...", "meta": {"_type":
"gradio.FileData"}}``) and copies the path it is given into its cache, where the page's reply
links it for download. A client can name any path of the server's, a URL (fetched by the
server), or a FIFO (whose ``open()`` blocks the event loop). Gradio's own check of those paths
only runs for apps started with ``launch()``; a page mounted on FastAPI skips it.

:class:`UploadPathGuard` reads every JSON body sent to the page's API (``/gradio_api/...``;
:class:`~polymodal.serving.limits.BodyLimits` has bounded it already) and answers 400 when any
file object in it names something other than a regular file inside the page's upload folder,
symlinks resolved, before Gradio copies or opens anything. The file-system checks run on a
worker thread, never on the event loop. :func:`polymodal.serving.ui.mount_ui` also turns
Gradio's own check on (``has_launched``), so the two stand one behind the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from polymodal.serving.errors import APIError
from polymodal.serving.limits import ASGIApp, Receive, Scope, Send, replay

__all__ = ["UploadPathGuard", "refuse_outside"]

_PREFIX = "/gradio_api/"
_PARSE_INLINE = 256 * 1024


class UploadPathGuard:
    """ASGI middleware: 400 for a chat-page API call naming a file outside ``folder``."""

    def __init__(self, app: ASGIApp, folder: str, prefix: str = _PREFIX) -> None:
        self.app = app
        self.folder = folder
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if "multipart/" in Headers(scope=scope).get("content-type", "").lower():  # an upload: Gradio writes it
            await self.app(scope, receive, send)
            return
        body = await _whole_body(receive)
        if body is None:
            return  # the client left while sending
        named = await asyncio.to_thread(_named_paths, body) if len(body) > _PARSE_INLINE else _named_paths(body)
        problem = await asyncio.to_thread(refuse_outside, named, self.folder) if named else None
        if problem is not None:
            error = APIError(400, problem, code="path_not_uploaded", param="path")
            body_out = error.body() | {"detail": problem}
            await JSONResponse(body_out, status_code=400)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def refuse_outside(paths: list[str], folder: str) -> str | None:
    """Why one of ``paths`` may not be read (the first such), or None when all are uploads in ``folder``.

    Nothing is opened: ``realpath`` and ``stat`` only, so a FIFO or a device is refused unread.
    """
    root = os.path.realpath(folder)
    for named in paths:
        shown = named if len(named) <= 120 else named[:117] + "..."
        where = os.path.realpath(named) if os.path.isabs(named) and "://" not in named else None
        if where is None or os.path.commonpath([root, where]) != root:
            return (f"{shown!r}: the chat page only reads files uploaded to it (its upload folder); "
                    "a path of the server's or a URL is refused")
        try:
            mode = os.stat(where).st_mode
        except OSError:
            return f"{shown!r}: no such upload in the chat page's upload folder"
        if not stat.S_ISREG(mode):
            return f"{shown!r}: not a regular file in the chat page's upload folder (a pipe, device or folder)"
    return None


def _named_paths(body: bytes) -> list[str]:
    """Every ``path`` of a file object in the JSON ``body`` (none when it is not JSON: Gradio refuses it)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return []
    found: list[str] = []
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            path = value.get("path")
            if isinstance(path, str):  # a file object (Gradio's FileData, or a message's file): all are checked
                found.append(path)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


async def _whole_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)

