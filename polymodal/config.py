"""Settings that shape a run: media caps, plan limits, timeouts, parallelism.

Device, dtype and the model memory budget are read by the model cache from the environment
(``POLYMODAL_DEVICE``, ``POLYMODAL_DTYPE``, ``POLYMODAL_MEMORY_BUDGET_GB``) because they belong
to the process, not to one agent: every agent in a process shares the same loaded models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from polymodal.media import DEFAULT_LIMITS, MediaLimits
from polymodal.transient import RetryPolicy

__all__ = ["Settings"]


class Settings(BaseModel):
    """Per-agent settings. Every field has a default that suits an interactive user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limits: MediaLimits = DEFAULT_LIMITS
    """Byte, pixel and duration caps on attachments, and the allowed roots for file paths."""
    max_steps: int = Field(default=8, ge=0)
    """The most tool calls one plan may make."""
    step_timeout: float | None = Field(default=600.0, gt=0)
    """Seconds a step may run when its tool sets no ``timeout`` of its own (None: no limit). The executor
    turns it into the step's one :class:`~polymodal.runtime.calls.Deadline`, which the model call carries
    down to the host."""
    max_seconds: float | None = Field(default=None, gt=0)
    """Wall-clock budget for running one request's plan; past it, BudgetExceeded with the partial results."""
    max_parallel: int = Field(default=4, ge=1)
    """The most steps running at once."""
    planner_attempts: int = Field(default=3, ge=1)
    """LLM calls allowed to get a valid plan (the first ask plus re-asks)."""
    history_turns: int = Field(default=3, ge=0)
    """How many earlier turns the planner and fusion see."""
    llm_retry: RetryPolicy = RetryPolicy()
    """Retries of planner and fusion LLM calls that fail transiently (connection reset, timeout, 5xx, rate
    limit): attempts and backoff. Other failures are never retried."""
    recent_attachments: int = Field(default=16, ge=0)
    """Earlier attachments a turn can still use, most recently used first, besides its own new ones.
    Older ones are released (the conversation drops them and their bytes) and prompts only count
    them, so a long conversation does not get slower or bigger with every turn."""
    host: Literal["inprocess", "process", "ray"] | None = None
    """Where model work runs (see :mod:`polymodal.runtime.hosts`): in this process, in worker processes that a
    timeout can kill, or in Ray actors. None: ``POLYMODAL_HOST``, else in-process. A tool's own
    ``host=`` wins over this."""
