"""The chat page as an attacker drives it: Gradio's HTTP API called directly, no browser.

Gradio's ``/gradio_api/call/<name>`` takes file objects by *path*. A client that names a path of
the server's (``/etc/...``, another folder's photo, a FIFO) must be refused before the file is
copied or opened, and the refusal must not stall the event loop: only files in the page's own
upload folder may be named (RELIABILITY S1, S2).
"""

from __future__ import annotations

import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from support.server import ServerThread

from polymodal import Agent, Plan, Step, tool
from polymodal.serving import ServeSettings, create_app
from polymodal.serving.ui import UPLOADS

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


@tool
def echo(words: str = "hi") -> str:
    """Say the words back (the page's tool; no model)."""
    return words


class _Fixed:
    def plan(self, request, tools, *, config=None):  # noqa: ANN001, ANN201 - the planner boundary
        from polymodal.agent import PlanOutcome

        return PlanOutcome(plan=Plan(steps=[Step(id="s1", tool="echo", args={})], answer="s1"), tier="llm")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    agent = Agent(tools=[echo], planner=_Fixed())
    with ServerThread(create_app(agent, ServeSettings(preload=False))) as running:
        yield running


def _file(path: str) -> dict[str, object]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def _call_chat(url: str, files: list[dict[str, object]], *, timeout: float = 30) -> tuple[int, str]:
    """POST the chat event as Gradio's API takes it; the status and the streamed result (or the refusal)."""
    body = {"data": [{"text": "what is this?", "files": files}, [], None]}
    posted = httpx.post(url + "/gradio_api/call/chat", json=body, timeout=timeout)
    if posted.status_code != 200:
        return posted.status_code, posted.text
    event = posted.json()["event_id"]
    streamed = httpx.get(f"{url}/gradio_api/call/chat/{event}", timeout=timeout)
    return streamed.status_code, streamed.text


def _served_urls(stream: str) -> list[str]:
    urls: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("url"), str):
                urls.append(value["url"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for line in stream.splitlines():
        if line.startswith("data:"):
            try:
                walk(json.loads(line[5:]))
            except json.JSONDecodeError:
                continue
    return urls


def test_S1_chat_page_refuses_a_server_path_before_copying_it(server, tmp_path):
    secret = tmp_path / f"photo-{uuid.uuid4().hex}.png"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    secret.write_bytes(buf.getvalue() + b"the server's own file")
    status, stream = _call_chat(server.url, [_file(str(secret))])
    leaked = []
    for url in _served_urls(stream):
        if "/gradio_api/file=" in url:
            got = httpx.get(url if url.startswith("http") else server.url + url, timeout=30)
            if got.status_code == 200 and got.content == secret.read_bytes():
                leaked.append(url)
    assert leaked == [], f"the server's {secret} was copied and served back at {leaked}"
    assert not list(Path(UPLOADS).glob(f"*/{secret.name}")), "the file was copied into the upload folder"
    assert status == 400 and "upload folder" in stream, (status, stream[:500])


@pytest.mark.parametrize("where", ["/etc/hostname", "http://127.0.0.1:9/x.png", "/tmp/gradio/../../etc/hostname"])
def test_S1_chat_page_refuses_paths_urls_and_dotdot(server, where):
    status, stream = _call_chat(server.url, [_file(where)])
    assert status == 400 and "upload folder" in stream, (status, stream[:500])


def test_S2_a_fifo_named_by_the_chat_page_does_not_block_the_loop(server, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[object] = []
    caller = threading.Thread(target=lambda: outcome.append(_call_chat(server.url, [_file(str(fifo))], timeout=20)),
                              daemon=True)
    caller.start()
    try:
        for _ in range(3):
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        caller.join(20)
        assert outcome and outcome[0][0] == 400, outcome  # type: ignore[index]
    finally:
        if caller.is_alive():  # the old code opened it: let that open() return so the server can stop
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(fifo) else None
            if fd is not None:
                os.close(fd)
            caller.join(10)


def _has_reader(fifo: Path) -> bool:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False
