"""What a durable session store costs: turn latency on ``sqlite://`` vs ``memory://``, and RSS over 10,000 sessions.

1. **Latency.** Two in-process uvicorn servers with the same agent (the tiny BLIP captioner, no
   LLM), one on ``memory://`` and one on a sqlite file, answer the same one-image session turn
   (``POST /v1/chat/completions`` with ``X-Polymodal-Session``), in interleaved rounds so drift in
   the machine's load hits both. At concurrency 1 and 16 (16 sessions, turns of one session run
   one at a time). Printed per side: p50 and p95 latency and p50 *outside the turn* (latency minus
   the server's ``timings.turn``): the store's work (load check, encode, commit) happens outside the
   turn, so the difference of those p50s is what the store adds, free of the model's jitter.
2. **RSS.** 10,000 sessions, each with one committed turn and its own 1 kB image, written to a
   sqlite store through the server's :class:`~polymodal.serving.sessions.Sessions`; this process's
   RSS is printed every 2,000 sessions: it stays flat, since sessions live on disk and only a
   bounded cache of decoded ones stays in memory.

    python bench/sessions.py [--requests 64] [--rounds 4] [--sessions 10000]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common

LEVELS = (1, 16)


def png(seed: int, side: int = 32) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (seed % 256, (seed // 256) % 256, 30)).save(buf, format="PNG")
    return buf.getvalue()


def p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Side:
    """One server and its sessions; a call is one session turn, timed."""

    def __init__(self, url: str, sessions: int, body: dict[str, Any]) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=32))
        self.ids = [self.client.post("/v1/sessions").json()["id"] for _ in range(sessions)]
        self.body = body
        self.latency: list[float] = []
        self.outside: list[float] = []

    def turn(self, n: int) -> str:
        started = time.perf_counter()
        response = self.client.post("/v1/chat/completions", json=self.body,
                                    headers={"X-Polymodal-Session": self.ids[n % len(self.ids)]})
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        data = response.json()
        self.latency.append(elapsed)
        self.outside.append(elapsed - data["polymodal"]["timings"]["turn"])
        return str(data["choices"][0]["message"]["content"])


def latency(blip: str, folder: Path, requests: int, rounds: int) -> None:
    from support.server import ServerThread

    from polymodal import Agent
    from polymodal.serving import ServeSettings, create_app
    from polymodal.tools import Captioner

    agent = Agent(tools=[Captioner(model=blip, max_new_tokens=2)])
    url = "data:image/png;base64," + base64.b64encode(png(1)).decode()
    body = {"model": "polymodal", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe this photo"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    print(f"{'concurrency':>11} {'store':>7} {'p50 ms':>8} {'p95 ms':>8} {'outside the turn, p50 ms':>25}")
    for level in LEVELS:
        stores = {"memory": "memory://", "sqlite": f"sqlite:///{folder / f'sessions-{level}.db'}"}
        servers = {name: ServerThread(create_app(agent, ServeSettings(
            ui=False, preload=False, session_store=store, max_concurrency=level, max_queue=1024))).start()
            for name, store in stores.items()}
        try:
            sides = {name: Side(server.url, level, body) for name, server in servers.items()}
            answers: set[str] = set()
            for side in sides.values():
                answers.add(side.turn(0))  # warm: the model, the connection
                side.latency.clear()
                side.outside.clear()
            for _ in range(rounds):
                for side in sides.values():
                    with ThreadPoolExecutor(level) as pool:
                        answers.update(pool.map(side.turn, range(requests // rounds)))
            common.require_equal("answers", len(answers), 1)
            for name, side in sides.items():
                print(f"{level:>11} {name:>7} {p(side.latency, 50) * 1e3:8.2f} {p(side.latency, 95) * 1e3:8.2f} "
                      f"{p(side.outside, 50) * 1e3:25.2f}")
            memory, sqlite = sides["memory"], sides["sqlite"]
            added = p(sqlite.outside, 50) - p(memory.outside, 50)
            print(f"{'':>11} sqlite adds {added * 1e3:+.2f} ms per turn at p50 outside the turn; latency ratio "
                  f"sqlite/memory at p50 {p(sqlite.latency, 50) / p(memory.latency, 50):.3f}")
            for side in sides.values():
                side.client.close()
        finally:
            for server in servers.values():
                server.stop()


def rss(folder: Path, count: int) -> None:
    from polymodal import Attachment
    from polymodal.agent import Turn
    from polymodal.serving.sessions import Sessions
    from polymodal.sessions import open_store

    sessions = Sessions(open_store(f"sqlite:///{folder / 'rss.db'}"), max_sessions=count + 1, ttl=86400.0,
                        max_bytes=10**9)
    started, before = time.perf_counter(), rss_kib()
    print(f"RSS before: {before / 1024:.1f} MiB")
    for n in range(1, count + 1):
        session = sessions.create()
        image = session.conversation.add(Attachment.from_bytes(png(n), f"{n}.png"))
        session.conversation.turns.append(Turn(user=f"turn of session {n}", reply="a square",
                                               attachment_ids=[image.id or ""]))
        sessions.commit(session)
        if n % (count // 5) == 0:
            print(f"{n:>6} sessions stored: RSS {rss_kib() / 1024:.1f} MiB "
                  f"({(rss_kib() - before) / 1024:+.1f} MiB), {len(sessions)} rows, "
                  f"{(time.perf_counter() - started) / n * 1e3:.2f} ms per create+commit")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64, help="turns per concurrency level and store")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds the turns are split into")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions stored for the RSS part")
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    with common.work_folder("polymodal-bench-sessions-") as folder:
        blip = str(TinyModels(folder / "models").path("blip-caption"))
        latency(blip, folder, args.requests, args.rounds)
        rss(folder, args.sessions)


if __name__ == "__main__":
    main()
