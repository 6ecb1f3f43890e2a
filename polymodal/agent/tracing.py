"""The agent's spans, per the OpenTelemetry GenAI conventions: a turn, its plan, each step.

The substance lives here so that the agent and the executor each open a span with one line;
every helper costs nothing while tracing is off (:mod:`polymodal.telemetry`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from polymodal import telemetry
from polymodal.agent.usage import UsageMeter
from polymodal.tools.context import current_context

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from polymodal.agent.planning import Planner, PlanningRequest, PlanOutcome
    from polymodal.tools.base import Tool

__all__ = ["AGENT_SPAN", "agent_span", "plan_traced", "tool_span"]

AGENT_SPAN = "invoke_agent polymodal"


def agent_span(text: str, attachments: int) -> contextlib.AbstractContextManager[Any]:
    """The span of one turn (``invoke_agent polymodal``)."""
    if not telemetry.enabled():
        return contextlib.nullcontext(None)
    return telemetry.span(AGENT_SPAN, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "polymodal",
        "polymodal.request.chars": len(text), "polymodal.request.attachments": attachments,
    })


def plan_traced(planner: Planner, request: PlanningRequest, tools: Mapping[str, Tool], config: RunnableConfig | None
                ) -> tuple[PlanOutcome, UsageMeter]:
    """``planner.plan(...)`` with a :class:`UsageMeter` among its callbacks, inside a ``plan polymodal``
    span (while tracing) that records the tier that planned and the plan's size.

    The meter comes back for the fusion writer's call (``meter.attach(config)``), so that the
    turn's ``usage`` sums both; the planner LLM's ``chat`` spans are children of the plan span.
    """
    meter = UsageMeter()
    if not telemetry.enabled():
        outcome: PlanOutcome = planner.plan(request, tools, config=meter.attach(config))
        return outcome, meter
    with telemetry.span("plan polymodal", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "polymodal",
                                           "polymodal.planner": type(planner).__name__}) as current:
        outcome = planner.plan(request, tools, config=meter.attach(config))
        current.set_attribute("polymodal.planner.tier", outcome.tier)
        current.set_attribute("polymodal.plan.steps", len(outcome.plan.steps))
        current.set_attribute("polymodal.plan.llm_calls", outcome.llm_calls)
        return outcome, meter


def tool_span(tool: Tool, step_id: str, host: str | None) -> contextlib.AbstractContextManager[Any]:
    """The span of one step (``execute_tool {tool}``): current while the tool runs, so that a model
    call sent to a worker process or a Ray actor continues it there."""
    if not telemetry.enabled():
        return contextlib.nullcontext(None)
    host_name = getattr(tool, "host_name", None)
    where = host_name() if callable(host_name) else (host or "inprocess")  # a model tool's own host wins
    return _step_span(f"execute_tool {tool.name}", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name, "gen_ai.tool.call.id": step_id,
        "gen_ai.tool.type": "function", "polymodal.host": where, "polymodal.model": getattr(tool, "model", None),
    })


@contextlib.contextmanager
def _step_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """The step's span, marked failed when the step failed.

    A tool's typed error does not leave ``run_call`` (LangChain's ``handle_tool_error`` turns it
    into an error message; the exception is kept on the step's tool context): so the span reads
    the context's errors when the call returns, rather than waiting for an exception that never comes.
    """
    ctx = current_context()
    seen = len(ctx.errors) if ctx is not None else 0
    with telemetry.span(name, attributes) as current:
        yield current
        if ctx is not None and len(ctx.errors) > seen:
            error = ctx.errors[-1]
            current.record_exception(error)
            telemetry.mark_error(current, type(error).__name__)
