"""Typed events of a streamed turn, and the bridges that carry them off the worker thread.

``Agent.stream`` yields, in order: :class:`PlanReady`; for each step :class:`StepStarted`, any
:class:`StepProgress` reports, then :class:`StepFinished` (steps overlap when they run in
parallel); :class:`AnswerToken` chunks while the fusion model streams; and :class:`Done` with the
:class:`~polymodal.agent.reply.Reply`. Every event has a ``type`` string, so a UI can dispatch on
it without isinstance checks.

One vocabulary: these classes are what the request path itself emits. The executor reports
StepStarted/StepProgress/StepFinished, the agent PlanReady, AnswerToken and Done, each through
the one ``on_event(event)`` hook (:data:`EventHook`); ``Agent.stream``, the server and a caller's
own hook all see the same objects.

Why a thread: the request path is synchronous (planner, executor threads, fusion) and reports
through the ``on_event`` hook. Running it on one worker thread and passing events through a queue
(``queue.Queue`` for ``stream``, the event loop for ``astream``) streams without rewriting it
twice. The worker runs in a copy of the caller's context, so the LangChain run config (and with it
callbacks and ``dispatch_custom_event``) follows it.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from polymodal.agent.plan import Plan
from polymodal.agent.reply import Reply
from polymodal.agent.steps import StepResult

__all__ = [
    "AgentEvent",
    "AnswerToken",
    "Done",
    "EventHook",
    "PlanReady",
    "StepFinished",
    "StepProgress",
    "StepStarted",
    "astream_in_thread",
    "stream_in_thread",
]


class PlanReady(BaseModel):
    """The validated plan, before any tool runs."""

    type: Literal["plan_ready"] = "plan_ready"
    plan: Plan


class StepStarted(BaseModel):
    """A step's tool was called (arguments resolved)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: Literal["step_started"] = "step_started"
    step: StepResult


class StepProgress(BaseModel):
    """A running step's progress report (a video frame, a diffusion step): text and a fraction."""

    type: Literal["step_progress"] = "step_progress"
    step_id: str
    tool: str
    message: str
    fraction: float | None = None
    """0.0-1.0 when the tool knows how far along it is, else None."""


class StepFinished(BaseModel):
    """A step ended: ``step.status`` is ok (``step.content``), error, timeout or skipped (``step.error``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: Literal["step_finished"] = "step_finished"
    step: StepResult


class AnswerToken(BaseModel):
    """A chunk of the answer as the fusion model streams it (raw: ``Done.reply.text`` is final)."""

    type: Literal["token"] = "token"
    text: str


class Done(BaseModel):
    """The turn is over; ``reply`` is what ``invoke`` would have returned."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: Literal["done"] = "done"
    reply: Reply


AgentEvent = Annotated[
    PlanReady | StepStarted | StepProgress | StepFinished | AnswerToken | Done, Field(discriminator="type")
]


EventHook = Callable[[PlanReady | StepStarted | StepProgress | StepFinished | AnswerToken | Done], None]
"""What ``on_event`` is: called with each typed event of a turn, on the thread that made it."""


_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


Turn = Callable[[EventHook], Reply]


def stream_in_thread(turn: Turn) -> Iterator[Any]:
    """Run ``turn(emit)`` on a worker thread; yield its events here as they happen.

    An exception in the turn is re-raised here, after the events that preceded it. If the
    consumer stops early, the turn still finishes on its (daemon) thread.
    """
    events: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            turn(events.put)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer's side
            events.put(_Failed(exc))
        finally:
            events.put(_END)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="polymodal-stream", daemon=True).start()
    while (item := events.get()) is not _END:
        if isinstance(item, _Failed):
            raise item.error
        yield item


async def astream_in_thread(turn: Turn) -> AsyncIterator[Any]:
    """``stream_in_thread`` for asyncio: events are handed to the loop with ``call_soon_threadsafe``."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Any] = asyncio.Queue()

    def emit(event: Any) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    task = asyncio.ensure_future(asyncio.to_thread(turn, emit))  # to_thread copies the context
    # Runs after every event the thread scheduled before it returned (the loop keeps FIFO order).
    task.add_done_callback(lambda _task: events.put_nowait(_END))
    while (item := await events.get()) is not _END:
        yield item
    await task  # re-raises the turn's exception, if any
