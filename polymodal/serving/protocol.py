"""The wire format: OpenAI's chat completions API as pydantic models, plus polymodal's extensions.

Requests are read leniently where OpenAI clients send things polymodal does not use (sampling
parameters such as ``temperature`` are accepted and ignored) and strictly where a silent
misreading would give a wrong answer (an unknown content part type, ``n > 1``, client-side
tools). Responses are what the ``openai`` SDK and LangChain's ``ChatOpenAI`` parse, with
polymodal's own data under one extra key, ``polymodal``, that those clients ignore:

- a response's ``polymodal`` holds the plan, the steps with their timings, the ids of the
  request's attachments, links to generated media (``GET /v1/artifacts/{id}``) and the session;
- a streamed response ends with that same object on its last chunk; with
  ``stream_options: {"polymodal_events": true}`` the typed events of the turn (plan ready,
  step started / progress / finished) also arrive as chunks with no ``choices`` and a
  ``polymodal_event`` key, the shape OpenAI already uses for its usage chunk.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ArtifactLink",
    "AudioPart",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "ErrorBody",
    "ErrorResponse",
    "FilePart",
    "ImagePart",
    "Message",
    "ModelCard",
    "ModelList",
    "PolymodalExtension",
    "ResponseMessage",
    "SessionInfo",
    "StreamOptions",
    "TextPart",
    "Timings",
    "Usage",
]


# -- request ---------------------------------------------------------------------------------


class TextPart(BaseModel):
    """``{"type": "text", "text": "..."}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    """An image as a data URL (``data:image/png;base64,...``); remote URLs are refused."""

    model_config = ConfigDict(extra="allow")

    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    """``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(BaseModel):
    """Base64 audio and its format (``wav``, ``mp3``, ...; the kind is still sniffed from the bytes)."""

    model_config = ConfigDict(extra="allow")

    data: str
    format: str | None = None


class AudioPart(BaseModel):
    """``{"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"}}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(BaseModel):
    """A file given inline: ``file_data`` is a data URL or bare base64; ``file_id`` is not resolvable here."""

    model_config = ConfigDict(extra="allow")

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(BaseModel):
    """``{"type": "file", "file": {"file_data": "data:video/mp4;base64,...", "filename": "clip.mp4"}}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["file"]
    file: FileData


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
"""One part of a user message's content."""


class Message(BaseModel):
    """One chat message. A user message's list content is checked part by part when it is used."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``, plus polymodal's opt-in for its typed events."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False
    """OpenAI's: a last chunk with ``usage`` (the LLMs' reported token counts; 0 when no LLM ran)."""
    polymodal_events: bool = False
    """Stream the plan and each step's start, progress and end as chunks with a ``polymodal_event``."""


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. Unknown fields (sampling parameters, ``user``...) are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    session_id: str | None = None
    """polymodal: continue this session (``POST /v1/sessions``); also the ``X-Polymodal-Session`` header."""


# -- response --------------------------------------------------------------------------------


class Usage(BaseModel):
    """Token counts of the turn's LLM calls (planner + fusion), as the models reported them; 0 where none ran."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, reply: Any) -> Usage:
        """The usage a :class:`~polymodal.agent.reply.Reply` carries."""
        used = reply.usage
        return cls(prompt_tokens=used.input_tokens, completion_tokens=used.output_tokens,
                   total_tokens=used.total_tokens)


class ArtifactLink(BaseModel):
    """A generated image or sound, fetched with ``GET url`` (session-scoped)."""

    id: str
    """The id in the conversation (``image_2``), usable by later turns of a session."""
    url: str
    """``/v1/artifacts/<token>``; send the session header when the artifact belongs to a session."""
    kind: str
    mime_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None


class Timings(BaseModel):
    """Where the request's time went, in seconds."""

    queued: float = 0.0
    """Waiting for a free slot (``--max-concurrency``)."""
    attachments: float = 0.0
    """Decoding and validating the attachments."""
    turn: float = 0.0
    """Planning, tools and fusion (``Reply.seconds``)."""
    total: float = 0.0


class PolymodalExtension(BaseModel):
    """What produced the answer: everything a ``Reply`` says, as JSON."""

    session_id: str | None = None
    planner: str
    fusion: str
    llm_calls: int
    plan: dict[str, Any]
    steps: list[dict[str, Any]]
    """Per step: id, tool, args, status, content, error, started and seconds (from the start of the plan)."""
    attachment_ids: list[str]
    artifacts: list[ArtifactLink]
    timings: Timings
    text: str
    """The final answer (a stream's tokens are this text, delivered in pieces)."""


class ResponseMessage(BaseModel):
    """The assistant's message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice polymodal returns."""

    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(BaseModel):
    """A whole answer, as ``client.chat.completions.create`` returns it."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    polymodal: PolymodalExtension


class Delta(BaseModel):
    """A piece of the streamed message."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The streamed choice."""

    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    polymodal: PolymodalExtension | None = None
    """On the last chunk with a ``finish_reason``: the whole reply's metadata."""
    polymodal_event: dict[str, Any] | None = None
    """With ``stream_options.polymodal_events``: one typed event (``type`` says which), no choices."""


class ModelCard(BaseModel):
    """An entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "polymodal"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class SessionInfo(BaseModel):
    """``POST /v1/sessions``: the id to send as ``session_id`` or the ``X-Polymodal-Session`` header."""

    id: str
    expires_after_idle_seconds: float
    attachment_ids: list[str] = Field(default_factory=list)
    turns: int = 0


class ErrorBody(BaseModel):
    """OpenAI's error object: the SDKs raise an exception carrying ``message``."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every non-2xx response body."""

    error: ErrorBody
