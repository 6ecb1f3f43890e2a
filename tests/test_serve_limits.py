"""The server's limits as a hostile client meets them: raw sockets on 127.0.0.1 against a real uvicorn.

Bodies trickled a few bytes at a time, more of them than the server buffers, JSON nested
thousands deep, clients that leave while their turn is queued, session ids kept out of URLs
(RELIABILITY S3-S7). The agent is a sleeping tool behind a fixed planner: these tests are about
the server, not a model.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support.server import ServerThread

from polymodal import Agent, Plan, Step, tool
from polymodal.agent import PlanOutcome
from polymodal.serving import SESSION_HEADER, ServeSettings, create_app

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

RAN: list[float] = []


@tool
def nap(seconds: float = 1.0) -> str:
    """Sleep, then say so (a stand-in for a slow model call)."""
    RAN.append(seconds)
    time.sleep(seconds)
    return f"rested {seconds:g} s"


class _Fixed:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def plan(self, request, tools, *, config=None):  # noqa: ANN001, ANN201 - the planner boundary
        return PlanOutcome(plan=Plan(steps=[Step(id="s1", tool="nap", args={"seconds": self.seconds})], answer="s1"),
                           tier="llm")


def _app(seconds: float = 0.0, **settings: object):  # noqa: ANN202
    defaults: dict[str, object] = {"ui": False, "preload": False, "max_request_bytes": 100_000,
                                   "max_buffered_bytes": 250_000, "body_timeout": 1.5}
    return create_app(Agent(tools=[nap], planner=_Fixed(seconds)), ServeSettings(**(defaults | settings)))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(_app(), graceful_seconds=2) as running:
        yield running


def _trickle(port: int, declared: int, first: bytes = b'{"model": ') -> socket.socket:
    """A connection that declares ``declared`` body bytes and sends only ``first`` of them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + first)
    return sock


def _status(sock: socket.socket) -> tuple[int, str]:
    head = sock.recv(65536).decode(errors="replace")
    return int(head.split(" ", 2)[1]), head


def test_S3_a_body_trickled_past_body_timeout_is_408_while_the_server_answers_others(server):
    sock = _trickle(server.port, 90_000)
    started = time.monotonic()
    try:
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        status, head = _status(sock)
    finally:
        sock.close()
    assert status == 408 and "body_timeout" in head and time.monotonic() - started < 8


def test_S4_bytes_buffered_across_connections_are_bounded_with_503_and_retry_after(server):
    slow = [_trickle(server.port, 90_000) for _ in range(2)]  # 180 kB reserved of 250 kB
    try:
        time.sleep(0.2)
        third = _trickle(server.port, 90_000)
        status, head = _status(third)
        third.close()
        assert status == 503 and "retry-after: 5" in head.lower() and "max_buffered_bytes" in head
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200  # bodiless requests go on
    finally:
        for sock in slow:
            sock.close()


def test_S4_a_chunked_body_over_the_cap_is_413_without_reading_it_all(server):
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 10_000

    response = httpx.post(server.url + "/v1/chat/completions", content=chunks(), timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/sessions", "/some/route/mounted/later"])
def test_S5_json_nested_5000_deep_is_a_400_with_no_traceback(server, path, caplog):
    caplog.set_level(logging.ERROR)
    deep = b'{"model": "polymodal", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = httpx.post(server.url + path, content=deep, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_too_deep"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_S5_deep_brackets_inside_strings_are_not_nesting(server):
    text = "[" * 5000 + '\\"{' * 300
    body = {"model": "polymodal", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text


def test_S6_a_client_that_leaves_while_queued_has_its_turn_dropped_and_a_live_one_gets_in():
    RAN.clear()
    with ServerThread(_app(1.5, max_concurrency=1, max_queue=1), graceful_seconds=5) as running:
        body = {"model": "polymodal", "messages": [{"role": "user", "content": "rest"}]}
        first = threading.Thread(target=lambda: httpx.post(running.url + "/v1/chat/completions", json=body,
                                                           timeout=30), daemon=True)
        first.start()
        while httpx.get(running.url + "/healthz").json()["running"] == 0:
            time.sleep(0.02)
        with pytest.raises(httpx.ReadTimeout):  # queued behind the first, then gone
            httpx.post(running.url + "/v1/chat/completions", json=body, timeout=0.4)
        deadline = time.monotonic() + 5
        while httpx.get(running.url + "/healthz").json()["queued"] and time.monotonic() < deadline:
            time.sleep(0.02)
        live = httpx.post(running.url + "/v1/chat/completions", json=body, timeout=30)
        first.join(30)
    assert live.status_code == 200, live.text  # not a 429 for a slot an abandoned turn held
    assert len(RAN) == 2  # the first and the live one; the abandoned turn never ran


def test_S7_sessions_are_named_by_a_header_never_by_the_url(server):
    session_id = httpx.post(server.url + "/v1/sessions").json()["id"]
    named = {SESSION_HEADER: session_id}
    assert httpx.get(server.url + "/v1/sessions/current", headers=named).json()["id"] == session_id
    assert httpx.get(server.url + f"/v1/sessions/{session_id}").status_code == 404  # the path form is gone
    missing = httpx.get(server.url + "/v1/sessions/current")
    assert missing.status_code == 400 and SESSION_HEADER in missing.json()["error"]["message"]
    assert httpx.delete(server.url + "/v1/sessions/current", headers=named).status_code == 204
    assert httpx.get(server.url + "/v1/sessions/current", headers=named).status_code == 404
