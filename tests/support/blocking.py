"""A tool that blocks until the test releases it: deadlines proved without racing a stopwatch.

A sleep-based "slow tool" makes a deadline test a race between two clocks, loose enough to pass
when the deadline is late and still flaky on a loaded machine. A tool blocked on an event cannot
finish on its own: if the caller returns while :attr:`Gate.finished` is still unset, the caller
gave up on it; and the time the caller recorded for the step can be compared with the timeout.
"""

from __future__ import annotations

import threading
from typing import Any

from polymodal.tools import tool


class Gate:
    """Events a blocking tool passes through: entered -> (test releases) -> finished."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def block(self) -> None:
        """Called by the tool: wait for the release (at most a minute, so no thread outlives the suite)."""
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.entered.set()
        self.release.wait(60)
        with self._lock:
            self.active -= 1
        self.finished.set()


def blocking_tool(gate: Gate, *, name: str = "blocker", timeout: float | None = None) -> Any:
    """A ``@tool`` taking ``text`` that blocks on ``gate`` and then echoes the text."""

    def blocker(text: str) -> str:
        """Wait until released, then echo the text."""
        gate.block()
        return text

    return tool(name=name, timeout=timeout)(blocker)
