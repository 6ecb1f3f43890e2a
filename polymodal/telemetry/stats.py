"""Process-wide counters and histograms that the lower layers record into and a server reads.

Why here, at the bottom of the layers: the executor knows how long each step took and the LLM
callbacks know how many tokens each call cost, but they must not import the server (the layers
go downwards only). So they record plain numbers here, and the serving layer's collector
(:mod:`polymodal.serving.metrics`) turns them into Prometheus metrics at scrape time: values
down, never callbacks up. Recording is a lock and a few integer additions (no dependency, no
allocation per call once a series exists), so it is always on.

Every series is keyed by labels the program chooses (tool names, step statuses), never by what
a request says; and :class:`Histograms` stops making series past ``max_series`` (later label
sets are counted under ``"other"``), so a bug that put user text in a label could not grow the
exposition without bound either.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "Counters", "Histogram", "Histograms", "batch_sizes", "observe_step", "observe_tokens",
           "step_seconds", "tokens"]

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                      60.0, 120.0, 300.0)
"""Seconds: from a cached lookup (ms) to a video summary or an image generated on a CPU (minutes)."""


@dataclass
class Histogram:
    """Counts of observations per bucket (upper bounds ``buckets``, then +Inf), and their sum."""

    buckets: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` per bucket, "+Inf" last: Prometheus' form."""
        out, running = [], 0
        for bound, count in zip([*map(_le, self.buckets), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


class Histograms:
    """One :class:`Histogram` per label values, thread-safe, with at most ``max_series`` of them."""

    def __init__(self, labels: Sequence[str], buckets: Sequence[float] = LATENCY_BUCKETS, *,
                 max_series: int = 500) -> None:
        self.labels = tuple(labels)
        self.buckets = tuple(buckets)
        self.max_series = max_series
        self._series: dict[tuple[str, ...], Histogram] = {}
        self._lock = threading.Lock()

    def observe(self, values: Sequence[str], value: float) -> None:
        key = tuple(values)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= self.max_series:
                    key = ("other",) * len(self.labels)
                series = self._series.setdefault(key, Histogram(self.buckets))
            series.observe(value)

    def snapshot(self) -> dict[tuple[str, ...], Histogram]:
        """A copy of every series (safe to read while others record)."""
        with self._lock:
            copies = {}
            for key, series in self._series.items():
                copy = Histogram(series.buckets)
                copy.counts, copy.total = list(series.counts), series.total
                copies[key] = copy
            return copies


class Counters:
    """Monotonic counts by label values, thread-safe."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)
        self._counts: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def add(self, values: Sequence[str], amount: float = 1) -> None:
        key = tuple(values)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def snapshot(self) -> dict[tuple[str, ...], float]:
        with self._lock:
            return dict(self._counts)


step_seconds = Histograms(("tool", "status"))
"""How long each plan step took, by tool and by how it ended (ok, error, timeout, skipped)."""
batch_sizes = Histograms(("tool",), (1, 2, 4, 8, 16, 32, 64, 128))
"""Items per micro-batched model call, by tool (the micro-batcher records them)."""
tokens = Counters(("direction",))
"""Tokens the LLM calls (planner and fusion) reported, "input" and "output"."""


def observe_step(tool: str, status: str, seconds: float) -> None:
    """A step of ``tool`` ended with ``status`` after ``seconds`` (the executor calls it)."""
    step_seconds.observe((tool, status), seconds)


def observe_tokens(input_tokens: int, output_tokens: int) -> None:
    """One LLM call's reported token counts (the usage meter calls it)."""
    if input_tokens:
        tokens.add(("input",), input_tokens)
    if output_tokens:
        tokens.add(("output",), output_tokens)
