"""Retry what may pass on its own (a reset connection, a timeout, a 5xx, a rate limit), nothing else.

A hosted chat model behind planning and fusion fails now and then for reasons that a second try a
moment later fixes (RELIABILITY T6). Those calls are retried a bounded number of times with
exponential backoff (tenacity); an error that another try cannot fix (a bad request, a wrong key,
a context too long, a bug) is raised at once, so a real problem is never hidden behind retries.

What counts as transient is decided from the exception alone, without importing any client
library: Python's ``ConnectionError`` and ``TimeoutError`` (which cover resets, refusals and socket
timeouts), the connection, timeout, rate-limit and server-error classes of the usual clients
(openai, anthropic, httpx, requests, google-api-core) recognised by class name, and an HTTP status
(``status_code``, ``response.status_code`` or ``status``) of 408, 425, 429, 500, 502, 503, 504 or
529. The exception's cause chain is searched too, since client wrappers re-raise.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

__all__ = ["RetryPolicy", "backoff", "call_with_retry", "is_transient"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 529})
_TRANSIENT_CLASS_NAMES = frozenset({
    "ConnectionError", "TimeoutError",  # requests' ConnectionError is not the builtin one
    "APIConnectionError", "APITimeoutError", "RateLimitError", "InternalServerError", "OverloadedError",
    "ServiceUnavailableError", "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
    "ReadError", "WriteError", "RemoteProtocolError", "NetworkError", "TimeoutException", "Timeout",
    "ChunkedEncodingError", "ServiceUnavailable", "TooManyRequests", "DeadlineExceeded", "ResourceExhausted",
})


class RetryPolicy(BaseModel):
    """How often and how patiently a transient LLM failure is retried.

    The wait before retry ``n`` (1, 2, ...) is ``initial_wait * 2 ** (n - 1)`` plus up to
    ``jitter`` seconds at random, never more than ``max_wait``. ``RetryPolicy(attempts=1)`` turns
    retries off; zero waits make tests fast.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    attempts: int = Field(default=3, ge=1)
    """Calls in all, the first one included."""
    initial_wait: float = Field(default=1.0, ge=0)
    """Seconds before the first retry."""
    max_wait: float = Field(default=10.0, ge=0)
    """The longest single wait."""
    jitter: float = Field(default=0.5, ge=0)
    """Up to this many random seconds added to each wait, so many clients do not retry in step."""


def is_transient(exc: BaseException) -> bool:
    """True when another try may succeed (see the module docstring); False for everything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        status = _status(current)
        if status is not None:
            return status in TRANSIENT_STATUS  # a 4xx other than 408/425/429 is final
        if isinstance(current, ConnectionError | TimeoutError) or any(
            cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(current).__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _status(exc: BaseException) -> int | None:
    for value in (getattr(exc, "status_code", None), getattr(getattr(exc, "response", None), "status_code", None),
                  getattr(exc, "status", None)):
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def backoff(policy: RetryPolicy, failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1, 2, ...), jitter included."""
    wait = policy.initial_wait * 2 ** (failures - 1) + random.uniform(0, policy.jitter)  # noqa: S311 - not crypto
    return min(policy.max_wait, wait)


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str = "LLM call",
    retry_if: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; retry it per ``policy`` while it fails with an error ``retry_if`` accepts.

    Args:
        what: names the call in the log line written before each retry.
        retry_if: which failures to retry (default :func:`is_transient`).
        sleep: how to wait (tests pass a recorder instead of sleeping for real).

    Raises:
        The last exception: at once when ``retry_if`` rejects it, after the last attempt otherwise.
    """
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=lambda state: backoff(policy, state.attempt_number),
        retry=retry_if_exception(retry_if),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: _log_retry(state, what, policy),
    )
    return retrying(fn)


def _log_retry(state: RetryCallState, what: str, policy: RetryPolicy) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    logger.warning("%s failed (%s), retrying in %.1f s (attempt %d of %d)", what, type(error).__name__, wait,
                   state.attempt_number + 1, policy.attempts)
