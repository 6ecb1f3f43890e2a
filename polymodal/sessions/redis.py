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
from polymodal.sessions.store import ConcurrentTurnError, SessionRow, Stored, oversized, shown_url

__all__ = ["RedisStore"]

_INDEX = "polymodal:sessions"

# Scripts run atomically in Redis: no other client's command lands between their steps.
_LOAD = """
local record = redis.call('hget', KEYS[1], 'record')
if not record then return false end
local limit = tonumber(ARGV[1])
if limit >= 0 then
  local size = string.len(record)
  for _, name in ipairs(redis.call('hkeys', KEYS[2])) do size = size + redis.call('hstrlen', KEYS[2], name) end
  if size > limit then return {'oversized', size} end
end
local meta = redis.call('hmget', KEYS[1], 'version', 'last_used')
return {'ok', meta[1] or '0', meta[2] or '0', record, redis.call('hgetall', KEYS[2])}
"""
_TOUCH = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'last_used', ARGV[1])
redis.call('zadd', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
_PRUNE_ONE = """
local used = tonumber(redis.call('hget', KEYS[1], 'last_used'))
if used and used >= tonumber(ARGV[1]) then
  redis.call('zadd', KEYS[3], used, ARGV[2])
  return 0
end
redis.call('del', KEYS[1], KEYS[2])
redis.call('zrem', KEYS[3], ARGV[2])
return 1
"""


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
            self._load_script = self.client.register_script(_LOAD)
            self._touch_script = self.client.register_script(_TOUCH)
            self._prune_script = self.client.register_script(_PRUNE_ONE)
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

    def load(self, session_id: str, max_bytes: int | None = None) -> Stored | None:
        def work() -> Stored | None:  # one script: sized, then read, as one step (the record and blobs of one commit)
            found = self._load_script(keys=[_s(session_id), _b(session_id)],
                                      args=[-1 if max_bytes is None else max_bytes])
            if not found:
                return None
            if found[0] == b"oversized":
                raise oversized(session_id, int(found[1]), int(max_bytes or 0))
            _, version, used, record, flat = found
            named = {(k.decode() if isinstance(k, bytes) else str(k)): bytes(v)
                     for k, v in zip(flat[::2], flat[1::2], strict=True)}
            return Stored(int(version), float(used), Encoded(bytes(record), named))

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
        def work() -> bool:  # one script: a session removed meanwhile is not brought back as a husk
            return bool(self._touch_script(keys=[_s(session_id), _INDEX], args=[now, session_id]))

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
            listed = [i.decode() for i in self.client.zrangebyscore(_INDEX, "-inf", f"({used_before}")]
            # Each one removed only if it is still idle: a turn another process committed since the
            # listing keeps its session (a blind delete here would lose that answered turn).
            return [i for i in listed if self._prune_script(keys=[_s(i), _b(i), _INDEX], args=[used_before, i])]

        pruned: list[str] = self._call("prune", "*", work)
        return pruned

    def close(self) -> None:
        self.client.close()
