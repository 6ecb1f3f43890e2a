"""polymodal as an MCP server: every tool of the agent, and ``ask`` (the whole agent), over stdio or HTTP.

Needs the ``mcp`` extra. ``polymodal mcp`` is the command; :func:`build_server` the low-level MCP
server, :func:`run_stdio` and :func:`http_app` its transports, :func:`http_endpoint` what
``polymodal serve --mcp`` mounts at ``/mcp``.
"""

from __future__ import annotations

from polymodal.errors import MissingDependencyError

try:
    from polymodal.mcp_server.server import ASK, build_server
    from polymodal.mcp_server.transports import http_app, http_endpoint, run_stdio
except ImportError as exc:  # pragma: no cover - the 'mcp' extra is missing
    if exc.name is None or not exc.name.startswith(("mcp", "anyio")):
        raise
    raise MissingDependencyError("the MCP server", "mcp", "mcp") from exc

__all__ = ["ASK", "build_server", "http_app", "http_endpoint", "run_stdio"]
