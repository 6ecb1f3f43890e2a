"""A per-tool cap on generated media (RELIABILITY R3): a plan can ask for many images, a GPU pays.

A generator reserves its images *before* any work, so concurrent steps of one tool can never
overshoot the cap together; images that were reserved but not produced (the call failed) are
given back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from polymodal.errors import BudgetExceeded

__all__ = ["GenerationBudget", "run_within_budget"]

T = TypeVar("T")
R = TypeVar("R")


class GenerationBudget:
    """Counts what one tool instance generated against ``limit`` (None: no cap). Thread-safe."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` items; return how many fit (0 when the budget is spent)."""
        with self._lock:
            granted = wanted if self.limit is None else max(0, min(wanted, self.limit - self.used))
            self.used += granted
            return granted

    def reset(self) -> None:
        """Start counting from zero again (e.g. per user session of a long-running agent)."""
        with self._lock:
            self.used = 0

    def release(self, unused: int) -> None:
        """Give back reserved items that were not produced."""
        with self._lock:
            self.used = max(0, self.used - unused)


def run_within_budget(
    tool: str, budget: GenerationBudget, inputs: Sequence[T], run: Callable[[list[T]], list[R]]
) -> list[R]:
    """Run ``run`` on as many ``inputs`` as the budget allows; raise BudgetExceeded past that.

    Raises:
        BudgetExceeded: some inputs did not fit; ``partial`` holds the outputs of those that did.
    """
    granted = budget.reserve(len(inputs))
    try:
        outputs = run(list(inputs[:granted])) if granted else []
    except BaseException:
        budget.release(granted)
        raise
    if granted < len(inputs):
        msg = (f"{tool}: generation budget of {budget.limit} images reached ({budget.used} used); "
               f"produced {granted} of the {len(inputs)} requested (raise the tool's max_images= to allow more)")
        raise BudgetExceeded(msg, partial=outputs)
    return outputs
