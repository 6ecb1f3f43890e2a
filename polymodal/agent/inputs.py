"""What an Agent accepts as one request: text, or LangChain messages whose content mixes media blocks.

A LangChain app speaks messages whose content mixes text with image/audio/video/file content
blocks. :func:`parse_agent_input` reads them through langchain-core's own ``content_blocks``
normalisation, so the v1 shapes (``{"type": "image", "base64": ..., "mime_type": ...}``) and the
legacy ones it still accepts (v0 ``source_type``, OpenAI ``image_url``/``input_audio``/``file``,
Anthropic ``source``) all become the same validated :class:`~polymodal.media.Attachment`.

It lives in the agent layer because ``Agent.invoke`` reads these inputs itself (the agent never
imports the integrations layer above it); ``polymodal.integrations.langchain`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue

from polymodal.errors import AttachmentError, ConfigurationError
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits

__all__ = ["AgentRequest", "attachments_from_content", "parse_agent_input"]

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
