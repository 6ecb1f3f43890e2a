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
from polymodal.serving.sessions import SessionStore


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


def store(clock: Clock, ended: list[str], **bounds: float) -> SessionStore:
    agent = Agent(tools=[noop], settings=Settings(recent_attachments=10))
    limits = {"max_sessions": 2, "ttl": 60.0, "max_bytes": 10**9} | bounds
    return SessionStore(agent.fork, on_end=ended.append, clock=clock, **limits)  # type: ignore[arg-type]


def test_a_full_store_ends_the_least_recently_used_idle_session():
    clock, ended = Clock(), []
    sessions = store(clock, ended)
    first = sessions.create()
    clock.now = 1
    second = sessions.create()
    clock.now = 2
    sessions.get(first.id)  # first is now the more recently used
    third = sessions.create()
    assert ended == [second.id] and len(sessions) == 2
    with pytest.raises(APIError, match="unknown session") as refused:
        sessions.get(second.id)
    assert refused.value.status == 404
    first.busy = third.busy = 1
    with pytest.raises(APIError, match="all 2 sessions are busy") as busy:
        sessions.create()
    assert busy.value.status == 503 and busy.value.headers["Retry-After"]


def test_idle_sessions_expire_and_take_their_artifacts_with_them():
    clock, ended = Clock(), []
    artifacts = ArtifactStore(max_bytes=10**6, ttl=10**6, clock=clock)
    sessions = store(clock, ended)
    sessions.on_end = artifacts.drop_owner
    session = sessions.create()
    token = artifacts.put(png(1), session.id)
    assert artifacts.get(token, session.id).name == "1.png"
    clock.now = 61
    with pytest.raises(APIError, match="expired after 60 s idle"):
        sessions.get(session.id)
    with pytest.raises(APIError) as gone:
        artifacts.get(token, session.id)
    assert gone.value.status == 404


def test_ending_a_busy_session_leaves_its_running_turn_its_conversation():
    clock, ended = Clock(), []
    sessions = store(clock, ended)
    session = sessions.create()
    session.agent.chat("hello", [png(1)])
    session.busy = 1  # a turn is running (DELETE /v1/sessions/{id} or the page's "new conversation" now)
    assert sessions.end(session.id) and ended == [session.id] and not sessions.live(session.id)
    assert session.agent.conversation.turns and session.agent.conversation.attachments  # not cleared under the turn
    idle = sessions.create()
    idle.agent.chat("hi", [png(2)])
    assert sessions.end(idle.id) and not idle.agent.conversation.turns  # an idle one is freed at once


def test_a_session_keeps_at_most_its_byte_bound_of_attachments():
    clock, ended = Clock(), []
    one = png(1, side=64).size_bytes
    sessions = store(clock, ended, max_bytes=2 * one + one // 2)
    session = sessions.create()
    for n in range(4):
        session.agent.conversation.add(png(n, side=64))
    released = sessions.trim(session)
    assert released == ["image_1", "image_2"] and list(session.agent.conversation.attachments) == ["image_3", "image_4"]


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
    clock, ended = Clock(), []
    sessions = store(clock, ended, max_bytes=300_000)
    session = sessions.create()
    for _ in range(4):
        session.agent.chat("x" * 100_000)
        sessions.trim(session)
    texts = sum(len(t.user) + len(t.reply) for t in session.agent.conversation.turns)
    assert 0 < texts <= 300_000  # user texts are counted, oldest turns go first
    photo = png(7, side=400)  # a few kB encoded, 480 kB decoded
    session.agent.conversation.add(photo).image()
    sessions.trim(session)
    assert session.agent.conversation.attachments == {}  # its decoded pixels put the session over its bound
