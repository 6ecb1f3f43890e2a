"""polymodal inside LangChain: message content blocks in, the agent as a tool, and MultimodalChain.

A LangChain app speaks messages whose content mixes text with image/audio/video/file content
blocks. :func:`parse_agent_input` reads them through langchain-core's own ``content_blocks``
normalisation, so the v1 shapes (``{"type": "image", "base64": ..., "mime_type": ...}``) and the
legacy ones it still accepts (v0 ``source_type``, OpenAI ``image_url``/``input_audio``/``file``,
Anthropic ``source``) all become the same validated :class:`~polymodal.media.Attachment`.

:class:`MultimodalChain` is the LCEL piece LangChain itself lacks: text plus attachments in, the
answer string out, so ``prompt | MultimodalChain(...) | parser`` composes like any chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from polymodal.errors import AttachmentError, ConfigurationError, PolymodalError
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForToolRun

    from polymodal.agent.agent import Agent, Reply

__all__ = ["AgentRequest", "AgentTool", "MultimodalChain", "attachments_from_content", "parse_agent_input"]

_MEDIA_BLOCKS = ("image", "audio", "video", "file")
_TEXT_KEYS = ("input", "text", "question")


@dataclass
class AgentRequest:
    """One request as the agent runs it: the text and the validated attachments."""

    text: str
    attachments: list[Attachment] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What callbacks record as the run's input: the text and metadata, never the bytes."""
        return {"input": self.text, "attachments": [a.describe() for a in self.attachments]}


def parse_agent_input(value: Any, limits: MediaLimits = DEFAULT_LIMITS) -> AgentRequest:
    """Read any accepted agent input.

    Accepted: a string; a dict with ``input`` (or ``text``/``question``: a string, a message,
    content blocks or a prompt value), optional ``attachments`` (paths, bytes, PIL images,
    content blocks, Attachments) and/or ``messages``; a message or a list of messages (the last
    human message is the request; media blocks of every human message are attached, oldest
    first, and keep their ids by content); a prompt value (``prompt | agent``).

    Raises:
        AttachmentError: a content block is malformed, unsupported or over a cap.
        ConfigurationError: the input is of no accepted shape.
    """
    if isinstance(value, str):
        return AgentRequest(text=value)
    if isinstance(value, PromptValue):
        return _from_messages(value.to_messages(), limits)
    if isinstance(value, BaseMessage):
        return _from_messages([value], limits)
    if isinstance(value, Mapping):
        return _from_mapping(value, limits)
    if isinstance(value, Sequence) and value and all(isinstance(m, BaseMessage) for m in value):
        return _from_messages(list(value), limits)
    msg = ("agent input must be a string, a dict {'input': ..., 'attachments': [...]}, a message, a list "
           f"of messages or a prompt value; got {type(value).__name__}")
    raise ConfigurationError(msg)


def _from_mapping(value: Mapping[str, Any], limits: MediaLimits) -> AgentRequest:
    key = next((k for k in _TEXT_KEYS if k in value), None)
    if key is None and "messages" not in value:
        msg = f"agent input dict needs an 'input' (or 'messages') key; got keys {sorted(map(str, value))}"
        raise ConfigurationError(msg)
    request = AgentRequest(text="")
    if "messages" in value:
        request = _from_messages(list(value["messages"]), limits)
    if key is not None:
        inner = value[key]
        if isinstance(inner, list) and not all(isinstance(m, BaseMessage) for m in inner):
            inner = HumanMessage(content=inner)  # a bare list of content blocks
        nested = parse_agent_input(inner, limits)
        request = AgentRequest(text=nested.text, attachments=request.attachments + nested.attachments)
    extra = value.get("attachments") or ()
    if isinstance(extra, str | bytes) or not isinstance(extra, Sequence):
        extra = [extra]
    request.attachments += [Attachment.coerce(item, limits) for item in extra]
    return request


def _from_messages(messages: list[BaseMessage], limits: MediaLimits) -> AgentRequest:
    human = [m for m in messages if isinstance(m, HumanMessage) or getattr(m, "type", None) == "human"]
    if not human:
        msg = "the messages contain no human message to answer"
        raise ConfigurationError(msg)
    attachments: list[Attachment] = []
    text = ""
    for message in human:
        text, found = attachments_from_content(message, limits)
        attachments += found
    return AgentRequest(text=text, attachments=attachments)


def attachments_from_content(
    message: BaseMessage, limits: MediaLimits = DEFAULT_LIMITS
) -> tuple[str, list[Attachment]]:
    """Split a message into its text (text blocks joined by newlines) and its media attachments."""
    texts: list[str] = []
    found: list[Attachment] = []
    for typed_block in message.content_blocks:
        block: dict[str, Any] = dict(typed_block)
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind in _MEDIA_BLOCKS:
            found.append(_attach_block(block, limits))
        elif kind == "non_standard" and isinstance(block.get("value"), Mapping):
            found.append(Attachment.from_content_block(block["value"], limits))
        else:
            raise AttachmentError(f"<{kind} block>", "unsupported content block in a request; expected text, "
                                                     "image, audio, video or file blocks")
    return "\n".join(t for t in texts if t), found


def _attach_block(block: dict[str, Any], limits: MediaLimits) -> Attachment:
    extras = block.get("extras")
    if isinstance(extras, Mapping) and extras.get("filename") and "filename" not in block:
        block["filename"] = extras["filename"]  # keeps the user's file name for display
    return Attachment.from_content_block(block, limits)


class AgentToolArgs(BaseModel):
    """Arguments of the whole agent used as one tool."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(description="what to do with the files, in plain language")
    attachments: list[str] = Field(default_factory=list, description="paths of image, audio or video files")


class AgentTool(BaseTool):
    """A polymodal Agent as one LangChain tool: text answer as content, the Reply as artifact."""

    name: str = "polymodal_agent"
    description: str = (
        "Answer a request about image, audio or video files (describe, transcribe, read, compare, "
        "generate) with specialised local models. Pass the request and the file paths."
    )
    args_schema: type[BaseModel] = AgentToolArgs
    response_format: str = "content_and_artifact"  # type: ignore[assignment]
    handle_tool_error: bool = True  # type: ignore[assignment]
    agent: Any
    """The Agent; each call runs on a fork of it (a fresh conversation)."""

    def _run(
        self, request: str, attachments: list[str] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, Reply]:
        config: RunnableConfig = {"callbacks": run_manager.get_child()} if run_manager else {}
        try:
            reply = self.agent.fork().invoke({"input": request, "attachments": attachments or []}, config)
        except PolymodalError as exc:  # expected failures become a ToolMessage(status="error")
            raise ToolException(str(exc)) from exc
        return reply.text, reply


class MultimodalChain(Runnable[Any, str]):
    """Text + attachments in, the answer string out: an LCEL chain over a polymodal Agent.

    Input is anything :func:`parse_agent_input` reads (so a prompt template's output works:
    ``prompt | MultimodalChain(agent) | StrOutputParser()``). Each call is an independent request
    on a fresh conversation, as a chain should be: the same input gives the same kind of answer,
    and concurrent calls (``batch``, ``RunnableParallel``) do not share ids or turns.

    Args:
        agent: the Agent to run; or build one from ``llm``/``tools``/``**agent_kwargs``.
    """

    def __init__(self, agent: Agent | None = None, *, llm: Any = None, tools: Any = None, **agent_kwargs: Any) -> None:
        if agent is None:
            from polymodal.agent.agent import Agent

            agent = Agent(llm=llm, tools=tools, **agent_kwargs)
        elif llm is not None or tools is not None or agent_kwargs:
            msg = "MultimodalChain takes either an agent or the arguments to build one, not both"
            raise ConfigurationError(msg)
        self.agent = agent
        self.name = "MultimodalChain"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        request = self.agent.parse_input(input)
        answer: Any = self._answer  # langchain-core's types do not model the extra keyword argument
        return self._call_with_config(answer, request.summary(), config, run_type="chain", request=request)

    def _answer(self, _summary: Any, config: RunnableConfig, *, request: AgentRequest) -> str:
        fork = self.agent.fork()
        return fork._respond(request.text, request.attachments, config=config, on_event=None).text
