"""A real uvicorn server on 127.0.0.1 at a free port, in a thread, for tests and benchmarks.

The app is served exactly as ``polymodal serve`` serves it (uvicorn, HTTP/1.1, its own event
loop), only in a thread of this process so a test can hand it an agent with tiny models and a
scripted LLM. :meth:`stop` is uvicorn's graceful shutdown: in-flight requests finish first.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerThread:
    """``with ServerThread(app) as server: server.url``: uvicorn running ``app`` until the block ends."""

    def __init__(self, app: Any, *, graceful_seconds: float = 30.0) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=graceful_seconds, ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout: float = 60.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                msg = f"uvicorn did not start on {self.url}"
                raise RuntimeError(msg)
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful shutdown (what SIGTERM does): stop accepting, finish in-flight requests, run lifespan end."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            msg = f"uvicorn on {self.url} did not stop within {timeout} s"
            raise RuntimeError(msg)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
