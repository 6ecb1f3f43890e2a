"""``sqlite:///PATH/sessions.db``: sessions in one sqlite file (stdlib ``sqlite3``), the server's default.

WAL mode with ``synchronous=NORMAL``: a commit is one append to the write-ahead log, without an
fsync, and survives the process being killed (``kill -9``, a crash, an OOM kill); only a power
cut can lose the last commits. Each turn is one ``BEGIN IMMEDIATE`` ... ``COMMIT``: the record,
the blobs it adds and the ones it drops go together, or, on any failure (a full disk, a file-size
limit), nothing does. Blobs live in their own table, one row per distinct content per session.

Every thread has its own connection (sqlite connections are not shared across threads); several
processes may open one file (sqlite's locking), though one machine only: use Redis across machines.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from polymodal.errors import SessionStoreError, StoreFullError
from polymodal.sessions.codec import Encoded
from polymodal.sessions.store import ConcurrentTurnError, SessionRow, Stored, oversized

__all__ = ["SqliteStore"]

_MARK = "polymodal.sessions/1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS polymodal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL,
    bytes INTEGER NOT NULL, turns INTEGER NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_use ON sessions (last_used);
CREATE TABLE IF NOT EXISTS blobs (
    session TEXT NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (session, sha256));
"""
_FULL, _IOERR = 13, 10  # SQLITE_FULL, SQLITE_IOERR (primary codes)


def path_of(url: str) -> Path:
    """The file a ``sqlite:`` URL names: ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too)."""
    parts = urlsplit(url)
    raw = unquote((parts.netloc + parts.path) if parts.netloc else parts.path)
    if not raw or raw == "/":
        msg = f"session store {url!r}: name the file, as sqlite:///PATH/sessions.db"
        raise SessionStoreError(msg)
    return Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw)


def _private_file(url: str, path: Path) -> None:
    """Make ``path`` a file only its owner reads (0600, in a 0700 folder when this makes the folder).

    Sessions hold what clients sent (photos, voice notes, texts): nobody else on the machine may
    read them. A symbolic link at the file (or at its ``-wal``/``-shm`` companions) is refused, not
    followed: one planted at the default path would make the server write its sessions wherever it
    points, or read another program's database as its own.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists() and not path.is_symlink():
        with contextlib.suppress(FileExistsError):  # another server process made it meanwhile
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if part.is_symlink():
            msg = (f"session store {url!r}: {part} is a symbolic link; name the real file "
                   "(a link there is refused, never followed)")
            raise SessionStoreError(msg)
    if not path.is_file():
        msg = f"session store {url!r}: {path} is not a regular file"
        raise SessionStoreError(msg)


class SqliteStore:
    """A :class:`~polymodal.sessions.store.SessionStore` in one sqlite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_of(url)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writing = threading.Lock()
        try:
            _private_file(url, self.path)
            conn = self._conn()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "polymodal_meta" not in tables:
                msg = f"session store {url!r}: {self.path} is a database of something else, not polymodal's sessions"
                raise SessionStoreError(msg)
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO polymodal_meta VALUES ('format', ?)", (_MARK,))
            mark = conn.execute("SELECT value FROM polymodal_meta WHERE key='format'").fetchone()
            if mark is None or mark[0] != _MARK:
                msg = f"session store {url!r}: {self.path} holds sessions of format {mark and mark[0]!r}, not {_MARK}"
                raise SessionStoreError(msg)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            msg = f"session store {url!r}: cannot open {self.path}: {exc}"
            raise SessionStoreError(msg) from None
        except SessionStoreError:
            self.close()
            raise

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _write(self, what: str, session_id: str, work: Any) -> Any:
        """Run ``work(conn)`` in one immediate transaction; a failure rolls it all back, typed.

        This process's writers take turns on a lock of their own first: sqlite has one writer at a
        time, and a connection that finds the file locked sleeps in sqlite's busy handler (1, 2, 5,
        10 ... ms) rather than waking when the lock is free. Other processes still meet that handler.
        """
        with self._writing:
            return self._write_now(what, session_id, work)

    def _write_now(self, what: str, session_id: str, work: Any) -> Any:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            where = f"session store {self.url!r}: cannot {what} session {session_id[:64]!r}"
            if code == _FULL or "full" in str(exc):
                msg = f"{where}: {self.path} is full ({exc}); nothing of it was written"
                raise StoreFullError(msg) from None
            if code == _IOERR:
                msg = (f"{where}: the disk refused the write ({exc}: a full disk or a file-size limit); "
                       "nothing was written")
                raise StoreFullError(msg) from None
            raise SessionStoreError(f"{where}: {exc}") from None
        return result

    def create(self, session_id: str, encoded: Encoded, now: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO sessions VALUES (?, 0, ?, ?, ?, 0, ?)",
                         (session_id, now, now, encoded.size, encoded.record))
            conn.executemany("INSERT INTO blobs VALUES (?, ?, ?)",
                             [(session_id, h, data) for h, data in encoded.blobs.items()])

        self._write("create", session_id, work)

    def stat(self, session_id: str) -> tuple[int, float] | None:
        row = self._conn().execute("SELECT version, last_used FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    def load(self, session_id: str, max_bytes: int | None = None) -> Stored | None:
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot: the record and the blobs of the same commit
        try:
            if max_bytes is not None:  # sizes from sqlite's own row headers: nothing is read into memory yet
                sized = conn.execute("SELECT length(record) + coalesce((SELECT sum(length(data)) FROM blobs "
                                     "WHERE session = ?1), 0) FROM sessions WHERE id = ?1", (session_id,)).fetchone()
                if sized is not None and int(sized[0] or 0) > max_bytes:
                    raise oversized(session_id, int(sized[0]), max_bytes)
            row = conn.execute("SELECT version, last_used, record FROM sessions WHERE id = ?",
                               (session_id,)).fetchone()
            if row is None:
                return None
            blobs = {str(h): bytes(d) for h, d in conn.execute(
                "SELECT sha256, data FROM blobs WHERE session = ?", (session_id,))}
        finally:
            conn.execute("COMMIT")
        record = row[2] if isinstance(row[2], bytes) else str(row[2]).encode()
        return Stored(int(row[0]), float(row[1]), Encoded(record, blobs))

    def commit_turn(self, session_id: str, expected_version: int, encoded: Encoded, *, now: float,
                    turns: int) -> int | None:
        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT version FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            if int(row[0]) != expected_version:
                msg = f"session {session_id[:64]!r}: another turn was committed since this one began"
                raise ConcurrentTurnError(msg)
            have = {str(r[0]) for r in conn.execute("SELECT sha256 FROM blobs WHERE session = ?", (session_id,))}
            conn.executemany("INSERT INTO blobs VALUES (?, ?, ?)",
                             [(session_id, h, d) for h, d in encoded.blobs.items() if h not in have])
            conn.executemany("DELETE FROM blobs WHERE session = ? AND sha256 = ?",
                             [(session_id, h) for h in have - encoded.blobs.keys()])
            conn.execute("UPDATE sessions SET version = ?, last_used = ?, bytes = ?, turns = ?, record = ? "
                         "WHERE id = ?", (expected_version + 1, now, encoded.size, turns, encoded.record, session_id))
            return expected_version + 1

        result: int | None = self._write("commit a turn of", session_id, work)
        return result

    def touch(self, session_id: str, now: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("UPDATE sessions SET last_used = ? WHERE id = ?", (now, session_id)).rowcount > 0

        touched: bool = self._write("touch", session_id, work)
        return touched

    def delete(self, session_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM blobs WHERE session = ?", (session_id,))
            return conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

        deleted: bool = self._write("delete", session_id, work)
        return deleted

    def rows(self) -> list[SessionRow]:
        query = "SELECT id, version, created, last_used, bytes, turns FROM sessions ORDER BY last_used"
        return [SessionRow(str(r[0]), int(r[1]), float(r[2]), float(r[3]), int(r[4]), int(r[5]))
                for r in self._conn().execute(query)]

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM sessions").fetchone()[0])

    def least_recent(self, exclude: set[str]) -> str | None:
        for (session_id,) in self._conn().execute("SELECT id FROM sessions ORDER BY last_used"):
            if session_id not in exclude:
                return str(session_id)
        return None

    def prune(self, used_before: float) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            gone = [str(r[0]) for r in conn.execute("SELECT id FROM sessions WHERE last_used < ?", (used_before,))]
            conn.executemany("DELETE FROM blobs WHERE session = ?", [(i,) for i in gone])
            conn.execute("DELETE FROM sessions WHERE last_used < ?", (used_before,))
            # Blobs of no session (left by an older polymodal or a hand-edited file) go too: they are bytes
            # nothing can load, and the byte bounds count only what sessions reference.
            conn.execute("DELETE FROM blobs WHERE session NOT IN (SELECT id FROM sessions)")
            return gone

        pruned: list[str] = self._write("prune", "*", work)
        return pruned

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
