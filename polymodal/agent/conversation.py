"""What an agent remembers between turns: the attachments (by stable id) and the turns.

Ids are per conversation and per kind (``image_1``, ``audio_1``, ``image_2``...), so that a
second turn can say "and what colour is it?" and the planner still knows ``image_1``. The same
bytes attached twice keep their first id (identity is the content hash).
"""

from __future__ import annotations

import threading
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
        self._lock = threading.Lock()

    def add(self, attachment: Attachment) -> Attachment:
        """Give ``attachment`` its id here (reusing the id of identical bytes) and remember it."""
        with self._lock:
            for known in self.attachments.values():
                if known.sha256 == attachment.sha256 and known.kind == attachment.kind:
                    return known
            kind = attachment.kind.value
            number = 1 + sum(1 for a in self.attachments.values() if a.kind == attachment.kind)
            named = attachment.with_id(f"{kind}_{number}")
            self.attachments[f"{kind}_{number}"] = named
            return named

    @property
    def history(self) -> list[tuple[str, str]]:
        """(user, reply) pairs, oldest first."""
        return [(turn.user, turn.reply) for turn in self.turns]

    def clear(self) -> None:
        """Forget every turn and attachment."""
        with self._lock:
            self.attachments.clear()
            self.turns.clear()
