"""A session as stored: one versioned JSON record plus its media as blobs named by content hash.

Why this split: the record (turns, attachment ids, id counters, artifact tokens) is small and
rewritten every turn; media are big and rarely change, so each distinct content is stored once per
session under its SHA-256 and a turn writes only the blobs it added.

Nothing read back is trusted. A record must parse as this module's schema (``format`` and
``version`` included), every blob must hash to its name, and every attachment is rebuilt through
:meth:`polymodal.media.Attachment.from_bytes` (sniffed and checked against the server's media
limits again) — so a truncated, corrupt, oversized or foreign row is a :class:`CorruptSessionError`
naming the session, never a crash deep in a decoder and never a half-restored conversation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.agent.conversation import Conversation, Turn
from polymodal.errors import AttachmentError, CorruptSessionError
from polymodal.media import Attachment, MediaLimits

__all__ = ["FORMAT", "MAX_TURNS", "VERSION", "Encoded", "StoredSession", "decode", "encode", "record_blobs"]

FORMAT = "polymodal.session"
VERSION = 1
MAX_TURNS = 10_000
"""Turns a stored session keeps: the server drops the oldest past it (prompts see far fewer,
``Settings.history_turns``), so a record holding more was not written by polymodal."""
_MAX_OBJECTS = MAX_TURNS + 10_000 + 1  # the turns, media entries (attachments, artifacts) and the record itself


class _TooMany(Exception):
    """Raised from inside the JSON parser: the record holds more objects than a session can."""


@dataclass
class StoredSession:
    """A session's content: its conversation, the artifacts it may fetch (by token), and when it began."""

    id: str
    conversation: Conversation = field(default_factory=Conversation)
    artifacts: dict[str, Attachment] = field(default_factory=dict)
    """Generated media by their public token (``art_...``), oldest first."""
    created: float = 0.0


@dataclass(frozen=True)
class Encoded:
    """What a store writes for a session: the JSON record and every blob it names (sha256 -> bytes)."""

    record: bytes
    blobs: dict[str, bytes]

    @property
    def size(self) -> int:
        """Bytes on the store: the record and its blobs (what the byte accounting counts)."""
        return len(self.record) + sum(len(b) for b in self.blobs.values())


class _Media(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str = Field(max_length=4096)
    kind: str = Field(max_length=16)
    id: str | None = Field(default=None, max_length=256)


class _Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    reply: str
    attachment_ids: list[str] = Field(default_factory=list)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    version: int
    id: str
    created: float = 0.0
    turns: list[_Turn] = Field(default_factory=list, max_length=MAX_TURNS)
    attachments: dict[str, _Media] = Field(default_factory=dict)
    artifacts: dict[str, _Media] = Field(default_factory=dict)
    released: int = Field(default=0, ge=0)
    numbers: dict[str, int] = Field(default_factory=dict)
    used: dict[str, int] = Field(default_factory=dict)


def encode(session: StoredSession) -> Encoded:
    """The record and blobs of ``session`` (an attachment whose bytes cannot be read any more is dropped)."""
    conversation = session.conversation
    numbers, used = conversation.counters()
    blobs: dict[str, bytes] = {}
    released = conversation.released

    def media(attachment: Attachment) -> _Media | None:
        if attachment.sha256 not in blobs:
            try:
                blobs[attachment.sha256] = attachment.read_bytes()
            except AttachmentError:  # a chat-page upload deleted since: it cannot be kept
                return None
        return _Media(sha256=attachment.sha256, name=attachment.name, kind=attachment.kind.value, id=attachment.id)

    attachments: dict[str, _Media] = {}
    for attachment_id, attachment in list(conversation.attachments.items()):
        if (described := media(attachment)) is not None:
            attachments[attachment_id] = described
        else:
            released += 1
    artifacts = {token: m for token, a in session.artifacts.items() if (m := media(a)) is not None}
    record = _Record(
        format=FORMAT, version=VERSION, id=session.id, created=session.created, released=released,
        turns=[_Turn(user=t.user, reply=t.reply, attachment_ids=list(t.attachment_ids))
               for t in list(conversation.turns)],
        attachments=attachments, artifacts=artifacts, numbers=numbers,
        used={i: used[i] for i in attachments if i in used},
    )
    return Encoded(record.model_dump_json().encode(), blobs)


def record_blobs(session_id: str, record: bytes) -> set[str]:
    """The blob names a record refers to (what a store must fetch with it), checked like :func:`decode`."""
    parsed = _parse(session_id, record)
    return {m.sha256 for m in [*parsed.attachments.values(), *parsed.artifacts.values()]}


def decode(session_id: str, record: bytes, blobs: Mapping[str, bytes], *, limits: MediaLimits,
           max_bytes: int | None = None) -> StoredSession:
    """The session a stored record and its blobs hold, every part checked.

    Raises:
        CorruptSessionError: the record or a blob is missing, truncated, corrupt, over ``max_bytes``,
            of another session or not a polymodal session at all; or a medium fails the media checks.
    """
    size = len(record) + sum(len(b) for b in blobs.values())
    if max_bytes is not None and size > max_bytes:
        raise CorruptSessionError(session_id, f"its stored record is {size:,} bytes, over the {max_bytes:,} byte "
                                              "bound of a session (max_session_bytes)")
    parsed = _parse(session_id, record)
    if parsed.id != session_id:
        raise CorruptSessionError(session_id, "its record belongs to another session (a row copied or moved)")
    rebuilt: dict[str, Attachment] = {}

    def attachment(described: _Media) -> Attachment:
        known = rebuilt.get(described.sha256)
        if known is None:
            data = blobs.get(described.sha256)
            if data is None:
                raise CorruptSessionError(session_id, f"the blob {described.sha256[:12]}... of {described.name!r} "
                                                      "is missing from the store")
            if hashlib.sha256(data).hexdigest() != described.sha256:
                raise CorruptSessionError(session_id, f"the blob of {described.name!r} does not match its hash "
                                                      "(truncated or changed on the store)")
            try:
                known = Attachment.from_bytes(data, described.name, limits)
            except AttachmentError as exc:
                raise CorruptSessionError(session_id, f"a stored attachment fails the media checks: {exc}") from None
            rebuilt[described.sha256] = known
        if known.kind.value != described.kind:
            raise CorruptSessionError(session_id, f"{described.name!r} is stored as {described.kind} but its bytes "
                                                  f"are {known.kind.value}")
        return known

    attachments = {i: attachment(m) for i, m in parsed.attachments.items()}
    artifacts = {token: attachment(m).with_id(m.id or token) for token, m in parsed.artifacts.items()}
    turns = [Turn(user=t.user, reply=t.reply, attachment_ids=t.attachment_ids) for t in parsed.turns]
    conversation = Conversation.restored(attachments, turns, released=parsed.released, numbers=parsed.numbers,
                                         used=parsed.used)
    return StoredSession(id=session_id, conversation=conversation, artifacts=artifacts, created=parsed.created)


def _parse(session_id: str, record: bytes) -> _Record:
    made = 0

    def counted(obj: dict[str, object]) -> dict[str, object]:
        nonlocal made
        made += 1
        if made > _MAX_OBJECTS:  # stops the parse: a record of millions of tiny turns never becomes millions of dicts
            raise _TooMany
        return obj

    try:
        data = json.loads(record, object_hook=counted)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise CorruptSessionError(session_id, "its stored record is not valid JSON (truncated or corrupt)") from None
    except _TooMany:
        raise CorruptSessionError(session_id, f"its stored record holds over {_MAX_OBJECTS:,} objects; a session "
                                              f"keeps at most {MAX_TURNS:,} turns") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorruptSessionError(session_id, f"its stored record is not a {FORMAT} record (a foreign row)")
    if data.get("version") != VERSION:
        raise CorruptSessionError(session_id, f"its record has format version {repr(data.get('version'))[:32]}; this "
                                              f"polymodal reads version {VERSION}")
    try:
        return _Record.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise CorruptSessionError(session_id, f"its stored record is malformed at {where}: {first['msg']}") from None
