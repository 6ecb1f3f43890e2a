"""Score planners on request/plan tables: TaskBench's node and edge F1, exact plans, cost and latency.

    from polymodal.evaluation import evaluate, load_cases, make_planner
    from polymodal.tools import default_tools

    tools = {t.name: t for t in default_tools()}          # nothing loads: planners read descriptions
    report = evaluate(load_cases("taskbench_hf_dev.jsonl"), make_planner("tiered"), tools, name="tiered")
    report.summary()    # {"node_f1": ..., "edge_f1": ..., "exact_plans": ..., "planning_ms": {...}, ...}

``polymodal eval FILE --planner router|tiered|defaults|llm`` is the same from the command line.
"""

from polymodal.evaluation.cases import TASKBENCH_TOOLS, EvalCase, ExpectedStep, load_cases, parse_case
from polymodal.evaluation.run import CaseResult, EvalReport, PlannerName, evaluate, make_planner
from polymodal.evaluation.scoring import Counts, PlanScore, score_plan

__all__ = [
    "TASKBENCH_TOOLS",
    "CaseResult",
    "Counts",
    "EvalCase",
    "EvalReport",
    "ExpectedStep",
    "PlanScore",
    "PlannerName",
    "evaluate",
    "load_cases",
    "make_planner",
    "parse_case",
    "score_plan",
]
