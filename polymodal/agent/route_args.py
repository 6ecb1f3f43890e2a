"""The router's argument filling: what each step takes from its clause, the files and earlier steps.

The embedding says which tool a clause goes to; these functions say what that tool is given:
media arguments take the attachment the clause names or an earlier step's output it points back
at, the one free-text argument the words (quoted text, the text an earlier step reads), CLIP's
labels the listed options, a frame's ``at`` the time in the clause. Every candidate is validated
against the tool's args schema, so a route never hands on arguments the tool would reject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from polymodal.agent.clauses import labels, own_payload, quotations, refers_back, spoken_text
from polymodal.agent.plan import Step, references
from polymodal.agent.planner import PlanningRequest
from polymodal.media import Attachment, Modality
from polymodal.tools.base import ACCEPTS, Tool

__all__ = ["Draft", "Source", "drop_unused_lead_ins", "fill", "fill_args", "is_list", "uses_sources"]

_TIME = re.compile(r"\b(\d{1,2}:\d{2}(?::\d{2})?)\b|\bat\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b", re.I)
_POINTS_AT_MEDIA = re.compile(r"\b(?:it|this|that|the|my|attached)\s+(?:photo|image|picture|drawing|recording|"
                              r"audio|clip|video|one)\b|\bit\b", re.I)


@dataclass
class Source:
    """Something a step can consume: an attachment, or an earlier step's output."""

    ref: str
    kind: Modality
    produced: bool


@dataclass
class Draft:
    """The plan being built, clause by clause."""

    request: PlanningRequest
    quotes: list[str]
    steps: list[Step] = field(default_factory=list)
    produced: list[Source] = field(default_factory=list)
    lead_ins: set[str] = field(default_factory=set)
    chores: list[str] = field(default_factory=list)
    """Clauses asking for a chore on text ("summarize it") that the answer's writer does."""

    def next_id(self) -> str:
        return f"s{len(self.steps) + 1}"


def fill_args(tool: Tool, clause: str, request: PlanningRequest) -> list[dict[str, Any]] | None:
    """Arguments for ``tool`` from one clause of ``request`` alone (one dict per attachment), or None.

    See :func:`fill`; this is the same with no earlier clause in the plan.
    """
    return fill(tool, clause, Draft(request, quotations(request.text)))


def fill(tool: Tool, clause: str, draft: Draft) -> list[dict[str, Any]] | None:
    """Arguments for ``tool`` from ``clause``, the request's files and what earlier clauses produce.

    Media arguments take the clause's source (see :func:`_sources`); a tool that needs no file
    (image generation) takes an optional one only when the clause points at it. The one required
    free-text argument takes the text (:func:`_text_for`), and visual QA's optional ``question``
    the clause; CLIP's ``labels`` are read from the clause, a frame's ``at`` from its time. Any
    other required argument is beyond the router: None, and the next tier plans. Every candidate
    is checked against the tool's args schema (its validators too).
    """
    schema = tool.args_schema
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return None
    media = tool.input_modalities
    # A tool whose required input is text (image generation) takes an optional file only when pointed at.
    generative = not any(schema.model_fields[n].is_required() for n in media if n in schema.model_fields) and any(
        info.is_required() and _is_text(info.annotation) for n, info in schema.model_fields.items() if n not in media)
    base: dict[str, Any] = {}
    fan_out: tuple[str, list[str]] | None = None
    text_filled = False
    produced = {source.ref for source in draft.produced}
    for name, info in schema.model_fields.items():
        if name in media:
            found = _sources(media[name], clause, draft, exact=not info.is_required())
            taken = {v for k, v in base.items() if k in media and isinstance(v, str)}
            found = [ref for ref in found if ref not in taken]
            if not info.is_required() and any(ref in produced for ref in taken):
                found = [ref for ref in found if ref not in produced]  # a step consumes one earlier output
            if not info.is_required() and generative and not _POINTS_AT_MEDIA.search(clause):
                found = []  # "draw a castle" with a photo attached is not image-to-image
            if is_list(info.annotation):
                if found:
                    base[name] = found
                elif info.is_required():
                    return None
            elif found and (info.is_required() or len(found) == 1):
                if len(found) > 1 and fan_out is None:
                    fan_out = (name, found)
                else:
                    base[name] = found[0]
            elif info.is_required():
                return None
        elif name == "labels" and is_list(info.annotation):
            found_labels = labels(clause)
            if found_labels is None:
                if info.is_required():
                    return None
                continue
            base[name] = found_labels
        elif name == "at" and info.is_required():
            moment = _TIME.search(clause)
            if moment is None:
                return None
            base[name] = moment.group(1) or float(moment.group(2))
        elif info.is_required():
            if not _is_text(info.annotation) or text_filled:
                return None  # only one free-text argument can be filled from the request
            base[name] = _text_for(name, clause, draft)
            text_filled = True
    question = schema.model_fields.get("question")
    if not text_filled and question is not None and _is_text(question.annotation):
        base["question"] = clause  # visual QA with an optional question: the clause is the question
    variants = [base] if fan_out is None else [{**base, fan_out[0]: ref} for ref in fan_out[1]]
    valid = [args for args in variants if _valid(schema, args)]
    return valid or None


def _text_for(name: str, clause: str, draft: Draft) -> str:
    """The text a clause hands a text-taking tool (speech, image generation).

    In order: what the clause spells out (quoted, after a colon); the latest text an earlier step
    produces, when the clause refers back to it ("say it", "based on the caption"); text quoted
    elsewhere in the request ("turn this sentence into speech: ... 'hello'"); for speech, the rest
    of the clause after its verb ("say hello" -> "hello"); else the clause.
    """
    own = own_payload(clause)
    if own:
        return own
    text_steps = [s.ref for s in draft.produced if s.kind is Modality.TEXT]
    if text_steps and refers_back(clause):
        return "{" + text_steps[-1] + "}"
    if draft.quotes:
        return draft.quotes[0]
    if name == "text":
        return spoken_text(clause) or clause
    return clause


def _sources(modality: Modality, clause: str, draft: Draft, *, exact: bool) -> list[str]:
    """What an argument of ``modality`` can take here, best first.

    Attachments the clause names; else an earlier step's output when no attachment fits or the
    clause points back at it ("describe *it*", "the picture"); else the request's new attachments;
    else the latest one (a follow-up: "and what colour is it?"). ``exact``: only that very kind
    (an optional argument never takes a video for its audio).
    """
    accepted = {modality} if exact else ACCEPTS[modality]
    usable = {i: a for i, a in draft.request.attachments.items() if a.kind in accepted}
    named = [i for i, a in usable.items() if _mentions(clause, i, a)]
    if named:
        return named
    produced = [s.ref for s in draft.produced if s.kind in accepted]
    new = [i for i in draft.request.new_attachment_ids if i in usable]
    new = [i for i in new if usable[i].kind is modality] or new  # "the voice note" is the audio, not the video
    if produced and (not new or refers_back(clause, media=True)):
        return produced[-1:]
    if new:
        return new
    return list(usable)[-1:]


def _mentions(clause: str, ident: str, attachment: Attachment) -> bool:
    lowered = clause.lower()
    return ident.lower() in lowered or bool(attachment.name and attachment.name.lower() in lowered)


def _valid(schema: type[BaseModel], args: dict[str, Any]) -> bool:
    try:
        schema.model_validate(args)
    except ValidationError:
        return False
    return True


def _is_text(annotation: Any) -> bool:
    """``str`` or ``str | None``."""
    members = get_args(annotation)
    return annotation is str or (str in members and all(a in (str, type(None)) for a in members))


def uses_sources(tool: Tool, steps_args: list[dict[str, Any]]) -> bool:
    media = tool.input_modalities
    return any(arg in media for args in steps_args for arg in args)


def is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))


def drop_unused_lead_ins(draft: Draft) -> list[Step]:
    """"Look at this picture and tell me ...": the look is a step only if a later step uses its output."""
    used = {ref for step in draft.steps for value in step.args.values() for ref in references(value)}
    kept = [step for step in draft.steps if step.id not in draft.lead_ins or step.id in used]
    if len(kept) == len(draft.steps):
        return draft.steps
    renamed = {step.id: f"s{i}" for i, step in enumerate(kept, start=1)}
    return [Step(id=renamed[s.id], tool=s.tool, args={k: _renamed(v, renamed) for k, v in s.args.items()})
            for s in kept]


def _renamed(value: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(value, list):
        return [_renamed(item, renamed) for item in value]
    if isinstance(value, str):
        if value in renamed:
            return renamed[value]
        return re.sub(r"\{(s\d+)\}", lambda m: "{" + renamed.get(m.group(1), m.group(1)) + "}", value)
    return value
