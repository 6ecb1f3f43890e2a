"""The plan: a small DAG of tool calls, fixed before any tool runs (a public contract).

The LLM planner answers JSON that validates against ``Plan.model_json_schema()``::

    {"steps": [
      {"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}},
      {"id": "s2", "tool": "captioner",   "args": {"image": "image_1"}},
      {"id": "s3", "tool": "image_generator", "args": {"prompt": "a poster of: {s2}"}}
    ]}

An argument names an attachment by id (``image_1``) or the output of an earlier step: the whole
value ``"s2"``, or ``{s2}`` inside a string (also in the items of a list or mapping argument). Those
references are the DAG's edges. Everything the contract forbids is caught by :func:`validate_plan`
before any model loads, and reported as one :class:`PlanValidationError` whose lines name the
field, so the planner can re-ask precisely.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.errors import PlanValidationError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import ACCEPTS, Tool

__all__ = ["Plan", "Step", "references", "validate_plan"]

STEP_ID = r"^s[0-9]{1,3}$"
_INLINE_REF = re.compile(r"\{(s[0-9]{1,3})\}")
_WHOLE_REF = re.compile(STEP_ID)


class Step(BaseModel):
    """One tool call."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STEP_ID, description="step id: s1, s2, ... in order")
    """``s1``, ``s2``, ...: what later steps use to refer to this step's output."""
    tool: str = Field(description="name of a registered tool")
    """The registered tool to call."""
    args: dict[str, Any] = Field(default_factory=dict, description="arguments, per the tool's schema")
    """Arguments for the tool's args schema; may reference attachments and earlier steps."""


class Plan(BaseModel):
    """What to run for a request. ``steps`` may be empty: fusion then answers from the request alone."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(default_factory=list)
    """Tool calls; a step may only reference steps listed before it."""
    answer: str | None = Field(
        default=None,
        pattern=STEP_ID,
        description="optional: id of the one step whose output alone answers the request (skips fusion)",
    )
    """When set, that step's output is the reply and no fusion call is made."""


def references(value: Any) -> Iterator[str]:
    """Every step id an argument value refers to (whole value ``s2`` or ``{s2}`` inside text)."""
    if isinstance(value, str):
        if _WHOLE_REF.match(value):
            yield value
        else:
            yield from _INLINE_REF.findall(value)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)


def validate_plan(
    plan: Plan,
    tools: Mapping[str, Tool],
    attachments: Mapping[str, Attachment],
    *,
    max_steps: int = 8,
) -> Plan:
    """Check a plan against the registered tools and the request's attachments.

    Raises:
        PlanValidationError: listing every problem found, each prefixed with its location.
    """
    problems: list[str] = []
    if len(plan.steps) > max_steps:
        problems.append(f"steps: {len(plan.steps)} steps, more than the limit of {max_steps} (max_steps)")
    produced: dict[str, Modality] = {}  # step id -> output modality, for steps seen so far
    for index, step in enumerate(plan.steps):
        where = f"steps[{index}] ({step.id})"
        if step.id in produced:
            problems.append(f"{where}: duplicate step id {step.id!r}")
        tool = tools.get(step.tool)
        if tool is None:
            registered = ", ".join(sorted(tools)) or "none"
            problems.append(f"{where}.tool: unknown tool {step.tool!r}; registered tools: {registered}")
        else:
            problems.extend(_check_args(where, step, tool, produced, attachments))
        produced[step.id] = tool.output_modality if tool is not None else Modality.TEXT
    if plan.answer is not None and plan.answer not in produced:
        problems.append(f"answer: {plan.answer!r} is not a step of this plan")
    if problems:
        raise PlanValidationError(problems)
    return plan


def _check_args(
    where: str,
    step: Step,
    tool: Tool,
    produced: Mapping[str, Modality],
    attachments: Mapping[str, Attachment],
) -> list[str]:
    problems = _check_references(where, step, produced)
    media = tool.input_modalities
    for arg, modality in media.items():
        value = step.args.get(arg)
        for ref in value if isinstance(value, list) else [value]:
            if ref is None or not isinstance(ref, str) or ref in produced:
                continue
            problems.extend(_check_attachment(f"{where}.args.{arg}", ref, modality, attachments))
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, str) and ref in produced and produced[ref] not in ACCEPTS[modality]:
                problems.append(
                    f"{where}.args.{arg}: step {ref} outputs {produced[ref].value}, but {tool.name} "
                    f"needs {modality.value} here"
                )
    schema = tool.args_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            schema.model_validate(step.args)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(part) for part in error["loc"])
                problems.append(f"{where}.args.{loc}: {error['msg']} (tool {tool.name})")
    return problems


def _check_references(where: str, step: Step, produced: Mapping[str, Modality]) -> list[str]:
    problems = []
    for arg, value in step.args.items():
        for ref in references(value):
            if ref == step.id:
                problems.append(f"{where}.args.{arg}: a step cannot use its own output ({ref})")
            elif ref not in produced:
                problems.append(
                    f"{where}.args.{arg}: refers to {ref}, which is not an earlier step "
                    "(steps may only use the outputs of steps listed before them)"
                )
    return problems


def _check_attachment(
    where: str, ref: str, modality: Modality, attachments: Mapping[str, Attachment]
) -> list[str]:
    attachment = attachments.get(ref)
    if attachment is None:
        known = ", ".join(sorted(attachments)) or "none"
        return [f"{where}: {ref!r} is not an attachment id of this conversation (attachments: {known})"]
    if attachment.kind not in ACCEPTS[modality]:
        return [f"{where}: {ref} is {attachment.kind.value}, but this argument takes {modality.value}"]
    return []
