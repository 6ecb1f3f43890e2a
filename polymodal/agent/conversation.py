"""What an agent remembers between turns: the attachments (by stable id) and the turns.

Ids are per conversation and per kind (``image_1``, ``audio_1``, ``image_2``...), so that a
second turn can say "and what colour is it?" and the planner still knows ``image_1``. The same
bytes attached twice keep their first id (identity is the content hash).

A long conversation must not get slower and bigger with every turn: a turn keeps only its new
attachments and the ones used most recently (:meth:`Conversation.release_older`). The rest are
released — dropped from the conversation, so their bytes and decoded pixels are freed once
nothing else holds them — and prompts only say how many there were. Ids are never reused: after
``image_1`` is released the next image is still ``image_401``, never a second ``image_1``.

A Conversation is a value the caller may own: ``Agent.run(text, conversation=c)`` continues ``c``
and the Agent keeps nothing of it, so any Agent (a second one, a restarted process) continues
the same ids. The planner and fusion get a :class:`ConversationView`, which can read but not
write; only the executor, which registers the media steps produce, gets the Conversation itself.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from polymodal.media import Attachment

__all__ = ["Conversation", "ConversationView", "Turn"]


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

    @classmethod
    def holding(cls, attachments: Mapping[str, Attachment]) -> Conversation:
        """A conversation that already holds ``attachments`` under the given ids (a test, an evaluation case).

        Each attachment takes its key as its id; numbering continues after the highest number per
        kind, so an attachment added later never takes one of these ids.
        """
        conversation = cls()
        for attachment_id, attachment in attachments.items():
            conversation.attachments[attachment_id] = attachment.with_id(attachment_id)
            conversation._used[attachment_id] = next(conversation._ticks)
            kind, _, number = attachment_id.rpartition("_")
            if number.isdigit():
                conversation._numbers[kind] = max(conversation._numbers.get(kind, 0), int(number))
        return conversation

    def counters(self) -> tuple[dict[str, int], dict[str, int]]:
        """The id state a stored conversation must keep: the last number per kind and each id's last use.

        What :meth:`restored` takes back, so that a restored conversation hands out ids past the old
        ones and releases the least recently used first, as this one would (``polymodal.sessions.codec``
        stores them with the turns).
        """
        with self._lock:
            return dict(self._numbers), dict(self._used)

    @classmethod
    def restored(
        cls, attachments: Mapping[str, Attachment], turns: Iterable[Turn], *, released: int,
        numbers: Mapping[str, int], used: Mapping[str, int],
    ) -> Conversation:
        """A conversation rebuilt from what :meth:`counters` and its attributes gave (a stored session).

        The attachments must be validated already (the codec rebuilds them through ``polymodal.media``);
        numbering continues past ``numbers`` and past every id held, so no id is handed out twice.
        """
        conversation = cls()
        conversation.attachments = {i: a.with_id(i) for i, a in attachments.items()}
        conversation.turns = list(turns)
        conversation.released = released
        conversation._numbers = dict(numbers)
        for attachment_id in conversation.attachments:
            kind, _, number = attachment_id.rpartition("_")
            if number.isdigit():
                conversation._numbers[kind] = max(conversation._numbers.get(kind, 0), int(number))
        conversation._used = {i: int(used.get(i, 0)) for i in conversation.attachments}
        conversation._ticks = itertools.count(max(conversation._used.values(), default=0) + 1)
        return conversation

    def view(self, *, history_turns: int | None = None) -> ConversationView:
        """This conversation, read-only: what the planner and fusion get.

        ``history_turns`` caps the turns its ``history`` shows (the most recent ones; 0: none,
        None: all), as ``Settings.history_turns`` does for prompts.
        """
        return ConversationView(self, history_turns=history_turns)

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


class ConversationView:
    """A read-only window on a :class:`Conversation`: it reads the live conversation, never writes it.

    Why a view rather than a copy: fusion runs after the executor registered this turn's
    generated media, and must see them; a copy taken before the plan ran would not. Why not the
    Conversation itself: nothing but the executor (through ``add``) and the agent may change the
    caller's conversation, and the view has no method or attribute that could.
    """

    __slots__ = ("_conversation", "_history_turns")

    def __init__(self, conversation: Conversation, *, history_turns: int | None = None) -> None:
        self._conversation = conversation
        self._history_turns = history_turns

    @classmethod
    def of(cls, attachments: Mapping[str, Attachment] | None = None) -> ConversationView:
        """A view of a conversation holding only ``attachments`` (see :meth:`Conversation.holding`)."""
        return Conversation.holding(attachments or {}).view()

    @property
    def attachments(self) -> Mapping[str, Attachment]:
        """The conversation's attachments by id (a read-only mapping of the live ones)."""
        return MappingProxyType(self._conversation.attachments)

    @property
    def released(self) -> int:
        """How many attachments the conversation has released (prompts count them)."""
        return self._conversation.released

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The turns so far, oldest first (a tuple: appending to it changes nothing)."""
        return tuple(self._conversation.turns)

    @property
    def history(self) -> tuple[tuple[str, str], ...]:
        """(user, reply) pairs of the most recent turns, oldest first, within ``history_turns``."""
        pairs = self._conversation.history
        if self._history_turns is not None:
            pairs = pairs[-self._history_turns :] if self._history_turns > 0 else []
        return tuple(pairs)

    def __setattr__(self, name: str, value: object) -> None:
        if name in self.__slots__ and not hasattr(self, name):
            object.__setattr__(self, name, value)  # __init__ sets each slot once
            return
        msg = f"a ConversationView is read-only: it cannot set {name!r}"
        raise AttributeError(msg)
