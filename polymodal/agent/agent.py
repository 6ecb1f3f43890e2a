"""The chat-style entry point: ``Agent.chat(text, attachments) -> Reply``.

One request flows attachments -> planner -> executor -> fusion, and every arrow carries typed
objects. The agent keeps a :class:`~polymodal.agent.conversation.Conversation`, so attachments
keep their ids across turns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from polymodal.agent.conversation import Conversation, Turn
from polymodal.agent.executor import Executor, StepResult
from polymodal.agent.fusion import Fusion
from polymodal.agent.plan import Plan
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, Planner, PlanningRequest, Tier
from polymodal.config import Settings
from polymodal.errors import ConfigurationError
from polymodal.media import Attachment
from polymodal.tools.base import Tool

__all__ = ["Agent", "Reply"]

AttachmentLike = Any  # a path, bytes, a PIL image, (samples, rate), a content block, or an Attachment
EventHook = Callable[[str, Any], None]


class Reply(BaseModel):
    """The answer to one request, with everything that produced it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    """The fused answer."""
    plan: Plan
    """The validated plan that ran."""
    steps: list[StepResult] = Field(default_factory=list)
    """Per step: id, tool, args, output (text and artifact), error, timing."""
    artifacts: list[Attachment] = Field(default_factory=list)
    """Media the tools produced this turn (generated images, speech), each with its id."""
    attachment_ids: list[str] = Field(default_factory=list)
    """Ids given to the attachments of this request."""
    planner: Tier = "llm"
    """Which tier planned: "llm", "router" or "defaults"."""
    fusion: str = "llm"
    """How the answer was written: "llm", "template" or "passthrough"."""
    llm_calls: int = 0
    """LLM calls this request cost (planning attempts + fusion)."""
    seconds: float = 0.0

    def __str__(self) -> str:
        return self.text


class Agent:
    """A multimodal agent: plans tool calls for a request, runs them, fuses one answer.

    Args:
        llm: a LangChain chat model for planning and fusion. None plans by attachment modality
            and answers with a template: useful offline, better with an LLM.
        tools: the tools the planner may use (names must be unique). Default: the built-in set.
        planner: replaces the planner chosen from ``llm``.
        fusion_llm: a different chat model for writing answers (default: ``llm``).
        settings: caps, limits and timeouts.
    """

    def __init__(
        self,
        llm: BaseChatModel | None = None,
        tools: Iterable[Tool] | None = None,
        *,
        planner: Planner | None = None,
        fusion_llm: BaseChatModel | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        if tools is None:
            from polymodal.tools import default_tools

            tools = default_tools()
        self.tools = _by_name(lend_llm(tools, fusion_llm or llm))
        self.llm = llm
        self.planner: Planner = planner or (
            LLMPlanner(llm, max_attempts=self.settings.planner_attempts, max_steps=self.settings.max_steps)
            if llm is not None
            else DefaultPlanner()
        )
        self.fusion = Fusion(fusion_llm or llm)
        self.executor = Executor(
            self.tools, default_timeout=self.settings.step_timeout, max_parallel=self.settings.max_parallel
        )
        self.conversation = Conversation()

    def chat(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
    ) -> Reply:
        """Answer ``text`` about ``attachments`` (and any attached in earlier turns).

        Raises:
            AttachmentError: an attachment is unreadable, unsupported or over a cap (before any
                LLM call or model load).
            PlanningError: the LLM gave no valid plan within the allowed attempts.
            BudgetExceeded: the plan ran past ``Settings.max_seconds`` (``partial`` has the step results).
        """
        started = time.perf_counter()
        emit = on_event or (lambda _event, _payload: None)
        added = [self.conversation.add(Attachment.coerce(a, self.settings.limits)) for a in attachments]
        history = self.conversation.history[-self.settings.history_turns :] if self.settings.history_turns else []
        request = PlanningRequest(
            text=text,
            attachments=dict(self.conversation.attachments),
            new_attachment_ids=[a.id or "" for a in added],
            history=history,
        )
        outcome = self.planner.plan(request, self.tools, config=config)
        emit("plan", outcome.plan)
        results = self.executor.run(
            outcome.plan,
            self.conversation.attachments,
            register=self.conversation.add,
            config=config,
            on_event=emit,
            budget_seconds=self.settings.max_seconds,
        )
        fused = self.fusion.answer(
            text, outcome.plan, results, attachments=self.conversation.attachments, history=history, config=config
        )
        produced = [self.conversation.attachments[i] for r in results for i in r.artifact_ids]
        self.conversation.turns.append(Turn(user=text, reply=fused.text, attachment_ids=[a.id or "" for a in added]))
        reply = Reply(
            text=fused.text,
            plan=outcome.plan,
            steps=results,
            artifacts=produced,
            attachment_ids=[a.id or "" for a in added],
            planner=outcome.tier,
            fusion=fused.mode,
            llm_calls=outcome.llm_calls + fused.llm_calls,
            seconds=time.perf_counter() - started,
        )
        emit("done", reply)
        return reply

    async def achat(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
    ) -> Reply:
        """``chat`` without blocking the event loop (the work runs on a worker thread)."""
        return await asyncio.to_thread(self.chat, text, attachments, config=config, on_event=on_event)

    def reset(self) -> None:
        """Start a new conversation (loaded models stay loaded)."""
        self.conversation.clear()


def lend_llm(tools: Iterable[Tool], llm: BaseChatModel | None) -> list[Tool]:
    """Give tools that write text with an LLM (``uses_llm = True``) and have none this agent's writer.

    The tool is *copied* with the LLM set, never changed in place: a tool instance may be shared by
    several agents with different LLMs (or be the user's own object), and lending must not leak
    from one agent into another. The copy is shallow, so the models the tool holds stay shared.
    A tool given an LLM explicitly keeps it.
    """
    lent: list[Tool] = []
    for tool in tools:
        if llm is not None and getattr(tool, "uses_llm", False) and getattr(tool, "llm", None) is None:
            tool = tool.model_copy(update={"llm": llm})
        lent.append(tool)
    return lent


def _by_name(tools: Iterable[Tool]) -> dict[str, Tool]:
    by_name: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in by_name:
            msg = f"two tools are named {tool.name!r}; give one a different name="
            raise ConfigurationError(msg)
        by_name[tool.name] = tool
    return by_name
