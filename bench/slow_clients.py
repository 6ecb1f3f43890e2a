"""Server memory under slow clients: 60 connections each trickling a large body, before and after.

A real ``polymodal serve`` app (a no-model tool, the API only) runs in its own process on
127.0.0.1. Sixty clients each declare a 60 MiB body and send it 64 KiB at a time, ten times a
second, for ``--seconds``; the server's resident memory (``VmRSS``) is sampled throughout.
``--baseline COMMIT`` runs the same clients against the code of ``COMMIT`` (``git archive`` into a
temporary folder) first, so the two figures come from the same machine, side by side.

    python bench/slow_clients.py [--clients 60] [--seconds 8] [--baseline 6615720]

Measured on the 2-core shared dev machine (60 clients, 6 s, ``--baseline 6615720``):

    server                    RSS at rest   peak RSS   growth  stopped early
    before (6615720)               110 MiB    329 MiB  219 MiB              0
    after (this tree)              110 MiB    125 MiB   15 MiB             56
    growth after / before: 0.07

Before, every client's bytes were buffered; after, four 60 MiB reservations fill
``max_buffered_bytes`` and the other 56 clients are told 503 at once (``polymodal/serving/limits.py``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from support.server import free_port

SERVER = """
import sys, uvicorn
from polymodal import Agent, tool
from polymodal.serving import ServeSettings, create_app

@tool
def echo(words: str = "hi") -> str:
    '''Say the words back.'''
    return words

uvicorn.run(create_app(Agent(tools=[echo]), ServeSettings(ui=False, preload=False)), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="error")
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(code_root: Path, clients: int, seconds: float) -> tuple[float, float, int]:
    """(RSS at rest, peak RSS, clients refused at once) for the server of ``code_root``."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(code_root)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=code_root)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(0.5)
        rest = peak = rss_mib(server.pid)
        declared = 60 * 1024**2
        socks = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {declared}\r\n\r\n".encode())
            socks.append(sock)
        chunk = b"A" * (64 * 1024)
        refused: set[int] = set()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for index, sock in enumerate(socks):
                if index in refused:
                    continue
                try:
                    sock.sendall(chunk)
                except OSError:
                    refused.add(index)
            peak = max(peak, rss_mib(server.pid))
            time.sleep(0.1)
        for sock in socks:
            sock.close()
        return rest, peak, len(refused)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--baseline", help="a commit to measure first, the same way")
    args = parser.parse_args()
    rows = []
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="polymodal-baseline-") as folder:
            archive = subprocess.run(["git", "-C", str(common.ROOT), "archive", args.baseline, "polymodal"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
            rows.append((f"before ({args.baseline})", *measure(Path(folder), args.clients, args.seconds)))
    rows.append(("after (this tree)", *measure(common.ROOT, args.clients, args.seconds)))
    print(f"{args.clients} clients trickling a 60 MiB body each for {args.seconds:g} s")
    print(f"{'server':24} {'RSS at rest':>12} {'peak RSS':>10} {'growth':>8} {'stopped early':>14}")
    for name, rest, peak, refused in rows:
        print(f"{name:24} {rest:9.0f} MiB {peak:6.0f} MiB {peak - rest:4.0f} MiB {refused:14d}")
    if len(rows) == 2:
        print(f"growth after / before: {(rows[1][2] - rows[1][1]) / max(1.0, rows[0][2] - rows[0][1]):.2f}")


if __name__ == "__main__":
    main()
