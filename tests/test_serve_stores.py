"""The server's bounds, without a server: sessions, artifacts and the admission queue."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from polymodal import Agent, Attachment, Settings, tool
from polymodal.serving.admission import Admission
from polymodal.serving.artifacts import ArtifactStore
from polymodal.serving.errors import APIError
from polymodal.serving.sessions import Sessions
from polymodal.sessions import open_store


@tool
def noop(text: str) -> str:
    """Say it back."""
    return text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def png(n: int, side: int = 16) -> Attachment:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (n, 0, 0)).save(buf, format="PNG")
    return Attachment.from_bytes(buf.getvalue(), f"{n}.png")


AGENT = Agent(tools=[noop], settings=Settings(recent_attachments=10))


def store(clock: Clock, url: str = "memory://", **bounds: float) -> Sessions:
    limits = {"max_sessions": 2, "ttl": 60.0, "max_bytes": 10**9} | bounds
    return Sessions(open_store(url), recent_attachments=10, clock=clock, **limits)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_full_store_ends_the_least_recently_used_idle_session(kind, tmp_path):
    clock = Clock()
    sessions = store(clock, "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 's.db'}")
    first = sessions.create()
    clock.now = 1
    second = sessions.create()
    clock.now = 2
    sessions.get(first.id)  # first is now the more recently used
    third = sessions.create()
    assert sessions.store.stat(second.id) is None and len(sessions) == 2
    with pytest.raises(APIError, match="unknown session") as refused:
        sessions.get(second.id)
    assert refused.value.status == 404
    first.busy = third.busy = 1
    with pytest.raises(APIError, match="all 2 sessions are busy") as busy:
        sessions.create()
    assert busy.value.status == 503 and busy.value.headers["Retry-After"]


def test_idle_sessions_expire_and_take_their_artifacts_with_them(tmp_path):
    clock = Clock()
    sessions = store(clock, f"sqlite:///{tmp_path / 's.db'}")
    session = sessions.create()
    session.artifacts["art_1"] = png(1)
    sessions.commit(session)
    assert sessions.get(session.id).artifacts["art_1"].name == "1.png"
    clock.now = 61
    with pytest.raises(APIError, match="expired after 60 s idle"):
        sessions.get(session.id)
    assert sessions.store.stat(session.id) is None  # the row and its blobs are gone from the store


def test_ending_a_busy_session_leaves_its_running_turn_its_conversation():
    clock = Clock()
    sessions = store(clock)
    session = sessions.create()
    AGENT.run("hello", [png(1)], conversation=session.conversation)
    session.busy = 1  # a turn is running (DELETE /v1/sessions/current or the page's "new conversation" now)
    assert sessions.end(session.id)
    assert session.conversation.turns and session.conversation.attachments  # not cleared under the turn
    sessions.commit(session)  # the turn ends: it is answered, but the ended session is not brought back
    with pytest.raises(APIError, match="unknown session"):
        sessions.get(session.id)


def test_a_failed_turn_leaves_the_session_as_its_last_commit(tmp_path):
    sessions = store(Clock(), f"sqlite:///{tmp_path / 's.db'}")
    session = sessions.create()
    AGENT.run("hello", [png(1)], conversation=session.conversation)
    sessions.commit(session)
    session.conversation.add(png(2))  # a second turn got this far, then failed
    sessions.revert(session)
    assert list(session.conversation.attachments) == ["image_1"] and len(session.conversation.turns) == 1
    assert session.conversation.add(png(3)).id == "image_2"


def test_a_session_keeps_at_most_its_byte_bound_of_attachments():
    clock = Clock()
    one = png(1, side=64).size_bytes
    sessions = store(clock, max_bytes=2 * one + one // 2)
    session = sessions.create()
    for n in range(4):
        session.conversation.add(png(n, side=64))
    released = sessions.trim(session)
    assert released == ["image_1", "image_2"] and list(session.conversation.attachments) == ["image_3", "image_4"]


def test_artifacts_are_bounded_by_bytes_and_time_and_kept_to_their_owner():
    clock = Clock()
    size = png(0).size_bytes
    artifacts = ArtifactStore(max_bytes=2 * size, ttl=100, clock=clock)
    tokens = [artifacts.put(png(n), "sess_a") for n in range(3)]
    with pytest.raises(APIError):
        artifacts.get(tokens[0], "sess_a")  # the oldest went to make room
    assert artifacts.get(tokens[2], "sess_a").name == "2.png"
    for owner in ("sess_b", None):
        with pytest.raises(APIError, match="belongs to another session"):
            artifacts.get(tokens[2], owner)
    anyone = artifacts.put(png(9), None)
    assert artifacts.get(anyone, "sess_b").name == "9.png"  # a stateless request's artifact: the URL is the key
    clock.now = 101
    with pytest.raises(APIError):
        artifacts.get(tokens[2], "sess_a")


def test_admission_runs_some_queues_some_and_refuses_the_rest():
    async def scenario() -> None:
        admission = Admission(max_running=1, max_waiting=1)
        admission.reserve()
        await admission.enter()
        admission.reserve()  # one may wait
        waiting = asyncio.ensure_future(admission.enter())
        await asyncio.sleep(0)
        with pytest.raises(APIError, match="the server is busy") as full:
            admission.reserve()
        assert full.value.status == 429 and int(full.value.headers["Retry-After"]) >= 1
        admission.leave(2.0)
        await waiting
        assert (admission.running, admission.waiting) == (1, 0)
        admission.leave(2.0)
        assert admission.retry_after() >= 1

    asyncio.run(scenario())


def test_S8_session_bytes_count_turn_texts_and_decoded_media():
    clock = Clock()
    sessions = store(clock, max_bytes=300_000)
    session = sessions.create()
    for _ in range(4):
        AGENT.run("x" * 100_000, conversation=session.conversation)
        sessions.commit(session)
    texts = sum(len(t.user) + len(t.reply) for t in sessions.get(session.id).conversation.turns)
    assert 0 < texts <= 300_000  # user texts are counted, oldest turns go first
    photo = png(7, side=400)  # a few kB encoded, 480 kB decoded
    session.conversation.add(photo).image()
    sessions.trim(session)
    assert session.conversation.attachments == {}  # its decoded pixels put the session over its bound
    session.artifacts.update({"art_1": png(8, side=200), "art_2": png(9, side=200)})
    sessions.max_bytes = png(9, side=200).size_bytes + 10
    sessions.commit(session)
    assert list(session.artifacts) == ["art_2"] and session.conversation.turns == []  # turns, then the oldest
    assert sessions.store.load(session.id).encoded.size <= sessions.max_bytes + 1024  # the store holds the bound
