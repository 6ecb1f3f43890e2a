"""Score one plan against one case: TaskBench's node and edge counts, and whether the plan is exact.

TaskBench scores tool *names*: per task, the set of predicted tools against the set of gold tools
(node F1) and the set of (source tool, target tool) pairs against the gold pairs (edge F1), with
true/false positives and negatives pooled over all tasks before one F1 is computed. A gold tool
may be matched by any polymodal tool its mapping allows, and each predicted tool matches at most
one gold tool (a maximum bipartite matching, so "captioner or clip_matcher" cannot count twice).

Edges come from references: TaskBench's ``<node-k>`` arguments (not ``task_links``), a plan's step
references (``"s1"``, or ``{s1}`` inside text).

A plan is *exact* when its steps correspond one to one with the expected steps: a tool that counts,
the same attachments, the same earlier steps (through the correspondence) and the expected argument
values. Step order and ids do not matter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from polymodal.agent.plan import Plan, Step, references
from polymodal.evaluation.cases import EvalCase, ExpectedStep
from polymodal.tools.base import Tool

__all__ = ["Counts", "PlanScore", "score_plan"]

_ARTICLE = re.compile(r"^(a|an|the)\s+", re.I)


@dataclass
class Counts:
    """True positives, false positives and false negatives, poolable over cases."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Micro F1 of the pooled counts, 0..1 (1.0 when there was nothing to find and nothing found)."""
        if not (self.tp or self.fp or self.fn):
            return 1.0
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)


@dataclass
class PlanScore:
    """How one plan scored against one case."""

    nodes: Counts
    edges: Counts
    exact: bool


def score_plan(case: EvalCase, plan: Plan, tools: Mapping[str, Tool]) -> PlanScore:
    """Node and edge counts of ``plan`` against ``case``, and whether it is exact."""
    by_id = {step.id: step for step in plan.steps}
    gold_nodes = {(s.label, s.tools) for s in case.steps}
    predicted_nodes = {step.tool for step in plan.steps}
    nodes = _counts(gold_nodes, predicted_nodes, lambda gold, tool: tool in gold[1])
    gold_edges = {(_node(case.steps[int(ref[1:]) - 1]), _node(step))
                  for step in case.steps for ref in step.uses if _is_step(ref) and int(ref[1:]) <= len(case.steps)}
    predicted_edges = {(by_id[ref].tool, step.tool)
                       for step in plan.steps for ref in _step_refs(step) if ref in by_id}
    edges = _counts(gold_edges, predicted_edges,
                    lambda gold, edge: edge[0] in gold[0][1] and edge[1] in gold[1][1])
    return PlanScore(nodes, edges, _exact(case, plan, tools))


def _node(step: ExpectedStep) -> tuple[str, frozenset[str]]:
    return step.label, step.tools


def _counts(gold: set[Any], predicted: set[Any], counts_for: Callable[[Any, Any], bool]) -> Counts:
    matched = _max_matching(sorted(gold, key=str), sorted(predicted, key=str), counts_for)
    return Counts(matched, len(predicted) - matched, len(gold) - matched)


def _max_matching(gold: Sequence[Any], predicted: Sequence[Any], counts_for: Callable[[Any, Any], bool]) -> int:
    """Size of a maximum bipartite matching (augmenting paths; the sets are a handful of items)."""
    owner: dict[int, int] = {}  # predicted index -> gold index

    def augment(g: int, seen: set[int]) -> bool:
        for p, item in enumerate(predicted):
            if p in seen or not counts_for(gold[g], item):
                continue
            seen.add(p)
            if p not in owner or augment(owner[p], seen):
                owner[p] = g
                return True
        return False

    return sum(augment(g, set()) for g in range(len(gold)))


def _is_step(ref: str) -> bool:
    return re.fullmatch(r"s\d+", ref) is not None


def _step_refs(step: Step) -> set[str]:
    return {ref for value in step.args.values() for ref in references(value)}


def _attachment_uses(step: Step, attachment_ids: set[str]) -> set[str]:
    found: set[str] = set()
    for value in step.args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in attachment_ids:
                found.add(item)
    return found


def _exact(case: EvalCase, plan: Plan, tools: Mapping[str, Tool]) -> bool:
    """A one-to-one correspondence of expected and planned steps (backtracking; plans are small)."""
    if len(plan.steps) != len(case.steps):
        return False
    ids = set(case.attachment_ids)
    assigned: dict[int, str] = {}  # expected index -> plan step id

    def place(index: int) -> bool:
        if index == len(case.steps):
            return True
        expected = case.steps[index]
        want_media = {u for u in expected.uses if not _is_step(u)}
        wanted = [int(u[1:]) - 1 for u in expected.uses if _is_step(u)]
        if any(k not in assigned for k in wanted):
            return False  # a gold reference to itself or a later node (a TaskBench quirk): no plan can match
        want_steps = {assigned[k] for k in wanted}
        for step in plan.steps:
            if step.id in assigned.values() or step.tool not in expected.tools:
                continue
            if _attachment_uses(step, ids) != want_media or _step_refs(step) != want_steps:
                continue
            if not _args_match(expected.args, step, tools.get(step.tool)):
                continue
            assigned[index] = step.id
            if place(index + 1):
                return True
            del assigned[index]
        return False

    return place(0)


def _args_match(expected: Mapping[str, Any], step: Step, tool: Tool | None) -> bool:
    if not expected:
        return True
    values: Mapping[str, Any] = step.args
    schema = tool.args_schema if tool is not None else None
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:  # compare what the tool would receive: "1:05" and 65 are the same moment
            values = schema.model_validate(step.args).model_dump()
        except ValidationError:
            return False
    return all(name in values and _same(want, values[name]) for name, want in expected.items())


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, list) and isinstance(got, list):
        return {_norm(w) for w in want} == {_norm(g) for g in got}
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return abs(float(want) - float(got)) < 1e-6
    return _norm(want) == _norm(got)


def _norm(value: Any) -> str:
    text = " ".join(str(value).split()).strip().strip("'\"\u2018\u2019\u201c\u201d").rstrip(".!?,;:").strip()
    return _ARTICLE.sub("", text.lower())
