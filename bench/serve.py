"""What HTTP costs: ``polymodal serve`` vs calling ``agent.chat`` directly, at concurrency 1, 4, 16.

The same agent (the tiny random BLIP captioner, no LLM: planned by attachment type, the caption
passed through as the answer) answers the same request both ways:

- direct: ``agent.fork().chat(text, [png])`` on ``c`` threads of this process;
- HTTP: ``POST /v1/chat/completions`` (the image as a base64 data URL) from ``c`` client threads
  to a real uvicorn server in a separate process (``--max-concurrency c``), the way a user runs it.

Every answer of both ways is checked equal to the first direct answer. Printed per concurrency:
requests per second, p50 and p95 latency, the p50 difference (HTTP minus direct), and what a
request spends outside its turn (client latency minus the turn time the server reports: HTTP,
JSON, base64, queueing and thread hops), which is the overhead itself, whatever the model costs.

    python bench/serve.py [--requests 64] [--rounds 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common  # noqa: F401 - offline environment and the tests' support package on the path

os.environ.setdefault("OMP_NUM_THREADS", "1")
LEVELS = (1, 4, 16)


def photo() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def make_agent(blip: str):  # noqa: ANN201 - polymodal is imported late, after the environment is set
    from polymodal import Agent
    from polymodal.tools import Captioner

    return Agent(tools=[Captioner(model=blip, max_new_tokens=5)])


def serve(blip: str, port: int, concurrency: int) -> None:
    """The server process: the same agent behind ``create_app``, as ``polymodal serve`` runs it."""
    import torch
    import uvicorn

    from polymodal.serving import ServeSettings, create_app

    torch.set_num_threads(1)
    settings = ServeSettings(ui=False, max_concurrency=concurrency, max_queue=1024)
    uvicorn.run(create_app(make_agent(blip), settings), host="127.0.0.1", port=port, log_level="warning")


def measure(call: Callable[[], str], requests: int, concurrency: int) -> tuple[list[float], list[str], float]:
    """Latencies and answers of ``requests`` calls made ``concurrency`` at a time, and the wall time."""

    def timed(_: int) -> tuple[float, str]:
        started = time.perf_counter()
        answer = call()
        return time.perf_counter() - started, answer

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(timed, range(requests)))
    wall = time.perf_counter() - started
    return [r[0] for r in results], [r[1] for r in results], wall


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] if len(samples) > 1 else samples[0]


def http_server(blip: str, concurrency: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx
    from support.server import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", blip, "--port", str(port),
                                "--concurrency", str(concurrency)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level and side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds the requests are split into")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.concurrency)
        return

    import httpx
    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="polymodal-bench-serve-"))
    blip = str(TinyModels(root).path("blip-caption"))
    image = photo()
    body = {"model": "polymodal", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe this photo"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}]}]}
    agent = make_agent(blip)
    expected = agent.fork().chat("describe this photo", [image]).text  # also warms the model
    print(f"answer of every request: {expected!r}; {args.requests} requests per level and side")
    print(f"{'concurrency':>11} {'side':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for level in LEVELS:
        process, url = http_server(blip, level)
        clients: list[httpx.Client] = []
        try:
            outside: list[float] = []
            sides = {"direct": lambda: agent.fork().chat("describe this photo", [image]).text,
                     "http": _http_caller(url, body, clients, outside)}
            sides["http"]()  # warm: the connection and the server's first request
            outside.clear()
            latencies: dict[str, list[float]] = {side: [] for side in sides}
            walls = dict.fromkeys(sides, 0.0)
            for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits both sides
                for side, call in sides.items():
                    times, answers, wall = measure(call, args.requests // args.rounds, level)
                    assert all(a == expected for a in answers), f"{side} answered differently: {set(answers)}"
                    latencies[side] += times
                    walls[side] += wall
            for side, times in latencies.items():
                print(f"{level:>11} {side:>6} {len(times) / walls[side]:8.1f} {p(times, 50) * 1000:8.1f} "
                      f"{p(times, 95) * 1000:8.1f}")
            added = p(latencies["http"], 50) - p(latencies["direct"], 50)
            print(f"{'':>11} HTTP adds {1000 * added:+.1f} ms at p50; per request, outside the turn itself: "
                  f"p50 {1000 * p(outside, 50):.1f} ms, p95 {1000 * p(outside, 95):.1f} ms")
            if level == 1:
                floor = bare_round_trip(clients[0])
                print(f"{'':>11} the floor: a bare GET /healthz round trip through the same client, p50 "
                      f"{1000 * floor:.1f} ms (what any HTTP request costs here, before polymodal does anything)")
        finally:
            for client in clients:
                client.close()
            process.terminate()
            process.wait(30)


def bare_round_trip(client: Any, requests: int = 200) -> float:
    """p50 seconds of ``GET /healthz`` (no body, no turn): HTTP, the server and the client themselves."""
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get("/healthz").raise_for_status()
        times.append(time.perf_counter() - started)
    return p(times[requests // 10:], 50)


def _http_caller(url: str, body: dict[str, object], clients: list[Any],
                 outside: list[float]) -> Callable[[], str]:
    """POST the request through one shared keep-alive client (a pool of connections); return the answer.

    One client for every thread and round, made once: ``httpx.Client()`` builds an SSL context and a
    new connection each time, tens of ms that a real client pays once, not per request.
    ``outside`` gets, per request, the client's latency minus the turn's time inside the server
    (``polymodal.timings.turn``, the same ``agent.chat`` work the direct side times): what HTTP,
    JSON, base64, queueing and the thread hops cost.
    """
    import httpx

    client = httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=64,
                                                                         max_keepalive_connections=64))
    clients.append(client)

    def call() -> str:
        started = time.perf_counter()
        response = client.post("/v1/chat/completions", json=body)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        data = response.json()
        outside.append(elapsed - data["polymodal"]["timings"]["turn"])
        return str(data["choices"][0]["message"]["content"])

    return call


if __name__ == "__main__":
    main()
