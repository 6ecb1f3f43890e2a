"""A real ``redis-server`` on 127.0.0.1 at a free port, for the Redis session store's tests.

Debian's ``redis-server`` (``.ci/run`` installs it), with nothing written to disk (``--save ""
--appendonly no``) and its files in a temporary folder. Without the program the caller skips,
naming the reason (CI's strict skips turn that into a failure).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.server import free_port

REDIS_SERVER = shutil.which("redis-server")
MISSING = "no redis-server on this machine (apt-get install redis-server)"


@contextmanager
def redis_server(folder: Path, *extra: str) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a fresh redis-server until the block ends (then it is stopped)."""
    assert REDIS_SERVER, MISSING
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    msg = f"redis-server did not start on port {port} (exit {process.poll()})"
                    raise RuntimeError(msg) from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
