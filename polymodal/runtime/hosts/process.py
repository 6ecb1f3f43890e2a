"""The process host: models live in worker processes that can be killed and replaced.

Why: in the agent's own process a call that hangs keeps its thread forever (Python cannot kill a
thread), and a segfault, ``abort()`` or out-of-memory kill in native code takes every request down.
Here each device gets one worker process (a tool with ``own_worker=True`` gets its own), which
loads the models it is asked for through its own model cache and runs one call at a time:

- a call past its deadline kills its worker (SIGKILL: the memory goes with it) and raises
  ``ToolTimeout``; the next call starts a fresh worker, which loads the model again;
- a worker that dies (a signal, ``os.abort()``, the kernel's out-of-memory killer) becomes a typed
  error naming the tool and what happened — ``ResourceError`` for a kill, ``ToolError`` otherwise —
  and the agent and every other request live on;
- workers are spawned (never forked: a forked copy of a process with threads and OpenMP pools can
  deadlock), ignore Ctrl-C (the agent decides when work stops), and exit when the agent's process
  goes away (their pipe closes).

Inputs and outputs cross the pipe with pickle protocol 5 (:mod:`polymodal.runtime.hosts.wire`): arrays
travel out of band, copied once by the kernel rather than twice by pickle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from polymodal import telemetry
from polymodal.errors import PolymodalError, ResourceError, ToolError, ToolTimeout
from polymodal.runtime.calls import Deadline, HostedModel, ModelCall
from polymodal.runtime.hosts.wire import receive, send

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

logger = logging.getLogger(__name__)


class ProcessHost:
    """Runs model steps in worker processes: one per device, or one per tool that asks for its own."""

    name = "process"

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    def run(self, tool: HostedModel, prepared: list[Any], call: ModelCall) -> list[Any]:
        worker = self._worker_for(tool)
        return worker.call(tool, prepared, call)

    def worker_pid(self, tool: HostedModel) -> int | None:
        """The PID of the worker that hosts ``tool`` now (None: none running)."""
        worker = self._workers.get(_worker_key(tool))
        return worker.pid if worker is not None else None

    def shutdown(self) -> None:
        """Stop every worker (they also stop by themselves when this process exits)."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()

    def _worker_for(self, tool: HostedModel) -> _Worker:
        key = _worker_key(tool)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = _Worker(key)
            return worker


def _worker_key(tool: HostedModel) -> str:
    if tool.own_worker:
        return f"tool:{tool.batch_signature()}"
    return f"device:{tool.device or os.environ.get('POLYMODAL_DEVICE') or 'auto'}"


class _Worker:
    """One worker process and the pipe to it; calls go one at a time."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._call_lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._known: set[str] = set()  # tool signatures this worker has already been sent

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def call(self, tool: HostedModel, prepared: list[Any], call: ModelCall) -> list[Any]:
        deadline = call.deadline
        waited = deadline.remaining()
        if not self._call_lock.acquire(timeout=-1 if waited is None else waited):
            raise ToolTimeout(tool.name, _seconds_until(deadline))
        started = time.monotonic()
        try:
            conn = self._ensure_started()
            signature = tool.batch_signature()
            blob = None if signature in self._known else _tool_blob(tool)
            try:
                send(conn, ("run", signature, blob, prepared, telemetry.inject()))
            except OSError:  # the worker died between calls (a broken pipe): typed, and restarted next time
                raise self._died(tool) from None
            while True:
                if not conn.poll(deadline.remaining()):
                    self._kill()
                    raise ToolTimeout(tool.name, time.monotonic() - started)
                try:
                    status, payload = receive(conn)
                except (EOFError, OSError):
                    raise self._died(tool) from None
                if status != "progress":
                    break
                _replay_progress(call, *payload)
            if status == "ok":  # only now is the tool known there: a blob that failed to load is sent again
                self._known.add(signature)
            else:
                self._known.discard(signature)
        finally:
            self._call_lock.release()
        if status == "ok":
            return list(payload)
        raise _rebuilt(payload, tool)

    def stop(self) -> None:
        with self._call_lock:
            self._kill()

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._kill()
        # A fresh interpreter (never a fork), started as a module so that the user's script is not run
        # again in it (multiprocessing's spawn would re-import __main__). It gets our sys.path, so the
        # tool classes it is sent import there as they do here.
        ours, theirs = socket.socketpair()
        process = subprocess.Popen([sys.executable, "-m", "polymodal.runtime.hosts.worker", str(theirs.fileno())],
                                   pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        conn = Connection(ours.detach())
        conn.send(list(sys.path))
        self._process, self._conn, self._known = process, conn, set()
        logger.info("started worker process %s for %s", process.pid, self.key)
        return conn

    def _kill(self) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn, self._known = None, None, set()
        if conn is not None:
            conn.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)
            logger.info("killed worker process %s (%s)", process.pid, self.key)

    def _died(self, tool: HostedModel) -> PolymodalError:
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(2)
        self._kill()
        model = tool.model or tool.name
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == signal.SIGKILL:
                return ResourceError(tool.name, f"its worker process was killed ({name}) while running {model}, "
                                                "most likely by the system running out of memory")
            return ToolError(tool.name, f"its worker process crashed ({name}) while running {model}")
        return ToolError(tool.name, f"its worker process exited (code {code}) while running {model}")


def _replay_progress(call: ModelCall, message: str, fraction: float | None) -> None:
    """Progress the worker's model call reported, reported again here, to the call's own hook: it
    reaches the step (and its LangChain run) as if the model had run in this process."""
    try:
        call.report(message, fraction)
    except Exception:  # noqa: BLE001 - a watcher's failure must not fail the call
        logger.debug("replaying a worker's progress failed", exc_info=True)


def _seconds_until(deadline: Deadline) -> float:
    return deadline.remaining() or 0.0


def _tool_blob(tool: HostedModel) -> bytes:
    """The tool as bytes for the worker: its settings and class, never its callbacks."""
    try:
        return pickle.dumps(tool.portable(), protocol=5)
    except Exception as exc:  # noqa: BLE001 - say what to do instead of a pickling traceback
        msg = (f"cannot be sent to a worker process ({type(exc).__name__}: {exc}); a tool hosted in a process "
               "must be a module-level class with picklable settings")
        raise ToolError(tool.name, msg) from exc


def _rebuilt(payload: Any, tool: HostedModel) -> BaseException:
    """The worker's error, as the same typed error here (or a ToolError saying what it was)."""
    if isinstance(payload, BaseException):
        return payload
    kind, message = payload
    return ToolError(tool.name, f"{kind}: {message}")
