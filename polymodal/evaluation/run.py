"""Run a planner over evaluation cases and pool the scores: ``polymodal eval`` in Python.

Only planning runs: no tool executes and no tool model loads (the planner reads the tools' names,
descriptions and argument schemas). The router's embedding model or the planning LLM is what
loads, once, on the first case; its time is reported apart (``first_seconds``) and the latency
figures cover the other cases.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel

from polymodal.agent.conversation import ConversationView
from polymodal.agent.fewshot import FewShotExamples
from polymodal.agent.plan import Plan, references
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, Planner, PlanningRequest, PlanOutcome
from polymodal.agent.router import Router
from polymodal.agent.tiers import TieredPlanner
from polymodal.errors import ConfigurationError, PlanningError
from polymodal.evaluation.calibration import calibration
from polymodal.evaluation.cases import EvalCase
from polymodal.evaluation.media import placeholder
from polymodal.evaluation.scoring import Counts, score_plan
from polymodal.evaluation.splits import SplitName, in_split
from polymodal.tools.base import Tool

__all__ = ["CaseResult", "EvalReport", "PlannerName", "evaluate", "make_planner", "request_of"]

PlannerName = Literal["router", "tiered", "defaults", "llm"]


@dataclass
class CaseResult:
    """One case: what was expected, what was planned, and how it scored."""

    id: str
    request: str
    expected: list[str]
    """Expected steps as ``tool(uses)``, e.g. ``speech_synthesizer(s1)``."""
    planned: list[str]
    """Planned steps in the same form, e.g. ``ocr(image_1)``."""
    nodes: Counts
    edges: Counts
    exact: bool
    tier: str
    llm_calls: int
    seconds: float
    cpu_seconds: float
    """CPU time of the planning thread: what planning costs on one thread, however busy the machine is."""
    missing_tools: list[str] = field(default_factory=list)
    error: str = ""
    split: str = "tuning"
    """The case's part (:mod:`polymodal.evaluation.splits`): figures are reported per part."""
    confidence: float | None = None
    """The router's calibrated probability that its plan's tools are right (None: no head, or another tier)."""


@dataclass
class EvalReport:
    """Pooled scores over the scored cases, and every case's result."""

    planner: str
    cases: list[CaseResult]
    skipped: dict[str, str]
    """Case id -> why it was not scored."""
    first_seconds: float
    """Planning time of the first case: it includes loading the router's model or the LLM."""

    @property
    def nodes(self) -> Counts:
        return sum((c.nodes for c in self.cases), Counts())

    @property
    def edges(self) -> Counts:
        return sum((c.edges for c in self.cases), Counts())

    @property
    def exact_rate(self) -> float:
        return sum(c.exact for c in self.cases) / len(self.cases) if self.cases else 0.0

    def latency_ms(self, clock: str = "seconds") -> dict[str, float]:
        """Planning milliseconds per request after the first (mean, median, 95th percentile).

        ``clock``: "seconds" (wall clock) or "cpu_seconds" (the planning thread's CPU time).
        """
        warm = [getattr(c, clock) * 1000 for c in (self.cases[1:] or self.cases)]
        if not warm:
            return {"mean": 0.0, "median": 0.0, "p95": 0.0}
        ordered = sorted(warm)
        return {"mean": statistics.mean(warm), "median": statistics.median(warm),
                "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]}

    def summary(self) -> dict[str, Any]:
        """The headline figures (F1 and rates in percent)."""
        n = len(self.cases)
        return {
            "planner": self.planner,
            "cases": n,
            "skipped": len(self.skipped),
            "node_f1": round(100 * self.nodes.f1, 1),
            "edge_f1": round(100 * self.edges.f1, 1),
            "node_counts": asdict(self.nodes),
            "edge_counts": asdict(self.edges),
            "exact_plans": round(100 * self.exact_rate, 1),
            "llm_calls_per_request": round(sum(c.llm_calls for c in self.cases) / n, 2) if n else 0.0,
            "first_seconds": round(self.first_seconds, 3),
            "planning_ms": {k: round(v, 2) for k, v in self.latency_ms().items()},
            "planning_cpu_ms": {k: round(v, 2) for k, v in self.latency_ms("cpu_seconds").items()},
            "tiers": dict(Counter(c.tier for c in self.cases)),
            "errors": sum(bool(c.error) for c in self.cases),
            "confidently_wrong": self.confidently_wrong,
            "splits": self.by_split(),
        }

    @property
    def confidently_wrong(self) -> int:
        """Cases the router planned itself (no next tier asked) with a tool the gold plan lacks."""
        return sum(c.tier == "router" and c.nodes.fp > 0 for c in self.cases)

    def by_split(self) -> dict[str, dict[str, Any]]:
        """Node and edge F1 and exact plans of each part present (tuning, held-out), apart."""
        found: dict[str, dict[str, Any]] = {}
        for part in ("tuning", "held-out"):
            cases = [c for c in self.cases if c.split == part]
            if cases:
                nodes, edges = sum((c.nodes for c in cases), Counts()), sum((c.edges for c in cases), Counts())
                found[part] = {"cases": len(cases), "node_f1": round(100 * nodes.f1, 1),
                               "edge_f1": round(100 * edges.f1, 1),
                               "exact_plans": round(100 * sum(c.exact for c in cases) / len(cases), 1),
                               "confidently_wrong": sum(c.tier == "router" and c.nodes.fp > 0 for c in cases),
                               **calibration(cases)}
        return found

    def to_dict(self) -> dict[str, Any]:
        """The summary, every case's result and the skipped cases, as JSON-ready data."""
        return {"summary": self.summary(), "cases": [asdict(c) for c in self.cases], "skipped": self.skipped}


class _RouterOnly:
    """The router alone: its plan when confident, else an empty plan (what it would hand on)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def plan(self, request: PlanningRequest, tools: Mapping[str, Tool], *, config: Any = None) -> PlanOutcome:
        route = self.router.route(request, tools)
        outcome = PlanOutcome(plan=route.plan or Plan(), tier="router", reason=route.reason,
                              confidence=route.confidence if route.plan is not None else None)
        outcome.missing_tools = list(getattr(route, "missing_tools", []))
        return outcome


def make_planner(name: PlannerName, *, llm: BaseChatModel | None = None, router: Router | None = None,
                 examples: FewShotExamples | None = None) -> Planner:
    """The planner ``polymodal eval --planner NAME`` scores.

    ``router``: the router alone; ``tiered``: router, then the LLM when one is given, else the
    modality defaults (what an Agent with a router runs); ``defaults``: the modality defaults;
    ``llm``: one LLM call per request (needs ``llm``). ``examples``: the LLM planner's worked
    examples (build them with :func:`~polymodal.evaluation.fewshot.tuning_examples`).
    """
    if name == "defaults":
        return DefaultPlanner()
    if name == "llm":
        if llm is None:
            msg = "the llm planner needs a chat model: pass --llm FOLDER (or llm=...)"
            raise ConfigurationError(msg)
        return LLMPlanner(llm, examples=examples)
    if name == "router":
        return _RouterOnly(router or Router())
    if name == "tiered":
        llm_tier = LLMPlanner(llm, examples=examples) if llm is not None else None
        return TieredPlanner(router or Router(), llm_tier, DefaultPlanner())
    msg = f"unknown planner {name!r} (router, tiered, defaults or llm)"
    raise ConfigurationError(msg)


def evaluate(
    cases: Sequence[EvalCase],
    planner: Planner,
    tools: Mapping[str, Tool],
    *,
    name: str = "",
    on_case: Callable[[CaseResult], None] | None = None,
    split: SplitName = "all",
) -> EvalReport:
    """Plan every scorable case of ``split`` with ``planner`` and score it against its expected plan.

    A planner that fails on a case (PlanningError) scores an empty plan there, and the error is
    recorded; any other error propagates.
    """
    results: list[CaseResult] = []
    cases = [case for case, keep in zip(cases, in_split((c.split for c in cases), split), strict=True) if keep]
    skipped = {case.id: case.skipped for case in cases if case.skipped}
    first = 0.0
    for case in (c for c in cases if not c.skipped):
        result = _run_case(case, planner, tools)
        if not results:
            first = result.seconds
        results.append(result)
        if on_case is not None:
            on_case(result)
    return EvalReport(name or type(planner).__name__, results, skipped, first)


def request_of(case: EvalCase) -> PlanningRequest:
    """The planning request a case makes: its text, with placeholder files of its attachments' kinds."""
    ids = case.attachment_ids
    attachments = {i: placeholder(kind, name).with_id(i) for i, (kind, name) in zip(ids, case.attachments, strict=True)}
    return PlanningRequest(text=case.request, conversation=ConversationView.of(attachments), new_attachment_ids=ids)


def _run_case(case: EvalCase, planner: Planner, tools: Mapping[str, Tool]) -> CaseResult:
    ids = case.attachment_ids
    request = request_of(case)
    error, tier, calls, missing, confidence = "", "", 0, [], None
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        outcome = planner.plan(request, tools)
        plan, tier, calls = outcome.plan, outcome.tier, outcome.llm_calls
        missing = list(getattr(outcome, "missing_tools", []))
        confidence = getattr(outcome, "confidence", None)
    except PlanningError as exc:
        plan, tier, calls, error = Plan(), "failed", exc.attempts, str(exc)
    seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - cpu
    score = score_plan(case, plan, tools)
    expected = [f"{s.label}({', '.join(s.uses)})" for s in case.steps]
    planned = [f"{s.tool}({', '.join(_uses(s.args, set(ids)))})" for s in plan.steps]
    return CaseResult(case.id, case.request, expected, planned, score.nodes, score.edges, score.exact, tier, calls,
                      seconds, cpu_seconds, missing, error, case.split, confidence)


def _uses(args: Mapping[str, Any], attachment_ids: set[str]) -> list[str]:
    found: list[str] = []
    for value in args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in attachment_ids:
                found.append(item)
        found += [ref for ref in references(value) if ref not in found]
    return list(dict.fromkeys(found))
