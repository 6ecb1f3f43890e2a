"""The request path: plan -> execute -> fuse, and the Agent that drives it."""

from __future__ import annotations

from polymodal.agent.agent import Agent, Reply
from polymodal.agent.conversation import Conversation, Turn
from polymodal.agent.executor import Executor, StepResult
from polymodal.agent.fusion import Fusion
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, PlanningRequest, PlanOutcome
from polymodal.agent.router import Route, Router
from polymodal.agent.tiers import TieredPlanner

__all__ = [
    "Agent",
    "Conversation",
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
