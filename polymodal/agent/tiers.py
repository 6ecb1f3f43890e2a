"""Compose the planner tiers: the router first, then one LLM call, then the modality defaults.

The router answers plain requests in milliseconds with no LLM call; only when it is unsure does
the request cost an LLM call (or, with no LLM configured, fall to the rules of
:class:`~polymodal.agent.planner.DefaultPlanner`). The outcome says which tier planned, so a
``Reply`` can report it and what the request cost.
"""

from __future__ import annotations

from collections.abc import Mapping

from langchain_core.runnables import RunnableConfig

from polymodal.agent.planner import DefaultPlanner, Planner, PlanningRequest, PlanOutcome
from polymodal.agent.router import Router
from polymodal.errors import MissingDependencyError
from polymodal.tools.base import Tool

__all__ = ["TieredPlanner"]


class TieredPlanner:
    """Router -> LLM planner (if any) -> defaults, as one :class:`~polymodal.agent.planner.Planner`.

    Args:
        router: the embedding router; None skips the fast tier, and so does a router whose
            optional dependency (sentence-transformers) is missing: the outcome's reason says so.
        llm_planner: asked when the router is unsure; None goes straight to ``defaults``. Its
            PlanningError (no valid plan after the re-asks) is raised, not papered over: a
            configured LLM that cannot plan is a failure the user should see.
        defaults: the no-LLM tier (default: :class:`DefaultPlanner`).
    """

    def __init__(
        self, router: Router | None, llm_planner: Planner | None = None, defaults: Planner | None = None
    ) -> None:
        self.router = router
        self.llm_planner = llm_planner
        self.defaults: Planner = defaults or DefaultPlanner()

    def plan(
        self, request: PlanningRequest, tools: Mapping[str, Tool], *, config: RunnableConfig | None = None
    ) -> PlanOutcome:
        reason = "no router"
        if self.router is not None:
            try:
                # With no LLM next, a close call is better decided by the router than by the defaults.
                route = self.router.route(request, tools, decide_close=self.llm_planner is None)
            except MissingDependencyError as exc:  # the router is optional: plan without it, and say why
                reason = f"router off ({exc})"
            else:
                if route.plan is not None:
                    return PlanOutcome(plan=route.plan, tier="router", llm_calls=0, reason=f"router: {route.reason}",
                                       missing_tools=list(route.missing_tools), confidence=route.confidence)
                reason = f"router {route.reason}"
        fallback = self.llm_planner if self.llm_planner is not None else self.defaults
        outcome = fallback.plan(request, tools, config=config)
        outcome.reason = f"{reason} -> {outcome.tier}" + (f": {outcome.reason}" if outcome.reason else "")
        return outcome
