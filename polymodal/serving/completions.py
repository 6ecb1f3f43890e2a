"""``POST /v1/chat/completions`` as a bare ASGI endpoint: the one route on every request's path.

FastAPI serves everything else (health, models, sessions, artifacts, the docs and the chat
page). This route is answered below it, before FastAPI's exception, dependency and routing
layers: those cost 0.4 to 0.5 ms per request here, a quarter of what HTTP adds to a turn in all
(``bench/serve.py``), for nothing this route uses. What it keeps of them is done here: the body
cap, JSON and schema errors as 400s naming the field, the agent's errors mapped by
:func:`~polymodal.serving.errors.as_api_error`, server errors logged.

:class:`CompletionsEndpoint` wraps the FastAPI app as its innermost middleware, so the API-key
middleware (outside it) still guards the route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response, StreamingResponse

from polymodal.serving.errors import APIError, as_api_error
from polymodal.serving.messages import read_messages
from polymodal.serving.protocol import ChatCompletion, ChatCompletionRequest, Choice, ResponseMessage, Usage
from polymodal.serving.service import Service
from polymodal.serving.settings import ServeSettings
from polymodal.serving.sse import ChunkStream

__all__ = ["COMPLETIONS_PATH", "SESSION_HEADER", "CompletionsEndpoint", "error_response"]

logger = logging.getLogger("polymodal.serving")

COMPLETIONS_PATH = "/v1/chat/completions"
SESSION_HEADER = "X-Polymodal-Session"
_PARSE_INLINE = 256 * 1024  # bodies up to this size are parsed on the event loop (a thread hop costs more)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Disconnected(Exception):
    """The client left while sending its request: there is nobody to answer."""


class CompletionsEndpoint:
    """ASGI middleware that answers ``POST /v1/chat/completions`` itself and passes the rest on."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.settings: ServeSettings = service.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != COMPLETIONS_PATH:
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] != "POST":
                raise APIError(405, f"{COMPLETIONS_PATH} takes POST, not {scope['method']}", headers={"Allow": "POST"})
            response = await self._complete(scope, receive)
        except _Disconnected:
            return
        except Exception as exc:  # every failure is an OpenAI-shaped error body
            response = error_response(exc)
        await response(scope, receive, send)

    async def _complete(self, scope: Scope, receive: Receive) -> Response:
        headers = Headers(scope=scope)
        raw = await _read_body(receive, headers, self.settings.max_request_bytes)
        # Parsing megabytes of base64 JSON takes a while: off the event loop, so other requests go on.
        body = await asyncio.to_thread(_parse, raw) if len(raw) > _PARSE_INLINE else _parse(raw)
        _check_supported(body, self.settings)
        service = self.service
        session_id = body.session_id or headers.get(SESSION_HEADER)
        # A store query (sqlite, Redis): on a worker thread, never blocking the other requests' loop.
        session = await asyncio.to_thread(service.sessions.get, session_id) if session_id else None
        turn = read_messages(body.messages, with_history=session is None)
        running = await _unless_gone(service.start(turn, session, stream=body.stream), receive)
        replied = {SESSION_HEADER: session.id} if session else {}
        completion_id = "chatcmpl-" + os.urandom(16).hex()
        if body.stream:
            await running.loaded  # bad attachments answer 413/422 here, before the stream starts
            options = body.stream_options
            framing = ChunkStream(id=completion_id, model=body.model, created=int(time.time()),
                                  events=bool(options and options.polymodal_events),
                                  usage=bool(options and options.include_usage))
            replied |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(framing.frames(running), media_type="text/event-stream", headers=replied)
        result = await running.done
        completion = ChatCompletion(id=completion_id, created=int(time.time()), model=body.model,
                                    choices=[Choice(message=ResponseMessage(content=result.reply.text))],
                                    polymodal=result.extension(), usage=Usage.of(result.reply))
        return Response(completion.model_dump_json(), media_type="application/json", headers=replied)


async def _unless_gone(admitted: Awaitable[Any], receive: Receive) -> Any:
    """``admitted``'s result, unless the client disconnects first: then its queued turn is dropped unstarted.

    A turn waiting for a slot holds a place in the queue; one whose client has gone would run for
    nobody and make live clients get 429 (RELIABILITY S6). The body has been read, so the next
    message ``receive`` gives is the client's disconnect.
    """
    waiting = asyncio.ensure_future(admitted)
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()  # leaves the queue: Service._admit gives the reservation and the session lock back
        gone.cancel()
    if not waiting.done() or waiting.cancelled():
        raise _Disconnected
    return waiting.result()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def error_response(exc: BaseException) -> JSONResponse:
    """The OpenAI-shaped error response for ``exc``; server errors are logged with their traceback."""
    error = as_api_error(exc)
    if error.status >= 500:
        logger.error("request failed: %s", exc, exc_info=exc)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit`` (header or bytes read)."""
    too_big = APIError(413, f"the request body is over the {limit:,} byte limit (the server's max_request_bytes); "
                            "send smaller or fewer attachments", type="request_too_large", code="body_too_large")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(raw: bytes) -> ChatCompletionRequest:
    if raw:
        try:  # pydantic-core reads the JSON itself: one pass, no Python dicts in between
            return ChatCompletionRequest.model_validate_json(raw)
        except ValidationError:
            pass  # the slower path below names the problem (the JSON's line and column, or the field)
    parsed: ChatCompletionRequest = _validated(ChatCompletionRequest, _json(raw))
    return parsed


def _json(body: bytes) -> Any:
    if not body:
        raise APIError(400, "the request body is empty; expected a JSON chat completion request")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise APIError(400, f"the request body is not valid JSON: {reason}{where}", code="invalid_json") from exc


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
            problems.append(f"{where or 'body'}: {error['msg']}")
        first = problems[0].partition(":")[0] if problems else None
        raise APIError(400, "invalid request: " + "; ".join(problems), param=first) from exc


def _check_supported(body: ChatCompletionRequest, settings: ServeSettings) -> None:
    if body.model != settings.model_name:
        msg = f"the model {body.model!r} is not served here; use model={settings.model_name!r} (GET /v1/models)"
        raise APIError(404, msg, type="not_found_error", param="model", code="model_not_found")
    if body.n not in (None, 1):
        raise APIError(400, f"n={body.n}: polymodal gives one answer per request", param="n")
    if body.tools or body.functions:
        msg = "client-side tools are not supported: polymodal plans and runs its own tools"
        raise APIError(400, msg, param="tools")
