"""How the MCP server is reached: stdio (what desktop clients spawn) and streamable HTTP.

Over stdio the client is a program of the same user, so local paths are accepted (through the
media checks); over HTTP they never are. :func:`http_endpoint` is the ASGI endpoint plus the
lifespan it needs, for ``polymodal mcp --transport http`` and for the ``/mcp`` mount of
``polymodal serve`` (which puts its API key in front of it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from polymodal.agent import Agent
from polymodal.api_keys import MISSING_KEY_MESSAGE, carries_key
from polymodal.mcp_server.server import build_server

__all__ = ["KeyRequired", "http_app", "http_endpoint", "run_stdio"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run_stdio(agent: Agent) -> None:
    """Serve ``agent`` over this process's stdin/stdout until the client closes them."""
    server = build_server(agent, paths=True)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def http_endpoint(agent: Agent, *, host: str = "127.0.0.1", max_request_bytes: int = 64 * 1024**2
                  ) -> tuple[Any, Callable[[], AbstractAsyncContextManager[None]]]:
    """The streamable-HTTP ASGI endpoint for ``agent`` and the lifespan that must wrap serving it.

    Bound to a loopback address, requests must name a loopback ``Host`` and ``Origin`` (a web
    page elsewhere cannot drive the server through the browser: DNS rebinding).
    """
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    ) if host in LOOPBACK else None
    manager = StreamableHTTPSessionManager(app=build_server(agent, paths=False), security_settings=security,
                                           max_request_body_size=max_request_bytes)
    return StreamableHTTPASGIApp(manager), manager.run


def http_app(agent: Agent, *, host: str = "127.0.0.1", path: str = "/mcp", api_key: str | None = None) -> Any:
    """A Starlette app serving ``agent`` at ``path`` over streamable HTTP (``polymodal mcp --transport http``).

    ``api_key``: every request must carry it (``Authorization: Bearer <key>`` or ``X-API-Key``), as
    on ``polymodal serve``; others get 401 before the MCP layer sees them.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    endpoint, lifespan = http_endpoint(agent, host=host)

    @asynccontextmanager
    async def running(_app: Any) -> AsyncIterator[None]:
        async with lifespan():
            yield

    app = Starlette(routes=[Route(path, endpoint=endpoint)], lifespan=running)
    return KeyRequired(app, api_key) if api_key else app


class KeyRequired:
    """401 for an HTTP request without the key; the same rule as ``polymodal serve``'s API key.

    Its own small ASGI layer rather than the server's middleware: the ``mcp`` extra alone (no
    FastAPI) must be enough for ``polymodal mcp --transport http --api-key``.
    """

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not carries_key(scope, self.key):
            from starlette.responses import JSONResponse

            body = {"error": {"message": MISSING_KEY_MESSAGE,
                              "type": "authentication_error", "param": None, "code": "invalid_api_key"}}
            await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

