"""``polymodal serve``: the OpenAI-compatible API and the chat page."""

from __future__ import annotations

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
    _agent,
    app,
    err,
    errors_as_lines,
    say,
)
from polymodal.errors import MissingDependencyError


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="POLYMODAL_API_KEY", help="required on every request when set (env POLYMODAL_API_KEY)",
        show_default=False)] = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="turns answered at once")] = 4,
    max_queue: Annotated[int, typer.Option("--max-queue", min=0, help="requests that may wait; past it, 429")] = 16,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="largest attachment, MB")] = 32.0,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="the web chat page at /")] = True,
    preload: Annotated[bool, typer.Option("--preload/--no-preload", help="load every model at start-up")] = True,
    mcp: Annotated[bool, typer.Option("--mcp/--no-mcp", help="also serve the tools over MCP at /mcp")] = False,
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Serve an OpenAI-compatible API at /v1 and a chat page at /, e.g. polymodal serve --profile offline"""
    from polymodal.config import Settings
    from polymodal.media import MediaLimits

    with errors_as_lines(debug, EXIT_USAGE):  # everything before serving is setting up: a failure is exit 2
        try:
            import uvicorn

            from polymodal.serving import ServeSettings, create_app
        except ImportError as exc:
            raise MissingDependencyError("polymodal serve", exc.name or "fastapi", "serve") from exc
        limits = MediaLimits(max_bytes=int(max_upload_mb * 1024**2))
        agent = _agent(profile, config, llm, device, model, debug, settings=Settings(limits=limits))
        settings = ServeSettings(api_key=api_key or None, max_concurrency=max_concurrency, max_queue=max_queue,
                                 max_request_bytes=max(64 * 1024**2, 2 * limits.max_bytes), ui=ui, preload=preload)
        application = create_app(agent, settings, mcp=mcp)
        where = f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}"
        say(err, f"polymodal: API at {where}/v1" + (f", chat page at {where}/" if ui else "") +
            (f", MCP at {where}/mcp" if mcp else "") +
            (" (API key required)" if api_key else ""))
    uvicorn.run(application, host=host, port=port, log_level="debug" if debug else "info",
                timeout_graceful_shutdown=30, ws="none")
