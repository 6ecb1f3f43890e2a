"""RELIABILITY.md "Attachments" rows (A1-A10): files and text from the user are untrusted.

Each test is named by the row it keeps (``test_A2_...``). Prompt-size tests use a scripted chat
model (the LLM is the boundary, the prompts are under test) and small function tools.
"""

from __future__ import annotations

import json

from support.fake_llm import ScriptedChatModel

from polymodal import Agent, tool
from polymodal.agent.planner import describe_history
from polymodal.prompts.bounds import HISTORY_CHARS, REQUEST_CHARS, TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS

# ---------------------------------------------------------------- A9: huge text is bounded in every prompt


@tool
def flood(size: int) -> str:
    """Return a very long text, as an OCR of a phone book would."""
    return "".join(f"line {i:07d} of the flood\n" for i in range(size // 24 + 1))[:size]


def test_A9_a_huge_request_is_cut_with_a_note_in_the_planner_and_fusion_prompts():
    request = "Please read this. " + "x" * 200_000 + " THE END"
    plan = json.dumps({"steps": [{"id": "s1", "tool": "flood", "args": {"size": 10}}]})
    llm = ScriptedChatModel(responses=[plan, "done [s1]"])
    reply = Agent(llm=llm, tools=[flood]).chat(request)
    assert reply.text == "done [s1]"
    for call in (0, 1):  # planner, fusion
        prompt = llm.prompt(call)
        assert len(prompt) < REQUEST_CHARS + 10_000, len(prompt)
        assert "Please read this." in prompt and "THE END" not in prompt
        assert f"[... request cut here: {len(request) - REQUEST_CHARS:,} more characters not shown]" in prompt


def test_A9_huge_tool_outputs_are_cut_in_the_fusion_prompt_but_kept_in_the_reply():
    steps = [{"id": f"s{i}", "tool": "flood", "args": {"size": 1_000_000}} for i in range(1, 4)]
    llm = ScriptedChatModel(responses=[json.dumps({"steps": steps}), "three floods"])
    reply = Agent(llm=llm, tools=[flood]).chat("flood me")
    assert [len(s.content or "") for s in reply.steps] == [1_000_000] * 3  # the Reply keeps every output whole
    prompt = llm.prompt(1)
    share = min(TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS // 3)
    assert len(prompt) < TOOL_RESULTS_CHARS + 10_000, len(prompt)
    assert prompt.count(f"[... tool output cut here: {1_000_000 - share:,} more characters not shown]\n"
                        "</tool_result>") == 3


def test_A9_a_long_conversation_is_bounded_oldest_turns_first():
    history = [(f"question {i} " + "q" * 2000, f"answer {i} " + "a" * 2000) for i in range(50)]
    text = describe_history(history)
    assert len(text) <= HISTORY_CHARS + 100
    assert "question 49" in text and "question 0 " not in text
    assert text.startswith("(") and "earlier turns not shown)" in text.splitlines()[0]
    assert "[... message cut here: " in text
    assert describe_history([("hi", "hello")]) == "User: hi\nAssistant: hello"


def test_A9_the_planner_reask_is_bounded():
    huge_plan = json.dumps({"steps": [{"id": f"s{i}", "tool": "shell", "args": {}} for i in range(1, 400)]})
    good = json.dumps({"steps": [{"id": "s1", "tool": "flood", "args": {"size": 5}}], "answer": "s1"})
    llm = ScriptedChatModel(responses=[huge_plan + " " * 5 + "z" * 50_000, good])
    Agent(llm=llm, tools=[flood]).chat("flood a bit")
    reask = llm.prompt(1)[len(llm.prompt(0)):]
    assert len(reask) < REQUEST_CHARS + 6_000, len(reask)
    assert "unknown tool 'shell'" in reask and "cut here" in reask
