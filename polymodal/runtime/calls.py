"""One model call's terms: its deadline, where it runs, where its progress goes, which step it serves.

A deadline used to change form five times between ``Settings.step_timeout`` and the host (seconds,
``inf``, ``None``, a second context variable, bare floats). Here it has one: a :class:`Deadline`,
an absolute ``time.monotonic()`` instant or none, made once where the timeout is known
(``Deadline.after(seconds)``) and read where it is enforced (``remaining()``, ``expired()``).

A :class:`ModelCall` carries it, with the host name, the progress hook and the step id, from the
tool that builds it (:meth:`polymodal.tools.base.ModelTool.execute_batch`) down through the
micro-batcher to ``Host.run``: nothing below the tool reads a context variable or calls back up
into the tool for any of it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

Progress = Callable[[str, "float | None"], None]
"""A progress hook: ``(message, fraction or None)``; callable from any thread."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant (``time.monotonic()``) past which nobody waits for a call; ``at=None``: no deadline."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """The deadline ``seconds`` from now (None or infinite: none)."""
        if seconds is None or math.isinf(seconds):
            return NO_DEADLINE
        return cls(time.monotonic() + seconds)

    @classmethod
    def none(cls) -> Deadline:
        """No deadline: wait as long as it takes."""
        return NO_DEADLINE

    @classmethod
    def latest(cls, deadlines: Iterable[Deadline]) -> Deadline:
        """The last of ``deadlines`` (none if any is none): how long someone still waits for a shared call."""
        instants = [deadline.at for deadline in deadlines]
        if not instants or any(at is None for at in instants):
            return NO_DEADLINE
        return cls(max(at for at in instants if at is not None))

    @classmethod
    def earliest(cls, deadlines: Iterable[Deadline]) -> Deadline:
        """The first of ``deadlines`` to pass (none if none has an instant): when to stop waiting for any."""
        instants = [deadline.at for deadline in deadlines if deadline.at is not None]
        return cls(min(instants)) if instants else NO_DEADLINE

    @property
    def bounded(self) -> bool:
        """Whether there is a deadline at all."""
        return self.at is not None

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left, never below 0 (None: no deadline)."""
        if self.at is None:
            return None
        return max(0.0, self.at - (time.monotonic() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        """Whether the deadline has passed (never, for no deadline)."""
        return self.at is not None and (time.monotonic() if now is None else now) >= self.at


NO_DEADLINE = Deadline()

# The deadline of the call running on this thread: set for a planned step (by the tool context the
# executor lends it) and for a direct call made with a ``timeout`` (see ``Tool._run``).
_DEADLINE: contextvars.ContextVar[Deadline] = contextvars.ContextVar("polymodal_deadline", default=NO_DEADLINE)


def current_deadline() -> Deadline:
    """The deadline of the call on this thread (``Deadline.none()`` when nobody set one)."""
    return _DEADLINE.get()


@contextlib.contextmanager
def using_deadline(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the current call's deadline for the ``with`` block."""
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def in_context(report: Progress, context: contextvars.Context | None = None) -> Progress:
    """``report`` called inside ``context`` (default: a copy of the caller's), from whatever thread.

    A model call may report from the batcher's thread, a worker's reply loop or a thread of its own;
    the report must reach the caller's step and LangChain run, which live in the caller's context
    variables. Reports are serialised: one context cannot be entered by two threads at once.
    """
    captured = context if context is not None else contextvars.copy_context()
    lock = threading.Lock()

    def replay(message: str, fraction: float | None = None) -> None:
        with lock:
            captured.run(report, message, fraction)

    return replay


def fan_out(hooks: Sequence[Progress | None]) -> Progress | None:
    """One hook that hands each report to every one of ``hooks`` (the callers of a shared batch)."""
    live = [hook for hook in hooks if hook is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def report(message: str, fraction: float | None = None) -> None:
        for hook in live:
            hook(message, fraction)

    return report


@dataclass(frozen=True, slots=True)
class ModelCall:
    """The terms of one model call, built once by the tool and handed down to the batcher and the host.

    ``host`` is the host's name (the tool's own, else the request's, else the process default);
    ``progress`` takes what the model reports, already bound to the caller's step and run (or
    None: nobody listens); ``step_id`` names the plan step it serves (None: a direct call).
    """

    deadline: Deadline = field(default=NO_DEADLINE)
    host: str | None = None
    progress: Progress | None = None
    step_id: str | None = None

    def report(self, message: str, fraction: float | None = None) -> None:
        """Hand a report to ``progress``, if anyone listens."""
        if self.progress is not None:
            self.progress(message, fraction)


class HostedModel(Protocol):
    """What a host needs from the model tool it runs (:class:`polymodal.tools.base.ModelTool` is one).

    A protocol, so that the runtime never imports the tools above it and never reaches into one
    through ``Any``: the host names it, keys its workers and actors by its signature, ships a
    portable copy of it elsewhere, and asks that copy to run prepared items where the model lives.
    """

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def device(self) -> str | None: ...

    @property
    def own_worker(self) -> bool: ...

    @property
    def ray_actor_options(self) -> dict[str, Any] | None: ...

    def batch_signature(self) -> str:
        """Equal for tools that compute the same thing (same class, model, device and settings)."""
        ...

    def portable(self) -> HostedModel:
        """A copy that can be pickled into another process: settings and class, no callbacks."""
        ...

    def run_here(self, prepared: list[Any], progress: Progress | None = None) -> list[Any]:
        """Load the model (once, in this process) and run ``prepared``; reports go to ``progress``."""
        ...
