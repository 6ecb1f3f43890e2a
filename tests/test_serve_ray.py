"""``polymodal serve --ray --replicas N``: the app as replicas on Ray Serve, on the session's one local Ray.

The server is the real command in a subprocess, joining the test session's Ray instance by its
address (as it would join a cluster); each replica builds the tiny BLIP captioner's agent from a
config file. Clients talk to Ray Serve's HTTP proxy on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from PIL import Image
from support.server import free_port

from polymodal.serving import SESSION_HEADER

pytestmark = [pytest.mark.allow_hosts(["127.0.0.1"]), pytest.mark.enable_socket]

ROOT = Path(__file__).resolve().parents[1]


def _image_request() -> dict[str, Any]:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"model": "polymodal", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe this image"}, {"type": "image_url", "image_url": {"url": url}}]}]}


def _command(address: str, config: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "polymodal.cli", "serve", "--profile", "default", "--config", str(config),
            "--ray", address, "--port", str(port), "--no-preload", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                POLYMODAL_ROUTER_MODEL="none", POLYMODAL_SESSION_STORE="memory://")


def _wait_healthy(url: str, server: subprocess.Popen[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"polymodal serve --ray exited with {server.returncode}: {server.stderr.read()}")
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"no replica answered at {url} within {timeout} s")


@pytest.fixture(scope="module")
def captioner_config(tiny_models, tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("serve_ray") / "polymodal.toml"
    tools = "\n".join(f"[tools.{name}]\nenabled = false" for name in (
        "visual_qa", "transcriber", "image_generator", "video_summarizer", "clip_matcher", "speech_synthesizer",
        "emotion_recognizer", "ocr"))
    config.write_text(f'[tools.captioner]\nmodel = "{tiny_models.path("blip-caption")}"\nmax_new_tokens = 4\n{tools}\n')
    return config


@pytest.fixture(scope="module")
def two_replicas(ray_local, captioner_config, redis_url) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``polymodal serve --ray ADDRESS --replicas 2`` on one Redis store until the module ends (then SIGTERM)."""
    port = free_port()
    address = ray_local.get_runtime_context().gcs_address
    server = subprocess.Popen(
        _command(address, captioner_config, port, "--replicas", "2", "--ray-replica-cpus", "0.5",
                 "--session-store", redis_url),
        env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
            raise


def _servers_seen(url: str, requests: int = 30) -> set[str]:
    return {httpx.get(url + "/healthz", timeout=30).json()["server"] for _ in range(requests)}


def test_two_replicas_answer_chat_completions_through_ray_serve(two_replicas):
    url, _ = two_replicas
    response = httpx.post(url + "/v1/chat/completions", json=_image_request(), timeout=180)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"]
    assert [step["tool"] for step in body["polymodal"]["steps"]] == ["captioner"]
    assert len(_servers_seen(url)) == 2  # Ray's proxy spreads requests over both replicas


def test_a_killed_replica_is_replaced_and_requests_still_succeed(two_replicas):
    url, _ = two_replicas
    victim = sorted(_servers_seen(url))[0]
    os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)
    deadline = time.monotonic() + 120
    answered: list[str] = []
    while time.monotonic() < deadline and len(answered) < 5:
        try:
            response = httpx.post(url + "/v1/chat/completions", json=_image_request(), timeout=60)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            answered.append(response.json()["choices"][0]["message"]["content"])
        else:
            time.sleep(0.5)
    assert len(answered) == 5, "requests did not succeed again after a replica died"
    while time.monotonic() < deadline:  # Ray Serve starts a replacement: two live replicas again
        seen = _servers_seen(url, 10)
        if len(seen) == 2 and victim not in seen:
            return
        time.sleep(1)
    pytest.fail(f"no replacement replica for {victim} within the deadline")


def test_a_session_started_on_one_replica_continues_on_another(two_replicas):
    url, _ = two_replicas
    created = httpx.post(url + "/v1/sessions", timeout=30)
    assert created.status_code == 201
    session = created.json()["id"]
    statuses = [httpx.get(f"{url}/v1/sessions/current", headers={SESSION_HEADER: session}, timeout=30).status_code
                for _ in range(20)]
    assert statuses == [200] * 20
    answered = httpx.post(url + "/v1/chat/completions", json=_image_request(), headers={SESSION_HEADER: session},
                          timeout=180)
    assert answered.status_code == 200, answered.text
    turns = {httpx.get(f"{url}/v1/sessions/current", headers={SESSION_HEADER: session}, timeout=30).json()["turns"]
             for _ in range(10)}
    assert turns == {1}  # every replica sees the turn, whichever answered it


def test_an_unreachable_cluster_is_exit_2_with_one_line(captioner_config):
    dead = f"127.0.0.1:{free_port()}"
    result = subprocess.run(_command(dead, captioner_config, free_port()), env=_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stderr
    assert f"--ray {dead}: cannot reach a Ray cluster" in result.stderr
    assert "Traceback" not in result.stderr


def test_zero_replicas_is_a_usage_error(captioner_config):
    result = subprocess.run([*_command("auto", captioner_config, free_port()), "--replicas", "0"], env=_env(),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--replicas" in result.stderr


def test_sigterm_takes_the_deployment_down(two_replicas):  # last: it ends the module's server
    url, server = two_replicas
    server.send_signal(signal.SIGTERM)
    _, stderr = server.communicate(timeout=90)
    assert server.returncode == 0, stderr
    assert f"polymodal: API at {url}/v1 on Ray Serve, 2 replica(s)" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs replicas without CUDA, so that --device cuda fails there")
def test_replicas_that_cannot_build_the_agent_are_exit_2_with_their_reason(ray_local, captioner_config):
    # after the module's server has stopped: this command starts (and must stop again) a Serve of its own
    address = ray_local.get_runtime_context().gcs_address
    result = subprocess.run(_command(address, captioner_config, free_port(), "--device", "cuda"), env=_env(),
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stderr
    assert "the Ray Serve replicas could not start: ConfigurationError: --device 'cuda'" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(ValueError):  # it started Serve, so it stopped it again
        ray_local.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
