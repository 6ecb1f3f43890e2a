"""Sessions: conversations the server remembers, kept in a :class:`~polymodal.sessions.SessionStore`.

A session is a stored :class:`~polymodal.sessions.StoredSession` (its Conversation and the
artifacts it made), continued by the server's one shared agent with ``agent.run(...,
conversation=session.conversation)``, so one session's attachments are never visible to another.
Its id is an unguessable token, which is what stops one client from naming another's session.

A turn is committed to the store when its answer is ready, before it is sent: a server killed
mid-turn loses only that turn, and any server process on the same store (a restart, a replica)
continues the session from its last commit. A turn that fails, or whose commit fails, leaves the
session as its last commit left it (its in-memory copy is reloaded). Decoded sessions are kept in
a small cache, checked against the store's version on every use, so a turn on another replica is
seen and a session used again here costs no decode.

The bounds: how many sessions (the least recently used idle one ends to make room), how long an
idle one lives (wall-clock seconds, so across restarts too), and how many bytes one keeps.
Session bytes (``max_bytes``, RELIABILITY S8) are what a session makes the server hold, counted by
:meth:`Sessions.held_bytes`: every attachment's :attr:`~polymodal.media.Attachment.held_bytes`
(its bytes and its decoded image or audio), the text of every turn (UTF-8) and its artifacts.
After each turn :meth:`Sessions.trim` brings it back under the bound, oldest first: attachments,
then turns, then artifacts; the newest turn's text goes too when it alone is over the bound.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from polymodal.agent import Conversation
from polymodal.errors import CorruptSessionError, SessionStoreError, StoreFullError
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits
from polymodal.serving.errors import APIError
from polymodal.sessions import ConcurrentTurnError, SessionStore, StoredSession, decode, encode
from polymodal.sessions.codec import MAX_TURNS

__all__ = ["Session", "Sessions"]

logger = logging.getLogger("polymodal.serving")

T = TypeVar("T")
_ID = re.compile(r"sess_[A-Za-z0-9_-]{16,48}")
_TOUCH_EVERY = 1.0  # seconds: a session used again sooner is not re-marked in the store (its commit marks it)
_PRUNE_EVERY = 30.0  # seconds between sweeps of expired sessions (each is one store query)


@dataclass
class Session:
    """One remembered conversation, as this process holds it."""

    id: str
    stored: StoredSession
    version: int
    """The store's version this copy was loaded at or last committed."""
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Turns of one conversation run one at a time here, in the order they arrive."""
    busy: int = 0
    """Turns admitted and not finished: a busy session is never ended for room."""

    @property
    def conversation(self) -> Conversation:
        """What the turn continues (``agent.run(..., conversation=session.conversation)``)."""
        return self.stored.conversation

    @property
    def artifacts(self) -> dict[str, Attachment]:
        """Generated media by public token, oldest first."""
        return self.stored.artifacts


class Sessions:
    """Bounded sessions by id, on a store.

    Args:
        store: where sessions live (:func:`polymodal.sessions.open_store`).
        limits: the media limits stored attachments are checked against again when loaded.
        recent_attachments: attachments a session keeps besides the newest (``Settings.recent_attachments``).
        max_sessions / ttl / max_bytes: the bounds (see :class:`~polymodal.serving.settings.ServeSettings`).
        cache: decoded sessions kept in memory (idle ones beyond it are dropped, least recently used first).
    """

    def __init__(
        self, store: SessionStore, *, max_sessions: int, ttl: float, max_bytes: int,
        limits: MediaLimits = DEFAULT_LIMITS, recent_attachments: int = 8, clock: Callable[[], float] = time.time,
        cache: int = 64,
    ) -> None:
        self.store = store
        self.limits = limits
        self.recent_attachments = recent_attachments
        self.max_sessions = max_sessions
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self.cache_size = cache
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._pruned = float("-inf")

    def __len__(self) -> int:
        return self._call(self.store.count)

    # -- the routes' operations -----------------------------------------------------------------

    def create(self) -> Session:
        """A new session; ends the least recently used idle one when the store is full.

        Raises:
            APIError: 503 when every session is busy and none can end to make room (or the store fails).
        """
        self.sweep(force=True)
        now = self.clock()
        if self._call(self.store.count) >= self.max_sessions:
            victim = self._call(lambda: self.store.least_recent(self._busy()))
            if victim is None:
                msg = f"all {self.max_sessions} sessions are busy; try again shortly"
                raise APIError(503, msg, type="server_busy", code="too_many_sessions", headers={"Retry-After": "5"})
            self.end(victim)
        session_id = f"sess_{secrets.token_urlsafe(18)}"
        stored = StoredSession(id=session_id, created=now)
        self._call(lambda: self.store.create(session_id, encode(stored), now))
        session = Session(id=session_id, stored=stored, version=0, last_used=now)
        self._remember(session)
        return session

    def get(self, session_id: str) -> Session:
        """The session ``session_id``, marked as used; loaded from the store when this copy is stale.

        Raises:
            APIError: 404 for an id that never existed, has ended or has expired (a malformed id too,
                without a store query); 410 for a stored session that cannot be restored (corrupt).
        """
        self.sweep()
        now = self.clock()
        found = self._call(lambda: self.store.stat(session_id)) if _ID.fullmatch(session_id) else None
        with self._lock:
            cached = self._cache.get(session_id)
        if found is None:
            self._forget(session_id)
            raise self._unknown(session_id)
        version, last_used = found
        if now - last_used > self.ttl and not (cached and cached.busy):
            self._call(lambda: self.store.delete(session_id))
            self._forget(session_id)
            raise self._unknown(session_id)
        if cached is not None and (cached.version == version or cached.busy):
            session = cached
        else:  # the version is the loaded row's own: a commit between the stat and the load is not missed
            stored, version = self._load(session_id)
            session = Session(id=session_id, stored=stored, version=version, last_used=now)
            self.trim(session)  # stored under other bounds (a restart with a smaller max_session_bytes)
            if cached is not None:
                session = self._refresh(cached, session)
        session.last_used = now
        if now - last_used > _TOUCH_EVERY:  # a TTL need not be finer: one write saved on most turns
            self._call(lambda: self.store.touch(session_id, now))
        self._remember(session)
        return session

    def end(self, session_id: str) -> bool:
        """End a session now (its artifacts go with it); False if there was none."""
        self._forget(session_id)
        return bool(self._call(lambda: self.store.delete(session_id)))

    def sweep(self, *, force: bool = False) -> None:
        """Remove every idle session whose time to live has passed (at most every 30 s unless ``force``)."""
        now = self.clock()
        if not force and now - self._pruned < _PRUNE_EVERY:
            return
        self._pruned = now
        busy = self._busy()
        for session_id in self._call(lambda: self.store.prune(now - self.ttl)):
            if session_id in busy:  # a turn runs on it: it is committed (or not) when the turn ends
                continue
            self._forget(session_id)

    # -- a turn's end -----------------------------------------------------------------------------

    def commit(self, session: Session) -> None:
        """Trim the session and commit its turn to the store (called before the answer is sent).

        A session ended meanwhile stays ended (the turn is answered but not kept).

        Raises:
            APIError: 507 when the store has no room (nothing of the turn was written), 409 when a
                turn of this session was committed elsewhere meanwhile, 503 when the store fails.
        """
        self.trim(session)
        now = self.clock()
        try:
            encoded = encode(session.stored)
            version = self.store.commit_turn(session.id, session.version, encoded, now=now,
                                             turns=len(session.conversation.turns))
        except ConcurrentTurnError as exc:
            self.revert(session)
            msg = f"{exc}: this turn was not kept; send it again"
            raise APIError(409, msg, type="conflict_error", code="session_conflict") from None
        except StoreFullError as exc:
            self.revert(session)
            logger.error("%s", exc)
            raise _full("; the session is as it was before this turn") from None
        except SessionStoreError as exc:
            self.revert(session)
            logger.error("%s", exc)
            raise _unavailable() from None
        if version is None:
            self._forget(session.id)
            return
        session.version, session.last_used = version, now

    def revert(self, session: Session) -> None:
        """Put the session back as its last commit left it (a turn failed, or its commit did)."""
        try:
            stored = self.store.load(session.id)
            if stored is not None:
                session.stored = decode(session.id, stored.encoded.record, stored.encoded.blobs, limits=self.limits)
                session.version = stored.version
                return
        except (SessionStoreError, CorruptSessionError):
            pass
        self._forget(session.id)

    def held_bytes(self, session: Session) -> int:
        """What ``session`` makes the server hold: attachments (encoded and decoded), turn texts, artifacts."""
        conversation = session.conversation
        attachments = sum(a.held_bytes for a in list(conversation.attachments.values()))
        texts = sum(len(t.user.encode()) + len(t.reply.encode()) for t in list(conversation.turns))
        artifacts = sum(a.size_bytes for a in list(session.artifacts.values()))
        return attachments + texts + artifacts

    def total_held_bytes(self) -> int:
        """What the sessions decoded in this process hold together (``held_bytes`` summed over the
        cache; a server's /metrics reports it). Stored sessions cost disk, not memory (``polymodal sessions list``)."""
        with self._lock:
            sessions = list(self._cache.values())
        return sum(self.held_bytes(session) for session in sessions)

    def trim(self, session: Session) -> list[str]:
        """Bring the session back under its bounds (after a turn); returns the released attachment ids.

        Oldest first: turns past :data:`~polymodal.sessions.codec.MAX_TURNS`, attachments beyond
        ``recent_attachments`` or the byte bound, then turns (their text), then artifacts.
        """
        conversation = session.conversation
        if len(conversation.turns) > MAX_TURNS:  # what a store keeps (prompts see far fewer: history_turns)
            del conversation.turns[: len(conversation.turns) - MAX_TURNS]
        released = conversation.release_older(self.recent_attachments)
        while self.held_bytes(session) > self.max_bytes:
            if conversation.attachments:
                released += conversation.release_older(len(conversation.attachments) - 1)
            elif conversation.turns:
                conversation.turns.pop(0)
            elif session.artifacts:
                del session.artifacts[next(iter(session.artifacts))]
            else:
                break
        return released

    # -- internals ---------------------------------------------------------------------------------

    def _refresh(self, cached: Session, loaded: Session) -> Session:
        """The cached session with the newer content (its lock kept: others may hold or wait on it).

        Under the lock, as :meth:`hold` is: ``get`` runs on a worker thread, and a turn admitted
        meanwhile owns its session's content (it commits it or conflicts), so a busy one keeps its own.
        """
        with self._lock:
            if not cached.busy:
                cached.stored, cached.version = loaded.stored, loaded.version
        return cached

    def hold(self, session: Session) -> None:
        """A turn is admitted on ``session``: it is busy (never ended for room, its content never swapped)."""
        with self._lock:
            session.busy += 1

    def release(self, session: Session) -> None:
        """A turn on ``session`` ended (or left the queue)."""
        with self._lock:
            session.busy -= 1

    def _load(self, session_id: str) -> tuple[StoredSession, int]:
        bound = 2 * self.max_bytes + 1024**2  # a stored record is at most the byte bound plus its JSON (escaped texts)
        try:  # the store measures the row before reading it: a planted giant never reaches memory
            stored = self._call(lambda: self.store.load(session_id, max_bytes=bound))
            if stored is None:
                raise self._unknown(session_id)
            return decode(session_id, stored.encoded.record, stored.encoded.blobs, limits=self.limits,
                          max_bytes=bound), stored.version
        except CorruptSessionError as exc:
            logger.warning("%s (store %s)", exc, self.store.url)
            msg = f"{exc}; POST /v1/sessions starts a new one"
            raise APIError(410, msg, type="not_found_error", param="session_id", code="session_corrupt") from None

    def _unknown(self, session_id: str) -> APIError:
        shown = session_id if len(session_id) <= 64 else session_id[:61] + "..."
        msg = (f"unknown session {shown!r}: it never existed, was ended, or expired after {self.ttl:g} s idle; "
               "POST /v1/sessions starts a new one")
        return APIError(404, msg, type="not_found_error", param="session_id", code="session_not_found")

    def _call(self, work: Callable[[], T]) -> T:
        """``work()``, a store failure as the client's error: what failed, never where (logged in full here)."""
        try:
            return work()
        except CorruptSessionError:
            raise
        except StoreFullError as exc:
            logger.error("%s", exc)
            raise _full() from None
        except SessionStoreError as exc:
            logger.error("%s", exc)
            raise _unavailable() from None

    def _busy(self) -> set[str]:
        with self._lock:
            return {i for i, s in self._cache.items() if s.busy}

    def _remember(self, session: Session) -> None:
        with self._lock:
            self._cache[session.id] = session
            self._cache.move_to_end(session.id)
            idle = [i for i, s in self._cache.items() if not s.busy]
            for session_id in idle[: max(0, len(self._cache) - self.cache_size)]:
                del self._cache[session_id]

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)


# The client is told what failed, never where: the store's URL, file path or Redis address stay in the log.
def _full(then: str = "") -> APIError:
    msg = f"the session store is full: this turn was not kept{then}; try again once there is room"
    return APIError(507, msg, type="insufficient_storage", code="session_store_full")


def _unavailable() -> APIError:
    return APIError(503, "the session store cannot be reached or written just now; try again shortly",
                    type="server_error", code="session_store_unavailable", headers={"Retry-After": "5"})
