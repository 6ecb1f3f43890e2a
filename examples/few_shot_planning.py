"""Worked examples for the LLM planner, drawn from the tuning part of an evaluation table.

An LLM planner shown a few solved requests like the user's plans better. This picks, for one
request, the nearest solved requests of the TaskBench table's tuning part (never its held-out
part) by MiniLM embedding and prints the section the planner's prompt gets; then it answers the
request on the voice note. With no LLM here the router plans it; with one, give the agent
``planner=LLMPlanner(llm, examples=examples)`` (any LangChain chat model).
"""

from pathlib import Path

from polymodal.agent.fewshot import FewShotExamples
from polymodal.evaluation import load_cases
from polymodal.evaluation.fewshot import tuning_examples
from polymodal.profiles import build_agent

HERE = Path(__file__).parent
examples = FewShotExamples(tuning_examples(load_cases(HERE / "eval" / "taskbench_hf_dev.jsonl")), k=2, max_chars=160)
request = "Could you write down what is said in this recording?"
print(examples.add_to("## Request\n" + request, request))

reply = build_agent("offline").chat(request, attachments=[HERE / "media" / "voice-note.wav"])
print(reply.text)
