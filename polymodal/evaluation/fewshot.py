"""The LLM planner's worked examples, drawn from the tuning part of the evaluation cases only.

Scoring a planner on a request it was shown the answer to measures nothing, so the examples are
built from the cases whose part (:mod:`polymodal.evaluation.splits`) is ``tuning``; held-out cases
never reach a prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from polymodal.agent.fewshot import PlanExample
from polymodal.evaluation.cases import EvalCase

__all__ = ["tuning_examples"]


def tuning_examples(cases: Sequence[EvalCase]) -> list[PlanExample]:
    """One example per scorable tuning case: its request and expected steps.

    A TaskBench step that several polymodal tools count for shows the first by name.
    """
    return [PlanExample(case.request, tuple((min(step.tools), step.uses) for step in case.steps))
            for case in cases if case.split == "tuning" and not case.skipped]
