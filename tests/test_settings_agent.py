"""Each field of ``Settings`` acts through the Agent, not only in the part it configures.

The executor, the planners and fusion have their own tests; these check that an ``Agent`` built
with ``Settings(...)`` actually hands each setting to them (an Agent that ignored its settings
passed every test before). ``max_steps`` has its own file (test_plan_gate.py).
"""

from __future__ import annotations

import json
import threading

import pytest
from support.blocking import Gate, blocking_tool
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, BudgetExceeded, PlanningError, Settings, tool

EMPTY_PLAN = json.dumps({"steps": []})


def two_steps(tool_name: str) -> str:
    return json.dumps({"steps": [{"id": "s1", "tool": tool_name, "args": {"text": "a"}},
                                 {"id": "s2", "tool": tool_name, "args": {"text": "b"}}]})


@pytest.fixture
def gate():
    gate = Gate()
    yield gate
    gate.release.set()  # let the abandoned thread finish


def test_step_timeout_abandons_a_step_whose_tool_sets_none(gate):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "blocker", "args": {"text": "x"}}]})
    agent = Agent(llm=ScriptedChatModel(responses=[plan, "gave up [s1]"]), tools=[blocking_tool(gate)],
                  settings=Settings(step_timeout=0.5))
    reply = agent.chat("go")
    (step,) = reply.steps
    assert step.status == "timeout" and "0.5 s" in (step.error or "")
    assert gate.entered.is_set() and not gate.finished.is_set()  # the agent returned while the tool still ran
    assert 0.5 <= step.seconds < 0.5 + 0.4


def test_max_seconds_is_the_budget_of_the_whole_plan(gate):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "blocker", "args": {"text": "x"}}]})
    agent = Agent(llm=ScriptedChatModel(responses=[plan]), tools=[blocking_tool(gate)],
                  settings=Settings(max_seconds=0.5, step_timeout=None))
    with pytest.raises(BudgetExceeded) as info:
        agent.chat("go")
    (step,) = info.value.partial
    assert step.status == "timeout" and step.error_type == "BudgetExceeded" and not gate.finished.is_set()


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_planner_attempts_bounds_the_llm_calls(attempts):
    llm = ScriptedChatModel(responses=["no plan here"] * 5)
    with pytest.raises(PlanningError) as info:
        Agent(llm=llm, tools=[], settings=Settings(planner_attempts=attempts)).chat("go")
    assert len(llm.calls) == attempts and info.value.attempts == attempts


@pytest.mark.parametrize("turns", [0, 1, 4])
def test_history_turns_is_what_the_planner_and_fusion_see(turns):
    words = ["alpha", "bravo", "charlie", "delta", "echo"]
    llm = ScriptedChatModel(responses=[r for w in words for r in (EMPTY_PLAN, f"answer {w}")])
    agent = Agent(llm=llm, tools=[], settings=Settings(history_turns=turns))
    for word in words:
        agent.chat(f"question {word}")
    planner_prompt, fusion_prompt = llm.prompt(8), llm.prompt(9)  # the last turn's two calls
    seen = words[len(words) - 1 - turns : -1] if turns else []
    for prompt in (planner_prompt, fusion_prompt):
        for word in words[:-1]:
            assert (f"User: question {word}" in prompt) is (word in seen), (word, prompt)
            assert (f"Assistant: answer {word}" in prompt) is (word in seen), (word, prompt)


def test_max_parallel_bounds_how_many_steps_run_at_once():
    lock, running, overlapped = threading.Lock(), [], threading.Event()

    @tool
    def counted(text: str) -> str:
        """Note whether another call runs meanwhile."""
        with lock:
            running.append(text)
            if len(running) > 1:
                overlapped.set()
        overlapped.wait(0.3)  # a parallel second call would enter (and be seen) within this window
        with lock:
            running.remove(text)
        return text

    reply = Agent(llm=ScriptedChatModel(responses=[two_steps("counted"), "ok"]), tools=[counted],
                  settings=Settings(max_parallel=1)).chat("go")
    assert all(s.ok for s in reply.steps) and not overlapped.is_set()


def test_max_parallel_lets_independent_steps_meet():
    barrier = threading.Barrier(2, timeout=20)  # passes only if both steps run at the same time

    @tool
    def meet(text: str) -> str:
        """Wait for the other step."""
        barrier.wait()
        return text

    reply = Agent(llm=ScriptedChatModel(responses=[two_steps("meet"), "ok"]), tools=[meet],
                  settings=Settings(max_parallel=2)).chat("go")
    assert [s.status for s in reply.steps] == ["ok", "ok"]
