"""The agent's tools, and the agent itself as ``ask``, served as MCP tools.

Each MCP call of a tool runs a one-step plan through the agent's own executor, so an MCP call
gets what a planned step gets: the plan validation (schema, modalities), the step deadline, the
host (process, Ray), micro-batching with concurrent calls, and progress events. ``ask`` runs a
whole turn on a fresh fork of the agent (MCP calls share no conversation). Media arguments are
decoded by :class:`~polymodal.mcp_server.arguments.MediaArguments`; generated images and speech
come back as ``ImageContent``/``AudioContent``. Every failure is a tool result with
``isError: true`` and polymodal's typed message: a bad call never ends the session or the server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import anyio.to_thread
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal import __version__
from polymodal.agent import Agent, Plan, Step
from polymodal.agent.conversation import Conversation
from polymodal.agent.events import AgentEvent, StepFinished, StepProgress
from polymodal.agent.plan import validate_plan
from polymodal.errors import PolymodalError, ToolError
from polymodal.mcp_server.arguments import MediaArguments, input_schema
from polymodal.media import Attachment, Modality
from polymodal.runtime.turns import request_in_flight

__all__ = ["ASK", "AskArgs", "build_server"]

logger = logging.getLogger("polymodal.mcp")

ASK = "ask"
Progress = Callable[[str, float | None], None]


class AskArgs(BaseModel):
    """``ask``: the whole agent, one request."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="the request, in words")
    attachments: list[str] = Field(default_factory=list, max_length=32, description=(
        "media the request is about: each a local file path (stdio only), a data: URL, or base64"))


_ASK_DESCRIPTION = ("Answer a request about attached images, audio and video with polymodal's local models: "
                    "it plans which tools to run, runs them, and writes one answer (the plan and the steps "
                    "come back as structured content).")


def build_server(agent: Agent, *, paths: bool) -> Server[Any]:
    """An MCP server for ``agent``; ``paths`` says whether local paths are accepted (stdio only)."""
    handlers = _Handlers(agent, paths=paths)
    return Server("polymodal", version=__version__, instructions=_ASK_DESCRIPTION,
                  on_list_tools=handlers.list_tools, on_call_tool=handlers.call_tool)


class _Handlers:
    def __init__(self, agent: Agent, *, paths: bool) -> None:
        self.agent = agent
        self.paths = paths

    async def list_tools(self, _ctx: ServerRequestContext[Any], _params: Any) -> types.ListToolsResult:
        tools = [types.Tool(name=name, description=tool.description,
                            input_schema=input_schema(tool.args_schema, paths=self.paths))  # type: ignore[arg-type]
                 for name, tool in self.agent.tools.items() if isinstance(tool.args_schema, type)]
        ask = input_schema(AskArgs, paths=self.paths)
        ask["properties"]["attachments"]["description"] = AskArgs.model_fields["attachments"].description if (
            self.paths) else "media the request is about: each a data: URL or base64 (no paths over HTTP)"
        tools.append(types.Tool(name=ASK, description=_ASK_DESCRIPTION, input_schema=ask))
        return types.ListToolsResult(tools=tools)

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult:
        progress = _ProgressSender(ctx, asyncio.get_running_loop())
        arguments = dict(params.arguments or {})
        try:
            if params.name == ASK:
                result = await anyio.to_thread.run_sync(self._ask, arguments, progress.report)
            elif params.name in self.agent.tools:
                result = await anyio.to_thread.run_sync(self._run_tool, params.name, arguments, progress.report)
            else:
                known = ", ".join([*self.agent.tools, ASK])
                raise ToolError(params.name, f"no such tool (this server has: {known})")
        except PolymodalError as exc:
            result = _error(str(exc))
        except ValidationError as exc:
            result = _error(f"tool {params.name!r}: invalid arguments: {_validation_message(exc)}")
        except Exception as exc:  # a bug must not end the session: it is this call's error
            logger.exception("MCP call of %s failed", params.name)
            result = _error(f"internal error in tool {params.name!r}: {type(exc).__name__}: {exc}")
        await progress.flush()
        return result

    def _run_tool(self, name: str, arguments: Mapping[str, Any], on_progress: Progress) -> types.CallToolResult:
        tool = self.agent.tools[name]
        media = MediaArguments(self.agent.settings.limits, paths=self.paths)
        args = media.replace(name, tool.args_schema, arguments)  # type: ignore[arg-type]
        plan = validate_plan(Plan(steps=[Step(id="s1", tool=name, args=args)]), self.agent.tools,
                             media.attachments, max_steps=1)
        conversation = Conversation.holding(media.attachments)
        attachments = conversation.attachments

        def emit(event: AgentEvent) -> None:
            if isinstance(event, StepProgress):
                on_progress(event.message, event.fraction)

        with request_in_flight():
            step = self.agent.executor.run(plan, conversation, on_event=emit,
                                           budget_seconds=self.agent.settings.max_seconds)[0]
        if not step.ok:
            return _error(f"tool {name!r}: {step.error or step.status}")
        blocks: list[types.ContentBlock] = [types.TextContent(text=step.content or "")]
        blocks.extend(media_block(attachments[i]) for i in step.artifact_ids if i in attachments)
        return types.CallToolResult(content=blocks, structured_content=_structured_artifact(step.artifact))

    def _ask(self, arguments: Mapping[str, Any], on_progress: Progress) -> types.CallToolResult:
        request = AskArgs.model_validate(arguments)
        media = MediaArguments(self.agent.settings.limits, paths=self.paths)
        files = [media.attach(ASK, f"attachments[{i}]", value) for i, value in enumerate(request.attachments)]

        def emit(event: AgentEvent) -> None:
            if isinstance(event, StepProgress):
                on_progress(f"{event.step_id} ({event.tool}): {event.message}", event.fraction)
            elif isinstance(event, StepFinished):
                on_progress(f"{event.step.id} ({event.step.tool}): {event.step.status}", None)

        reply = self.agent.run(request.prompt, files, on_event=emit)
        blocks: list[types.ContentBlock] = [types.TextContent(text=reply.text)]
        blocks.extend(media_block(attachment) for attachment in reply.artifacts)
        structured = {"answer": reply.text, "outcome": reply.outcome, "planner": reply.planner,
                      "plan": reply.plan.model_dump(mode="json"),
                      "steps": [step.model_dump(mode="json") for step in reply.steps]}
        return types.CallToolResult(content=blocks, structured_content=structured,
                                    is_error=reply.outcome == "failed")


def media_block(attachment: Attachment) -> types.ContentBlock:
    """A generated medium as the MCP content block for its kind (images and audio inline)."""
    data = base64.b64encode(attachment.read_bytes()).decode("ascii")
    if attachment.kind is Modality.IMAGE:
        return types.ImageContent(data=data, mime_type=attachment.mime_type)
    if attachment.kind is Modality.AUDIO:
        return types.AudioContent(data=data, mime_type=attachment.mime_type)
    return types.EmbeddedResource(resource=types.BlobResourceContents(
        uri=f"polymodal://artifact/{attachment.id or 'media'}", mime_type=attachment.mime_type, blob=data))


def _structured_artifact(artifact: Any) -> dict[str, Any] | None:
    """A typed result (an OCRResult, a Transcript) as structured content, when it is a model."""
    if isinstance(artifact, BaseModel):
        return artifact.model_dump(mode="json")
    return None


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())


class _ProgressSender:
    """Progress reports from the tool's threads, sent as MCP progress notifications on the loop.

    A no-op unless the caller asked for progress (a ``progressToken``). ``progress`` counts the
    reports (the protocol wants it to grow; a fraction may restart from one step to the next),
    and the message carries the tool's own fraction as a percentage.
    """

    def __init__(self, ctx: ServerRequestContext[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.ctx = ctx
        self.loop = loop
        self.count = 0
        self.sent: list[Future[None]] = []

    def report(self, message: str, fraction: float | None) -> None:
        self.count += 1
        text = str(message)[:500] + ("" if fraction is None else f" ({min(max(fraction, 0.0), 1.0):.0%})")
        coro = self.ctx.session.report_progress(float(self.count), None, text)
        self.sent.append(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def flush(self) -> None:
        """Wait for the notifications already sent, so they precede the result."""
        for future in self.sent:
            try:
                await asyncio.wrap_future(future)
            except Exception:  # noqa: BLE001 - a lost progress note must not fail the call
                logger.debug("progress notification not sent", exc_info=True)
