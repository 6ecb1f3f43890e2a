"""Durable sessions under concurrency and under attack: what issue 23's review found, each pinned.

Real parts only: in-process servers (uvicorn on loopback) with an echo tool, the real sqlite
store in tmp_path and a real ``redis-server`` on a free loopback port. Where a test needs an
interleaving (a prune racing a commit), the real store's own call is wrapped to run the other
side at exactly that moment; the stores themselves are never faked.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from support.redis_server import MISSING, REDIS_SERVER, redis_server
from support.server import ServerThread

from polymodal import Agent, tool
from polymodal.errors import SessionStoreError
from polymodal.media import DEFAULT_LIMITS
from polymodal.serving import SESSION_HEADER, ServeSettings, create_app
from polymodal.serving.errors import APIError
from polymodal.serving.sessions import Sessions
from polymodal.sessions import StoredSession, decode, encode, open_store, shown_url

pytestmark = [pytest.mark.allow_hosts(["127.0.0.1"]), pytest.mark.enable_socket]


@tool
def echo(text: str) -> str:
    """Say it back."""
    return text


AGENT = Agent(tools=[echo])


def settings(store: str, **extra: Any) -> ServeSettings:
    return ServeSettings(session_store=store, preload=False, ui=False, **extra)


def say(url: str, session: str, text: str) -> httpx.Response:
    body = {"model": "polymodal", "messages": [{"role": "user", "content": text}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={SESSION_HEADER: session}, timeout=120)


def current(url: str, session: str) -> httpx.Response:
    return httpx.get(url + "/v1/sessions/current", headers={SESSION_HEADER: session}, timeout=30)


@pytest.fixture(params=["sqlite", "redis"])
def durable(request, tmp_path) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path / 'sessions.db'}"


# -- S17: the event loop never waits on the store ------------------------------------------------------------------


class Watched:
    """The real store, recording each call made from a thread that runs an event loop."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[str] = []
        self.on_loop: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            try:
                asyncio.get_running_loop()
                self.on_loop.append(name)
            except RuntimeError:
                pass
            return attribute(*args, **kwargs)

        return call


def test_S17_no_session_store_call_runs_on_the_event_loop(tmp_path):
    app = create_app(AGENT, settings(f"sqlite:///{tmp_path / 'sessions.db'}"))
    service = app.state.service
    watched = Watched(service.store)
    service.sessions.store = watched
    with ServerThread(app) as server:
        url = server.url
        session = httpx.post(url + "/v1/sessions").json()["id"]
        assert say(url, session, "hello").status_code == 200
        assert current(url, session).json()["turns"] == 1
        assert httpx.get(url + "/healthz").json()["sessions"] == 1
        assert "polymodal_sessions 1.0" in httpx.get(url + "/metrics").text
        assert httpx.get(url + "/v1/artifacts/art_nothing", headers={SESSION_HEADER: session}).status_code == 404
        assert httpx.delete(url + "/v1/sessions/current", headers={SESSION_HEADER: session}).status_code == 204
    assert {"create", "stat", "commit_turn", "count", "delete", "prune"} <= set(watched.calls)
    assert watched.on_loop == []


# -- S18: the sqlite file is the owner's, and a planted link is refused ------------------------------------------


def test_S18_the_sqlite_file_is_0600_in_a_0700_folder_and_a_planted_symlink_is_refused(tmp_path):
    folder = tmp_path / "data" / "polymodal"
    store = open_store(f"sqlite:///{folder / 'sessions.db'}")
    store.create("sess_" + "a" * 24, encode(StoredSession(id="sess_" + "a" * 24)), now=1.0)
    store.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("sessions.db", "sessions.db-wal"):
        if (folder / name).exists():
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    for planted in ("sessions.db", "sessions.db-wal"):
        other = tmp_path / f"other-{planted}"
        other.mkdir()
        (other / planted).symlink_to(victim)
        with pytest.raises(SessionStoreError, match="is a symbolic link") as refused:
            open_store(f"sqlite:///{other / 'sessions.db'}")
        assert planted in str(refused.value)
    assert victim.read_text() == "someone else's file"


# -- S19: a store's password and address never reach a client or a log line ---------------------------------------


def test_S19_a_store_password_in_the_user_info_or_the_query_is_masked():
    assert "hunter2" not in shown_url("redis://user:hunter2@10.0.0.5:6379/0")
    for url in ("redis://10.0.0.5:6379/0?password=hunter2", "rediss://h:1/0?db=1&PASSWORD=hunter2&ssl_token=x"):
        shown = shown_url(url)
        assert "hunter2" not in shown and "***" in shown and "x" not in shown.rpartition("=")[2], shown
    assert shown_url("redis://[::1:6379/0?password=hunter2") == "<a malformed URL>"


def test_S19_the_servers_settings_never_show_the_store_password_in_their_repr():
    from polymodal.serving import ServeSettings

    settings = ServeSettings(session_store="redis://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_S19_the_operators_commands_never_print_a_password_given_in_the_query(tmp_path):
    from typer.testing import CliRunner

    from polymodal.commands import app

    if not REDIS_SERVER:
        pytest.skip(MISSING)
    with redis_server(tmp_path, "--requirepass", "hunter2") as plain:
        listed = CliRunner().invoke(app, ["sessions", "list", "--session-store", plain + "?password=hunter2"])
        assert listed.exit_code == 0, listed.output
        assert "0 session(s)" in listed.output and "hunter2" not in listed.output


def test_S19_a_store_that_fails_mid_serve_is_a_503_naming_neither_its_address_nor_its_password(tmp_path):
    if not REDIS_SERVER:
        pytest.skip(MISSING)
    with redis_server(tmp_path, "--requirepass", "hunter2") as plain:
        host_port = plain.removeprefix("redis://").removesuffix("/0")
        app = create_app(AGENT, settings(f"redis://:hunter2@{host_port}/0"))
        with ServerThread(app) as server:
            session = httpx.post(server.url + "/v1/sessions").json()["id"]
            app.state.service.store.client.config_set("requirepass", "changed")  # the store refuses us now
            app.state.service.store.client.connection_pool.disconnect()
            for got in (current(server.url, session), say(server.url, session, "hi"),
                        httpx.post(server.url + "/v1/sessions")):
                assert got.status_code == 503, got.text
                assert got.json()["error"]["code"] == "session_store_unavailable"
                assert "hunter2" not in got.text and host_port not in got.text and "redis" not in got.text.lower()
            health = httpx.get(server.url + "/healthz")  # the process is up: a liveness probe must not kill it
            assert health.status_code == 200 and health.json()["sessions"] is None
            scraped = httpx.get(server.url + "/metrics")  # every other figure is still scraped
            assert scraped.status_code == 200 and "polymodal_turns_running" in scraped.text
            assert "polymodal_sessions " not in scraped.text


# -- S20: a giant stored row is refused before it is read ------------------------------------------------------------


def test_S20_a_planted_giant_row_is_refused_before_a_byte_of_it_is_read(durable):
    sessions = Sessions(open_store(durable), max_sessions=8, ttl=3600, max_bytes=64 * 1024)
    session = sessions.create()
    giant = os.urandom(32 * 1024**2)  # a blob no record names, 32 MiB: what a hand with the store can plant
    if durable.startswith("sqlite"):
        with sqlite3.connect(sessions.store.path) as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO blobs VALUES (?, ?, ?)", (session.id, "f" * 64, giant))
            conn.execute("UPDATE sessions SET version = version + 1 WHERE id = ?", (session.id,))
    else:
        client = sessions.store.client  # type: ignore[attr-defined]
        client.hset(f"polymodal:b:{session.id}", "f" * 64, giant)
        client.hincrby(f"polymodal:s:{session.id}", "version", 1)
    del giant
    sessions._forget(session.id)  # another process: nothing cached
    tracemalloc.start()
    try:
        with pytest.raises(APIError) as refused:
            sessions.get(session.id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.status == 410 and "over the" in refused.value.message and session.id in refused.value.message
    assert peak < 8 * 1024**2, f"{peak:,} bytes held while refusing it"  # never the 32 MiB, let alone a copy
    sessions.end(session.id)
    sessions.store.close()


def test_S20_a_record_of_tens_of_thousands_of_tiny_turns_is_refused_while_it_is_parsed():
    from polymodal.agent import Turn
    from polymodal.errors import CorruptSessionError
    from polymodal.sessions.codec import FORMAT, MAX_TURNS, VERSION

    sid = "sess_" + "t" * 24
    turns = ",".join(['{"user":"","reply":""}'] * (3 * MAX_TURNS))
    record = f'{{"format":"{FORMAT}","version":{VERSION},"id":"{sid}","turns":[{turns}]}}'.encode()
    with pytest.raises(CorruptSessionError, match="keeps at most 10,000 turns"):
        decode(sid, record, {}, limits=DEFAULT_LIMITS, max_bytes=10**9)
    sessions = Sessions(open_store("memory://"), max_sessions=2, ttl=60, max_bytes=10**9)
    session = sessions.create()  # and the server never writes one: a long-lived session keeps the newest turns
    session.conversation.turns.extend(Turn(user=str(n), reply="") for n in range(MAX_TURNS + 5))
    sessions.commit(session)
    stored = sessions.store.load(session.id)
    assert stored is not None
    restored = decode(session.id, stored.encoded.record, stored.encoded.blobs, limits=DEFAULT_LIMITS)
    assert len(restored.conversation.turns) == MAX_TURNS and restored.conversation.turns[0].user == "5"


# -- S21: two servers racing turns of one session ----------------------------------------------------------------------


def test_S21_turns_of_one_session_racing_on_two_servers_are_kept_or_409_never_lost(durable):
    apps = [create_app(AGENT, settings(durable, max_concurrency=4)) for _ in range(2)]
    with ServerThread(apps[0]) as a, ServerThread(apps[1]) as b:
        session = httpx.post(a.url + "/v1/sessions").json()["id"]
        texts = [f"turn {n}" for n in range(16)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: say((a, b)[n % 2].url, session, texts[n]), range(len(texts))))
        statuses = sorted({r.status_code for r in answers})
        assert set(statuses) <= {200, 409}, [r.text for r in answers if r.status_code not in (200, 409)]
        kept = {texts[n] for n, r in enumerate(answers) if r.status_code == 200}
        assert kept, "no turn got through"
        for r in answers:
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "session_conflict"
        store = open_store(durable)
        try:
            loaded = store.load(session)
            assert loaded is not None
            restored = decode(session, loaded.encoded.record, loaded.encoded.blobs, limits=DEFAULT_LIMITS)
            turns = restored.conversation.turns
            assert {t.user for t in turns} == kept  # every answered turn is stored, none twice, none unanswered
            assert len(turns) == len(kept) == loaded.version
        finally:
            store.delete(session)
            store.close()


def test_S21_a_prune_racing_a_commit_on_redis_keeps_the_session_that_was_just_used(redis_url):
    pruner, committer = open_store(redis_url), open_store(redis_url)
    session = "sess_" + "r" * 24
    pruner.create(session, encode(StoredSession(id=session)), now=10.0)
    listing = pruner.client.zrangebyscore  # type: ignore[attr-defined]

    def listed_then_committed(*args: Any, **kwargs: Any) -> Any:
        found = listing(*args, **kwargs)  # the idle session is listed ...
        committer.commit_turn(session, 0, encode(StoredSession(id=session)), now=1000.0, turns=1)  # ... then used
        return found

    pruner.client.zrangebyscore = listed_then_committed  # type: ignore[attr-defined]
    try:
        assert pruner.prune(used_before=500.0) == []
        assert committer.stat(session) == (1, 1000.0)  # the turn committed meanwhile is kept
        assert not pruner.touch("sess_" + "n" * 24, 5.0) and committer.count() == 1  # no husk of a gone one
    finally:
        committer.delete(session)
        pruner.close()
        committer.close()


# -- S22: the bounds hold across a restart -----------------------------------------------------------------------------


def test_S22_after_a_restart_expired_sessions_are_gone_and_live_ones_meet_the_new_byte_bound(tmp_path):
    db = tmp_path / "sessions.db"
    with ServerThread(create_app(AGENT, settings(f"sqlite:///{db}"))) as first:
        idle, live = (httpx.post(first.url + "/v1/sessions").json()["id"] for _ in range(2))
        for n in range(6):
            assert say(first.url, live, f"turn {n}: " + "x" * 1000).status_code == 200
    with sqlite3.connect(db) as conn:  # the server was down for two hours; live was used just before the restart
        conn.execute("UPDATE sessions SET last_used = ? WHERE id = ?", (time.time() - 7200, idle))
        conn.execute("INSERT INTO blobs VALUES ('sess_gone_long_ago', ?, ?)", ("e" * 64, b"orphan"))
    with ServerThread(create_app(AGENT, settings(f"sqlite:///{db}", max_session_bytes=3000))) as second:
        with sqlite3.connect(db) as conn:  # swept at start-up, before any request named it
            assert conn.execute("SELECT id FROM sessions").fetchall() == [(live,)]
            assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0  # the orphan blob went too
        assert current(second.url, idle).status_code == 404
        info = current(second.url, live).json()
        assert 0 < info["turns"] <= 2  # restored under the new bound: only the newest turns fit in 3,000 bytes


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_S22_rm_with_ids_that_look_like_sql_or_glob_patterns_removes_nothing_else(kind, tmp_path, request):
    from typer.testing import CliRunner

    from polymodal.commands import EXIT_FAILED, app

    url = request.getfixturevalue("redis_url") if kind == "redis" else f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    ids = [f"sess_{n}" + "k" * 24 for n in range(3)]
    for session_id in ids:
        store.create(session_id, encode(StoredSession(id=session_id)), now=time.time())
    store.close()
    attacks = ["*", "sess_*", "sess_%", "' OR '1'='1", "sess_0kkk'; DELETE FROM sessions; --", "?", "[s]*"]
    removed = CliRunner().invoke(app, ["sessions", "rm", "--session-store", url, "--", *attacks])
    assert removed.exit_code == EXIT_FAILED and "removed 0 session(s)" in removed.output
    store = open_store(url)
    try:
        assert sorted(r.id for r in store.rows()) == ids
    finally:
        for session_id in ids:
            store.delete(session_id)
        store.close()
