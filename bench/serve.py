"""What HTTP costs: ``polymodal serve`` vs calling ``agent.chat`` directly, at concurrency 1, 4, 16.

The same agent (the tiny random BLIP captioner, no LLM: planned by attachment type, the caption
passed through as the answer) answers the same request three ways:

- direct: ``agent.fork().chat(text, [png])`` on ``c`` threads of this process;
- httpx / stdlib: ``POST /v1/chat/completions`` (the image as a base64 data URL) from ``c`` client
  threads to a real uvicorn server in a separate process (``--max-concurrency c``), the way a user
  runs it; through httpx (the ``openai`` SDK's client) and through ``http.client`` (lean).

Every answer is checked equal to the first direct answer. Printed per concurrency: requests per
second, p50 and p95 latency, and what a request spends outside its turn: latency minus the turn's
own time (``reply.seconds``; over HTTP, the ``timings.turn`` the server reports). HTTP's cost is
the difference of those (HTTP, JSON, base64, queueing and thread hops), free of the model's
jitter, which at this size is larger than the overhead; the plain p50 difference is printed too.

    python bench/serve.py [--requests 64] [--rounds 4] [--levels 1 4 16]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import queue
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
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS), help="concurrency levels to run")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.concurrency)
        return

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="polymodal-bench-serve-"))
    blip = str(TinyModels(root).path("blip-caption"))
    image = photo()
    body = json.dumps({"model": "polymodal", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe this photo"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}]}]})
    agent = make_agent(blip)
    expected = agent.fork().chat("describe this photo", [image]).text  # also warms the model
    print(f"answer of every request: {expected!r}; {args.requests} requests per level and side")
    print(f"{'concurrency':>11} {'side':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'outside the turn, p50 ms':>25}")
    for level in args.levels:
        process, url = http_server(blip, level)
        try:
            sides = {"direct": Direct(agent, image), "httpx": HttpxSide(url, body), "stdlib": StdlibSide(url, body)}
            for side in sides.values():
                side()  # warm: connections and the server's first request
                side.outside.clear()
            latencies: dict[str, list[float]] = {name: [] for name in sides}
            walls = dict.fromkeys(sides, 0.0)
            for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits every side
                for name, side in sides.items():
                    times, answers, wall = measure(side, args.requests // args.rounds, level)
                    assert all(a == expected for a in answers), f"{name} answered differently: {set(answers)}"
                    latencies[name] += times
                    walls[name] += wall
            for name, times in latencies.items():
                print(f"{level:>11} {name:>7} {len(times) / walls[name]:8.1f} {p(times, 50) * 1000:8.1f} "
                      f"{p(times, 95) * 1000:8.1f} {p(sides[name].outside, 50) * 1000:25.1f}")
            direct = sides["direct"].outside
            for name in ("httpx", "stdlib"):
                added = p(sides[name].outside, 50) - p(direct, 50)
                latency = p(latencies[name], 50) - p(latencies["direct"], 50)
                print(f"{'':>11} HTTP through {name} adds {1000 * added:+.1f} ms per request at p50 outside the turn "
                      f"(the p50 latencies differ by {1000 * latency:+.1f} ms, model jitter included)")
            if level == 1:
                floors = ", ".join(f"{name} {1000 * sides[name].floor():.1f} ms" for name in ("httpx", "stdlib"))
                print(f"{'':>11} the floor, a bare GET /healthz round trip (HTTP itself, before polymodal does "
                      f"anything): p50 {floors}")
        finally:
            for side in sides.values():
                side.close()
            process.terminate()
            process.wait(30)


class Direct:
    """``agent.fork().chat(text, [png])`` in this process; outside = latency minus ``reply.seconds``.

    The PNG is attached (``Attachment.from_bytes``: checked and probed) before ``chat``, as the
    server does before its turn, so the probe is "outside" on both sides alike.
    """

    def __init__(self, agent: Any, image: bytes) -> None:
        self.agent, self.image = agent, image
        self.outside: list[float] = []

    def __call__(self) -> str:
        from polymodal import Attachment

        started = time.perf_counter()
        reply = self.agent.fork().chat("describe this photo", [Attachment.from_bytes(self.image)])
        self.outside.append(time.perf_counter() - started - reply.seconds)
        return str(reply.text)

    def close(self) -> None:
        pass


class HttpSide:
    """POST the request and return the answer; outside = latency minus the server's ``timings.turn``.

    ``timings.turn`` is ``reply.seconds`` of the server's ``agent.chat``, the same span the direct
    side subtracts, so "outside" is what HTTP, JSON, base64, queueing and the thread hops cost,
    without the model's jitter, which at these sizes is larger than the overhead itself.
    """

    def __init__(self, url: str, body: str) -> None:
        self.url, self.body = url, body.encode()
        self.outside: list[float] = []

    def __call__(self) -> str:
        started = time.perf_counter()
        raw = self.post(self.body)
        elapsed = time.perf_counter() - started
        data = json.loads(raw)
        self.outside.append(elapsed - data["polymodal"]["timings"]["turn"])
        return str(data["choices"][0]["message"]["content"])

    def floor(self, requests: int = 300) -> float:
        """p50 seconds of ``GET /healthz`` (no body, no turn): HTTP, the server and the client themselves."""
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            self.get("/healthz")
            times.append(time.perf_counter() - started)
        return p(times[requests // 10:], 50)

    def post(self, body: bytes) -> bytes:
        raise NotImplementedError

    def get(self, path: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class HttpxSide(HttpSide):
    """httpx, the client of the ``openai`` SDK: one shared keep-alive pool, made once.

    ``httpx.Client()`` builds an SSL context and a new connection each time, tens of ms that a
    real client pays once, not per request.
    """

    def __init__(self, url: str, body: str) -> None:
        import httpx

        super().__init__(url, body)
        self.client = httpx.Client(base_url=url, timeout=120,
                                   limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    def post(self, body: bytes) -> bytes:
        response = self.client.post("/v1/chat/completions", content=body,
                                    headers={"Content-Type": "application/json"})
        return response.raise_for_status().content

    def get(self, path: str) -> bytes:
        return self.client.get(path).raise_for_status().content

    def close(self) -> None:
        self.client.close()


class StdlibSide(HttpSide):
    """``http.client``: a lean HTTP/1.1 client with a pool of keep-alive connections.

    Most of httpx's floor is the client itself; this side shows what the server adds. A pooled
    connection the server closed while idle (uvicorn's keep-alive timeout) is replaced once.
    """

    def __init__(self, url: str, body: str) -> None:
        super().__init__(url, body)
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.idle: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()

    def _exchange(self, method: str, path: str, body: bytes | None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection = self.idle.get_nowait()
        except queue.Empty:
            connection = http.client.HTTPConnection(*self.address, timeout=120)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            connection.close()
            connection = http.client.HTTPConnection(*self.address, timeout=120)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        data = response.read()
        self.idle.put(connection)
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:200]!r}")
        return data

    def post(self, body: bytes) -> bytes:
        return self._exchange("POST", "/v1/chat/completions", body)

    def get(self, path: str) -> bytes:
        return self._exchange("GET", path, None)

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


if __name__ == "__main__":
    main()
