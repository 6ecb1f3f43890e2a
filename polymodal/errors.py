"""One exception tree for everything polymodal refuses or fails to do.

Every error a user can meet is a :class:`PolymodalError`, and its message names the input
(a file, a model, a step) and the problem, so a log line is enough to act on. The tree is
split by who has to act::

    PolymodalError
    ├── AttachmentError          a file is unreadable, unsupported, corrupt or not allowed
    │   └── MediaLimitError      a file is over a byte, pixel or duration cap (says how to raise it)
    ├── PlanningError            no valid plan after the bounded re-asks, or the planner LLM call failed
    │   └── PlanValidationError  one candidate plan broke the contract (fed back to the LLM)
    ├── ToolError                a tool failed while running (also a LangChain ToolException)
    │   ├── ToolTimeout          a tool ran past its deadline
    │   └── ResourceError        out of memory (GPU or host) after eviction and one retry
    ├── ConfigurationError       a model, extra or setting is missing or wrong: the user must fix it
    │   └── MissingDependencyError   an optional extra is not installed (says which one)
    ├── BudgetExceeded           a run budget (steps, wall clock, generated images) ran out
    └── SessionStoreError        a session store cannot be opened, read or written
        ├── CorruptSessionError  a stored session is truncated, corrupt, oversized or not polymodal's
        └── StoreFullError       no room to commit a turn (full disk, size-limited file): nothing was written

`ToolError` also subclasses LangChain's ``ToolException`` so that, inside a LangChain agent, a
tool's expected failure becomes a ``ToolMessage(status="error")`` instead of an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import ToolException

__all__ = [
    "AttachmentError",
    "BudgetExceeded",
    "ConfigurationError",
    "CorruptSessionError",
    "MediaLimitError",
    "MissingDependencyError",
    "PlanValidationError",
    "PlanningError",
    "PolymodalError",
    "ResourceError",
    "SessionStoreError",
    "StoreFullError",
    "ToolError",
    "ToolTimeout",
]


class PolymodalError(Exception):
    """Base of every error polymodal raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable whatever the subclass's __init__ takes: errors cross into and out of worker
        # processes and Ray actors (polymodal.runtime.hosts) and must come back as the same typed error.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[PolymodalError], args: tuple[Any, ...], state: dict[str, Any]) -> PolymodalError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AttachmentError(PolymodalError):
    """An attachment cannot be used: unreadable, unsupported, corrupt, or outside allowed roots.

    Attributes:
        source: the file name (or a short description of in-memory data) the error is about.
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class MediaLimitError(AttachmentError):
    """An attachment is over a configured cap; the message says the cap and the setting to raise."""


class PlanningError(PolymodalError):
    """The planner could not produce a valid plan within its attempts.

    Attributes:
        raw_outputs: what the LLM answered on each attempt, in order.
        attempts: how many times the LLM was asked.
        last_error: the validation problem of the final attempt.
    """

    def __init__(
        self, message: str, *, raw_outputs: Sequence[str] = (), attempts: int = 0, last_error: str = ""
    ) -> None:
        self.raw_outputs = list(raw_outputs)
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message)


class PlanValidationError(PlanningError):
    """One candidate plan broke the plan contract; the planner feeds ``problems`` back to the LLM.

    Attributes:
        problems: one human-readable line per problem, each starting with its location
            (``steps[1].args.image``), so the LLM can correct exactly that field.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid plan:\n" + "\n".join(f"- {p}" for p in self.problems))


class ToolError(PolymodalError, ToolException):
    """A tool failed while running. ``tool`` names it; the message says what went wrong."""

    def __init__(self, tool: str, problem: str) -> None:
        # A problem raised deeper down often already names the tool ("captioner: model ... missing"):
        # say it once, never "captioner: captioner: ...".
        problem = problem.removeprefix(f"{tool}: ")
        self.tool = tool
        self.problem = problem
        super().__init__(f"{tool}: {problem}")


class ToolTimeout(ToolError):
    """A tool ran past its deadline; the request goes on without its output."""

    def __init__(self, tool: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(tool, f"timed out after {seconds:g} s (raise the tool's timeout= to allow more)")


class ResourceError(ToolError):
    """Out of memory even after emptying caches, evicting other models and one smaller retry."""


class ConfigurationError(PolymodalError):
    """Something the user configures is missing or wrong (a model folder, a hub id offline, a setting)."""


class MissingDependencyError(ConfigurationError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package: pip install 'polymodal[{extra}]'"
        )


class BudgetExceeded(PolymodalError):
    """A run budget ran out. ``partial`` holds what was finished before it did."""

    def __init__(self, message: str, partial: Any = None) -> None:
        self.partial = partial
        super().__init__(message)


class SessionStoreError(PolymodalError):
    """A session store cannot be opened, read or written: its URL, file or server is named."""


class CorruptSessionError(SessionStoreError):
    """A stored session cannot be restored (truncated, corrupt, oversized or foreign); names the session.

    Stored bytes are never trusted: a record that fails its checks is refused, never half-loaded.
    """

    def __init__(self, session_id: str, problem: str) -> None:
        self.session_id = session_id
        shown = session_id if len(session_id) <= 64 else session_id[:61] + "..."
        super().__init__(f"session {shown!r} cannot be restored: {problem}")


class StoreFullError(SessionStoreError):
    """No room to commit a turn (a full disk, a size-limited file, a store at its byte bound).

    The turn's transaction was rolled back: the session is as it was before the turn.
    """


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in naming its class when the exception cannot be printed.

    Whatever a tool or a client library raises is reported, never re-raised while being reported:
    an exception whose ``__str__`` raises (or returns a non-string) must not crash the request
    that is recording it and lose the other steps' outputs (RELIABILITY T2).
    """
    try:
        return str(exc)
    except Exception as inner:  # noqa: BLE001 - any failure to print is reported the same way
        try:
            name = type(inner).__name__
        except Exception:  # noqa: BLE001 - paranoia: a metaclass can make even this raise
            name = "error"
        return f"<{type(exc).__name__} whose message could not be printed ({name})>"
