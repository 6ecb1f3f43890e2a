"""Sessions: conversations the server remembers, each on its own copy of the agent.

A session is an :meth:`Agent.fork` (same tools and loaded models, its own conversation), so one
session's attachments are never visible to another. Its id is an unguessable token, which is what
stops one client from naming another's session. The store is bounded three ways: how many
sessions (the least recently used idle one ends to make room), how long an idle one lives, and
how many bytes one keeps.

Session bytes (``max_bytes``, RELIABILITY S8) are what a session makes the server hold, counted by
:meth:`SessionStore.held_bytes`: every attachment's :attr:`~polymodal.media.Attachment.held_bytes`
(its bytes and its decoded image or audio), the text of every turn (the user's and the reply,
UTF-8), and the artifacts it made (``owned``, from the artifact store). After each turn
:meth:`SessionStore.trim` brings it back under the bound, oldest first: attachments, then turns,
then artifacts; the newest turn's text goes too when it alone is over the bound. A store that
keeps sessions elsewhere must count the same three things.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from polymodal.agent import Agent
from polymodal.serving.errors import APIError

__all__ = ["Session", "SessionStore"]


@dataclass
class Session:
    """One remembered conversation."""

    id: str
    agent: Agent
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Turns of one conversation run one at a time, in the order they arrive."""
    busy: int = 0
    """Turns admitted and not finished: a busy session is never ended for room."""


class SessionStore:
    """Bounded sessions by id.

    Args:
        make_agent: a fresh agent for a new session (``agent.fork``).
        max_sessions / ttl / max_bytes: the bounds (see :class:`~polymodal.serving.settings.ServeSettings`).
        on_end: called with the id of every session that ends (its artifacts go with it).
        owned / drop_owned: the bytes of a session's artifacts, and a way to drop its oldest one
            (the artifact store's ``owned_bytes`` and ``drop_oldest``).
    """

    def __init__(
        self, make_agent: Callable[[], Agent], *, max_sessions: int, ttl: float, max_bytes: int,
        on_end: Callable[[str], None] = lambda _id: None, clock: Callable[[], float] = time.monotonic,
        owned: Callable[[str], int] = lambda _id: 0, drop_owned: Callable[[str], bool] = lambda _id: False,
    ) -> None:
        self.owned = owned
        self.drop_owned = drop_owned
        self.make_agent = make_agent
        self.max_sessions = max_sessions
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.on_end = on_end
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        """A new session; ends the least recently used idle one when the store is full.

        Raises:
            APIError: 503 when every session is busy and none can end to make room.
        """
        self.sweep()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                idle = [s for s in self._sessions.values() if not s.busy]
                if not idle:
                    msg = f"all {self.max_sessions} sessions are busy; try again shortly"
                    raise APIError(503, msg, type="server_busy", code="too_many_sessions",
                                   headers={"Retry-After": "5"})
                self._end(min(idle, key=lambda s: s.last_used).id)
            session = Session(id=f"sess_{secrets.token_urlsafe(18)}", agent=self.make_agent(), last_used=self.clock())
            self._sessions[session.id] = session
            return session

    def get(self, session_id: str) -> Session:
        """The live session ``session_id``, marked as used.

        Raises:
            APIError: 404 for an id that never existed, has ended or has expired.
        """
        self.sweep()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                shown = session_id if len(session_id) <= 64 else session_id[:61] + "..."
                msg = (f"unknown session {shown!r}: it never existed, was ended, or expired after "
                       f"{self.ttl:g} s idle; POST /v1/sessions starts a new one")
                raise APIError(404, msg, type="not_found_error", param="session_id", code="session_not_found")
            session.last_used = self.clock()
            return session

    def end(self, session_id: str) -> bool:
        """End a session now; False if there was none."""
        with self._lock:
            return self._end(session_id)

    def sweep(self) -> None:
        """End every idle session whose time to live has passed."""
        now = self.clock()
        with self._lock:
            for session in list(self._sessions.values()):
                if not session.busy and now - session.last_used > self.ttl:
                    self._end(session.id)

    def held_bytes(self, session: Session) -> int:
        """What ``session`` makes the server hold: attachments (encoded and decoded), turn texts, artifacts."""
        conversation = session.agent.conversation
        attachments = sum(a.held_bytes for a in list(conversation.attachments.values()))
        texts = sum(len(t.user.encode()) + len(t.reply.encode()) for t in list(conversation.turns))
        return attachments + texts + self.owned(session.id)

    def total_held_bytes(self) -> int:
        """What every live session holds together (``held_bytes`` summed; a server's /metrics reports it)."""
        with self._lock:
            sessions = list(self._sessions.values())
        return sum(self.held_bytes(session) for session in sessions)

    def trim(self, session: Session) -> list[str]:
        """Bring the session back under its bounds (after a turn); returns the released attachment ids.

        Oldest first: attachments beyond ``recent_attachments`` or the byte bound, then turns (their
        text), then artifacts.
        """
        conversation = session.agent.conversation
        released = conversation.release_older(session.agent.settings.recent_attachments)
        while self.held_bytes(session) > self.max_bytes:
            if conversation.attachments:
                released += conversation.release_older(len(conversation.attachments) - 1)
            elif conversation.turns:
                conversation.turns.pop(0)
            elif not self.drop_owned(session.id):
                break
        return released

    def live(self, session_id: str) -> bool:
        """Whether ``session_id`` has not ended (a turn that ran while it ended must not keep its artifacts)."""
        with self._lock:
            return session_id in self._sessions

    def _end(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        if not session.busy:  # a turn still running uses this conversation: dropping the session frees it after
            session.agent.reset()
        self.on_end(session_id)
        return True
