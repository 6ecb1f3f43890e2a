"""A process host's worker: ``python -m polymodal.runtime.hosts.worker FD`` serves calls on socket FD.

It runs each call it is sent — a tool (pickled once) and its prepared items — with the tool's own
``run_here``, through this process's model cache, and answers ``("ok", outputs)`` or
``("error", exception)``. Progress the model call reports (diffusion steps, windows of a long
video) goes back first, as ``("progress", (message, fraction))`` messages, for the agent to replay.
It ignores Ctrl-C (the agent decides when work stops) and exits when the agent's process goes away
(its socket closes). See :mod:`polymodal.runtime.hosts.process`.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from polymodal import telemetry
from polymodal.runtime.calls import HostedModel
from polymodal.runtime.hosts.wire import receive, send

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


def serve(conn: Connection) -> None:
    """The worker's loop: run each call it is sent, answer ("ok", outputs) or ("error", exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the agent; it stops us when it wants
    tools: dict[str, Any] = {}
    sending = threading.Lock()  # a model may report progress from threads of its own

    def forward(message: str, fraction: float | None = None) -> None:
        with sending, contextlib.suppress(Exception):  # progress is best effort; the call goes on
            send(conn, ("progress", (str(message)[:500], fraction)))

    while True:
        try:
            _kind, signature, blob, prepared, *traced = receive(conn)
        except (EOFError, OSError):
            return  # the agent's process is gone
        try:
            if blob is not None:
                tools[signature] = pickle.loads(blob)
            with worker_span(tools[signature], len(prepared), traced[0] if traced else None):
                outputs = tools[signature].run_here(prepared, forward)
            reply: tuple[str, Any] = ("ok", outputs)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("error", _portable(exc))
        try:
            with sending:
                send(conn, reply)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - an output that cannot be pickled
            with sending, contextlib.suppress(OSError):
                send(conn, ("error", ("unpicklable output", f"{type(exc).__name__}: {exc}")))
        telemetry.flush()  # after the answer went: the caller does not wait for the export


def worker_span(tool: HostedModel, size: int, carrier: dict[str, str] | None) -> contextlib.AbstractContextManager[Any]:
    """The span of a call here, continuing the caller's step span (its ``traceparent`` came with the call)."""
    return telemetry.continued(carrier, f"run {tool.name}", {
        "polymodal.host": "process", "polymodal.model": getattr(tool, "model", None), "polymodal.batch.size": size,
    })


def _portable(exc: BaseException) -> Any:
    """The exception itself when it survives pickling, else its type name and message."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=5))
    except Exception:  # noqa: BLE001
        return (type(exc).__name__, str(exc))
    return exc


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    sys.path[:] = conn.recv()  # the agent's import path: its tool classes import here too
    serve(conn)


if __name__ == "__main__":
    main()
