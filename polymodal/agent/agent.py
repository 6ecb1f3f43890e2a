"""The chat-style entry point: ``Agent.chat(text, attachments) -> Reply``.

One request flows attachments -> planner -> executor -> fusion, and every arrow carries typed
objects. The agent keeps a :class:`~polymodal.agent.conversation.Conversation`, so attachments
keep their ids across turns.

The Agent is also a LangChain ``Runnable[AgentInput, Reply]``: ``invoke``/``ainvoke`` are ``chat``
(same conversation) under a chain run that honours the ``RunnableConfig``; ``stream``/``astream``
yield typed events (:mod:`polymodal.agent.events`); ``batch``/``abatch`` answer each input as an
independent request on a fresh conversation (concurrent turns of one conversation have no order).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig

from polymodal.agent.agent_tool import AgentTool
from polymodal.agent.conversation import Conversation, Turn
from polymodal.agent.events import AgentEvent, astream_in_thread, stream_in_thread
from polymodal.agent.executor import EventHook, Executor, StepResult
from polymodal.agent.fusion import Fusion
from polymodal.agent.inputs import AgentRequest, parse_agent_input
from polymodal.agent.missing import with_missing_note
from polymodal.agent.plan import validate_plan
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, Planner, PlanningRequest, PlanOutcome
from polymodal.agent.reply import Reply
from polymodal.agent.router import Router
from polymodal.agent.tiers import TieredPlanner
from polymodal.config import Settings
from polymodal.errors import ConfigurationError, PlanningError, PlanValidationError
from polymodal.media import Attachment
from polymodal.tools.base import Tool
from polymodal.tools.turns import request_in_flight

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

__all__ = ["Agent", "AgentInput", "Reply"]

AttachmentLike = Any  # a path, bytes, a PIL image, (samples, rate), a content block, or an Attachment
AgentInput = Any
"""A string; a dict ``{"input": text, "attachments": [...]}``; a HumanMessage (or a list of messages)
whose content mixes text and image/audio/video/file content blocks; or a prompt value."""


class Agent(Runnable[AgentInput, Reply]):
    """A multimodal agent: plans tool calls for a request, runs them, fuses one answer.

    Args:
        llm: a LangChain chat model for planning and fusion. None plans by attachment modality
            and answers with a template: useful offline, better with an LLM.
        tools: the tools the planner may use (names must be unique). Default: the built-in set.
        planner: replaces the planner chosen from ``llm``.
        fusion_llm: a different chat model for writing answers (default: ``llm``).
        settings: caps, limits and timeouts.
        multimodal_llm: the answering chat model reads images natively (GPT-4o style): the
            request's images go to it as content blocks next to the tool results, so it can answer
            from the pixels what no tool covered (an empty plan is then a fine plan). Leave False
            for text-only models, which would reject or garble image blocks.
        router: an embedding :class:`~polymodal.agent.router.Router` tried before the LLM planner
            (or the modality defaults): plain requests then cost no planning LLM call.
    """

    def __init__(
        self,
        llm: BaseChatModel | None = None,
        tools: Iterable[Tool] | None = None,
        *,
        planner: Planner | None = None,
        fusion_llm: BaseChatModel | None = None,
        settings: Settings | None = None,
        multimodal_llm: bool = False,
        router: Router | None = None,
    ) -> None:
        if router is not None and planner is not None:
            msg = "pass router= or planner=, not both (to combine them, pass planner=TieredPlanner(router, ...))"
            raise ConfigurationError(msg)
        self.settings = settings or Settings()
        self.multimodal_llm = multimodal_llm
        if tools is None:
            from polymodal.tools import default_tools

            tools = default_tools()
        self.tools = _by_name(lend_llm(tools, fusion_llm or llm))
        self.llm = llm
        self.planner: Planner = planner or (
            LLMPlanner(llm, max_attempts=self.settings.planner_attempts, retry=self.settings.llm_retry)
            if llm is not None
            else DefaultPlanner()
        )
        if router is not None:
            self.planner = TieredPlanner(router, self.planner if llm is not None else None, DefaultPlanner())
        self.fusion = Fusion(fusion_llm or llm, retry=self.settings.llm_retry)
        self.executor = Executor(
            self.tools, default_timeout=self.settings.step_timeout, max_parallel=self.settings.max_parallel,
            host=self.settings.host,
        )
        self.conversation = Conversation()

    def chat(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
        stream_answer: bool = False,
    ) -> Reply:
        """Answer ``text`` about ``attachments`` (and any attached in earlier turns).

        ``on_event(name, payload)`` sees the turn as it runs ("plan", "step_started", ...,
        "done"; :func:`polymodal.agent.events.to_event` makes the typed event of a call), on this
        thread; ``stream_answer`` also streams the fusion model's answer as "token" events.
        :meth:`stream` is the same turn as an iterator, on a thread of its own.

        Raises:
            AttachmentError: an attachment is unreadable, unsupported or over a cap (before any
                LLM call or model load).
            PlanningError: the LLM gave no valid plan within the allowed attempts.
            BudgetExceeded: the plan ran past ``Settings.max_seconds`` (``partial`` has the step results).
        """
        return self._respond(text, attachments, config=config, on_event=on_event, stream_answer=stream_answer)

    def _respond(
        self,
        text: str,
        attachments: Sequence[AttachmentLike],
        *,
        config: RunnableConfig | None,
        on_event: EventHook | None,
        stream_answer: bool = False,
    ) -> Reply:
        """One turn; ``stream_answer`` streams the fusion model and emits ("token", text) events."""
        with request_in_flight():  # model batchers wait for this turn's calls (polymodal.tools.batching)
            return self._turn(text, attachments, config=config, on_event=on_event, stream_answer=stream_answer)

    def _turn(
        self,
        text: str,
        attachments: Sequence[AttachmentLike],
        *,
        config: RunnableConfig | None,
        on_event: EventHook | None,
        stream_answer: bool,
    ) -> Reply:
        started = time.perf_counter()
        emit = on_event or (lambda _event, _payload: None)
        added = [self.conversation.add(Attachment.coerce(a, self.settings.limits)) for a in attachments]
        self.conversation.release_older(self.settings.recent_attachments, protect=[a.id or "" for a in added])
        history = self.conversation.history[-self.settings.history_turns :] if self.settings.history_turns else []
        request = PlanningRequest(
            text=text,
            attachments=dict(self.conversation.attachments),
            new_attachment_ids=[a.id or "" for a in added],
            history=history,
            released_attachments=self.conversation.released,
            max_steps=self.settings.max_steps,
        )
        outcome = self._checked(self.planner.plan(request, self.tools, config=config))
        emit("plan", outcome.plan)
        results = self.executor.run(
            outcome.plan,
            self.conversation.attachments,
            register=self.conversation.add,
            config=config,
            on_event=emit,
            budget_seconds=self.settings.max_seconds,
        )
        self.conversation.touch(_attachment_refs(results))
        images = [a for a in added if a.kind.value == "image"] if self.multimodal_llm else []
        fused = self.fusion.answer(
            text, outcome.plan, results, attachments=self.conversation.attachments, history=history, config=config,
            on_token=(lambda piece: emit("token", piece)) if stream_answer else None, images=images,
            released_attachments=self.conversation.released,
        )
        produced = [self.conversation.attachments[i] for r in results for i in r.artifact_ids]
        answer = with_missing_note(fused.text, outcome.missing_tools, ran=bool(results))
        self.conversation.turns.append(Turn(user=text, reply=answer, attachment_ids=[a.id or "" for a in added]))
        reply = Reply(
            text=answer,
            plan=outcome.plan,
            steps=results,
            artifacts=produced,
            attachment_ids=[a.id or "" for a in added],
            planner=outcome.tier,
            fusion=fused.mode,
            llm_calls=outcome.llm_calls + fused.llm_calls,
            missing_tools=list(outcome.missing_tools),
            seconds=time.perf_counter() - started,
        )
        emit("done", reply)
        return reply

    def _checked(self, outcome: PlanOutcome) -> PlanOutcome:
        """Validate the plan of ANY planner (a custom ``planner=`` included) before a tool runs.

        The built-in tiers validate their own plans; this gate makes the README's promise hold for
        every planner: the plan names registered tools, existing attachments and earlier steps only,
        and stays within ``Settings.max_steps``. A plan that breaks the contract is a PlanningError
        here, never a ``KeyError`` from the middle of a run.
        """
        try:
            validate_plan(outcome.plan, self.tools, self.conversation.attachments, max_steps=self.settings.max_steps)
        except PlanValidationError as exc:
            planner = type(self.planner).__name__
            msg = f"{planner} ({outcome.tier} tier) returned an invalid plan, so no tool ran:\n" + "\n".join(
                f"- {problem}" for problem in exc.problems)
            raise PlanningError(msg, raw_outputs=outcome.raw_outputs, attempts=outcome.llm_calls,
                                last_error=str(exc)) from exc
        return outcome

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

    def fork(self) -> Agent:
        """A copy sharing tools, models, LLMs and settings, with a fresh, empty conversation."""
        clone = copy.copy(self)
        clone.conversation = Conversation()
        return clone

    # -- LangChain Runnable ----------------------------------------------------------------

    def parse_input(self, input: AgentInput) -> AgentRequest:
        """Turn any accepted input (see :data:`AgentInput`) into text and validated attachments."""
        return parse_agent_input(input, self.settings.limits)

    def invoke(self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any) -> Reply:
        """``chat`` as a Runnable: one turn of this agent's conversation, traced as a chain run.

        Callbacks see the chain start with a media-free summary of the input (text and attachment
        metadata, never base64), then every LLM call and tool run nested under it.
        """
        request = self.parse_input(input)
        run: Any = self._invoke_request  # langchain-core's types do not model the extra keyword argument
        return self._call_with_config(run, request.summary(), config, run_type="chain", request=request)

    def _invoke_request(self, _summary: Any, config: RunnableConfig, *, request: AgentRequest) -> Reply:
        return self._respond(request.text, request.attachments, config=config, on_event=None)

    def stream(  # type: ignore[override]
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AgentEvent]:
        """Typed events in order: PlanReady, StepStarted/StepProgress/StepFinished, AnswerToken..., Done."""
        request = self.parse_input(input)
        # Typed as Any: a Runnable's stream chunks are typed as its output (Reply), ours are events.
        transform: Any = self._stream_request
        events: Iterator[Any] = self._transform_stream_with_config(
            iter([request.summary()]), transform, config, run_type="chain", request=request
        )
        yield from events

    def _stream_request(
        self, inputs: Iterator[Any], config: RunnableConfig, *, request: AgentRequest
    ) -> Iterator[AgentEvent]:
        for _ in inputs:  # the summary, already recorded by the chain run
            pass
        yield from stream_in_thread(lambda emit: self._respond(
            request.text, request.attachments, config=config, on_event=emit, stream_answer=True))

    async def astream(  # type: ignore[override]
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AgentEvent]:
        """``stream`` for asyncio: the turn runs on a worker thread, events arrive on the loop."""
        request = await asyncio.to_thread(self.parse_input, input)

        async def summary() -> AsyncIterator[Any]:
            yield request.summary()

        transform: Any = self._astream_request  # see stream(): chunks are events, not Replies
        events: AsyncIterator[Any] = self._atransform_stream_with_config(
            summary(), transform, config, run_type="chain", request=request
        )
        async for event in events:
            yield event

    async def _astream_request(
        self, inputs: AsyncIterator[Any], config: RunnableConfig, *, request: AgentRequest
    ) -> AsyncIterator[AgentEvent]:
        async for _ in inputs:
            pass
        async for event in astream_in_thread(lambda emit: self._respond(
                request.text, request.attachments, config=config, on_event=emit, stream_answer=True)):
            yield event

    def batch(
        self,
        inputs: list[AgentInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Reply]:
        """Answer each input as an independent request, on its own fresh conversation.

        The agent's own conversation is neither read nor changed: batch items run concurrently
        (up to ``config["max_concurrency"]``), and turns of one conversation need an order.
        """
        return _Independent(self).batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[AgentInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Reply]:
        """``batch`` for asyncio: independent requests, at most ``max_concurrency`` at once."""
        return await _Independent(self).abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    def as_messages(self) -> Runnable[AgentInput, AIMessage]:
        """This agent with an ``AIMessage`` output (``Reply.to_message()``), for chains of messages."""
        from langchain_core.runnables import RunnableLambda

        return self | RunnableLambda(_reply_message, name="reply_to_message")

    def as_tool(  # type: ignore[override]
        self,
        args_schema: Any = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: Any = None,
    ) -> BaseTool:
        """The whole agent as ONE LangChain tool (``request`` + file paths) for a bigger agent.

        Each call is an independent request on a fresh conversation. The outer model chooses the
        file paths, so set ``Settings(limits=MediaLimits(allowed_roots=...))``.
        """
        fields: dict[str, Any] = {"agent": self}
        if name:
            fields["name"] = name
        if description:
            fields["description"] = description
        return AgentTool(**fields)


class _Independent(Runnable[AgentInput, Reply]):
    """Runs each input on a fork of the agent: what ``Agent.batch`` means by independent requests."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def invoke(self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any) -> Reply:
        return self.agent.fork().invoke(input, config, **kwargs)


def _attachment_refs(results: Sequence[StepResult]) -> list[str]:
    """The attachment ids the steps read (string arguments; ids that are not attachments are ignored)."""
    return [item for r in results for value in r.args.values()
            for item in (value if isinstance(value, list) else [value]) if isinstance(item, str)]


def _reply_message(value: Any) -> AIMessage:
    reply = getattr(value, "reply", value)  # a streamed pipeline hands over the final Done event
    if not isinstance(reply, Reply):
        msg = f"expected a Reply, got {type(value).__name__}"
        raise TypeError(msg)
    return reply.to_message()


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
