"""``memory://``: sessions in this process's memory, gone when it exits (tests, and today's behaviour).

It keeps the same encoded rows as the durable stores, so that the server runs one code path
whatever the URL: what works on ``memory://`` works on sqlite and Redis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from polymodal.sessions.codec import Encoded
from polymodal.sessions.store import ConcurrentTurnError, SessionRow, Stored, oversized

__all__ = ["MemoryStore"]


@dataclass
class _Row:
    version: int
    created: float
    last_used: float
    turns: int
    encoded: Encoded


class MemoryStore:
    """A :class:`~polymodal.sessions.store.SessionStore` in a dict."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()

    def create(self, session_id: str, encoded: Encoded, now: float) -> None:
        with self._lock:
            self._rows[session_id] = _Row(0, now, now, 0, encoded)

    def stat(self, session_id: str) -> tuple[int, float] | None:
        row = self._rows.get(session_id)
        return None if row is None else (row.version, row.last_used)

    def load(self, session_id: str, max_bytes: int | None = None) -> Stored | None:
        row = self._rows.get(session_id)
        if row is not None and max_bytes is not None and row.encoded.size > max_bytes:
            raise oversized(session_id, row.encoded.size, max_bytes)
        return None if row is None else Stored(row.version, row.last_used, row.encoded)

    def commit_turn(self, session_id: str, expected_version: int, encoded: Encoded, *, now: float,
                    turns: int) -> int | None:
        with self._lock:
            row = self._rows.get(session_id)
            if row is None:
                return None
            if row.version != expected_version:
                msg = f"session {session_id[:64]!r}: another turn was committed since this one began"
                raise ConcurrentTurnError(msg)
            row.version, row.last_used, row.turns, row.encoded = row.version + 1, now, turns, encoded
            return row.version

    def touch(self, session_id: str, now: float) -> bool:
        with self._lock:
            row = self._rows.get(session_id)
            if row is not None:
                row.last_used = now
            return row is not None

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._rows.pop(session_id, None) is not None

    def rows(self) -> list[SessionRow]:
        with self._lock:
            found = [SessionRow(i, r.version, r.created, r.last_used, r.encoded.size, r.turns)
                     for i, r in self._rows.items()]
        return sorted(found, key=lambda r: r.last_used)

    def count(self) -> int:
        return len(self._rows)

    def least_recent(self, exclude: set[str]) -> str | None:
        with self._lock:
            candidates = [(r.last_used, i) for i, r in self._rows.items() if i not in exclude]
        return min(candidates)[1] if candidates else None

    def prune(self, used_before: float) -> list[str]:
        with self._lock:
            gone = [i for i, r in self._rows.items() if r.last_used < used_before]
            for session_id in gone:
                del self._rows[session_id]
        return gone

    def close(self) -> None:
        pass
