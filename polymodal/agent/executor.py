"""Run a validated plan as a DAG: every step whose inputs are ready runs at once.

Each step runs on its own daemon thread and the executor waits on a queue with the nearest
deadline as its timeout, so a step that hangs is abandoned *at* its deadline (the thread cannot
be killed in-process, but nothing waits for it: not the request, not interpreter exit). A failed
or timed-out step is recorded; steps that depend on it are skipped; independent steps go on.

Steps call their tool through LangChain's ``invoke`` with a tool call, so callbacks, tags and
tracing see every step as a tool run.

The executor gets the turn's :class:`~polymodal.agent.conversation.Conversation` itself (it is
the one part that writes to it: media a step produces are added there and get their ids), and
reports through the typed events of :mod:`polymodal.agent.events`.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import time
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig

from polymodal.agent.conversation import Conversation
from polymodal.agent.events import EventHook, StepFinished, StepProgress, StepStarted
from polymodal.agent.plan import Plan, Step, references
from polymodal.agent.steps import StepResult, StepStatus
from polymodal.agent.tracing import tool_span
from polymodal.errors import BudgetExceeded, PolymodalError, ToolTimeout, exception_text
from polymodal.media import Attachment
from polymodal.redaction import redact
from polymodal.runtime.calls import Deadline, using_deadline
from polymodal.telemetry import stats
from polymodal.threads import run_in_daemon
from polymodal.tools.base import PROGRESS_EVENT, Tool, ToolContext, using_context

__all__ = ["EventHook", "Executor", "StepResult", "StepStatus"]


class Executor:
    """Runs plans. Stateless between runs; safe to share.

    Args:
        tools: registered tools by name.
        default_timeout: seconds for a step whose tool sets no ``timeout`` (None: no limit).
        max_parallel: most steps running at once.
        host: where model tools run their models (see :mod:`polymodal.runtime.hosts`); None: the default.
    """

    def __init__(
        self, tools: Mapping[str, Tool], *, default_timeout: float | None = None, max_parallel: int = 4,
        host: str | None = None,
    ) -> None:
        self.tools = tools
        self.default_timeout = default_timeout
        self.max_parallel = max(1, max_parallel)
        self.host = host

    def run(
        self,
        plan: Plan,
        conversation: Conversation,
        *,
        config: RunnableConfig | None = None,
        on_event: EventHook | None = None,
        budget_seconds: float | None = None,
    ) -> list[StepResult]:
        """Run ``plan``; return one result per step, in plan order.

        Args:
            conversation: the turn's conversation: steps read its attachments by id, and media
                that steps produce are added to it (its numbering gives their ids).
            config: LangChain run config passed to every tool call (callbacks, tags, metadata).
            on_event: called with a StepStarted and then a StepFinished event (snapshots of the
                step's result) per step, and a StepProgress event when a tool reports progress.
            budget_seconds: wall-clock cap for the whole plan.

        Raises:
            BudgetExceeded: the plan ran past ``budget_seconds``; ``partial`` holds every step's
                result so far (finished ones with their output, the rest timed out or skipped).
        """
        run = _Run(self, plan, conversation, config, on_event)
        if budget_seconds is not None:
            run.budget_deadline = Deadline.after(budget_seconds)
        return run.execute()


class _Run:
    """The state of one plan run (kept off the Executor so runs can overlap)."""

    def __init__(
        self,
        executor: Executor,
        plan: Plan,
        conversation: Conversation,
        config: RunnableConfig | None,
        on_event: EventHook | None,
    ) -> None:
        self.ex = executor
        self.plan = plan
        self.conversation = conversation
        self.attachments = conversation.view().attachments  # what tools read: live, read-only
        self.config = config
        self.on_event = on_event
        self.results = {step.id: StepResult(id=step.id, tool=step.tool, args=dict(step.args)) for step in plan.steps}
        self.waiting = list(plan.steps)
        self.running: dict[str, Deadline] = {}  # step id -> its deadline
        self.finished: queue.Queue[tuple[str, ToolMessage | None, BaseException | None, list[Any]]] = queue.Queue()
        self.t0 = time.perf_counter()
        self.budget_deadline = Deadline.none()
        self.traced = has_listeners(config)

    def execute(self) -> list[StepResult]:
        while self.waiting or self.running:
            self._start_ready()
            if not self.running:
                break  # everything left waits on a failed step: already marked skipped
            self._wait_once()
            if self.budget_deadline.expired():
                self._abandon()
        return [self.results[step.id] for step in self.plan.steps]

    def _abandon(self) -> None:
        """The request's budget ran out: stop waiting, mark what is left, raise with the partial results."""
        spent = self._now()
        for step_id in list(self.running):
            del self.running[step_id]
            result = self.results[step_id]
            result.status, result.error_type = "timeout", "BudgetExceeded"
            result.error, result.seconds = f"stopped: the request's time budget ran out after {spent:.1f} s", (
                spent - result.started)
        for step in self.waiting:
            self.results[step.id].error = "not run: the request's time budget ran out"
        self.waiting.clear()
        partial = [self.results[step.id] for step in self.plan.steps]
        msg = f"the plan ran past its time budget ({spent:.1f} s); {sum(r.ok for r in partial)} step(s) finished"
        raise BudgetExceeded(msg, partial=partial)

    def _start_ready(self) -> None:
        for step in list(self.waiting):
            if len(self.running) >= self.ex.max_parallel:
                return
            deps = {ref for value in step.args.values() for ref in references(value)}
            states = [self.results[d].status for d in deps if d in self.results]
            if any(d in self.running or d in {s.id for s in self.waiting} for d in deps):
                continue
            self.waiting.remove(step)
            if any(state != "ok" for state in states):
                failed = sorted(d for d in deps if self.results[d].status != "ok")
                self._skip(step, f"not run: it needs the output of {', '.join(failed)}, which failed")
            else:
                self._launch(step)

    def _skip(self, step: Step, reason: str) -> None:
        result = self.results[step.id]
        result.status, result.error, result.started = "skipped", reason, self._now()
        self._finished(result)

    def _launch(self, step: Step) -> None:
        tool = self.ex.tools[step.tool]
        result = self.results[step.id]
        result.args = self._resolve_args(step, tool)
        result.started = self._now()
        timeout = tool.timeout if tool.timeout is not None else self.ex.default_timeout
        deadline = self.running[step.id] = Deadline.after(timeout)
        if self.on_event is not None:
            self.on_event(StepStarted(step=result.model_copy()))  # a snapshot: the run keeps updating it
        ctx = ToolContext(attachments=self.attachments, step_id=step.id, progress=self._progress(step),
                          host=self.ex.host)
        call = {"type": "tool_call", "name": tool.name, "args": result.args, "id": step.id}
        context = contextvars.copy_context()

        def work() -> None:
            message, error = None, None
            try:
                with using_context(ctx), using_deadline(deadline), tool_span(tool, step.id, self.ex.host):
                    message = tool.run_call(call, self.config, traced=self.traced)
            except BaseException as exc:  # noqa: BLE001 - reported as the step's error
                error = exc
            self.finished.put((step.id, message, error, ctx.errors))

        run_in_daemon(lambda: context.run(work))

    def _wait_once(self) -> None:
        timeout = Deadline.earliest([*self.running.values(), self.budget_deadline]).remaining()
        try:
            step_id, message, error, errors = self.finished.get(timeout=timeout)
        except queue.Empty:
            self._expire()
            return
        if step_id not in self.running:
            return  # a step that already timed out finished late: its output is not used
        del self.running[step_id]
        self._record(self.results[step_id], message, error, errors)

    def _expire(self) -> None:
        now = time.monotonic()
        for step_id, deadline in list(self.running.items()):
            if deadline.expired(now):
                del self.running[step_id]
                result = self.results[step_id]
                tool = self.ex.tools[result.tool]
                limit = tool.timeout if tool.timeout is not None else self.ex.default_timeout
                exc = ToolTimeout(result.tool, float(limit or 0))
                result.status, result.error, result.error_type = "timeout", str(exc), type(exc).__name__
                result.seconds = self._now() - result.started
                self._finished(result)

    def _record(
        self, result: StepResult, message: ToolMessage | None, error: BaseException | None, errors: list[Any]
    ) -> None:
        """Store a finished step's output or error; nothing a tool raised may escape from here (T2)."""
        result.seconds = self._now() - result.started
        try:
            if error is not None or message is None or message.status == "error":
                self._record_error(result, message, errors[-1] if errors else error)
            else:
                result.content = message.content if isinstance(message.content, str) else str(message.content)
                result.artifact = message.artifact
                for produced in _attachments_in(message.artifact):
                    result.artifact_ids.append(self.conversation.add(produced).id or "")
                result.status = "ok"
        except Exception as exc:  # noqa: BLE001 - a tool's output that cannot even be stored is its failure
            result.content, result.artifact = None, None  # a failed step has no output to read
            self._record_error(result, None, exc)
        self._finished(result)

    @staticmethod
    def _record_error(result: StepResult, message: ToolMessage | None, cause: BaseException | None) -> None:
        result.status = "error"
        if cause is None:
            text = message.content if message is not None and isinstance(message.content, str) else "failed"
            result.error, result.error_type = text, "ToolError"
        elif isinstance(cause, PolymodalError):
            result.error, result.error_type = exception_text(cause), type(cause).__name__
        else:
            text = exception_text(cause)
            result.error, result.error_type = f"{result.tool}: {type(cause).__name__}: {text}", type(cause).__name__
        result.error = redact(result.error)

    def _resolve_args(self, step: Step, tool: Tool) -> dict[str, Any]:
        media = tool.input_modalities
        return {name: self._resolve_value(value, name in media) for name, value in step.args.items()}

    def _resolve_value(self, value: Any, is_media: bool) -> Any:
        if isinstance(value, list):
            return [self._resolve_value(item, is_media) for item in value]
        if isinstance(value, dict):  # references() finds references in mappings too: they are edges of the DAG
            return {key: self._resolve_value(item, is_media) for key, item in value.items()}
        if not isinstance(value, str):
            return value
        if value in self.results:
            earlier = self.results[value]
            if is_media:
                return earlier.artifact_ids[0] if earlier.artifact_ids else value
            return earlier.content or ""
        for ref in set(references(value)):
            value = value.replace("{" + ref + "}", self.results[ref].content or "")
        return value

    def _finished(self, result: StepResult) -> None:
        stats.observe_step(result.tool, result.status, result.seconds)  # for a server's /metrics
        if self.on_event is not None:
            self.on_event(StepFinished(step=result.model_copy()))

    def _progress(self, step: Step) -> Callable[[str, float | None], None]:
        """The step's progress hook: to ``on_event`` and, as a LangChain custom event, to callbacks."""

        def progress(message: str, fraction: float | None = None) -> None:
            share = None if fraction is None else min(1.0, max(0.0, float(fraction)))
            report = StepProgress(step_id=step.id, tool=step.tool, message=str(message)[:500], fraction=share)
            if self.on_event is not None:
                self.on_event(report)
            dispatch_progress(report)

        return progress

    def _now(self) -> float:
        return time.perf_counter() - self.t0


def has_listeners(config: RunnableConfig | None) -> bool:
    """Whether any callback would see this run's tool calls (the config's, or the environment's tracers).

    Decided once per plan: when nobody listens, steps skip LangChain's per-call run bookkeeping
    (:meth:`polymodal.tools.base.Tool.run_call`); when anyone does, every step is a traced tool run.
    """
    from langchain_core.runnables.config import ensure_config, get_callback_manager_for_config

    return bool(get_callback_manager_for_config(ensure_config(config)).handlers)


def dispatch_progress(report: StepProgress) -> None:
    """Send ``report`` to the current LangChain run's callbacks as a custom event.

    It must be called on the tool's thread: the tool's run config lives in a context variable
    there (the executor copies the context into each step's thread). Outside any run there is no
    parent to attach the event to, and progress is simply not reported.
    """
    from langchain_core.callbacks import dispatch_custom_event

    with contextlib.suppress(RuntimeError):  # no parent run: a direct call with no callbacks configured
        dispatch_custom_event(PROGRESS_EVENT, report.model_dump(exclude={"type"}))


def _attachments_in(artifact: Any) -> list[Attachment]:
    if isinstance(artifact, Attachment):
        return [artifact]
    if isinstance(artifact, list | tuple):
        return [item for item in artifact if isinstance(item, Attachment)]
    return []
