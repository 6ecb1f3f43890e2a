"""The ASGI app: OpenAI's chat completions API at ``/v1``, health checks, and the chat page at ``/``.

:func:`create_app` builds it from an agent (or a function that makes one) and
:class:`~polymodal.serving.settings.ServeSettings`, separately from the command line, so tests and
other programs can serve an agent of their own (``uvicorn.run(create_app(agent))``). Routes are
thin: reading and checking the request, then :class:`~polymodal.serving.service.Service`. The
chat completions route is the hot one, answered below FastAPI by
:class:`~polymodal.serving.completions.CompletionsEndpoint`.

Routes (every one wants the API key when one is set):

- ``POST /v1/chat/completions``: OpenAI chat completions, ``stream`` included (see :mod:`.sse`).
- ``GET /v1/models``; ``GET /healthz`` (the process is up, with load figures);
  ``GET /readyz`` (200 once every tool's model has loaded, 503 with the details before or if not).
- ``POST /v1/sessions``, ``GET``/``DELETE /v1/sessions/current`` (the session named by the
  ``X-Polymodal-Session`` header, never by the URL: URLs end up in access logs): remembered conversations.
- ``GET /v1/artifacts/{id}``: generated media, for the session that made them.
- ``/mcp`` (with ``create_app(..., mcp=True)``): the tools and ``ask`` over MCP's streamable HTTP.
- ``GET /metrics``: Prometheus' text format (:mod:`.metrics`; docs/observability.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from polymodal.agent import Agent
from polymodal.api_keys import MISSING_KEY_MESSAGE, carries_key
from polymodal.errors import MissingDependencyError, PolymodalError
from polymodal.serving.errors import APIError
from polymodal.serving.protocol import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList, SessionInfo
from polymodal.serving.service import Service
from polymodal.serving.settings import ServeSettings

try:
    from fastapi import APIRouter, FastAPI, Request, Response
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from polymodal.serving.completions import (
        COMPLETIONS_PATH,
        SESSION_HEADER,
        ASGIApp,
        CompletionsEndpoint,
        Receive,
        Scope,
        Send,
        error_response,
    )
    from polymodal.serving.limits import BodyLimits
    from polymodal.serving.observability import observe
except ImportError as exc:  # pragma: no cover - the 'serve' extra is missing
    raise MissingDependencyError("polymodal serve", "fastapi", "serve") from exc

__all__ = ["SESSION_HEADER", "create_app"]

logger = logging.getLogger("polymodal.serving")

_PROTECTED = ("/v1", "/healthz", "/readyz", "/mcp", "/metrics")


def create_app(agent: Agent | Callable[[], Agent], settings: ServeSettings | None = None, *,
               mcp: bool = False) -> FastAPI:
    """The app serving ``agent`` (or the agent ``agent()`` builds) under ``settings``; ``mcp``
    also serves its tools over MCP at ``/mcp`` (the ``mcp`` extra), behind the same API key."""
    settings = settings or ServeSettings()
    service = Service(agent if isinstance(agent, Agent) else agent(), settings)
    mcp_running: list[Callable[[], AbstractAsyncContextManager[None]]] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:  # sessions that expired while no server ran are gone before the first request (off the loop)
            await asyncio.to_thread(service.sessions.sweep, force=True)
        except APIError as exc:  # logged by Sessions; the next sweep tries again
            logger.warning("could not remove expired sessions at start-up: %s", exc.message)
        if settings.preload:
            threading.Thread(target=service.warm_up, name="polymodal-warm-up", daemon=True).start()
        async with mcp_running[0]() if mcp_running else nullcontext():
            yield
        await asyncio.to_thread(service.close)  # uvicorn has finished the responses; let the turns end too

    app = FastAPI(title="polymodal", version=_version(), lifespan=lifespan, docs_url="/v1/docs",
                  openapi_url="/v1/openapi.json", redoc_url=None)
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service)
    _document_completions(app)
    if mcp:
        from polymodal.mcp_server import http_endpoint

        endpoint, running = http_endpoint(service.agent, host="", max_request_bytes=settings.max_request_bytes)
        app.add_route("/mcp", endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
        mcp_running.append(running)
    if settings.ui:
        from polymodal.serving.ui import mount_ui

        mount_ui(app, service)
    app.add_middleware(CompletionsEndpoint, service=service)
    # Around every route (the chat page's, and any mounted later): bodies are read here, under the limits.
    app.add_middleware(BodyLimits, max_request_bytes=settings.max_request_bytes,
                       max_buffered_bytes=settings.max_buffered_bytes, body_timeout=settings.body_timeout,
                       max_json_depth=settings.max_json_depth)
    if settings.api_key:  # added last: the outermost layer, so it guards the completions endpoint too
        app.add_middleware(APIKeyMiddleware, key=settings.api_key)
    observe(app, service)  # GET /metrics, request counts, traceparent (outermost: 401s are counted and traced)
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PROTECTED) and not carries_key(scope, self.key):
            error = APIError(401, MISSING_KEY_MESSAGE,
                             type="authentication_error", code="invalid_api_key")
            response = JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)



def _add_error_handlers(app: FastAPI) -> None:
    async def polymodal_error(_request: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return error_response(APIError(status, str(getattr(exc, "detail", exc)), type=kind,
                                       headers=dict(getattr(exc, "headers", None) or {})))

    app.add_exception_handler(PolymodalError, polymodal_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, polymodal_error)


def _add_routes(app: FastAPI, service: Service) -> None:
    settings = service.settings
    server = f"{socket.gethostname()}:{os.getpid()}"  # which process answered (one of several replicas?)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:  # the session count is a store query: off the event loop
        return {"status": "ok", "server": server, **await asyncio.to_thread(service.status)}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, details = service.readiness()
        return JSONResponse(details, status_code=200 if ready else 503)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name)])

    # Every session operation queries the store (sqlite, Redis): on a worker thread, never on the event loop.
    @app.post("/v1/sessions", status_code=201)
    async def create_session() -> SessionInfo:
        return _session_info(await asyncio.to_thread(service.sessions.create), settings)

    # The session id is a capability: it travels in a header, never in a URL (URLs end up in access logs).
    @app.get("/v1/sessions/current")
    async def get_session(request: Request) -> SessionInfo:
        return _session_info(await asyncio.to_thread(service.sessions.get, _named_session(request)), settings)

    @app.delete("/v1/sessions/current", status_code=204)
    async def end_session(request: Request) -> Response:
        session_id = _named_session(request)
        await asyncio.to_thread(service.sessions.get, session_id)  # 404 for an unknown one
        await asyncio.to_thread(service.sessions.end, session_id)
        return Response(status_code=204)

    @app.get("/v1/artifacts/{artifact_id}")
    async def artifact(artifact_id: str, request: Request) -> Response:
        owner = request.headers.get(SESSION_HEADER)  # never a query parameter: URLs end up in logs and history
        found = await asyncio.to_thread(service.artifact, artifact_id, owner)
        data = await asyncio.to_thread(found.read_bytes)
        extension = found.mime_type.partition("/")[2]
        return Response(data, media_type=found.mime_type, headers={
            "Content-Disposition": f'inline; filename="{found.id or "artifact"}.{extension}"',
            "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})


def _document_completions(app: FastAPI) -> None:
    """List ``POST /v1/chat/completions`` in the OpenAPI schema (``/v1/docs``) like the other routes.

    :class:`CompletionsEndpoint` answers it below FastAPI's router, so FastAPI does not know it:
    this route, never mounted, gives the schema its request and response models and description.
    """
    described = APIRouter()

    @described.post(COMPLETIONS_PATH, response_model=ChatCompletion, summary="Chat completions (OpenAI's format)")
    async def chat_completions(request: ChatCompletionRequest) -> None:
        """Text, `image_url` (data URLs), `input_audio` and `file` parts; `stream: true` answers with
        server-sent chunks. The response's `polymodal` key holds the plan, the steps, the timings and
        links to generated media (`GET /v1/artifacts/{id}`)."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version,
                                             routes=[*app.routes, *described.routes])
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def _named_session(request: Request) -> str:
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        msg = f"name the session in the {SESSION_HEADER} header (never in the URL: URLs are logged)"
        raise APIError(400, msg, param=SESSION_HEADER, code="session_header_missing")
    return session_id


def _session_info(session: Any, settings: ServeSettings) -> SessionInfo:
    conversation = session.conversation
    return SessionInfo(id=session.id, expires_after_idle_seconds=settings.session_ttl,
                       attachment_ids=list(conversation.attachments), turns=len(conversation.turns))
