"""The request path: plan -> execute -> fuse, and the Agent that drives it.

Names are imported on first use (see :mod:`polymodal._lazy`): ``from polymodal.agent.plan import
Plan`` does not import the Agent, the router or LangChain's runnables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polymodal._lazy import lazy_attributes

if TYPE_CHECKING:
    from polymodal.agent.agent import Agent
    from polymodal.agent.conversation import Conversation, ConversationView, Turn
    from polymodal.agent.defaults import DefaultPlanner
    from polymodal.agent.executor import Executor
    from polymodal.agent.fusion import Fusion
    from polymodal.agent.plan import Plan, Step, validate_plan
    from polymodal.agent.planner import LLMPlanner
    from polymodal.agent.planning import PlanningRequest, PlanOutcome
    from polymodal.agent.reply import Reply
    from polymodal.agent.router import Route, Router
    from polymodal.agent.steps import StepResult
    from polymodal.agent.tiers import TieredPlanner

_WHERE: dict[str, str] = {
    "Agent": "polymodal.agent.agent",
    "Reply": "polymodal.agent.reply",
    **dict.fromkeys(["Conversation", "ConversationView", "Turn"], "polymodal.agent.conversation"),
    "Executor": "polymodal.agent.executor",
    "StepResult": "polymodal.agent.steps",
    "Fusion": "polymodal.agent.fusion",
    **dict.fromkeys(["Plan", "Step", "validate_plan"], "polymodal.agent.plan"),
    "DefaultPlanner": "polymodal.agent.defaults",
    "LLMPlanner": "polymodal.agent.planner",
    **dict.fromkeys(["PlanOutcome", "PlanningRequest"], "polymodal.agent.planning"),
    **dict.fromkeys(["Route", "Router"], "polymodal.agent.router"),
    "TieredPlanner": "polymodal.agent.tiers",
}

__all__ = [
    "Agent",
    "Conversation",
    "ConversationView",
    "DefaultPlanner",
    "Executor",
    "Fusion",
    "LLMPlanner",
    "Plan",
    "PlanOutcome",
    "PlanningRequest",
    "Reply",
    "Route",
    "Router",
    "Step",
    "StepResult",
    "TieredPlanner",
    "Turn",
    "validate_plan",
]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
