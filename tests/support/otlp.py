"""A minimal OTLP/HTTP trace receiver on loopback, for tests whose spans leave the test process.

A worker process or a Ray actor exports its spans with the SDK's real OTLP/HTTP exporter, as a
deployed one would; this receiver decodes each export request (protobuf, gzip or not) and keeps
it. Each receiver has its own URL and its own list, so a test can be sure that what arrived was
sent to the address it handed out (not to one a process inherited earlier).
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["OtlpReceiver"]


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` a receiver at ``receiver.url``; ``receiver.spans()``."""

    def __init__(self) -> None:
        self.received: list[ExportTraceServiceRequest] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self, within: float = 10.0) -> list[Any]:
        """The spans received so far, waiting up to ``within`` seconds for the first to arrive."""
        until = time.monotonic() + within
        while True:
            spans = [s for r in self.received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
            if spans or time.monotonic() >= until:
                return spans
            time.sleep(0.05)
