"""Generated media kept for ``GET /v1/artifacts/{id}``, each owned by the session that made it.

An artifact's public id is a random token, never the conversation's ``image_2`` (every session
has an ``image_2``). A session's artifact is served only to a request that names that session:
any other caller gets the same 404 as for an id that never existed, so ids cannot be probed.
Artifacts of stateless requests belong to no session; their unguessable URL is the capability.
The store is bounded by bytes (the oldest go first) and by time, and a session's artifacts end
with it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from polymodal.media import Attachment
from polymodal.serving.errors import APIError

__all__ = ["ArtifactStore"]


@dataclass
class _Stored:
    attachment: Attachment
    owner: str | None
    created: float


class ArtifactStore:
    """Artifacts by token, bounded by ``max_bytes`` in total and ``ttl`` seconds each."""

    def __init__(self, *, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, attachment: Attachment, owner: str | None) -> str:
        """Keep ``attachment`` for ``owner`` (a session id, or None); return its token."""
        token = f"art_{secrets.token_urlsafe(16)}"
        with self._lock:
            self._items[token] = _Stored(attachment, owner, self.clock())
            self._bytes += attachment.size_bytes
            self._evict()
        return token

    def get(self, token: str, owner: str | None) -> Attachment:
        """The artifact, if ``owner`` may read it.

        Raises:
            APIError: 404 when it does not exist, has expired, or belongs to another session.
        """
        with self._lock:
            self._evict()
            item = self._items.get(token)
        if item is None or (item.owner is not None and item.owner != owner):
            msg = (f"no artifact {token[:64]!r} for this caller (it expired, or belongs to another session: "
                   "send that session's X-Polymodal-Session header)")
            raise APIError(404, msg, type="not_found_error", code="artifact_not_found")
        return item.attachment

    def drop_owner(self, owner: str) -> None:
        """Forget every artifact of a session that ended."""
        with self._lock:
            for token in [t for t, item in self._items.items() if item.owner == owner]:
                self._bytes -= self._items.pop(token).attachment.size_bytes

    def owned_bytes(self, owner: str) -> int:
        """Bytes of the artifacts ``owner`` (a session) made and that are still kept."""
        with self._lock:
            return sum(item.attachment.size_bytes for item in self._items.values() if item.owner == owner)

    def drop_oldest(self, owner: str) -> bool:
        """Forget ``owner``'s oldest artifact (a session over its byte bound); False when it has none."""
        with self._lock:
            token = next((t for t, item in self._items.items() if item.owner == owner), None)
            if token is None:
                return False
            self._bytes -= self._items.pop(token).attachment.size_bytes
            return True

    def _evict(self) -> None:
        now = self.clock()
        while self._items:
            token, oldest = next(iter(self._items.items()))
            if self._bytes <= self.max_bytes and now - oldest.created <= self.ttl:
                break
            del self._items[token]
            self._bytes -= oldest.attachment.size_bytes
