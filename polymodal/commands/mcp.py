"""``polymodal mcp``: the profile's tools and the agent (``ask``) as an MCP server.

stdio by default, which is what desktop clients spawn (stdout then carries the protocol, so
everything this command says goes to stderr); ``--transport http`` serves streamable HTTP at
``http://HOST:PORT/mcp``. ``--allow-dir`` limits which folders a path argument may name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.commands._common import (
    EXIT_USAGE,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    LlmOpt,
    ModelOpt,
    ProfileOpt,
    app,
    cli_agent,
    err,
    errors_as_lines,
    say,
)
from polymodal.errors import ConfigurationError, MissingDependencyError


@app.command()
def mcp(
    transport: Annotated[str, typer.Option("--transport", help="stdio (desktop clients) or http")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="address to listen on, with --transport http")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on, with --transport http")] = 8765,
    allow_dir: Annotated[list[Path] | None, typer.Option(
        "--allow-dir", metavar="DIR", help="folders path arguments may name (stdio); repeatable; default: any")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="largest attachment, MB")] = 32.0,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="POLYMODAL_API_KEY", help="with --transport http: required on every request when set "
        "(env POLYMODAL_API_KEY, as for polymodal serve)", show_default=False)] = None,
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the tools and the agent over MCP, e.g. polymodal mcp --profile offline"""
    from polymodal.config import Settings
    from polymodal.media import MediaLimits

    with errors_as_lines(debug, EXIT_USAGE):
        if transport not in ("stdio", "http"):
            msg = f"--transport must be stdio or http, got {transport!r}"
            raise ConfigurationError(msg)
        try:
            from polymodal.mcp_server import http_app, run_stdio
        except ImportError as exc:
            raise MissingDependencyError("polymodal mcp", exc.name or "mcp", "mcp") from exc
        roots = tuple(path.expanduser().resolve() for path in allow_dir) if allow_dir else None
        limits = MediaLimits(max_bytes=int(max_upload_mb * 1024**2), allowed_roots=roots)
        notes: list[str] = []
        agent = cli_agent(profile, config, llm, device, model, notes, Settings(limits=limits))
        for note in notes if debug else []:
            say(err, f"note: {note}", "dim")
    if transport == "stdio":
        say(err, f"polymodal: MCP over stdio, tools: {', '.join(agent.tools)}, ask")
        run_stdio(agent)
        return
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        say(err, f"polymodal: warning: listening on {host} without --api-key: anyone who can reach this port can "
            "run the tools", "yellow")
    say(err, f"polymodal: MCP at http://{host}:{port}/mcp" + (" (API key required)" if api_key else ""))
    uvicorn.run(http_app(agent, host=host, api_key=api_key or None), host=host, port=port,
                log_level="debug" if debug else "warning", ws="none")
