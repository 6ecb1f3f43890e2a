"""Agent turns in flight: which request a model call belongs to, and how many are running.

An agent turn (one ``Agent.chat``, one batch job, one HTTP request) marks itself in flight for
its whole length; every thread its steps run on inherits the mark (context variables are copied
into step threads). Two things read it:

- the micro-batcher (:mod:`polymodal.runtime.batching`) waits for company only from turns that can
  still bring some, so a lone request never waits;
- per-request caps (:mod:`polymodal.runtime.budget`) count what one turn generated, so a long-running
  agent (a server, a 10,000-job batch) is not refused after its first few dozen images.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


class Turn:
    """One agent turn in flight (compared by identity; weakly referenceable)."""

    __slots__ = ("__weakref__",)


_TURNS: set[Turn] = set()
_TURN: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("polymodal_turn", default=None)
_LOCK = threading.Lock()
_ON_END: list[Callable[[Turn], None]] = []


def on_turn_end(callback: Callable[[Turn], None]) -> None:
    """Call ``callback(turn)`` whenever a turn ends (registered once, by the modules that track turns)."""
    _ON_END.append(callback)


@contextlib.contextmanager
def request_in_flight() -> Iterator[Turn]:
    """Mark an agent turn as in flight while the block runs; its steps' threads inherit the mark."""
    turn = Turn()
    with _LOCK:
        _TURNS.add(turn)
    token = _TURN.set(turn)
    try:
        yield turn
    finally:
        _TURN.reset(token)
        with _LOCK:
            _TURNS.discard(turn)
        for callback in _ON_END:
            callback(turn)


def current_turn() -> Turn | None:
    """The turn the calling thread works for (None: a direct call outside any agent)."""
    return _TURN.get()


def turns_in_flight() -> frozenset[Turn]:
    """The turns running in this process right now."""
    with _LOCK:
        return frozenset(_TURNS)


def requests_in_flight() -> int:
    """How many agent turns are running in this process right now."""
    with _LOCK:
        return len(_TURNS)
