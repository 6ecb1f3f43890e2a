"""Cross-request micro-batching: concurrent calls to one loaded model share forward passes.

Every built-in model tool already runs on batches (a tiny captioner's batch of 8 costs about what
one call costs), but requests arrive one at a time: two chats captioning at the same moment, a
batch run with eight jobs in flight, a server with twenty users. A :class:`MicroBatcher` sits in
front of one model configuration. Callers hand it prepared items and block; one worker thread
takes what is queued — up to ``max_batch`` items of one *group* (items whose per-call options can
share a forward), waiting at most ``max_wait_ms`` for more after the first arrives — runs them in
one call, and hands each caller exactly its own outputs.

What callers keep, whatever they share a batch with:

- **Their own results and errors.** When a coalesced call raises, each caller's items are run
  again alone, so one bad item fails only its own caller, with its own typed error.
- **Their deadlines.** A caller whose deadline (its :class:`~polymodal.runtime.calls.ModelCall`'s)
  passed while queued is dropped before the forward; an abandoned caller never cancels the others.
- **Their progress events.** The batch runs as one :class:`~polymodal.runtime.calls.ModelCall`
  whose progress hook hands each report to every caller's own hook (bound to its step and run).

How long to wait for company: a batch goes as soon as it is full, or as soon as no call can still
join it — no direct call is preparing its inputs, and every agent turn in flight in the process
(:func:`polymodal.runtime.turns.request_in_flight`) has already called this model. So a lone request never waits, and
eight concurrent jobs fill a batch of eight instead of trickling in as batches of two or three
while the previous batch's callers write their results. ``max_wait_ms`` bounds the wait whatever
the count says (a turn in flight may never call this model).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from polymodal.runtime.calls import Deadline, ModelCall, fan_out
from polymodal.runtime.turns import Turn, current_turn, on_turn_end, turns_in_flight
from polymodal.telemetry import batch_scope, stats

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

logger = logging.getLogger(__name__)

RunBatch = Callable[[list[Any], ModelCall], list[Any]]
"""Runs prepared items in one call, on the batch's terms (the deadline of its last waiter, every
caller's progress)."""


# Set while a direct call (no agent turn) prepares its inputs for a batcher; cleared when it submits.
_PREPARING: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("polymodal_preparing", default=None)


def micro_batching_enabled() -> bool:
    """False when ``POLYMODAL_MICRO_BATCHING=0`` turns coalescing off for the whole process."""
    return os.environ.get("POLYMODAL_MICRO_BATCHING", "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class BatchStats:
    """What a batcher has done: how many calls it ran and how many items they carried."""

    calls: int = 0
    """Batched calls of the model (a coalesced forward counts once)."""
    items: int = 0
    requests: int = 0
    isolated: int = 0
    """Batches that failed and were re-run caller by caller."""
    largest: int = 0


class _Request:
    """One caller's items, its result slots, and the terms of its call (deadline, progress)."""

    __slots__ = ("call", "context", "done", "error", "outputs", "remaining")

    def __init__(self, size: int, call: ModelCall) -> None:
        self.outputs: list[Any] = [None] * size
        self.remaining = size
        self.error: BaseException | None = None
        self.call = call
        self.context = contextvars.copy_context()  # the caller's, for its trace (telemetry.batch_scope)
        self.done = threading.Event()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def fill(self, index: int, output: Any) -> None:
        self.outputs[index] = output
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()


@dataclass
class _Item:
    request: _Request
    index: int
    value: Any
    group: Hashable
    queued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Coalesces concurrent calls of one model configuration into batched calls.

    Args:
        run: runs a list of prepared items in one call, returning one output per item.
        max_batch: the most items in one call.
        max_wait_ms: how long the first item of a batch waits for company.
        name: for logs and the worker thread's name.
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int,
        max_wait_ms: float,
        name: str = "model",
    ) -> None:
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.name = name
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._anonymous = 0
        self._served: set[Turn] = set()
        self.stats = BatchStats()

    @contextlib.contextmanager
    def caller(self) -> Iterator[None]:
        """Mark a call as on its way (preparing its inputs) until the block ends: worth waiting for.

        A call inside an agent turn is already known through the turn; a direct call (no agent)
        is counted here.
        """
        if current_turn() is not None:
            yield
            return
        preparing = [True]  # until this call submits (or fails first)
        token = _PREPARING.set(preparing)
        with self._cond:
            self._anonymous += 1
        try:
            yield
        finally:
            _PREPARING.reset(token)
            self._arrived(preparing)

    def _arrived(self, preparing: list[bool] | None) -> None:
        """A direct call stopped preparing (it submitted, or failed before): nothing more to wait for."""
        if preparing and preparing[0]:
            preparing[0] = False
            with self._cond:
                self._anonymous -= 1
                self._cond.notify()

    def turn_ended(self, turn: Turn) -> None:
        """Forget a finished turn; a batch waiting for it need not wait any longer."""
        with self._cond:
            self._served.discard(turn)
            self._cond.notify()

    def _joiners(self) -> int:
        """Calls that may still join: direct calls preparing, turns in flight that have not called yet."""
        return self._anonymous + len(turns_in_flight() - self._served)

    def submit(
        self, items: Sequence[Any], call: ModelCall | None = None, *, groups: Sequence[Hashable] | None = None
    ) -> list[Any]:
        """Queue ``items`` (one caller's), block until all are done, return their outputs in order.

        Args:
            call: the caller's terms: past ``call.deadline`` nobody waits for these items any more,
                and what the model reports while running them goes to ``call.progress``.
            groups: per item, a key; only items with equal keys share a call. None: all equal.

        Raises:
            Whatever the call raised for these items (run alone, if the shared call failed).
        """
        if not items:
            return []
        request = _Request(len(items), call if call is not None else ModelCall())
        keys = list(groups) if groups is not None else [None] * len(items)
        turn = current_turn()
        self._arrived(_PREPARING.get())
        with self._cond:
            if turn is not None:
                self._served.add(turn)
            self._queue.extend(_Item(request, i, value, keys[i]) for i, value in enumerate(items))
            self.stats.requests += 1
            self._ensure_worker()
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.outputs

    # -- the worker ------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._loop, name=f"polymodal-batcher-{self.name}", daemon=True)
            self._worker.start()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._run_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any batch
                logger.exception("micro-batcher %s: a batch failed outside the model call", self.name)
                for item in batch:
                    item.request.fail(exc)

    def _next_batch(self) -> list[_Item]:
        """Wait for work; then gather the head item's group until full or its wait is over."""
        with self._cond:
            while not self._queue:
                self._cond.wait()
            head = self._queue[0]
            until = head.queued + self.max_wait
            while self._count(head.group) < self.max_batch and self._joiners() > 0:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[_Item] = []
            kept: deque[_Item] = deque()
            while self._queue:
                item = self._queue.popleft()
                if item.group == head.group and len(batch) < self.max_batch:
                    batch.append(item)
                else:
                    kept.append(item)
            self._queue = kept
            return batch

    def _count(self, group: Hashable) -> int:
        return sum(1 for item in self._queue if item.group == group)

    def _run_batch(self, batch: list[_Item]) -> None:
        now = time.monotonic()
        live = [item for item in batch if not item.request.done.is_set()
                and not item.request.call.deadline.expired(now)]
        for item in batch:
            if item not in live:
                item.request.fail(TimeoutError("nobody waits for this call any more"))
        if not live:
            return
        requests = list(dict.fromkeys(item.request for item in live))
        try:
            outputs = self._call(live, requests)
        except BaseException as exc:  # noqa: BLE001 - handed to the callers below
            if len(requests) == 1:
                requests[0].fail(exc)
                return
            self._isolate(live, requests)
            return
        for item, output in zip(live, outputs, strict=True):
            item.request.fill(item.index, output)

    def _call(self, items: list[_Item], requests: list[_Request]) -> list[Any]:
        values = [item.value for item in items]
        self.stats.calls += 1
        self.stats.items += len(values)
        self.stats.largest = max(self.stats.largest, len(values))
        stats.batch_sizes.observe((self.name,), len(values))  # for a server's /metrics
        with batch_scope([r.context for r in requests], len(values)):  # the first caller's trace goes on
            outputs = self._run(values, _shared(requests))
        if len(outputs) != len(values):
            msg = f"{self.name}: a batch of {len(values)} gave {len(outputs)} outputs"
            raise RuntimeError(msg)
        return outputs

    def _isolate(self, items: list[_Item], requests: list[_Request]) -> None:
        """The shared call failed: run each caller's items alone, so only the guilty one fails."""
        self.stats.isolated += 1
        for request in requests:
            own = [item for item in items if item.request is request]
            try:
                outputs = self._call(own, [request])
            except BaseException as exc:  # noqa: BLE001 - this caller's own error
                request.fail(exc)
                continue
            for item, output in zip(own, outputs, strict=True):
                request.fill(item.index, output)

def _shared(requests: list[_Request]) -> ModelCall:
    """The terms of one call made for several callers: it runs while anyone still waits (the last
    deadline), and what it reports reaches every caller (each through its own hook)."""
    if len(requests) == 1:
        return requests[0].call
    calls = [request.call for request in requests]
    return ModelCall(deadline=Deadline.latest(call.deadline for call in calls), host=calls[0].host,
                     progress=fan_out([call.progress for call in calls]))


class BatchedTool(Protocol):
    """What a batcher needs of the tool it serves (:class:`polymodal.tools.base.ModelTool` is one).

    A protocol rather than the class itself, so this module does not import ``tools.base``: the
    batcher sits below the tool, and values (the tool, each call's terms) are passed down.
    """

    @property
    def name(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def max_wait_ms(self) -> float | None: ...

    @property
    def default_max_wait_ms(self) -> float: ...

    def host_name(self) -> str: ...

    def batch_signature(self) -> str: ...

    def run_prepared(self, prepared: list[Any], call: ModelCall | None = None) -> list[Any]: ...


_BATCHERS: dict[str, MicroBatcher] = {}
_BATCHERS_LOCK = threading.Lock()


def batcher_for(tool: BatchedTool, host: str | None = None) -> MicroBatcher:
    """The process-wide batcher of ``tool``'s configuration on ``host`` (equal signatures share one).

    The batcher sits in front of the host: calls are coalesced here, then each batch goes to
    wherever the model lives (:mod:`polymodal.runtime.hosts`).
    """
    host = host or tool.host_name()
    key = f"{host}|{tool.batch_signature()}"
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(key)
        if batcher is None:
            wait = tool.max_wait_ms if tool.max_wait_ms is not None else tool.default_max_wait_ms

            def run(items: list[Any], call: ModelCall, tool: BatchedTool = tool, host: str = host) -> list[Any]:
                return tool.run_prepared(items, call if call.host == host else replace(call, host=host))

            batcher = MicroBatcher(run, max_batch=tool.batch_size, max_wait_ms=wait, name=tool.name)
            _BATCHERS[key] = batcher
        return batcher


def batchers() -> dict[str, MicroBatcher]:
    """Every batcher made in this process, by tool signature (for stats and tests)."""
    with _BATCHERS_LOCK:
        return dict(_BATCHERS)


def _turn_ended(turn: Turn) -> None:
    for batcher in batchers().values():
        batcher.turn_ended(turn)


on_turn_end(_turn_ended)
