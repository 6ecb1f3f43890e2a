"""Durable sessions without a server: the codec, and every store backend on the same contract.

The backends are real: ``memory://``, a sqlite file in tmp_path, and a real ``redis-server`` on a
free loopback port (skipped, naming why, where Debian's redis-server is absent; CI installs it).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from polymodal import Attachment
from polymodal.agent import Conversation, Turn
from polymodal.errors import CorruptSessionError, SessionStoreError, StoreFullError
from polymodal.media import DEFAULT_LIMITS
from polymodal.sessions import ConcurrentTurnError, SessionStore, StoredSession, decode, encode, open_store

ROOT = Path(__file__).resolve().parents[1]
SID = "sess_" + "a" * 24


def png(n: int, side: int = 16) -> Attachment:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (n, 0, 0)).save(buf, format="PNG")
    return Attachment.from_bytes(buf.getvalue(), f"{n}.png")


def a_session(session_id: str = SID) -> StoredSession:
    conversation = Conversation()
    first = conversation.add(png(1))
    conversation.add(png(2))
    conversation.add(png(1))  # the same bytes again: the same id, one blob
    conversation.turns.append(Turn(user="what is it?", reply="a red square", attachment_ids=[first.id or ""]))
    conversation.release_older(1)  # image_1 was used last (added again): image_2 goes
    artifact = png(3).with_id("image_3")
    return StoredSession(id=session_id, conversation=conversation, artifacts={"art_x": artifact}, created=5.0)


def test_a_session_round_trips_with_its_ids_counters_and_artifacts():
    encoded = encode(a_session())
    assert len(encoded.blobs) == 2  # image_1 and the artifact, each once
    restored = decode(SID, encoded.record, encoded.blobs, limits=DEFAULT_LIMITS)
    conversation = restored.conversation
    assert list(conversation.attachments) == ["image_1"] and conversation.released == 1
    assert conversation.attachments["image_1"].read_bytes() == png(1).read_bytes()
    assert conversation.turns == [Turn(user="what is it?", reply="a red square", attachment_ids=["image_1"])]
    assert restored.artifacts["art_x"].read_bytes() == png(3).read_bytes() and restored.created == 5.0
    assert conversation.add(png(9)).id == "image_3"  # past every id handed out before, released ones too
    assert conversation.add(png(1)).id == "image_1"  # identity is still the content


@pytest.mark.parametrize(("tamper", "problem"), [
    (lambda r, b: (r[: len(r) // 2], b), "not valid JSON"),
    (lambda r, b: (b'{"rows": []}', b), "not a polymodal.session record"),
    (lambda r, b: (r.replace(b'"version":1', b'"version":99'), b), "format version 99"),
    (lambda r, b: (r.replace(SID.encode(), b"sess_" + b"b" * 24), b), "belongs to another session"),
    (lambda r, b: (r.replace(b'"released":1', b'"released":-4'), b), "malformed at released"),
    (lambda r, b: (r, {h: d[:-3] for h, d in b.items()}), "does not match its hash"),
    (lambda r, b: (r, {}), "is missing from the store"),
    (lambda r, b: (b"[" * 100_000, b), "not valid JSON"),
])
def test_S14_a_corrupt_truncated_or_foreign_record_is_a_typed_error_naming_the_session(tamper, problem):
    encoded = encode(a_session())
    record, blobs = tamper(encoded.record, dict(encoded.blobs))
    with pytest.raises(CorruptSessionError, match=problem) as refused:
        decode(SID, record, blobs, limits=DEFAULT_LIMITS)
    assert SID in str(refused.value) and refused.value.session_id == SID


def test_S14_stored_bytes_are_media_checked_again_and_a_giant_record_is_refused_unparsed():
    not_media = b"MZ this is no image at all"
    digest = hashlib.sha256(not_media).hexdigest()
    record = json.loads(encode(a_session()).record)
    record["attachments"]["image_1"]["sha256"] = digest
    with pytest.raises(CorruptSessionError, match="fails the media checks"):
        decode(SID, json.dumps(record).encode(), {digest: not_media, **encode(a_session()).blobs},
               limits=DEFAULT_LIMITS)
    with pytest.raises(CorruptSessionError, match="over the 1,000 byte bound"):
        decode(SID, b" " * 5000, {}, limits=DEFAULT_LIMITS, max_bytes=1000)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path) -> Iterator[SessionStore]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        request.applymarker(pytest.mark.allow_hosts(["127.0.0.1"]))
    else:
        url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'sub' / 'sessions.db'}"}[request.param]
    opened = open_store(url)
    for row in opened.rows():  # the module's one redis-server is shared by the backend's tests
        opened.delete(row.id)
    yield opened
    opened.close()


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_every_store_commits_turns_over_their_version_only(store):
    empty = encode(StoredSession(id=SID))
    store.create(SID, empty, now=100.0)
    assert store.stat(SID) == (0, 100.0) and store.count() == 1
    full = encode(a_session())
    assert store.commit_turn(SID, 0, full, now=101.0, turns=1) == 1
    with pytest.raises(ConcurrentTurnError, match="another turn was committed"):
        store.commit_turn(SID, 0, empty, now=102.0, turns=0)  # a second process's turn, begun at version 0
    loaded = store.load(SID)
    assert loaded is not None and loaded.version == 1 and loaded.encoded == full
    restored = decode(SID, loaded.encoded.record, loaded.encoded.blobs, limits=DEFAULT_LIMITS)
    assert restored.conversation.turns[0].reply == "a red square"
    shrunk = encode(StoredSession(id=SID, conversation=Conversation.holding({"image_1": png(1)})))
    assert store.commit_turn(SID, 1, shrunk, now=103.0, turns=0) == 2
    assert store.load(SID).encoded.blobs.keys() == shrunk.blobs.keys()  # the dropped blobs are gone
    [row] = store.rows()
    assert (row.id, row.version, row.turns, row.bytes, row.last_used) == (SID, 2, 0, shrunk.size, 103.0)
    assert store.commit_turn("sess_" + "z" * 24, 0, empty, now=104.0, turns=0) is None  # gone: not resurrected
    assert store.stat("sess_" + "z" * 24) is None


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_every_store_prunes_by_last_use_and_names_the_least_recent(store):
    for n, used in enumerate((10.0, 30.0, 20.0)):
        store.create(f"sess_{n:024d}", encode(StoredSession(id=f"sess_{n:024d}")), now=used)
    assert store.touch(f"sess_{0:024d}", 40.0) and not store.touch("sess_nobody", 40.0)
    assert store.least_recent(set()) == f"sess_{2:024d}"
    assert store.least_recent({f"sess_{2:024d}"}) == f"sess_{1:024d}"
    assert sorted(store.prune(used_before=35.0)) == [f"sess_{1:024d}", f"sess_{2:024d}"]
    assert [r.id for r in store.rows()] == [f"sess_{0:024d}"]
    assert store.delete(f"sess_{0:024d}") and not store.delete(f"sess_{0:024d}") and store.count() == 0


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://example/sessions", "unknown kind of store"),
    ("sqlite://", "name the file"),
    ("sqlite:////dev/null/sessions.db", "cannot open"),
])
def test_a_store_url_that_cannot_be_opened_is_one_typed_line(url, problem):
    with pytest.raises(SessionStoreError, match=problem) as refused:
        open_store(url)
    assert "\n" not in str(refused.value)


def test_a_file_that_is_not_a_sessions_database_is_refused(tmp_path):
    import sqlite3

    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(SessionStoreError, match="a database of something else"):
        open_store(f"sqlite:///{other}")
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SessionStoreError, match="cannot open"):
        open_store(f"sqlite:///{tmp_path / 'junk.db'}")


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_redis_url_nobody_answers_is_one_typed_line_with_the_password_masked():
    from support.server import free_port

    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(SessionStoreError, match="cannot reach Redis") as refused:
        open_store(url)
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)


_FULL_DISK = """
import resource, sys
from polymodal.errors import StoreFullError
from polymodal.sessions import StoredSession, encode, open_store
from polymodal.sessions.codec import Encoded
store = open_store(sys.argv[1])
sid = "sess_" + "a" * 24
store.create(sid, encode(StoredSession(id=sid)), now=1.0)
store.commit_turn(sid, 0, Encoded(b"small", {}), now=2.0, turns=1)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))  # every file this process writes
try:
    store.commit_turn(sid, 1, Encoded(b"big", {"f" * 64: bytes(1024 * 1024)}), now=3.0, turns=2)
except StoreFullError as exc:
    print("refused:", exc)
"""


def test_S15_a_full_disk_mid_commit_is_a_typed_error_and_nothing_of_the_turn_is_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, url], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "refused: session store" in done.stdout and "nothing" in done.stdout, done.stdout
    store = open_store(url)  # the process that hit the limit is gone; its last commit is intact
    stored = store.load(SID)
    assert stored is not None and stored.version == 1 and stored.encoded.record == b"small"
    assert stored.encoded.blobs == {}
    assert StoreFullError.__mro__[1] is SessionStoreError


def test_the_operators_commands_list_show_rm_and_prune_a_store(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from polymodal.commands import EXIT_FAILED, app

    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    monkeypatch.setenv("POLYMODAL_SESSION_STORE", url)  # as the server would take it
    store = open_store(url)
    store.create(SID, encode(a_session()), now=1.0)
    fresh = "sess_" + "f" * 24
    store.create(fresh, encode(StoredSession(id=fresh)), now=9e9)
    store.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["sessions", "list"])
    assert listed.exit_code == 0 and SID in listed.output and fresh in listed.output
    shown = runner.invoke(app, ["sessions", "show", SID])
    assert shown.exit_code == 0, shown.output
    assert "what is it?" in shown.output and "attachment image_1: image/png" in shown.output
    assert "artifact art_x (image_3)" in shown.output and "(1 older attachment(s) released)" in shown.output
    pruned = runner.invoke(app, ["sessions", "prune", "--older-than", "60"])
    assert pruned.exit_code == 0 and "pruned 1 session(s)" in pruned.output
    assert runner.invoke(app, ["sessions", "show", SID]).exit_code == EXIT_FAILED  # pruned: gone
    removed = runner.invoke(app, ["sessions", "rm", fresh, "sess_nobody"])
    assert removed.exit_code == EXIT_FAILED and "no such session: sess_nobody" in removed.output
    assert open_store(url).count() == 0
