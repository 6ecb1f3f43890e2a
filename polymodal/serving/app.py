"""The ASGI app: OpenAI's chat completions API at ``/v1``, health checks, and the chat page at ``/``.

:func:`create_app` builds it from an agent (or a function that makes one) and
:class:`~polymodal.serving.settings.ServeSettings`, separately from the command line, so tests and
other programs can serve an agent of their own (``uvicorn.run(create_app(agent))``). Routes are
thin: reading and checking the request, then :class:`~polymodal.serving.service.Service`.

Routes (every one wants the API key when one is set):

- ``POST /v1/chat/completions``: OpenAI chat completions, ``stream`` included (see :mod:`.sse`).
- ``GET /v1/models``; ``GET /healthz`` (the process is up, with load figures);
  ``GET /readyz`` (200 once every tool's model has loaded, 503 with the details before or if not).
- ``POST /v1/sessions``, ``GET``/``DELETE /v1/sessions/{id}``: remembered conversations.
- ``GET /v1/artifacts/{id}``: generated media, for the session that made them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from polymodal.agent import Agent
from polymodal.errors import MissingDependencyError, PolymodalError
from polymodal.serving.errors import APIError, as_api_error
from polymodal.serving.messages import read_messages
from polymodal.serving.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ModelCard,
    ModelList,
    ResponseMessage,
    SessionInfo,
)
from polymodal.serving.service import Service
from polymodal.serving.settings import ServeSettings
from polymodal.serving.sse import ChunkStream

try:
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - the 'serve' extra is missing
    raise MissingDependencyError("polymodal serve", "fastapi", "serve") from exc

__all__ = ["SESSION_HEADER", "create_app"]

logger = logging.getLogger("polymodal.serving")

SESSION_HEADER = "X-Polymodal-Session"
_PROTECTED = ("/v1", "/healthz", "/readyz")
_PARSE_INLINE = 256 * 1024  # bodies up to this size are parsed on the event loop (a thread hop costs more)
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def create_app(agent: Agent | Callable[[], Agent], settings: ServeSettings | None = None) -> FastAPI:
    """The app serving ``agent`` (or the agent ``agent()`` builds) under ``settings``."""
    settings = settings or ServeSettings()
    service = Service(agent if isinstance(agent, Agent) else agent(), settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.preload:
            threading.Thread(target=service.warm_up, name="polymodal-warm-up", daemon=True).start()
        yield
        await asyncio.to_thread(service.close)  # uvicorn has finished the responses; let the turns end too

    app = FastAPI(title="polymodal", version=_version(), lifespan=lifespan, docs_url="/v1/docs",
                  openapi_url="/v1/openapi.json", redoc_url=None)
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service)
    if settings.ui:
        from polymodal.serving.ui import mount_ui

        mount_ui(app, service)
    if settings.api_key:
        app.add_middleware(APIKeyMiddleware, key=settings.api_key)
    return app


def _version() -> str:
    from polymodal import __version__

    return __version__


class APIKeyMiddleware:
    """401 for a request to the API without ``Authorization: Bearer <key>`` (or ``X-API-Key``).

    Pure ASGI (not ``BaseHTTPMiddleware``), so streaming and client disconnects pass through as
    they are. The chat page has its own login form (the key is the password).
    """

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PROTECTED) and not self._allowed(scope):
            error = APIError(401, "missing or wrong API key: send it as 'Authorization: Bearer <key>'",
                             type="authentication_error", code="invalid_api_key")
            response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"")
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given = token.strip()
        return hmac.compare_digest(given, self.key)


def _add_error_handlers(app: FastAPI) -> None:
    def respond(error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    async def polymodal_error(_request: Request, exc: Exception) -> Response:
        error = as_api_error(exc)
        if error.status >= 500:
            logger.error("request failed: %s", exc, exc_info=exc)
        return respond(error)

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return respond(APIError(status, str(getattr(exc, "detail", exc)), type=kind,
                                headers=dict(getattr(exc, "headers", None) or {})))

    app.add_exception_handler(PolymodalError, polymodal_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, polymodal_error)


def _add_routes(app: FastAPI, service: Service) -> None:
    settings = service.settings

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **service.status()}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, details = service.readiness()
        return JSONResponse(details, status_code=200 if ready else 503)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        raw = await _read_body(request, settings.max_request_bytes)
        # Parsing megabytes of base64 JSON takes a while: off the event loop, so other requests go on.
        body = await asyncio.to_thread(_parse, raw) if len(raw) > _PARSE_INLINE else _parse(raw)
        _check_supported(body, settings)
        session_id = body.session_id or request.headers.get(SESSION_HEADER)
        session = service.sessions.get(session_id) if session_id else None
        turn = read_messages(body.messages, with_history=session is None)
        running = await service.start(turn, session, stream=body.stream)
        await running.loaded  # bad attachments answer 413/422 here, before any stream starts
        headers = {SESSION_HEADER: session.id} if session else {}
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            options = body.stream_options
            framing = ChunkStream(id=completion_id, model=body.model, created=int(time.time()),
                                  events=bool(options and options.polymodal_events),
                                  usage=bool(options and options.include_usage))
            headers |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(framing.frames(running), media_type="text/event-stream", headers=headers)
        result = await running.done
        completion = ChatCompletion(id=completion_id, created=int(time.time()), model=body.model,
                                    choices=[Choice(message=ResponseMessage(content=result.reply.text))],
                                    polymodal=result.extension())
        return JSONResponse(completion.model_dump(mode="json"), headers=headers)

    @app.post("/v1/sessions", status_code=201)
    async def create_session() -> SessionInfo:
        return _session_info(service.sessions.create(), settings)

    @app.get("/v1/sessions/{session_id}")
    async def get_session(session_id: str) -> SessionInfo:
        return _session_info(service.sessions.get(session_id), settings)

    @app.delete("/v1/sessions/{session_id}", status_code=204)
    async def end_session(session_id: str) -> Response:
        service.sessions.get(session_id)  # 404 for an unknown one
        service.sessions.end(session_id)
        return Response(status_code=204)

    @app.get("/v1/artifacts/{artifact_id}")
    async def artifact(artifact_id: str, request: Request) -> Response:
        owner = request.headers.get(SESSION_HEADER) or request.query_params.get("session")
        found = service.artifacts.get(artifact_id, owner)
        data = await asyncio.to_thread(found.read_bytes)
        extension = found.mime_type.partition("/")[2]
        return Response(data, media_type=found.mime_type, headers={
            "Content-Disposition": f'inline; filename="{found.id or "artifact"}.{extension}"',
            "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit`` (header or bytes read)."""
    too_big = APIError(413, f"the request body is over the {limit:,} byte limit (the server's max_request_bytes); "
                            "send smaller or fewer attachments", type="request_too_large", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> ChatCompletionRequest:
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


def _session_info(session: Any, settings: ServeSettings) -> SessionInfo:
    conversation = session.agent.conversation
    return SessionInfo(id=session.id, expires_after_idle_seconds=settings.session_ttl,
                       attachment_ids=list(conversation.attachments), turns=len(conversation.turns))
