"""``polymodal serve``: the OpenAI-compatible API and the chat page."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    _check_options,
    app,
    cli_agent,
    err,
    errors_as_lines,
    say,
    session_store_url,
)
from polymodal.errors import MissingDependencyError

if TYPE_CHECKING:
    from polymodal.serving import ServeSettings
    from polymodal.serving.ray_serve import RayServeOptions


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
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="serve N replicas on Ray Serve: --ray alone uses RAY_ADDRESS or starts a local Ray; "
             "or give its address (auto, ray://head:10001)")] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, metavar="N",
                                          help="with --ray: copies of the app, each with its own models")] = 1,
    replica_cpus: Annotated[float, typer.Option("--ray-replica-cpus", min=0, help="with --ray: CPUs per replica")
                            ] = 1.0,
    replica_gpus: Annotated[float, typer.Option("--ray-replica-gpus", min=0,
                                                help="with --ray: GPUs per replica (0.5: two share one)")] = 0.0,
    mcp: Annotated[bool, typer.Option("--mcp/--no-mcp", help="also serve the tools over MCP at /mcp")] = False,
    session_store: Annotated[str | None, typer.Option(
        "--session-store", envvar="POLYMODAL_SESSION_STORE", metavar="URL", show_default=False,
        help="where sessions live: sqlite:///PATH.db, redis://HOST:PORT/DB or memory:// (env "
             "POLYMODAL_SESSION_STORE, config [serve] session_store; default: sessions.db in the user's data "
             "folder)")] = None,
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
        store = _checked_session_store(session_store, config)
        settings = ServeSettings(api_key=api_key or None, max_concurrency=max_concurrency, max_queue=max_queue,
                                 max_request_bytes=max(64 * 1024**2, 2 * limits.max_bytes),
                                 ui=ui and ray is None, preload=preload, session_store=store)
        if ray is not None:
            from polymodal.serving.ray_serve import RayServeOptions

            options = RayServeOptions(address=None if ray == "local" else ray, replicas=replicas, host=host,
                                      port=port, replica_cpus=replica_cpus, replica_gpus=replica_gpus)
            # Each replica builds the agent (its models, the --llm, the --device) where it runs: the
            # driver only checks the options, as `batch --ray` does.
            _check_options(profile, config, model)
            recipe = functools.partial(cli_agent, profile, config, llm, device, model, None, Settings(limits=limits))
    if ray is not None:
        _serve_on_ray(recipe, settings, options, debug, api_key=bool(api_key))
        return
    with errors_as_lines(debug, EXIT_USAGE):
        agent = _agent(profile, config, llm, device, model, debug, settings=Settings(limits=limits))
        application = create_app(agent, settings, mcp=mcp)
        if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
            say(err, f"polymodal: warning: listening on {host} without --api-key: anyone who can reach this "
                     "address can use the API and the chat page")
        where = f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}"
        say(err, f"polymodal: API at {where}/v1" + (f", chat page at {where}/" if ui else "") +
            (f", MCP at {where}/mcp" if mcp else "") +
            (" (API key required)" if api_key else ""))
    uvicorn.run(application, host=host, port=port, log_level="debug" if debug else "info",
                timeout_graceful_shutdown=30, ws="none")


def _checked_session_store(given: str | None, config: Path | None) -> str:
    """The store URL (:func:`session_store_url`), opened once here so that a bad one stops start-up
    before any model loads.

    Raises:
        SessionStoreError: the store cannot be opened (exit 2 with its one line).
    """
    from polymodal.sessions import open_store

    url = session_store_url(given, config)
    open_store(url).close()
    return url


def _serve_on_ray(recipe: Callable[[], Any], settings: ServeSettings, options: RayServeOptions, debug: bool,
                  *, api_key: bool) -> None:
    """Deploy on Ray Serve, then wait (Ctrl-C or SIGTERM) and take the deployment down again."""
    import signal

    from polymodal.serving import ray_serve

    # a replica that cannot build its agent is a setting problem: exit 2, as before any serving
    with errors_as_lines(debug, EXIT_USAGE), err.status(f"starting {options.replicas} replica(s) on Ray Serve…"):
        deployment = ray_serve.deploy(recipe, settings, options)
    say(err, f"polymodal: API at {deployment.url}/v1 on Ray Serve, {options.replicas} replica(s)" +
        (" (API key required)" if api_key else "") + "; the chat page is off under --ray")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        deployment.close()
