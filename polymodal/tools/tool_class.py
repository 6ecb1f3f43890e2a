"""The Tool base: a LangChain ``BaseTool`` that also knows its modalities, and ToolOutput."""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ValidationError

from polymodal.errors import AttachmentError, PolymodalError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.tools.context import _RUNNING, ToolContext, call_with_deadline, current_context, report_progress
from polymodal.tools.refs import _ID_PATTERN, ACCEPTS, attachment_fields

__all__ = ["Tool", "ToolOutput"]


@dataclass
class ToolOutput:
    """One result: ``content`` is text for an LLM, ``artifact`` the typed value for programs."""

    content: str
    artifact: Any = None


class Tool(BaseTool):
    """Base of all polymodal tools.

    Subclasses set ``name``, ``description`` (written for the planner), ``args_schema`` (a pydantic
    model with ``extra="forbid"``; media arguments typed :data:`ImageRef`, :data:`AudioRef`, ...),
    ``output_modality``, and implement :meth:`execute_batch`.
    """

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Callable[..., str] | None = True
    timeout: float | None = None
    """Seconds a call may take before the executor gives up on it (None: no limit)."""

    output_modality: ClassVar[Modality] = Modality.TEXT
    direct_answer: ClassVar[bool] = True
    """Whether this tool's output can be the whole reply to a one-step request (no fusion call)."""

    @property
    def input_modalities(self) -> dict[str, Modality]:
        """The arguments that take media, and which modality each takes."""
        schema = self.args_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return dict(attachment_fields(schema))
        return {}

    @abstractmethod
    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        """Run on several inputs at once; media arguments already resolved to Attachments."""

    def report_progress(self, message: str, fraction: float | None = None) -> None:
        """Tell whoever is watching how far a long call is; see :func:`report_progress`."""
        report_progress(message, fraction, tool=self.name)

    def execute(self, **inputs: Any) -> ToolOutput:
        """Run on one input whose media arguments are already resolved."""
        return self.execute_batch([inputs])[0]

    def _run(self, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any) -> tuple[str, Any]:
        ctx = current_context()
        running = _RUNNING.set(self.name)
        try:
            inputs = self.resolve_inputs(kwargs, ctx)
            if ctx is None and self.timeout is not None:
                # A direct call (a LangChain agent's): nothing else enforces the deadline. Inside a
                # plan the executor does, for every step at once.
                output = call_with_deadline(lambda: self.execute(**inputs), self.timeout, self.name)
            else:
                output = self.execute(**inputs)
        except PolymodalError as exc:
            if ctx is not None:
                ctx.errors.append(exc)
            if isinstance(exc, ToolError):
                raise
            raise ToolError(self.name, str(exc)) from exc
        finally:
            _RUNNING.reset(running)
        return output.content, output.artifact

    def run_call(self, call: Mapping[str, Any], config: RunnableConfig | None, *, traced: bool = True) -> Any:
        """Run one tool call and return its ``ToolMessage``, as ``invoke(call, config)`` does.

        ``traced=False`` says nobody listens (no callbacks in the config, none configured by the
        environment): then the same work is done without LangChain's per-call run bookkeeping
        (callback managers, signature and type-hint inspection), which costs about a millisecond
        per call — more than polymodal's whole request path. Arguments are validated by the same
        schema, errors handled by the same ``handle_*`` flags, and the message built by the same
        formatter; a tool with its own callbacks, verbose output, or injected arguments always
        takes the traced path.
        """
        if traced or not _untraced_supported(self):
            return self.invoke(dict(call), config=config)
        from langchain_core.tools.base import _format_output, _handle_tool_error, _handle_validation_error

        args = dict(call["args"])
        content: Any
        artifact = None
        status = "success"
        try:
            content, artifact = self._run(**_validated(self.args_schema, args))
        except ValidationError as exc:
            if not self.handle_validation_error:
                raise
            content, status = _handle_validation_error(exc, flag=self.handle_validation_error), "error"
        except ToolException as exc:
            if not self.handle_tool_error:
                raise
            content, status = _handle_tool_error(exc, flag=self.handle_tool_error), "error"
        return _format_output(content, artifact, call.get("id"), self.name, status)

    def resolve_inputs(self, kwargs: Mapping[str, Any], ctx: ToolContext | None) -> dict[str, Any]:
        """Replace media references by Attachments, checking each one's modality."""
        resolved = dict(kwargs)
        for arg, modality in self.input_modalities.items():
            value = kwargs.get(arg)
            if value is None:
                continue
            if isinstance(value, list):
                resolved[arg] = [self._resolve_one(arg, v, modality, ctx) for v in value]
            else:
                resolved[arg] = self._resolve_one(arg, value, modality, ctx)
        return resolved

    def _resolve_one(self, arg: str, ref: Any, modality: Modality, ctx: ToolContext | None) -> Attachment:
        if isinstance(ref, Attachment):
            attachment = ref
        elif ctx is not None:
            # Inside a planned request only ids count: a plan can never name a path (P6).
            if ref not in ctx.attachments:
                known = ", ".join(sorted(ctx.attachments)) or "none"
                msg = f"argument {arg!r} names {ref!r}, which is not an attachment of this request (known: {known})"
                raise ToolError(self.name, msg)
            attachment = ctx.attachments[ref]
        elif isinstance(ref, str) and _ID_PATTERN.match(ref):
            msg = f"argument {arg!r} names attachment {ref!r}, but this call has no attachments; pass a file path"
            raise ToolError(self.name, msg)
        else:
            attachment = Attachment.coerce(ref)
        if attachment.kind not in ACCEPTS[modality]:
            msg = f"argument {arg!r} needs {modality.value}, but {attachment.describe()} is {attachment.kind.value}"
            raise AttachmentError(attachment.name, msg)
        return attachment


def _untraced_supported(tool: Tool) -> bool:
    """Whether a call of ``tool`` may skip LangChain's run bookkeeping (see :meth:`Tool.run_call`)."""
    schema = tool.args_schema
    return (tool.callbacks is None and not tool.verbose and isinstance(schema, type)
            and issubclass(schema, BaseModel) and _plain_schema(schema))


@functools.cache
def _plain_schema(schema: type[BaseModel]) -> bool:
    """True when no argument of ``schema`` is injected by LangChain (InjectedToolArg and friends)."""
    try:
        from langchain_core.tools.base import _is_injected_arg_type, get_all_basemodel_annotations
    except ImportError:  # a LangChain without these: always take the traced path
        return False
    return not any(_is_injected_arg_type(kind) for kind in get_all_basemodel_annotations(schema).values())


def _validated(schema: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as LangChain passes them to ``_run``: validated, only those the call gave."""
    model = schema.model_validate(args)
    return {name: getattr(model, name) for name in type(model).model_fields if name in args}
