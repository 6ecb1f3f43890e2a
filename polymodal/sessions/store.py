"""The :class:`SessionStore` protocol every backend keeps.

A store is mechanical: rows of encoded sessions (:class:`~polymodal.sessions.codec.Encoded`) with
a version, a last-use time and their size. What a session means (its lock, its bounds, its
turns) is the server's business; the store's promises are these:

- ``commit_turn`` is one transaction: the record, its new blobs and the dropped ones all land,
  or none does (a crash or a full disk mid-commit leaves the session as the last commit left it);
- it commits only over the version the turn started from, so two processes running a turn of
  one session at once cannot both win (the second gets :class:`ConcurrentTurnError`);
- times are wall-clock seconds (``time.time``), so a TTL holds across restarts and machines.

:func:`polymodal.sessions.opening.open_store` picks the backend a URL names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from polymodal.errors import CorruptSessionError, SessionStoreError
from polymodal.sessions.codec import Encoded

__all__ = ["ConcurrentTurnError", "SessionRow", "SessionStore", "Stored", "shown_url"]


class ConcurrentTurnError(SessionStoreError):
    """Another process committed a turn of this session since this turn loaded it (this one is not stored)."""


@dataclass(frozen=True)
class SessionRow:
    """What a store knows about a session without decoding it (``polymodal sessions list``)."""

    id: str
    version: int
    """Commits so far (0: created, no turn yet)."""
    created: float
    last_used: float
    bytes: int
    """The record and its blobs, as stored."""
    turns: int


@dataclass(frozen=True)
class Stored:
    """A session's row as loaded: its version and its encoded content."""

    version: int
    last_used: float
    encoded: Encoded


class SessionStore(Protocol):
    """Sessions by id, as encoded records and blobs; safe to call from several threads."""

    url: str
    """The URL it was opened with (a password masked): what messages name."""

    def create(self, session_id: str, encoded: Encoded, now: float) -> None:
        """Store a new session at version 0."""
        ...

    def stat(self, session_id: str) -> tuple[int, float] | None:
        """(version, last use) of a session, or None when there is none: the cheap check before a load."""
        ...

    def load(self, session_id: str, max_bytes: int | None = None) -> Stored | None:
        """The session's row with every blob its record names, or None when there is none.

        Raises:
            CorruptSessionError: the row is over ``max_bytes`` as stored (measured by the store,
                before a byte of it is read: a planted giant row never reaches this process's memory).
        """
        ...

    def commit_turn(self, session_id: str, expected_version: int, encoded: Encoded, *, now: float,
                    turns: int) -> int | None:
        """Replace the session's record and blobs in one transaction; the new version (None: it is gone).

        Raises:
            ConcurrentTurnError: the session's version is not ``expected_version`` any more.
            StoreFullError: no room (a full disk or database, Redis at maxmemory); nothing was written.
            SessionStoreError: the store cannot be written for another reason.
        """
        ...

    def touch(self, session_id: str, now: float) -> bool:
        """Mark a session as used now (its TTL starts again); False when there is none."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove a session and its blobs; False when there was none."""
        ...

    def rows(self) -> list[SessionRow]:
        """Every session's row, least recently used first."""
        ...

    def count(self) -> int:
        """How many sessions are stored."""
        ...

    def least_recent(self, exclude: set[str]) -> str | None:
        """The least recently used session not in ``exclude`` (what a full server ends first)."""
        ...

    def prune(self, used_before: float) -> list[str]:
        """Remove every session last used before ``used_before``; their ids."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


_SECRET = re.compile(r"pass|secret|token|key|auth|cred", re.IGNORECASE)


def oversized(session_id: str, size: int, max_bytes: int) -> CorruptSessionError:
    """The error for a stored row over the bound a load allows (the same words from every backend)."""
    return CorruptSessionError(session_id, f"its stored record is {size:,} bytes, over the {max_bytes:,} byte "
                                           "bound of a session (max_session_bytes)")


def shown_url(url: str) -> str:
    """``url`` with any password masked, for messages and logs.

    Both places a client library reads one from: the user-info (``redis://user:PASSWORD@host``)
    and the query (``redis://host/0?password=PASSWORD``: redis-py takes any query argument as a
    connection keyword). A URL that does not even parse is not shown at all.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<a malformed URL>"
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{port}" if port else "")
        parts = parts._replace(netloc=netloc)
    if parts.query:
        query = [(k, "***" if _SECRET.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)
