"""The plan gate: ANY planner's plan (a custom ``planner=`` included) is validated before a tool runs.

The built-in tiers validate their own plans; this gate makes the contract hold for every planner:
the plan names registered tools, existing attachments and earlier steps only, and stays within
``Settings.max_steps``. A plan that breaks it is a PlanningError here, never a ``KeyError`` from
the middle of a run.
"""

from __future__ import annotations

from collections.abc import Mapping

from polymodal.agent.plan import validate_plan
from polymodal.agent.planning import Planner, PlanOutcome
from polymodal.errors import PlanningError, PlanValidationError
from polymodal.media import Attachment
from polymodal.tools.base import Tool

__all__ = ["checked_plan"]


def checked_plan(
    outcome: PlanOutcome, planner: Planner, tools: Mapping[str, Tool], attachments: Mapping[str, Attachment],
    *, max_steps: int,
) -> PlanOutcome:
    """``outcome`` when its plan keeps the contract; else a PlanningError naming the planner and each problem."""
    try:
        validate_plan(outcome.plan, tools, attachments, max_steps=max_steps)
    except PlanValidationError as exc:
        name = type(planner).__name__
        msg = f"{name} ({outcome.tier} tier) returned an invalid plan, so no tool ran:\n" + "\n".join(
            f"- {problem}" for problem in exc.problems)
        raise PlanningError(msg, raw_outputs=outcome.raw_outputs, attempts=outcome.llm_calls,
                            last_error=str(exc)) from exc
    return outcome
