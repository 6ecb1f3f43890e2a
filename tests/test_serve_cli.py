"""``polymodal serve`` as a user runs it: the README's command, the example client, then SIGTERM.

The server is a real subprocess on the offline profile with its transcriber swapped for the tiny
Whisper by a config file (the real Whisper base answers through the same path in test_cli.py;
here it would cost a minute on a busy CPU); ``examples/openai_client.py`` is the client, unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.server import free_port

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

ROOT = Path(__file__).resolve().parents[1]


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr else ""
            pytest.fail(f"polymodal serve exited with {process.returncode}: {output}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"polymodal serve was not ready at {url} within {timeout} s")


def test_serve_answers_the_example_client_and_stops_cleanly_on_sigterm(tiny_models, media, tmp_path):
    config = tmp_path / "polymodal.toml"
    config.write_text(f'[tools.transcriber]\nmodel = "{tiny_models.path("whisper-asr")}"\nbackend = "transformers"\n'
                      'max_new_tokens = 5\n[tools.ocr]\nenabled = false\n')
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               POLYMODAL_ROUTER_MODEL="none", XDG_DATA_HOME=str(tmp_path / "data"))  # the default session store
    server = subprocess.Popen(
        [sys.executable, "-m", "polymodal.cli", "serve", "--profile", "offline", "--config", str(config),
         "--port", str(port), "--max-concurrency", "2"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        assert "<gradio-app" in httpx.get(url + "/").text or "gradio" in httpx.get(url + "/").text.lower()
        client = subprocess.run(
            [sys.executable, "examples/openai_client.py", str(media.wav(seconds=1.0)), "What does this voice note say?",
             "--base-url", url + "/v1"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stderr
        answer = client.stdout.splitlines()[0].removeprefix("answer: ")
        streamed = next(line for line in client.stdout.splitlines() if line.startswith("streamed: "))
        assert "step s1: transcriber ok" in client.stdout and "[transcriber: ok]" in streamed
        assert answer and streamed.endswith(answer)  # the stream delivers the same answer
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    # uvicorn finishes what is in flight, then re-raises the signal: "stopped by SIGTERM" is the clean end
    assert server.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert f"polymodal: API at {url}/v1, chat page at {url}/" in stderr
    assert "Traceback" not in stderr
    assert (tmp_path / "data" / "polymodal" / "sessions.db").is_file()  # the default store: the user's data folder


@pytest.mark.parametrize(("args", "warned"), [(["--host", "0.0.0.0"], True),
                                              (["--host", "0.0.0.0", "--api-key", "k"], False), ([], False)])
def test_S9_serving_every_interface_without_an_api_key_warns(monkeypatch, args, warned):
    import uvicorn
    from typer.testing import CliRunner

    from polymodal.commands._common import app

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # the warning is printed before serving starts
    result = CliRunner().invoke(app, ["serve", "--profile", "offline", "--no-ui", "--no-preload",
                                      "--session-store", "memory://", *args])
    assert result.exit_code == 0, result.output
    assert ("without --api-key" in result.output) is warned, result.output
