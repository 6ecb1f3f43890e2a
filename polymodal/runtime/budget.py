"""A per-request cap on generated media (RELIABILITY R3): a plan can ask for many images, a GPU pays.

The cap counts per agent turn (one ``chat``, one batch job, one HTTP request: see
:mod:`polymodal.runtime.turns`), so no single request — however its plan came out — makes more than
``max_images``, while a long-running agent (a server, a 10,000-job batch) keeps generating for its
next requests. A call outside any agent turn (a LangChain agent calling the tool directly, in a
loop of its own) counts against the tool instance for its lifetime, since there is no request to
count against; ``reset()`` starts that count again.

A generator reserves its images *before* any work, so concurrent steps of one request can never
overshoot the cap together; images that were reserved but not produced (the call failed) are
given back.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

from polymodal.errors import BudgetExceeded
from polymodal.runtime.turns import Turn, current_turn

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

T = TypeVar("T")
R = TypeVar("R")


class GenerationBudget:
    """Counts what one tool generated per request against ``limit`` (None: no cap). Thread-safe."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._direct = 0
        self._per_turn: weakref.WeakKeyDictionary[Turn, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Items generated so far by the current request (outside any request: by direct calls)."""
        turn = current_turn()
        with self._lock:
            return self._direct if turn is None else self._per_turn.get(turn, 0)

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` items for the current request; return how many fit (0: spent)."""
        turn = current_turn()
        with self._lock:
            used = self._direct if turn is None else self._per_turn.get(turn, 0)
            granted = wanted if self.limit is None else max(0, min(wanted, self.limit - used))
            self._count(turn, used + granted)
            return granted

    def reset(self) -> None:
        """Start the count of direct calls (outside any agent turn) from zero again."""
        with self._lock:
            self._direct = 0

    def release(self, unused: int) -> None:
        """Give back reserved items that were not produced."""
        turn = current_turn()
        with self._lock:
            used = self._direct if turn is None else self._per_turn.get(turn, 0)
            self._count(turn, max(0, used - unused))

    def _count(self, turn: Turn | None, value: int) -> None:
        if turn is None:
            self._direct = value
        else:
            self._per_turn[turn] = value


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
