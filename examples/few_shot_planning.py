"""Worked examples for the LLM planner, drawn from the tuning part of an evaluation table.

An LLM planner shown a few solved requests like the user's plans better. This picks, for one
request, the nearest solved requests of the TaskBench table's tuning part (never its held-out
part) by MiniLM embedding, and shows the section the planner's prompt gets. Pass
``LLMPlanner(llm, examples=examples)`` to use them with any LangChain chat model.
"""

from pathlib import Path

from polymodal.agent.fewshot import FewShotExamples
from polymodal.evaluation import load_cases
from polymodal.evaluation.fewshot import tuning_examples

TABLE = Path(__file__).parent / "eval" / "taskbench_hf_dev.jsonl"

examples = FewShotExamples(tuning_examples(load_cases(TABLE)), k=2, max_chars=160)
request = "Could you write down what is said in this recording?"
print(examples.add_to("## Request\n" + request, request))
