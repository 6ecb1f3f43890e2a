"""Tools of a remote MCP server as polymodal tools: ``Agent(tools=[..., *mcp_tools("stdio:cmd args")])``.

Each remote tool becomes a :class:`MCPTool` whose args model is built from the tool's JSON
schema, so the planners read it like a local tool's (the router its description, the LLM
planner its arguments), the plan is validated against it, and its results go into fusion: text
as the step's content, images and audio as attachments (artifacts) the reply carries.

An argument the remote schema marks with ``"modality": "image"`` (``polymodal mcp`` does, for
its media arguments) takes an attachment id in a plan, and the attachment's bytes are sent as a
``data:`` URL: the remote side never sees a local path.

The MCP session lives on a background event-loop thread (:class:`MCPConnection`), so the tools
are called from the executor's ordinary threads; it is closed by :meth:`MCPConnection.close`
or at interpreter exit. A remote error, a dead server or a timeout is a :class:`ToolError`.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import json
import keyword
import os
import shlex
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from polymodal.errors import AttachmentError, ConfigurationError, MissingDependencyError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import Tool, ToolOutput

__all__ = ["MCPConnection", "MCPTool", "mcp_tools"]

_CONNECT_SECONDS = 120.0
_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                               "object": dict[str, Any]}


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("mcp_tools()", "mcp", "mcp") from exc


class MCPConnection:
    """One MCP client session, held open on an event loop of its own thread.

    ``target`` is ``"stdio:COMMAND ARGS..."`` (the server is spawned, as desktop clients do) or an
    ``http://``/``https://`` URL of a streamable-HTTP endpoint; ``headers`` go with every HTTP
    request (``{"Authorization": "Bearer KEY"}`` for ``polymodal serve --mcp --api-key``).
    """

    def __init__(self, target: str, *, headers: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, connect_timeout: float = _CONNECT_SECONDS) -> None:
        _require_mcp()
        self.target = target
        self._headers = dict(headers or {})
        self._env = dict(env) if env is not None else None
        self._open = _open_transport(target)  # checked before a thread starts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="polymodal-mcp", daemon=True)
        self._thread.start()
        self._stop: asyncio.Event | None = None
        self._ready: asyncio.Future[Any] | None = None
        self.session: Any = None
        self._main = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        try:
            self.run(self._wait_ready(), connect_timeout)
        except BaseException:
            self.close()
            raise
        _OPEN.add(self)

    async def _wait_ready(self) -> None:
        while self._ready is None:
            await asyncio.sleep(0.005)
        await asyncio.shield(self._ready)

    async def _hold(self) -> None:
        """Open, initialize, wait for close, then leave every context in this same task (anyio wants that)."""
        from mcp import ClientSession

        self._stop = asyncio.Event()
        self._ready = self._loop.create_future()
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._open(stack, self._headers, self._env)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.session = session
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(ToolError("mcp", f"cannot connect to MCP server {self.target!r}: "
                                                           f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise

    def run(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the session's loop and wait for it (at most ``timeout`` seconds)."""
        if self._loop.is_closed():
            coro.close()
            msg = f"the connection to MCP server {self.target!r} is closed"
            raise ToolError("mcp", msg)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            msg = f"MCP server {self.target!r} did not answer within {timeout} s"
            raise ToolError("mcp", msg) from None

    def list_tools(self) -> list[Any]:
        """The server's tools (every page)."""
        async def every_page() -> list[Any]:
            found, cursor = [], None
            while True:
                page = await self.session.list_tools(cursor=cursor) if cursor else await self.session.list_tools()
                found.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return found

        return list(self.run(every_page(), _CONNECT_SECONDS))

    def call_tool(self, name: str, arguments: Mapping[str, Any], timeout: float | None) -> Any:
        """One ``tools/call``; the ``CallToolResult``."""
        return self.run(self.session.call_tool(name, dict(arguments)), timeout)

    def close(self) -> None:
        """End the session (a spawned server exits) and the loop thread; idempotent."""
        _OPEN.discard(self)
        if self._loop.is_closed():
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        try:
            self._main.result(30)
        except BaseException:  # noqa: BLE001 - closing: a failed session is closed too
            self._main.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> MCPConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPEN: weakref.WeakSet[MCPConnection] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for connection in list(_OPEN):
        connection.close()


def _open_transport(target: str) -> Any:
    """The coroutine that opens ``target``'s transport on an exit stack (checked now, run later)."""
    if target.startswith("stdio:"):
        argv = shlex.split(target.removeprefix("stdio:"))
        if not argv:
            msg = f"MCP target {target!r} names no command (expected 'stdio:COMMAND ARGS...')"
            raise ConfigurationError(msg)

        async def stdio(stack: AsyncExitStack, _headers: dict[str, str], env: dict[str, str] | None) -> Any:
            from mcp import StdioServerParameters, stdio_client

            params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
            return await stack.enter_async_context(stdio_client(params, errlog=_server_log()))

        return stdio
    if target.startswith(("http://", "https://")):
        async def http(stack: AsyncExitStack, headers: dict[str, str], _env: dict[str, str] | None) -> Any:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=600.0)))
            read, write = await stack.enter_async_context(streamable_http_client(target, http_client=client))
            return read, write

        return http
    msg = f"MCP target {target!r}: expected 'stdio:COMMAND ARGS...' or an http(s):// URL"
    raise ConfigurationError(msg)


class MCPTool(Tool):
    """A remote MCP tool, called through ``connection``; see the module docstring."""

    connection: Any = Field(exclude=True)
    remote_name: str
    aliases: dict[str, str] = Field(default_factory=dict)
    """Python field name -> the remote argument's name, where the two differ."""

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        return [self._call(one) for one in inputs]

    def _call(self, inputs: Mapping[str, Any]) -> ToolOutput:
        arguments = {self.aliases.get(key, key): _wire(value) for key, value in inputs.items() if value is not None}
        try:
            result = self.connection.call_tool(self.remote_name, arguments, self.timeout or 600.0)
        except ToolError as exc:
            raise ToolError(self.name, exc.args[0] if exc.args else str(exc)) from exc
        except Exception as exc:
            msg = f"MCP server {self.connection.target!r}: {type(exc).__name__}: {exc}"
            raise ToolError(self.name, msg) from exc
        texts, media = _read_content(self.name, result.content)
        if result.is_error:
            raise ToolError(self.name, "\n".join(texts) or "the remote tool failed")
        if not texts and result.structured_content is not None:
            texts = [json.dumps(result.structured_content, ensure_ascii=False)]
        artifact: Any = media or result.structured_content
        return ToolOutput("\n".join(texts), artifact)


def _wire(value: Any) -> Any:
    """An attachment as a data: URL (a remote server never sees a local path); anything else as is."""
    if isinstance(value, Attachment):
        return f"data:{value.mime_type};base64,{base64.b64encode(value.read_bytes()).decode('ascii')}"
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


def _read_content(tool: str, blocks: Sequence[Any]) -> tuple[list[str], list[Attachment]]:
    texts: list[str] = []
    media: list[Attachment] = []
    for index, block in enumerate(blocks):
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind in ("image", "audio") or (kind == "resource" and hasattr(block.resource, "blob")):
            data = block.data if kind != "resource" else block.resource.blob
            try:
                media.append(Attachment.from_bytes(base64.b64decode(data), name=f"{tool} output {index + 1}"))
            except (AttachmentError, ValueError) as exc:
                raise ToolError(tool, f"the remote tool sent unreadable {kind} content: {exc}") from exc
        elif kind == "resource":
            texts.append(getattr(block.resource, "text", ""))
    return texts, media


def _field_type(prop: Mapping[str, Any]) -> Any:
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        inner = _JSON_TYPES.get(str(items.get("type")), Any) if isinstance(items, Mapping) else Any
        return list[inner]  # type: ignore[valid-type]
    return _JSON_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def args_model(tool_name: str, schema: Mapping[str, Any]) -> tuple[type[BaseModel], dict[str, str]]:
    """A pydantic args model for a remote tool's JSON schema, and the renamed fields.

    Types are the schema's top-level ones (nested constraints are the server's to check); the
    model forbids extra arguments, as every polymodal args model does.
    """
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    for index, (key, prop) in enumerate(properties.items()):
        prop = prop if isinstance(prop, Mapping) else {}
        name = key if key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_") else f"arg_{index}"
        if name != key:
            aliases[name] = key
        marked = prop.get("modality") in ("image", "audio", "video")
        extra: dict[str, Any] | None = {"modality": Modality(prop["modality"]).value} if marked else None
        kind = _field_type(prop)
        default = ... if key in required else prop.get("default")
        fields[name] = (Annotated[kind if key in required else kind | None,
                                  Field(description=prop.get("description"), json_schema_extra=extra)], default)
    model = create_model(f"{tool_name}_mcp_args", __config__=ConfigDict(extra="forbid"), **fields)
    return model, aliases


def _server_log() -> Any:
    """Where a spawned server's stderr goes: ours, or the process's own fd 2 when ``sys.stderr`` has
    no file descriptor (a notebook, a captured stream), which a subprocess cannot write to."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
            continue
    return open(os.devnull, "w")  # noqa: SIM115 - lives as long as the server it is handed to


def mcp_tools(target: str, *, headers: Mapping[str, str] | None = None, include: Sequence[str] | None = None,
              prefix: str = "", timeout: float | None = None, env: Mapping[str, str] | None = None) -> list[MCPTool]:
    """The tools of the MCP server at ``target`` as polymodal tools (one shared connection).

    Args:
        target: ``"stdio:COMMAND ARGS..."`` to spawn a server, or an ``http(s)://`` streamable-HTTP URL.
        headers: sent with every HTTP request (an API key).
        include: only these remote tools (default: all).
        prefix: put before each name (``"remote_"``), when a remote name clashes with a local tool.
        timeout: seconds a call may take (the executor's step deadline too); default 600.
        env: extra environment for a spawned server.

    Raises:
        ConfigurationError: ``target`` is not of either form; MissingDependencyError without ``mcp``.
        ToolError: the server cannot be reached or started.
    """
    connection = MCPConnection(target, headers=headers, env=env)
    tools: list[MCPTool] = []
    try:
        for remote in connection.list_tools():
            if include is not None and remote.name not in include:
                continue
            model, aliases = args_model(prefix + remote.name, remote.input_schema or {})
            tools.append(MCPTool(name=prefix + remote.name, description=remote.description or remote.name,
                                 args_schema=model, connection=connection, remote_name=remote.name,
                                 aliases=aliases, timeout=timeout))
    except BaseException:
        connection.close()
        raise
    return tools
