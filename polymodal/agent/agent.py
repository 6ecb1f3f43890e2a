"""The entry points: ``Agent.run(text, attachments, conversation=c) -> Reply`` and ``Agent.chat``.

One request flows attachments -> planner -> executor -> fusion, and every arrow carries typed
objects: the planner and fusion get a read-only view of the one :class:`~polymodal.agent.conversation.Conversation`,
the executor the conversation itself (it registers the media steps produce), and all report typed events
(:mod:`polymodal.agent.events`) through one ``on_event`` hook.

``run`` is stateless: the caller owns the conversation (none: a fresh one), so concurrent
requests need no copy of the agent. ``chat`` is ``run`` on ``agent.conversation``, kept for you.

The Agent is also a LangChain ``Runnable[AgentInput, Reply]``: ``invoke``/``ainvoke`` are ``chat``
(or a turn of ``conversation=``) under a chain run that honours the ``RunnableConfig``;
``stream``/``astream`` yield the typed events; ``batch``/``abatch`` answer each input as an
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
from polymodal.agent.events import (
    AgentEvent,
    AnswerToken,
    Done,
    EventHook,
    PlanReady,
    astream_in_thread,
    stream_in_thread,
)
from polymodal.agent.executor import Executor
from polymodal.agent.fusion import Fusion
from polymodal.agent.gate import checked_plan
from polymodal.agent.inputs import AgentRequest, parse_agent_input
from polymodal.agent.missing import with_missing_note
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, Planner, PlanningRequest
from polymodal.agent.reply import Reply, reply_message
from polymodal.agent.router import Router
from polymodal.agent.steps import attachment_refs
from polymodal.agent.tiers import TieredPlanner
from polymodal.agent.toolset import lend_llm, tools_by_name
from polymodal.agent.tracing import agent_span, plan_traced
from polymodal.config import Settings
from polymodal.errors import ConfigurationError
from polymodal.media import Attachment
from polymodal.runtime.turns import request_in_flight
from polymodal.tools.base import Tool

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
        self.tools = tools_by_name(lend_llm(tools, fusion_llm or llm))
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
        """The conversation ``chat``, ``invoke`` and ``stream`` continue (``run`` takes its own)."""

    def run(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        conversation: Conversation | None = None,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
        stream_answer: bool = False,
    ) -> Reply:
        """Answer ``text`` about ``attachments`` as one turn of ``conversation``; the Agent keeps nothing.

        ``conversation`` is the caller's: this turn's attachments, generated media and the turn
        itself are added to it, so the next ``run`` with it (on this Agent or any other, in this
        process or after it was stored) refers to ``image_1`` as this one did. None runs the
        request on a fresh conversation: an independent request. Concurrent calls are safe on
        different conversations; turns of one conversation need an order, so run them one at a time.

        ``on_event(event)`` sees the turn's typed events as it runs (:mod:`polymodal.agent.events`:
        PlanReady, StepStarted/StepProgress/StepFinished, Done), on the thread that made each;
        ``stream_answer`` also streams the fusion model's answer as AnswerToken events.

        Raises:
            AttachmentError: an attachment is unreadable, unsupported or over a cap (before any
                LLM call or model load).
            PlanningError: the LLM gave no valid plan within the allowed attempts.
            BudgetExceeded: the plan ran past ``Settings.max_seconds`` (``partial`` has the step results).
        """
        with request_in_flight(), agent_span(text, len(attachments)):  # batchers wait for this turn's calls
            return self._turn(text, attachments, Conversation() if conversation is None else conversation,
                              config=config, on_event=on_event, stream_answer=stream_answer)

    def chat(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
        stream_answer: bool = False,
    ) -> Reply:
        """Answer ``text`` about ``attachments`` (and any attached in earlier turns): ``run`` on
        ``agent.conversation``, which this agent keeps between calls (:meth:`reset` starts over).

        ``on_event`` and ``stream_answer`` are as in :meth:`run`; :meth:`stream` is the same turn
        as an iterator, on a thread of its own. Raises what :meth:`run` raises.
        """
        return self.run(text, attachments, conversation=self.conversation, config=config, on_event=on_event,
                        stream_answer=stream_answer)

    def _turn(
        self,
        text: str,
        attachments: Sequence[AttachmentLike],
        conversation: Conversation,
        *,
        config: RunnableConfig | None,
        on_event: EventHook | None,
        stream_answer: bool,
    ) -> Reply:
        started = time.perf_counter()
        emit = on_event or (lambda _event: None)
        added = [conversation.add(Attachment.coerce(a, self.settings.limits)) for a in attachments]
        conversation.release_older(self.settings.recent_attachments, protect=[a.id or "" for a in added])
        view = conversation.view(history_turns=self.settings.history_turns or 0)
        request = PlanningRequest(text=text, conversation=view, new_attachment_ids=[a.id or "" for a in added],
                                  max_steps=self.settings.max_steps)
        planned, meter = plan_traced(self.planner, request, self.tools, config)  # meter: the LLMs' tokens
        outcome = checked_plan(planned, self.planner, self.tools, view.attachments, max_steps=self.settings.max_steps)
        emit(PlanReady(plan=outcome.plan))
        results = self.executor.run(outcome.plan, conversation, config=config, on_event=emit,
                                    budget_seconds=self.settings.max_seconds)
        conversation.touch(attachment_refs(results))
        images = [a for a in added if a.kind.value == "image"] if self.multimodal_llm else []
        fused = self.fusion.answer(
            text, outcome.plan, results, conversation=view, config=meter.attach(config),
            on_token=(lambda piece: emit(AnswerToken(text=piece))) if stream_answer else None, images=images,
        )
        produced = [conversation.attachments[i] for r in results for i in r.artifact_ids]
        answer = with_missing_note(fused.text, outcome.missing_tools, ran=bool(results))
        conversation.turns.append(Turn(user=text, reply=answer, attachment_ids=[a.id or "" for a in added]))
        reply = Reply(
            text=answer,
            plan=outcome.plan,
            steps=results,
            artifacts=produced,
            attachment_ids=[a.id or "" for a in added],
            planner=outcome.tier,
            fusion=fused.mode,
            llm_calls=outcome.llm_calls + fused.llm_calls, usage=meter.usage(),
            missing_tools=list(outcome.missing_tools),
            seconds=time.perf_counter() - started,
        )
        emit(Done(reply=reply))
        return reply

    async def arun(
        self,
        text: str,
        attachments: Sequence[AttachmentLike] = (),
        *,
        conversation: Conversation | None = None,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
    ) -> Reply:
        """``run`` without blocking the event loop (the turn runs on a worker thread)."""
        return await asyncio.to_thread(self.run, text, attachments, conversation=conversation, config=config,
                                       on_event=on_event)

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
        """A copy sharing tools, models, LLMs and settings, with a fresh, empty ``conversation``.

        Only for code that keeps one conversation per Agent object (``chat``-style sessions). An
        independent request needs no fork: ``run(text, attachments)`` uses a fresh conversation,
        and ``run(..., conversation=c)`` continues the caller's ``c``.
        """
        clone = copy.copy(self)
        clone.conversation = Conversation()
        return clone

    # -- LangChain Runnable ----------------------------------------------------------------

    def parse_input(self, input: AgentInput) -> AgentRequest:
        """Turn any accepted input (see :data:`AgentInput`) into text and validated attachments."""
        return parse_agent_input(input, self.settings.limits)

    def invoke(
        self, input: AgentInput, config: RunnableConfig | None = None, *, conversation: Conversation | None = None,
        **kwargs: Any,
    ) -> Reply:
        """``run`` as a Runnable, traced as a chain run: a turn of ``conversation`` (default: ``agent.conversation``).

        Callbacks see the chain start with a media-free summary of the input (text and attachment
        metadata, never base64), then every LLM call and tool run nested under it.
        """
        request = self.parse_input(input)
        run: Any = self._invoke_request  # langchain-core's types do not model the extra keyword argument
        return self._call_with_config(run, request.summary(), config, run_type="chain", request=request,
                                      conversation=self._own(conversation))

    def _invoke_request(
        self, _summary: Any, config: RunnableConfig, *, request: AgentRequest, conversation: Conversation
    ) -> Reply:
        return self.run(request.text, request.attachments, conversation=conversation, config=config)

    def _own(self, conversation: Conversation | None) -> Conversation:
        return self.conversation if conversation is None else conversation

    def stream(  # type: ignore[override]
        self, input: AgentInput, config: RunnableConfig | None = None, *, conversation: Conversation | None = None,
        **kwargs: Any,
    ) -> Iterator[AgentEvent]:
        """Typed events in order: PlanReady, StepStarted/StepProgress/StepFinished, AnswerToken..., Done.

        The turn is one of ``conversation`` (default: ``agent.conversation``), as for :meth:`invoke`.
        """
        request = self.parse_input(input)
        # Typed as Any: a Runnable's stream chunks are typed as its output (Reply), ours are events.
        transform: Any = self._stream_request
        events: Iterator[Any] = self._transform_stream_with_config(
            iter([request.summary()]), transform, config, run_type="chain", request=request,
            conversation=self._own(conversation),
        )
        yield from events

    def _stream_request(
        self, inputs: Iterator[Any], config: RunnableConfig, *, request: AgentRequest, conversation: Conversation
    ) -> Iterator[AgentEvent]:
        for _ in inputs:  # the summary, already recorded by the chain run
            pass
        yield from stream_in_thread(lambda emit: self.run(
            request.text, request.attachments, conversation=conversation, config=config, on_event=emit,
            stream_answer=True))

    async def astream(  # type: ignore[override]
        self, input: AgentInput, config: RunnableConfig | None = None, *, conversation: Conversation | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AgentEvent]:
        """``stream`` for asyncio: the turn runs on a worker thread, events arrive on the loop."""
        request = await asyncio.to_thread(self.parse_input, input)

        async def summary() -> AsyncIterator[Any]:
            yield request.summary()

        transform: Any = self._astream_request  # see stream(): chunks are events, not Replies
        events: AsyncIterator[Any] = self._atransform_stream_with_config(
            summary(), transform, config, run_type="chain", request=request, conversation=self._own(conversation)
        )
        async for event in events:
            yield event

    async def _astream_request(
        self, inputs: AsyncIterator[Any], config: RunnableConfig, *, request: AgentRequest, conversation: Conversation
    ) -> AsyncIterator[AgentEvent]:
        async for _ in inputs:
            pass
        async for event in astream_in_thread(lambda emit: self.run(
                request.text, request.attachments, conversation=conversation, config=config, on_event=emit,
                stream_answer=True)):
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

        return self | RunnableLambda(reply_message, name="reply_to_message")

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
    """Runs each input on a fresh conversation: what ``Agent.batch`` means by independent requests."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def invoke(self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any) -> Reply:
        return self.agent.invoke(input, config, conversation=Conversation(), **kwargs)
