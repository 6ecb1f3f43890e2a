"""OpenAI chat messages -> one polymodal turn: the request text, its media, and the history.

Reading the JSON is cheap and happens on the event loop (:func:`read_messages`); decoding and
validating the media is not, and happens on a worker thread after the request was admitted
(:func:`load_turn`), so a burst of large uploads queues like any other work.

Stateless requests (no session) carry their history in ``messages``: earlier user messages and
the assistant replies that follow them become the conversation's turns, and their media get ids
in order (``image_1``, ...) without being examined again. With a session the server remembers
the conversation, and only the last user message is read. System and developer messages are
accepted and not used: polymodal's prompts are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from polymodal.errors import AttachmentError
from polymodal.media import Attachment, MediaLimits
from polymodal.serving.errors import APIError
from polymodal.serving.protocol import AudioPart, ContentPart, FilePart, ImagePart, Message, TextPart

__all__ = ["LoadedTurn", "MediaRef", "TurnRequest", "load_turn", "read_messages"]

_PART = TypeAdapter(ContentPart)
_PART_TYPES = "text, image_url, input_audio, file"


@dataclass
class MediaRef:
    """One media part, still encoded: a content block (or an uploaded file) and where it was."""

    block: dict[str, Any]
    where: str
    """``messages[2].content[1]``: named in every error about this part."""
    path: str | None = None
    """An uploaded file (the chat page's), read instead of ``block``."""
    root: str | None = None
    """The folder ``path`` must be inside (the upload folder): a client cannot name other files."""


@dataclass
class EarlierTurn:
    """A user message of the history with the assistant reply that followed it."""

    text: str
    media: list[MediaRef]
    reply: str


@dataclass
class TurnRequest:
    """What the messages ask for, before any media is decoded."""

    text: str
    media: list[MediaRef]
    earlier: list[EarlierTurn] = field(default_factory=list)


@dataclass
class LoadedTurn:
    """A turn with validated attachments, ready for the agent."""

    text: str
    attachments: list[Attachment]
    earlier: list[tuple[str, list[Attachment], str]] = field(default_factory=list)


def read_messages(messages: list[Message], *, with_history: bool) -> TurnRequest:
    """Split ``messages`` into the request (the last message, which must be the user's) and history.

    Raises:
        APIError: 400 naming the message or part that is of no usable shape.
    """
    last = len(messages) - 1
    if messages[last].role != "user":
        msg = f"messages[{last}] is a {messages[last].role!r} message; the last message must be the user's request"
        raise APIError(400, msg, param=f"messages[{last}]")
    earlier: list[EarlierTurn] = []
    for index, message in enumerate(messages[:last] if with_history else []):
        if message.role in ("tool", "function"):
            msg = f"messages[{index}] is a {message.role!r} message; polymodal runs its own tools, not the client's"
            raise APIError(400, msg, param=f"messages[{index}]")
        if message.role == "user":
            text, media = _user_content(message, index)
            earlier.append(EarlierTurn(text, media, ""))
        elif message.role == "assistant" and earlier and not earlier[-1].reply:
            earlier[-1].reply = _assistant_text(message)
    text, media = _user_content(messages[last], last)
    return TurnRequest(text=text, media=media, earlier=earlier)


def _user_content(message: Message, index: int) -> tuple[str, list[MediaRef]]:
    if message.content is None or isinstance(message.content, str):
        return message.content or "", []
    texts: list[str] = []
    media: list[MediaRef] = []
    for number, raw in enumerate(message.content):
        where = f"messages[{index}].content[{number}]"
        part = _parse_part(raw, where)
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            media.append(MediaRef(_block(part, where), where))
    return "\n".join(t for t in texts if t), media


def _parse_part(raw: dict[str, Any], where: str) -> Any:
    try:
        return _PART.validate_python(raw)
    except ValidationError as exc:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in ("text", "image_url", "input_audio", "file"):
            msg = f"{where}: unsupported content part type {kind!r} (expected {_PART_TYPES})"
        else:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'part'}: {e['msg']}"
                                 for e in exc.errors())
            msg = f"{where}: malformed {kind} part ({problems})"
        raise APIError(400, msg, param=where) from exc


def _block(part: ImagePart | AudioPart | FilePart, where: str) -> dict[str, Any]:
    """The content block :meth:`Attachment.from_content_block` reads (it sniffs the kind from the bytes)."""
    if isinstance(part, ImagePart):
        return {"type": "image_url", "image_url": {"url": part.image_url.url}, "name": where}
    if isinstance(part, AudioPart):
        return {"type": "input_audio", "input_audio": {"data": part.input_audio.data}, "name": where}
    data, name = part.file.file_data, part.file.filename or where
    if not data:
        why = "file ids cannot be resolved here" if part.file.file_id else "it has no file_data"
        msg = f"{where}: send the file inline as file.file_data (a data URL or base64); {why}"
        raise APIError(400, msg, param=where)
    key = "url" if data[:5].lower() == "data:" else "base64"
    return {"type": "file", key: data, "filename": name}


def _assistant_text(message: Message) -> str:
    if isinstance(message.content, list):
        return "".join(str(p.get("text") or p.get("refusal") or "") for p in message.content if isinstance(p, dict))
    return message.content or ""


def load_turn(request: TurnRequest, limits: MediaLimits) -> LoadedTurn:
    """Decode and validate every media part (slow: run it on a worker thread).

    Raises:
        AttachmentError / MediaLimitError: a part is not a supported, intact file, or is over a cap;
            the message starts with the part's place (``messages[0].content[1]``) or its file name.
    """

    def attach(refs: list[MediaRef]) -> list[Attachment]:
        return [_attach(ref, limits) for ref in refs]

    earlier = [(turn.text, attach(turn.media), turn.reply) for turn in request.earlier]
    return LoadedTurn(text=request.text, attachments=attach(request.media), earlier=earlier)


def _attach(ref: MediaRef, limits: MediaLimits) -> Attachment:
    if ref.path is None:
        return Attachment.from_content_block(ref.block, limits)
    roots = (Path(ref.root),) if ref.root else limits.allowed_roots
    try:
        return Attachment.from_path(ref.path, limits.model_copy(update={"allowed_roots": roots}))
    except AttachmentError as exc:  # named as the user knows it, not by the server's upload path
        raise type(exc)(ref.where, exc.problem) from exc
