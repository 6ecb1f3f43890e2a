"""What an agent remembers between turns: the attachments (by stable id) and the turns.

Ids are per conversation and per kind (``image_1``, ``audio_1``, ``image_2``...), so that a
second turn can say "and what colour is it?" and the planner still knows ``image_1``. The same
bytes attached twice keep their first id (identity is the content hash).

A long conversation must not get slower and bigger with every turn: a turn keeps only its new
attachments and the ones used most recently (:meth:`Conversation.release_older`). The rest are
released — dropped from the conversation, so their bytes and decoded pixels are freed once
nothing else holds them — and prompts only say how many there were. Ids are never reused: after
``image_1`` is released the next image is still ``image_401``, never a second ``image_1``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from polymodal.media import Attachment

__all__ = ["Conversation", "Turn"]


@dataclass
class Turn:
    """One exchange: the user's text, the reply's text, and the attachments the user added."""

    user: str
    reply: str
    attachment_ids: list[str] = field(default_factory=list)


class Conversation:
    """Attachments by id and the turns so far. Thread-safe for concurrent ``add`` calls."""

    def __init__(self) -> None:
        self.attachments: dict[str, Attachment] = {}
        self.turns: list[Turn] = []
        self.released = 0
        """How many attachments this conversation has released (see :meth:`release_older`)."""
        self._numbers: dict[str, int] = {}  # last number given per kind: ids are never reused
        self._used: dict[str, int] = {}  # id -> when it was last attached or used (a tick)
        self._ticks = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, attachment: Attachment) -> Attachment:
        """Give ``attachment`` its id here (reusing the id of identical bytes) and remember it."""
        with self._lock:
            for known in self.attachments.values():
                if known.sha256 == attachment.sha256 and known.kind == attachment.kind:
                    self._used[known.id or ""] = next(self._ticks)
                    return known
            kind = attachment.kind.value
            number = self._numbers.get(kind, 0) + 1
            self._numbers[kind] = number
            named = attachment.with_id(f"{kind}_{number}")
            self.attachments[f"{kind}_{number}"] = named
            self._used[f"{kind}_{number}"] = next(self._ticks)
            return named

    def touch(self, ids: Iterable[str]) -> None:
        """Mark attachments as just used (a plan step read them), so they are the last released."""
        with self._lock:
            for attachment_id in ids:
                if attachment_id in self.attachments:
                    self._used[attachment_id] = next(self._ticks)

    def release_older(
        self, keep: int, *, protect: Iterable[str] = (), max_bytes: int | None = None
    ) -> list[str]:
        """Keep ``protect`` and the ``keep`` most recently used other attachments; release the rest.

        ``max_bytes`` releases more, least recently used first, while what is kept holds more bytes
        than that (``protect`` is never released). Returns the released ids.
        """
        with self._lock:
            protected = {i for i in protect if i in self.attachments}
            others = sorted((i for i in self.attachments if i not in protected), key=self._used.__getitem__,
                            reverse=True)[: max(0, keep)]
            if max_bytes is not None:
                total = sum(self.attachments[i].size_bytes for i in protected | set(others))
                while others and total > max_bytes:
                    total -= self.attachments[others.pop()].size_bytes
            kept = protected | set(others)
            released = [i for i in self.attachments if i not in kept]
            for attachment_id in released:
                del self.attachments[attachment_id]
                del self._used[attachment_id]
            self.released += len(released)
            return released

    @property
    def history(self) -> list[tuple[str, str]]:
        """(user, reply) pairs, oldest first."""
        return [(turn.user, turn.reply) for turn in self.turns]

    def clear(self) -> None:
        """Forget every turn and attachment; ids start again at ``image_1``."""
        with self._lock:
            self.attachments.clear()
            self.turns.clear()
            self._numbers.clear()
            self._used.clear()
            self.released = 0
