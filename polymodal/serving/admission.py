"""A bounded queue in front of the agent: ``max_concurrency`` turns run, ``max_queue`` wait, the rest get 429.

Refusing early is kinder than queueing without bound: a client told "come back in 3 s" can retry
or go elsewhere, while one whose request waits behind a thousand others just times out. The wait
it is told (``Retry-After``) is estimated from how long recent turns took.

A slot is given back when the *work* ends, not when the HTTP exchange does: a client that
disconnects leaves its turn running on a worker thread (Python cannot stop it), and counting that
slot as free would let more turns run than the server was sized for. Everything here runs on the
event loop, so plain counters are safe.
"""

from __future__ import annotations

import asyncio
import math

from polymodal.serving.errors import APIError

__all__ = ["Admission"]


class Admission:
    """Counts running and waiting turns; :meth:`enter` waits for a slot or refuses with 429."""

    def __init__(self, max_running: int, max_waiting: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_running)
        self._mean_seconds = 1.0  # a moving average of turn durations, for Retry-After

    def reserve(self) -> None:
        """Join the queue, or raise 429 at once when it is full. Follow with :meth:`enter` or :meth:`cancel`."""
        if self.running + self.waiting >= self.max_running + self.max_waiting:
            wait = self.retry_after()
            msg = (f"the server is busy ({self.running} requests running, {self.waiting} waiting, which is its "
                   f"limit); retry in {wait} s")
            raise APIError(429, msg, type="rate_limit_error", code="queue_full", headers={"Retry-After": str(wait)})
        self.waiting += 1

    async def enter(self) -> None:
        """Wait for a running slot (after :meth:`reserve`)."""
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def cancel(self) -> None:
        """Leave the queue without running (after :meth:`reserve`, when :meth:`enter` will not be called)."""
        self.waiting -= 1

    def leave(self, seconds: float) -> None:
        """A running turn ended after ``seconds``: free its slot."""
        self.running -= 1
        self._slots.release()
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * max(0.0, seconds)

    def retry_after(self) -> int:
        """Whole seconds until a queued request would likely start (at least 1)."""
        rounds = (self.waiting + 1) / max(1, self.max_running)
        return max(1, math.ceil(rounds * self._mean_seconds))
