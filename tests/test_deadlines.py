"""Deadlines are on time, and what depends on a step that did not finish is skipped, transitively.

The tools block on an event the test holds (tests/support/blocking.py), so a deadline is never
a race between a sleep and a timer: the call must come back while the tool is still blocked,
and the time recorded for the step must be close to the timeout (a deadline made 1.9x late
fails here; before, loose wall-clock bounds let it pass).
"""

from __future__ import annotations

import re
import time

import pytest
from langchain_core.messages import ToolMessage
from support.blocking import Gate, blocking_tool

from polymodal import ToolTimeout
from polymodal.agent.conversation import Conversation
from polymodal.agent.executor import Executor
from polymodal.agent.plan import Plan
from polymodal.tools import tool

TIMEOUT = 1.0
LATE = 0.5  # allowed lateness: scheduling on a loaded 2-core machine, far below 1.9x


@tool
def echo(text: str) -> str:
    """Repeat the text."""
    return text.upper()


@tool
def explode(text: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom on {text}")


@pytest.fixture
def gate():
    gate = Gate()
    yield gate
    gate.release.set()


def run(tools, *steps: dict, **kwargs):
    plan = Plan.model_validate({"steps": list(steps)})
    return Executor({t.name: t for t in tools}, **kwargs).run(plan, Conversation())


def test_the_executor_abandons_a_blocked_step_at_its_deadline(gate):
    hung, sibling = run([blocking_tool(gate, timeout=TIMEOUT), echo],
                        {"id": "s1", "tool": "blocker", "args": {"text": "x"}},
                        {"id": "s2", "tool": "echo", "args": {"text": "still here"}})
    assert gate.entered.is_set() and not gate.finished.is_set(), "run() waited for the blocked tool"
    assert hung.status == "timeout" and hung.error_type == "ToolTimeout"
    assert (hung.error or "").startswith(f"blocker: timed out after {TIMEOUT:g} s")
    assert TIMEOUT <= hung.seconds < TIMEOUT + LATE, f"recorded {hung.seconds:.2f} s for a {TIMEOUT} s deadline"
    assert sibling.content == "STILL HERE"


@tool
def nap(seconds: float) -> str:
    """Sleep, then say so."""
    time.sleep(seconds)
    return "rested"


def test_a_step_that_starts_late_is_timed_from_its_own_start(gate):
    first, hung = run([nap, blocking_tool(gate, timeout=TIMEOUT)],
                      {"id": "s1", "tool": "nap", "args": {"seconds": 0.6}},
                      {"id": "s2", "tool": "blocker", "args": {"text": "after {s1}"}})
    assert first.ok and hung.started >= 0.6 and hung.status == "timeout" and not gate.finished.is_set()
    assert TIMEOUT <= hung.seconds < TIMEOUT + LATE, f"recorded {hung.seconds:.2f} s for a {TIMEOUT} s deadline"


def test_the_default_timeout_is_a_deadline_too(gate):
    (hung,) = run([blocking_tool(gate)], {"id": "s1", "tool": "blocker", "args": {"text": "x"}},
                  default_timeout=TIMEOUT)
    assert hung.status == "timeout" and not gate.finished.is_set()
    assert TIMEOUT <= hung.seconds < TIMEOUT + LATE


def test_a_direct_call_raises_tool_timeout_on_time(gate):
    blocker = blocking_tool(gate, timeout=TIMEOUT)
    started = time.perf_counter()
    message = blocker.invoke({"type": "tool_call", "id": "c1", "name": "blocker", "args": {"text": "x"}})
    elapsed = time.perf_counter() - started
    assert not gate.finished.is_set(), "the direct call waited for the blocked tool"
    assert isinstance(message, ToolMessage) and message.status == "error" and "timed out after 1 s" in message.content
    assert TIMEOUT <= elapsed < TIMEOUT + LATE, f"returned after {elapsed:.2f} s for a {TIMEOUT} s deadline"
    blocker.handle_tool_error = False
    with pytest.raises(ToolTimeout):
        blocker.invoke({"text": "again"})


def test_a_tool_that_answers_in_time_is_not_cut_off(gate):
    gate.release.set()
    (done,) = run([blocking_tool(gate, timeout=30)], {"id": "s1", "tool": "blocker", "args": {"text": "x"}})
    assert done.status == "ok" and done.content == "x"


def test_dependents_of_a_timed_out_step_and_their_dependents_are_skipped(gate):
    hung, child, grandchild, other = run(
        [blocking_tool(gate, timeout=0.3), echo],
        {"id": "s1", "tool": "blocker", "args": {"text": "x"}},
        {"id": "s2", "tool": "echo", "args": {"text": "about {s1}"}},
        {"id": "s3", "tool": "echo", "args": {"text": "s2"}},
        {"id": "s4", "tool": "echo", "args": {"text": "independent"}},
    )
    assert hung.status == "timeout"
    assert child.status == "skipped" and "s1" in (child.error or "")
    assert grandchild.status == "skipped" and "s2" in (grandchild.error or "")
    assert other.status == "ok" and other.content == "INDEPENDENT"
    assert child.content is None and grandchild.content is None


def test_grandchildren_of_a_failed_step_are_skipped():
    bad, child, grandchild = run(
        [explode, echo],
        {"id": "s1", "tool": "explode", "args": {"text": "x"}},
        {"id": "s2", "tool": "echo", "args": {"text": "{s1}"}},
        {"id": "s3", "tool": "echo", "args": {"text": "then {s2}"}},
    )
    assert (bad.status, child.status, grandchild.status) == ("error", "skipped", "skipped")
    assert "s2" in (grandchild.error or "")


def test_the_request_budget_abandons_what_runs_and_skips_what_waits(gate):
    from polymodal import BudgetExceeded

    plan = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "blocker", "args": {"text": "x"}},
        {"id": "s2", "tool": "echo", "args": {"text": "after {s1}"}},
    ]})
    with pytest.raises(BudgetExceeded, match=r"ran past its time budget \(1\.\d s\); 0 step\(s\) finished") as info:
        Executor({"blocker": blocking_tool(gate), "echo": echo}).run(plan, Conversation(), budget_seconds=TIMEOUT)
    running, waiting = info.value.partial
    assert not gate.finished.is_set()
    assert running.status == "timeout" and running.error_type == "BudgetExceeded"
    assert TIMEOUT <= running.seconds < TIMEOUT + LATE and "budget ran out after 1." in (running.error or "")
    assert waiting.error == "not run: the request's time budget ran out" and waiting.status == "skipped"


def test_a_skipped_step_names_only_the_inputs_that_failed():
    *_, needy = run([echo, explode],
                    {"id": "s1", "tool": "echo", "args": {"text": "fine"}},
                    {"id": "s2", "tool": "explode", "args": {"text": "a"}},
                    {"id": "s3", "tool": "explode", "args": {"text": "b"}},
                    {"id": "s4", "tool": "echo", "args": {"text": "{s1} {s3} {s2}"}})
    assert needy.status == "skipped" and needy.error == "not run: it needs the output of s2, s3, which failed"
    assert needy.args == {"text": "{s1} {s3} {s2}"}  # what it would have been called with, unresolved


def test_a_step_waiting_on_a_running_step_does_not_hold_back_the_steps_after_it(gate):
    @tool
    def opener(text: str) -> str:
        """Release the blocked step."""
        gate.release.set()
        return text

    blocked, waiting, freeing = run([blocking_tool(gate, timeout=5), echo, opener],
                                    {"id": "s1", "tool": "blocker", "args": {"text": "x"}},
                                    {"id": "s2", "tool": "echo", "args": {"text": "after {s1}"}},
                                    {"id": "s3", "tool": "opener", "args": {"text": "go"}})
    assert [r.status for r in (blocked, waiting, freeing)] == ["ok", "ok", "ok"]  # s3 ran while s1 was blocked
    assert waiting.content == "AFTER X"


def test_a_late_starter_stopped_by_the_budget_is_timed_from_its_own_start(gate):
    from polymodal import BudgetExceeded

    plan = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "nap", "args": {"seconds": 0.4}},
        {"id": "s2", "tool": "blocker", "args": {"text": "after {s1}"}},
    ]})
    with pytest.raises(BudgetExceeded) as info:
        Executor({"nap": nap, "blocker": blocking_tool(gate)}).run(plan, Conversation(), budget_seconds=TIMEOUT)
    napped, stopped = info.value.partial
    said = re.search(r"after ([0-9.]+) s", stopped.error or "")
    assert said is not None and napped.ok and stopped.status == "timeout" and stopped.started >= 0.4
    assert stopped.started + stopped.seconds == pytest.approx(float(said[1]), abs=0.06)
