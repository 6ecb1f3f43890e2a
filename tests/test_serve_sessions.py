"""Durable sessions through the server, as users and attackers reach them.

Real parts only: ``polymodal serve`` subprocesses on the tiny BLIP captioner and the tiny Stable
Diffusion (from a config file), a sqlite file in tmp_path, a real ``redis-server`` on a free
loopback port, and ``kill -9``. The attacker tests run an in-process server on a sqlite store and
write its rows directly, as someone with the file (or a bug) would.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from support.server import ServerThread, free_port

from polymodal import Agent, tool
from polymodal.serving import SESSION_HEADER, ServeSettings, create_app

pytestmark = [pytest.mark.allow_hosts(["127.0.0.1"]), pytest.mark.enable_socket]

ROOT = Path(__file__).resolve().parents[1]


def image_part(side: int = 32, *, noise: bool = False) -> dict[str, Any]:
    buf = io.BytesIO()
    if noise:  # incompressible: a PNG of about 3 * side**2 bytes
        pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="PNG")
    else:
        Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def turn(url: str, session: str, text: str, *parts: dict[str, Any], stream: bool = False) -> httpx.Response:
    body = {"model": "polymodal", "stream": stream,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={SESSION_HEADER: session}, timeout=180)


def current(url: str, session: str) -> httpx.Response:
    return httpx.get(url + "/v1/sessions/current", headers={SESSION_HEADER: session}, timeout=30)


def streamed_text(response: httpx.Response) -> str:
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


@pytest.fixture(scope="module")
def config(tiny_models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve_sessions") / "polymodal.toml"
    off = "\n".join(f"[tools.{name}]\nenabled = false" for name in (
        "visual_qa", "transcriber", "video_summarizer", "clip_matcher", "speech_synthesizer", "emotion_recognizer",
        "ocr"))
    path.write_text(f'[tools.captioner]\nmodel = "{tiny_models.path("blip-caption")}"\nmax_new_tokens = 4\n'
                    f'[tools.image_generator]\nmodel = "{tiny_models.path("sd-tiny")}"\ndefault_steps = 2\n{off}\n')
    return path


class Served:
    """``polymodal serve`` in a subprocess on a store, until :meth:`stop` (or ``kill -9``)."""

    def __init__(self, config: Path, store: str, *, file_size_limit: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                   POLYMODAL_ROUTER_MODEL="none")

        def limit() -> None:  # in the child only: every file it writes stops growing there (a full disk)
            if file_size_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "polymodal.cli", "serve", "--profile", "default", "--config", str(config),
             "--port", str(self.port), "--no-ui", "--no-preload", "--session-store", store],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit)

    def wait(self, timeout: float = 240) -> Served:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"polymodal serve exited with {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"polymodal serve did not answer at {self.url} within {timeout} s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=60)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def test_S13_a_killed_server_restarted_on_its_store_keeps_the_turns_artifacts_and_ids(config, tmp_path):
    store = f"sqlite:///{tmp_path / 'sessions.db'}"
    first = Served(config, store).wait()
    try:
        session = httpx.post(first.url + "/v1/sessions", timeout=30).json()["id"]
        drawn = turn(first.url, session, "draw an image of a lighthouse")
        assert drawn.status_code == 200, drawn.text
        [link] = drawn.json()["polymodal"]["artifacts"]
        made = httpx.get(first.url + link["url"], headers={SESSION_HEADER: session}, timeout=30)
        assert made.status_code == 200 and made.headers["content-type"] == "image/png"
        photo = turn(first.url, session, "describe this photo", image_part())
        assert photo.status_code == 200, photo.text
        caption = photo.json()["polymodal"]["steps"][0]["content"]
    finally:
        first.kill()  # kill -9: no shutdown, no flush, nothing but what each turn committed
    second = Served(config, store).wait()
    try:
        info = current(second.url, session)
        assert info.status_code == 200, info.text
        assert info.json()["turns"] == 2 and info.json()["attachment_ids"] == ["image_1", "image_2"]
        again = httpx.get(second.url + link["url"], headers={SESSION_HEADER: session}, timeout=30)
        assert again.status_code == 200 and again.content == made.content  # byte for byte
        assert httpx.get(second.url + link["url"], timeout=30).status_code == 404  # still only for its session
        # The next turn, streamed, continues the conversation: the planner sees the photo of turn 2.
        follow = turn(second.url, session, "What is in the photo?", stream=True)
        assert follow.status_code == 200 and "data: [DONE]" in follow.text, follow.text
        assert caption in streamed_text(follow)
        after = current(second.url, session).json()
        assert after["turns"] == 3 and after["attachment_ids"] == ["image_1", "image_2"]
        listed = subprocess.run([sys.executable, "-m", "polymodal.cli", "sessions", "show", session,
                                 "--session-store", store], capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert listed.returncode == 0, listed.stderr
        assert "3 turn(s)" in listed.stdout and "What is in the photo?" in listed.stdout
        assert f"artifact {link['url'].rsplit('/', 1)[1]} (image_1): image/png" in listed.stdout
    finally:
        assert "Traceback" not in second.stop()


def test_S15_a_full_disk_while_committing_a_turn_is_507_and_the_turn_is_not_half_written(config, tmp_path):
    limit = 1024 * 1024
    server = Served(config, f"sqlite:///{tmp_path / 'sessions.db'}", file_size_limit=limit).wait()
    try:
        session = httpx.post(server.url + "/v1/sessions", timeout=30).json()["id"]
        assert turn(server.url, session, "describe this", image_part()).status_code == 200
        big = turn(server.url, session, "describe this one", image_part(700, noise=True))  # ~1.5 MB: over the limit
        assert big.status_code == 507, big.text
        error = big.json()["error"]
        assert error["code"] == "session_store_full" and "this turn was not kept" in error["message"]
        assert "as it was before this turn" in error["message"] and str(tmp_path) not in error["message"]
        info = current(server.url, session).json()
        assert info["turns"] == 1 and info["attachment_ids"] == ["image_1"]  # the refused turn left no trace
        again = turn(server.url, session, "and this?", image_part(24))
        assert again.status_code == 200, again.text  # the store works again for what fits
        assert current(server.url, session).json()["attachment_ids"] == ["image_1", "image_2"]
    finally:
        server.stop()


def test_two_servers_on_one_redis_store_continue_each_others_sessions(config, redis_url):
    a, b = Served(config, redis_url), Served(config, redis_url)  # both start at once
    try:
        a.wait()
        b.wait()
        session = httpx.post(a.url + "/v1/sessions", timeout=30).json()["id"]
        first = turn(a.url, session, "describe this photo", image_part())
        assert first.status_code == 200, first.text
        assert current(b.url, session).json()["turns"] == 1
        second = turn(b.url, session, "What is in the photo?")  # on B, about the photo sent to A
        assert second.status_code == 200, second.text
        step = second.json()["polymodal"]["steps"][0]
        assert step["args"]["image"] == "image_1" and step["status"] == "ok"
        assert step["content"] == first.json()["polymodal"]["steps"][0]["content"]
        assert current(a.url, session).json()["turns"] == 2  # A sees B's turn
        with ThreadPoolExecutor(4) as pool:  # RELIABILITY S21: racing turns on both processes, each kept or 409
            raced = list(pool.map(lambda n: turn((a, b)[n % 2].url, session, f"race {n}"), range(6)))
        assert {r.status_code for r in raced} <= {200, 409}, [r.text for r in raced]
        answered = sum(r.status_code == 200 for r in raced)
        assert answered >= 1 and current(a.url, session).json()["turns"] == 2 + answered  # none lost
        assert httpx.delete(b.url + "/v1/sessions/current", headers={SESSION_HEADER: session}).status_code == 204
        assert current(a.url, session).status_code == 404
    finally:
        a.stop()
        b.stop()


def test_a_store_that_cannot_be_opened_stops_serve_with_exit_2_and_one_line(tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    for url, problem in [(dead, "cannot reach Redis"), ("sqlite:////dev/null/sessions.db", "cannot open")]:
        result = subprocess.run([sys.executable, "-m", "polymodal.cli", "serve", "--session-store", url],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0] and "Traceback" not in result.stderr


# -- the attacker's view, on an in-process server and its sqlite file ---------------------------------------------


@tool
def echo(text: str) -> str:
    """Say it back."""
    return text


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    db = tmp_path_factory.mktemp("attacked") / "sessions.db"
    settings = ServeSettings(session_store=f"sqlite:///{db}", preload=False, ui=False, max_session_bytes=1024**2)
    with ServerThread(create_app(Agent(tools=[echo]), settings)) as server:
        yield server.url, db


def _row(db: Path, session: str, record: bytes) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sessions SET record = ?, version = version + 1 WHERE id = ?", (record, session))


def test_S7_guessed_forged_and_injected_session_ids_are_the_same_404(attacked):
    url, _ = attacked
    real = httpx.post(url + "/v1/sessions").json()["id"]
    for forged in [real[:-1] + ("A" if real[-1] != "A" else "B"), "sess_" + "x" * 24, "sess_' OR '1'='1",
                   "sess_%00", "x" * 10_000, real + "'; DROP TABLE sessions; --"]:
        got = current(url, forged)
        assert got.status_code == 404 and got.json()["error"]["code"] == "session_not_found", forged
        assert turn(url, forged, "hi").status_code == 404
    assert current(url, real).status_code == 200  # the real one is untouched


def test_S14_a_corrupt_foreign_or_giant_row_is_a_410_naming_the_session_never_a_500(attacked):
    url, db = attacked
    victim, other = (httpx.post(url + "/v1/sessions").json()["id"] for _ in range(2))
    assert turn(url, other, "my secret is 12345").status_code == 200
    with sqlite3.connect(db) as conn:
        other_record = conn.execute("SELECT record FROM sessions WHERE id = ?", (other,)).fetchone()[0]
    for record, problem in [(b'{"format": "polymodal.session", "vers', "not valid JSON"),
                            (other_record, "belongs to another session"),  # another row's record, copied over
                            (b'{"format": "langgraph.checkpoint"}', "not a polymodal.session record"),
                            (b" " * (3 * 1024**2 + 10), "over the")]:
        _row(db, victim, record)
        for got in (current(url, victim), turn(url, victim, "hello")):
            assert got.status_code == 410, got.text
            error = got.json()["error"]
            assert error["code"] == "session_corrupt" and victim in error["message"] and problem in error["message"]
            assert "12345" not in got.text  # nothing of the other session leaks
    assert turn(url, other, "and again").status_code == 200
    assert current(url, other).json()["turns"] == 2  # the other session is unharmed


def test_the_store_is_read_from_the_config_file_and_the_environment_like_every_setting(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from polymodal.commands import EXIT_USAGE, app

    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = tmp_path / "polymodal.toml"
    config.write_text(f'[serve]\nsession_store = "{dead}"\n')
    monkeypatch.delenv("POLYMODAL_SESSION_STORE", raising=False)
    from_file = CliRunner().invoke(app, ["serve", "--config", str(config), "--no-preload"])
    assert from_file.exit_code == EXIT_USAGE and f"session store '{dead}': cannot reach Redis" in from_file.output
    monkeypatch.setenv("POLYMODAL_SESSION_STORE", "ftp://nowhere")  # the environment wins over the file
    from_env = CliRunner().invoke(app, ["serve", "--config", str(config), "--no-preload"])
    assert from_env.exit_code == EXIT_USAGE and "'ftp://nowhere': unknown kind of store" in from_env.output
