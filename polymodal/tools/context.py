"""What a running tool sees of its call: its ToolContext (attachments, progress, host), progress reports.

The call's deadline is not here: it is the one :class:`~polymodal.runtime.calls.Deadline` of
:func:`polymodal.runtime.calls.current_deadline`, set by the executor for a planned step and by
:func:`call_with_deadline` for a direct call with a ``timeout``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from polymodal.errors import ToolTimeout
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits
from polymodal.runtime.calls import Deadline, using_deadline
from polymodal.threads import run_in_daemon

T = TypeVar("T")

__all__ = ["PROGRESS_EVENT", "ToolContext", "current_context", "report_progress"]


@dataclass
class ToolContext:
    """What the executor lends a running tool: the request's attachments and a progress hook.

    Set in a context variable rather than passed as an argument so that the tool's LangChain
    signature stays exactly its args schema (a LangChain agent calling the tool sees no extras).
    """

    attachments: Mapping[str, Attachment]
    limits: MediaLimits = DEFAULT_LIMITS
    step_id: str | None = None
    progress: Callable[[str, float | None], None] | None = None
    errors: list[BaseException] = field(default_factory=list)
    host: str | None = None
    """Where model work runs for this request ("inprocess", "process", "ray"), unless the tool says."""


PROGRESS_EVENT = "polymodal_progress"
"""Name of the LangChain custom event a tool's progress is dispatched as (see ``astream_events``)."""


_CONTEXT: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar("polymodal_tool", default=None)
# The tool running on this thread, so report_progress can name it in a direct LangChain call.
_RUNNING: contextvars.ContextVar[str | None] = contextvars.ContextVar("polymodal_running_tool", default=None)


def current_context() -> ToolContext | None:
    """The context of the step being run on this thread, or None for a direct call."""
    return _CONTEXT.get()


class using_context:  # noqa: N801 - used like a function: ``with using_context(ctx):``
    """Make ``ctx`` the current tool context for the ``with`` block."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx
        self._token: contextvars.Token[ToolContext | None] | None = None

    def __enter__(self) -> ToolContext:
        self._token = _CONTEXT.set(self._ctx)
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _CONTEXT.reset(self._token)


def report_progress(message: str, fraction: float | None = None, *, tool: str | None = None) -> None:
    """Report a long call's progress (frames read, diffusion steps done) from a tool's own thread.

    Inside a planned request this goes to the executor's hook: a ``StepProgress`` stream event and
    a LangChain custom event ``polymodal_progress`` on the tool's run. In a direct LangChain call
    the custom event is dispatched to the tool run's callbacks. With no run around, it is a no-op.
    """
    ctx = current_context()
    if ctx is not None and ctx.progress is not None:
        ctx.progress(message, fraction)
        return
    from langchain_core.callbacks import dispatch_custom_event

    share = None if fraction is None else min(1.0, max(0.0, float(fraction)))
    with contextlib.suppress(RuntimeError):  # no run to report to
        dispatch_custom_event(PROGRESS_EVENT, {"step_id": None, "tool": tool or _RUNNING.get() or "",
                                               "message": str(message)[:500], "fraction": share})


def call_with_deadline(fn: Callable[[], T], seconds: float, tool: str) -> T:
    """Run ``fn`` and return its result, or raise ToolTimeout once ``seconds`` have passed.

    The work runs on a daemon thread that is abandoned at the deadline (Python cannot kill a thread):
    the caller gets control back on time, and a hung model cannot keep the interpreter from exiting.
    """
    box: dict[str, Any] = {}
    deadline = Deadline.after(seconds)
    finished = threading.Event()

    def work() -> None:
        try:
            with using_deadline(deadline):  # a queued model call is dropped once nobody waits for it
                box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    context = contextvars.copy_context()
    run_in_daemon(lambda: context.run(work))
    if not finished.wait(seconds):
        raise ToolTimeout(tool, seconds)
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
