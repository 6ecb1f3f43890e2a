"""Daemon worker threads reused across steps and deadline-bound calls.

A plan step (and a direct tool call with ``timeout=``) runs on a thread of its own so that its
caller can give up on it at its deadline: Python cannot kill a thread, only stop waiting for it.
Starting a thread per step costs a start handshake each time — on a busy machine a good part of
the framework's whole per-request cost — so finished workers wait a while for the next job
instead. A worker whose job hangs is simply never handed another; when no worker is idle, a new
one starts. Workers are daemon threads: a hung one never keeps the interpreter from exiting.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["DaemonPool", "run_in_daemon"]

logger = logging.getLogger(__name__)

Job = Callable[[], object]


class _Worker:
    __slots__ = ("inbox",)

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()


class DaemonPool:
    """Hands each job to an idle worker, or starts a new one; never queues a job behind another.

    Args:
        idle_seconds: how long a finished worker waits for another job before it exits.
        name: the workers' thread name (shown in tracebacks and profilers).
    """

    def __init__(self, idle_seconds: float = 30.0, name: str = "polymodal-worker") -> None:
        self.idle_seconds = idle_seconds
        self.name = name
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Start ``job`` now on its own thread (an idle worker's, or a new one's)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.inbox.put(job)
        else:
            threading.Thread(target=self._serve, args=(job,), name=self.name, daemon=True).start()

    @property
    def idle(self) -> int:
        """Workers waiting for a job right now."""
        with self._lock:
            return len(self._idle)

    def _serve(self, job: Job) -> None:
        me = _Worker()
        while True:
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job reports its own errors; the worker lives on
                logger.exception("a job on a polymodal worker thread raised")
            with self._lock:
                self._idle.append(me)
            try:
                job = me.inbox.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if me in self._idle:
                        self._idle.remove(me)
                        return
                job = me.inbox.get()  # a submit took this worker just as it timed out: its job is coming


_SHARED = DaemonPool()


def run_in_daemon(job: Job) -> None:
    """Run ``job`` on a daemon worker thread of the process-wide pool; returns at once."""
    _SHARED.submit(job)
