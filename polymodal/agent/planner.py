"""Turn a request into a validated Plan: one LLM call, or none.

:class:`LLMPlanner` asks any LangChain chat model once for a plan, validates it against the
tools and attachments, and on failure re-asks with the exact problems (bounded, with tenacity),
the way instructor repairs outputs. :class:`DefaultPlanner` (:mod:`polymodal.agent.defaults`)
plans with no LLM at all; the contract every planner keeps (:class:`PlanningRequest` in,
:class:`PlanOutcome` out) is :mod:`polymodal.agent.planning`. Both are re-exported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ValidationError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from polymodal.agent.defaults import DefaultPlanner
from polymodal.agent.fewshot import FewShotExamples
from polymodal.agent.plan import Plan, validate_plan
from polymodal.agent.planning import DEFAULT_MAX_STEPS, Planner, PlanningRequest, PlanOutcome, Tier, clean_text
from polymodal.errors import PlanningError, PlanValidationError, exception_text
from polymodal.media import Attachment
from polymodal.prompts import render_prompt
from polymodal.prompts.bounds import ERROR_CHARS, HISTORY_CHARS, HISTORY_TURN_CHARS, REQUEST_CHARS, clip
from polymodal.redaction import redact
from polymodal.tools.base import Tool
from polymodal.transient import RetryPolicy, call_with_retry, is_transient

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DefaultPlanner",
    "LLMPlanner",
    "PlanOutcome",
    "Planner",
    "PlanningRequest",
    "parse_plan",
    "parse_plans",
    "Tier",
    "clean_text",
    "strip_reasoning",
]



class LLMPlanner:
    """Plans with ONE call to a chat model; re-asks only when the answer breaks the contract.

    Args:
        llm: any LangChain chat model.
        max_attempts: total calls allowed (1 + re-asks) before PlanningError.
        max_steps: the most steps a plan may have; None (default): the request's ``max_steps``
            (inside an Agent, its ``Settings.max_steps``).
        structured: use the model's structured-output mode (``with_structured_output``). None
            (default) uses it when the model class implements native tool calling, plain JSON
            parsed from text otherwise.
        retry: how a call that fails transiently (connection reset, timeout, 5xx, rate limit) is
            retried; such retries are not re-asks and do not count against ``max_attempts``.
        examples: solved requests to show the LLM, the nearest few per request
            (:class:`~polymodal.agent.fewshot.FewShotExamples`); None shows none.
    """

    def __init__(
        self,
        llm: BaseChatModel,
        *,
        max_attempts: int = 3,
        max_steps: int | None = None,
        structured: bool | None = None,
        retry: RetryPolicy | None = None,
        examples: FewShotExamples | None = None,
    ) -> None:
        self.llm = llm
        self.examples = examples
        self.max_attempts = max(1, max_attempts)
        self.max_steps = max_steps
        self.structured = _supports_structured_output(llm) if structured is None else structured
        self.retry = retry or RetryPolicy()

    def plan(
        self, request: PlanningRequest, tools: Mapping[str, Tool], *, config: RunnableConfig | None = None
    ) -> PlanOutcome:
        prompt = planner_prompt(request, tools)
        if self.examples is not None:  # the solved requests nearest this one, bounded
            prompt = self.examples.add_to(prompt, request.text)
        messages: list[BaseMessage] = [HumanMessage(content=prompt)]
        raw_outputs: list[str] = []
        max_steps = self.max_steps if self.max_steps is not None else request.max_steps
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception_type(PlanValidationError),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    raw, parsed = self._ask(messages, config, raw_outputs)
                    raw_outputs.append(raw)
                    try:
                        plans = parse_plans(raw) if parsed is None else [_plan_from_dict(parsed)]
                        plan = _first_valid(plans, tools, request.attachments, max_steps)
                    except PlanValidationError as exc:
                        messages += [AIMessage(content=clip(raw, REQUEST_CHARS, "your answer")),
                                     HumanMessage(content=_reask(exc))]
                        raise
        except RetryError as exc:
            last = exc.last_attempt.exception()
            problems = str(last) if last is not None else "unknown"
            msg = f"the planner LLM gave no valid plan in {len(raw_outputs)} attempts; last problem: {problems}"
            raise PlanningError(msg, raw_outputs=raw_outputs, attempts=len(raw_outputs),
                                last_error=problems) from last
        return PlanOutcome(plan=plan, tier="llm", llm_calls=len(raw_outputs), raw_outputs=raw_outputs)

    def _ask(
        self, messages: list[BaseMessage], config: RunnableConfig | None, raw_outputs: list[str]
    ) -> tuple[str, dict[str, Any] | None]:
        """One planning answer; transient failures retried, and a failure that remains is a PlanningError (T6)."""
        try:
            return call_with_retry(lambda: self._ask_once(messages, config), self.retry, what="planner LLM call")
        except Exception as exc:
            retries = self.retry.attempts - 1 if is_transient(exc) else 0
            retried = f" (retried {retries} times)" if retries else ""
            problem = clip(redact(f"{type(exc).__name__}: {exception_text(exc)}"), 300, "error")
            msg = f"the planner LLM call failed{retried}: {problem}"
            raise PlanningError(msg, raw_outputs=raw_outputs, attempts=len(raw_outputs) + 1,
                                last_error=problem) from exc

    def _ask_once(
        self, messages: list[BaseMessage], config: RunnableConfig | None
    ) -> tuple[str, dict[str, Any] | None]:
        if self.structured:
            runnable = self.llm.with_structured_output(json.loads(plan_schema()), include_raw=True)
            out = runnable.invoke(messages, config=config)
            parsed = out.get("parsed") if isinstance(out, dict) else None
            raw_message = out.get("raw") if isinstance(out, dict) else None
            if isinstance(parsed, dict):
                return json.dumps(parsed), parsed
            return _text_of(raw_message), None
        return _text_of(self.llm.invoke(messages, config=config)), None


def _first_valid(
    plans: Sequence[Plan], tools: Mapping[str, Tool], attachments: Mapping[str, Attachment], max_steps: int
) -> Plan:
    """The first of ``plans`` that passes :func:`validate_plan`; else the first one's problems."""
    first_error: PlanValidationError | None = None
    for plan in plans:
        try:
            return validate_plan(plan, tools, attachments, max_steps=max_steps)
        except PlanValidationError as exc:
            first_error = first_error or exc
    assert first_error is not None  # parse_plans never returns an empty list
    raise first_error


def _supports_structured_output(llm: BaseChatModel) -> bool:
    """True when the model's class implements tool calling itself (OpenAI, Anthropic, Ollama...)."""
    return type(llm).bind_tools is not BaseChatModel.bind_tools


def _text_of(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content or "")


def _reask(exc: PlanValidationError) -> str:
    problems = clip("\n".join(f"- {clip(p, ERROR_CHARS, 'problem')}" for p in exc.problems), 4 * ERROR_CHARS,
                    "the list of problems")
    return f"That plan was rejected:\n{problems}\nReply with the corrected JSON object only."


def parse_plan(raw: str) -> Plan:
    """Parse a plan from an LLM's text: the last plan in it (see :func:`parse_plans`).

    Raises:
        PlanValidationError: not JSON, JSON cut off (said distinctly: max tokens), or not a plan.
    """
    return parse_plans(raw)[0]


def parse_plans(raw: str) -> list[Plan]:
    """Every schema-valid plan in an LLM's text, the last one first (P1, P2).

    Models wrap the plan in all sorts of text: a ```json fence, prose before and after it, a
    ``<think>...</think>`` block (or, when the chat template opened the block in the prompt, only
    its ``</think>``), a draft plan followed by a corrected one. So the text is not read from its
    first brace: reasoning blocks are removed, then every top-level JSON value in what is left is
    a candidate (at most ``MAX_PLAN_CANDIDATES`` starting braces are tried; a value nested inside
    another is not a candidate of its own). Candidates that validate as a :class:`Plan` are
    returned, last first: a final answer comes after drafts and examples. Only when the text
    without reasoning holds no plan is the reasoning searched too.

    Raises:
        PlanValidationError: no candidate is a plan. The problem says which: no JSON at all (prose),
            JSON cut off at the end (the model hit its token limit), invalid JSON, or the
            validation errors of the candidate most like a plan (the last one with ``steps``).
    """
    stripped = strip_reasoning(raw)
    values, errors = _json_values(stripped)
    plans, problems = _plans_in(values)
    if not plans and stripped != raw:  # the plan may sit inside the reasoning (an unclosed <think>)
        more_values, more_errors = _json_values(raw)
        plans, more_problems = _plans_in(more_values)
        errors, problems = errors or more_errors, problems or more_problems
    if plans:
        return plans[::-1]
    cut = [(start, exc) for start, exc in errors
           if exc.pos >= len(exc.doc.rstrip()) - 1 or "Unterminated" in exc.msg]
    if problems and not cut:
        raise problems[-1]
    if cut:  # before the problems: fragments of a cut-off plan (its complete steps) decode as bad candidates
        start, exc = cut[0]
        problem = (f"output: the JSON is cut off after {len(exc.doc) - start} characters (did the answer hit the "
                   "model's token limit?); reply with a shorter, complete JSON object")
        raise PlanValidationError([problem]) from exc
    if errors:
        exc = errors[0][1]
        raise PlanValidationError([f"output: not valid JSON: {exc.msg} at character {exc.pos}"]) from exc
    preview = raw.strip()[:80] or "an empty answer"
    raise PlanValidationError([f"output: expected a JSON object, got prose: {preview!r}"])


MAX_PLAN_CANDIDATES = 64
_REASONING_TAGS = r"think|thinking|reasoning|reflection"
_REASONING_BLOCK = re.compile(rf"<({_REASONING_TAGS})\b[^>]*>.*?</\1\s*>", re.I | re.S)
_REASONING_TAIL = re.compile(rf"^.*</(?:{_REASONING_TAGS})\s*>", re.I | re.S)
_REASONING_OPEN = re.compile(rf"<(?:{_REASONING_TAGS})\b[^>]*>.*\Z", re.I | re.S)


def strip_reasoning(text: str) -> str:
    """``text`` without reasoning blocks: ``<think>...</think>`` (and ``thinking``, ``reasoning``).

    A closing tag with no opening one (the chat template opened the block in the prompt) drops
    everything before it; an opening tag never closed (the reasoning hit the token limit) drops
    everything after it.
    """
    text = _REASONING_BLOCK.sub(" ", text)
    text = _REASONING_TAIL.sub(" ", text)
    return _REASONING_OPEN.sub(" ", text)


def _json_values(text: str) -> tuple[list[Any], list[tuple[int, json.JSONDecodeError]]]:
    """Top-level JSON values in ``text``, in order, and the decode errors of braces that began none."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    errors: list[tuple[int, json.JSONDecodeError]] = []
    position = 0
    for _ in range(MAX_PLAN_CANDIDATES):
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            errors.append((start, exc))
            position = start + 1
        except RecursionError:  # absurdly deep nesting: not a plan
            position = start + 1
        else:
            values.append(value)
    return values, errors


def _plans_in(values: Sequence[Any]) -> tuple[list[Plan], list[PlanValidationError]]:
    """The values that are plans, and for the others (those with ``steps`` last) why they are not."""
    plans: list[Plan] = []
    problems: list[tuple[bool, int, PlanValidationError]] = []
    for index, value in enumerate(values):
        try:
            plans.append(_plan_from_dict(value))
        except PlanValidationError as exc:
            looks_like_plan = isinstance(value, list) or (isinstance(value, dict) and "steps" in value)
            problems.append((looks_like_plan, index, exc))
    return plans, [exc for _, _, exc in sorted(problems, key=lambda p: (p[0], p[1]))]


def _plan_from_dict(data: Any) -> Plan:
    if isinstance(data, list):  # a bare list of steps is an obvious intent; accept it
        data = {"steps": data}
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors()]
        raise PlanValidationError(problems) from exc


@cache
def plan_schema() -> str:
    """The Plan JSON schema as compact text; generating it costs milliseconds, so once per process."""
    return json.dumps(Plan.model_json_schema(), separators=(",", ":"))


def planner_prompt(request: PlanningRequest, tools: Mapping[str, Tool]) -> str:
    """The one planning prompt: tools, attachments, recent turns, schema, request."""
    return render_prompt(
        "planner",
        tools="\n".join(describe_tool(tool) for tool in tools.values()) or "(no tools)",
        attachments=describe_attachments(request.attachments, released=request.released_attachments),
        history=describe_history(request.history),
        schema=plan_schema(),
        request=describe_request(request.text),
    )


def describe_request(text: str) -> str:
    """The user's request as a prompt quotes it: control characters dropped, bounded (A9)."""
    return clip(clean_text(text), REQUEST_CHARS, "request")


def describe_tool(tool: Tool) -> str:
    """``- name: description`` and one line per argument, as the planner reads it."""
    lines = [f"- {tool.name}: {' '.join(tool.description.split())}"]
    schema = tool.args_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        media = tool.input_modalities
        for name, info in schema.model_fields.items():
            kind = f"{media[name].value} id" if name in media else _type_name(info.annotation)
            need = "required" if info.is_required() else f"optional, default {info.default!r}"
            text = f" {info.description}" if info.description else ""
            lines.append(f"    {name} ({kind}, {need}):{text}")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def describe_attachments(attachments: Mapping[str, Attachment], released: int = 0) -> str:
    """One ``describe()`` line per attachment: the planner sees metadata, never pixels.

    ``released`` earlier attachments are only counted: listing every file a long conversation
    ever had would make each turn's prompt longer than the last.
    """
    lines = [f"- {a.describe()}" for a in attachments.values()]
    if released:
        lines.append(f"- ({released} earlier attachment{'s' if released != 1 else ''} of this conversation "
                     "no longer available)")
    return "\n".join(lines) or "(none)"


def describe_history(
    history: Sequence[tuple[str, str]], turns: int | None = None, chars: int = HISTORY_TURN_CHARS
) -> str:
    """Earlier turns, oldest first, for "and what colour is it?" (A9: bounded).

    Each side of a turn is clipped to ``chars``; when the turns together exceed ``HISTORY_CHARS``
    the oldest are left out, and a line says how many. ``turns`` keeps only the last ``turns``
    (the agent already passes ``Settings.history_turns`` of them).
    """
    kept = list(history)[-turns:] if turns else list(history)
    blocks = [f"User: {clip(clean_text(user), chars, 'message')}\n"
              f"Assistant: {clip(clean_text(reply), chars, 'message')}" for user, reply in kept]
    while len(blocks) > 1 and sum(len(b) + 1 for b in blocks) > HISTORY_CHARS:
        blocks.pop(0)
    dropped = len(kept) - len(blocks)
    lines = [f"({dropped} earlier turn{'s' if dropped != 1 else ''} not shown)"] if dropped else []
    return "\n".join(lines + blocks) or "(first turn)"
