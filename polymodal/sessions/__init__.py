"""Durable sessions: a conversation stored between turns, restarts and processes.

:mod:`.codec` turns a session (its :class:`~polymodal.agent.Conversation` and the artifacts it
made) into a versioned JSON record plus blobs named by content hash, and back, checking every
byte it reads; :mod:`.store` is the :class:`SessionStore` protocol and :func:`open_store`, which
picks a backend by URL: ``memory://`` (:mod:`.memory`), ``sqlite:///PATH`` (:mod:`.sqlite`, the
default of ``polymodal serve``) or ``redis://HOST:PORT/DB`` (:mod:`.redis`, for replicas).

A layer above the agent (it stores what ``Agent.run(..., conversation=c)`` continues) and below
the server, which decides when a turn is committed.
"""

from __future__ import annotations

from polymodal.sessions.codec import Encoded, StoredSession, decode, encode
from polymodal.sessions.opening import default_url, open_store
from polymodal.sessions.store import ConcurrentTurnError, SessionRow, SessionStore, Stored, shown_url

__all__ = [
    "ConcurrentTurnError",
    "Encoded",
    "SessionRow",
    "SessionStore",
    "Stored",
    "StoredSession",
    "decode",
    "default_url",
    "encode",
    "open_store",
    "shown_url",
]
