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
from polymodal.mcp_server.server import build_server

__all__ = ["http_app", "http_endpoint", "run_stdio"]

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


def http_app(agent: Agent, *, host: str = "127.0.0.1", path: str = "/mcp") -> Any:
    """A Starlette app serving ``agent`` at ``path`` over streamable HTTP (``polymodal mcp --transport http``)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    endpoint, lifespan = http_endpoint(agent, host=host)

    @asynccontextmanager
    async def running(_app: Any) -> AsyncIterator[None]:
        async with lifespan():
            yield

    return Starlette(routes=[Route(path, endpoint=endpoint)], lifespan=running)
