"""``redis://HOST:PORT/DB``: sessions in Redis, shared by every server process that names it (replicas).

Per session, a hash ``polymodal:s:{id}`` (record, version, created, last use, size, turns) and a
hash ``polymodal:b:{id}`` (blobs by sha256); a sorted set ``polymodal:sessions`` orders the ids by
last use (for TTL pruning and ending the least recently used). A turn commits under ``WATCH`` in
one ``MULTI``/``EXEC``: all of it lands or none (Redis at ``maxmemory`` refuses the whole
transaction), and a turn committed meanwhile by another process makes this one a
:class:`~polymodal.sessions.store.ConcurrentTurnError`. Durability is Redis's own (its AOF or
snapshots): a server process that dies loses nothing Redis kept.
"""

from __future__ import annotations

from typing import Any

from polymodal.errors import MissingDependencyError, SessionStoreError, StoreFullError
from polymodal.sessions.codec import Encoded
from polymodal.sessions.store import ConcurrentTurnError, SessionRow, Stored, shown_url

__all__ = ["RedisStore"]

_INDEX = "polymodal:sessions"


def _s(session_id: str) -> str:
    return f"polymodal:s:{session_id}"


def _b(session_id: str) -> str:
    return f"polymodal:b:{session_id}"


class RedisStore:
    """A :class:`~polymodal.sessions.store.SessionStore` on a Redis server."""

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise MissingDependencyError("the redis:// session store", "redis", "sessions") from exc
        self._redis = redis
        self.url = shown_url(url)
        try:
            self.client: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
            self.client.ping()
        except (redis.RedisError, ValueError, OSError) as exc:
            msg = f"session store {self.url!r}: cannot reach Redis: {exc}"
            raise SessionStoreError(msg) from None

    def _call(self, what: str, session_id: str, work: Any) -> Any:
        redis = self._redis
        try:
            return work()
        except redis.WatchError:
            msg = f"session {session_id[:64]!r}: another turn was committed since this one began"
            raise ConcurrentTurnError(msg) from None
        except redis.RedisError as exc:
            where = f"session store {self.url!r}: cannot {what} session {session_id[:64]!r}"
            if "OOM" in str(exc) or "maxmemory" in str(exc):
                msg = f"{where}: Redis is full ({exc}); nothing of it was written"
                raise StoreFullError(msg) from None
            raise SessionStoreError(f"{where}: {exc}") from None

    def create(self, session_id: str, encoded: Encoded, now: float) -> None:
        def work() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(_s(session_id), mapping={"record": encoded.record, "version": 0, "created": now,
                                               "last_used": now, "bytes": encoded.size, "turns": 0})
            if encoded.blobs:
                pipe.hset(_b(session_id), mapping=encoded.blobs)
            pipe.zadd(_INDEX, {session_id: now})
            pipe.execute()

        self._call("create", session_id, work)

    def stat(self, session_id: str) -> tuple[int, float] | None:
        def work() -> tuple[int, float] | None:
            version, used = self.client.hmget(_s(session_id), "version", "last_used")
            return None if version is None or used is None else (int(version), float(used))

        found: tuple[int, float] | None = self._call("read", session_id, work)
        return found

    def load(self, session_id: str) -> Stored | None:
        def work() -> Stored | None:
            pipe = self.client.pipeline(transaction=True)  # MULTI: the record and blobs of one commit
            pipe.hmget(_s(session_id), "version", "last_used", "record")
            pipe.hgetall(_b(session_id))
            (version, used, record), blobs = pipe.execute()
            if version is None or record is None:
                return None
            named = {(k.decode() if isinstance(k, bytes) else str(k)): bytes(v) for k, v in blobs.items()}
            return Stored(int(version), float(used or 0), Encoded(bytes(record), named))

        found: Stored | None = self._call("read", session_id, work)
        return found

    def commit_turn(self, session_id: str, expected_version: int, encoded: Encoded, *, now: float,
                    turns: int) -> int | None:
        def work() -> int | None:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.watch(_s(session_id))
                version = pipe.hget(_s(session_id), "version")
                if version is None:
                    return None
                if int(version) != expected_version:
                    raise self._redis.WatchError
                have = {k.decode() if isinstance(k, bytes) else str(k) for k in pipe.hkeys(_b(session_id))}
                pipe.multi()
                new = {h: d for h, d in encoded.blobs.items() if h not in have}
                if new:
                    pipe.hset(_b(session_id), mapping=new)
                if gone := sorted(have - encoded.blobs.keys()):
                    pipe.hdel(_b(session_id), *gone)
                pipe.hset(_s(session_id), mapping={"record": encoded.record, "version": expected_version + 1,
                                                   "last_used": now, "bytes": encoded.size, "turns": turns})
                pipe.zadd(_INDEX, {session_id: now})
                pipe.execute()
                return expected_version + 1

        committed: int | None = self._call("commit a turn of", session_id, work)
        return committed

    def touch(self, session_id: str, now: float) -> bool:
        def work() -> bool:
            if not self.client.exists(_s(session_id)):
                return False
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(_s(session_id), "last_used", now)
            pipe.zadd(_INDEX, {session_id: now})
            pipe.execute()
            return True

        touched: bool = self._call("touch", session_id, work)
        return touched

    def delete(self, session_id: str) -> bool:
        def work() -> bool:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(_s(session_id))
            pipe.delete(_b(session_id))
            pipe.zrem(_INDEX, session_id)
            return bool(pipe.execute()[0])

        deleted: bool = self._call("delete", session_id, work)
        return deleted

    def rows(self) -> list[SessionRow]:
        def work() -> list[SessionRow]:
            ids = [i.decode() for i in self.client.zrange(_INDEX, 0, -1)]
            pipe = self.client.pipeline(transaction=False)
            for session_id in ids:
                pipe.hmget(_s(session_id), "version", "created", "last_used", "bytes", "turns")
            found = []
            for session_id, values in zip(ids, pipe.execute(), strict=True):
                if values[0] is not None:
                    version, created, used, size, turns = values
                    found.append(SessionRow(session_id, int(version), float(created), float(used), int(size),
                                            int(turns)))
            return found

        listed: list[SessionRow] = self._call("list", "*", work)
        return listed

    def count(self) -> int:
        counted: int = self._call("count", "*", lambda: int(self.client.zcard(_INDEX)))
        return counted

    def least_recent(self, exclude: set[str]) -> str | None:
        def work() -> str | None:
            for raw in self.client.zrange(_INDEX, 0, len(exclude)):
                if (session_id := raw.decode()) not in exclude:
                    return session_id
            return None

        found: str | None = self._call("list", "*", work)
        return found

    def prune(self, used_before: float) -> list[str]:
        def work() -> list[str]:
            gone = [i.decode() for i in self.client.zrangebyscore(_INDEX, "-inf", f"({used_before}")]
            for session_id in gone:
                self.delete(session_id)
            return gone

        pruned: list[str] = self._call("prune", "*", work)
        return pruned

    def close(self) -> None:
        self.client.close()
