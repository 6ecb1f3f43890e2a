"""The DAG executor: parallel independent steps, chained outputs, failures contained, real deadlines.

The tools here are small functions (the executor is under test, not a model), timed with sleeps
long enough that overlap and deadlines are unambiguous on a busy 2-core machine.
"""

from __future__ import annotations

import time

from PIL import Image

from polymodal import Attachment
from polymodal.agent.conversation import Conversation
from polymodal.agent.executor import Executor
from polymodal.agent.plan import Plan
from polymodal.tools import ImageInput, tool


@tool
def slow_echo(text: str, seconds: float = 0.0) -> str:
    """Echo text after a pause."""
    time.sleep(seconds)
    return text.upper()


@tool
def explode(text: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom on {text}")


@tool(timeout=0.5)
def hang(text: str) -> str:
    """Sleeps far past its timeout."""
    time.sleep(30)
    return text


@tool
def paint(color: str) -> Image.Image:
    """Make a small image of one colour."""
    return Image.new("RGB", (8, 8), color)


@tool
def measure(image: ImageInput) -> str:
    """Report an image attachment's size and top-left colour."""
    return f"{image.id} {image.width}x{image.height} {image.image().getpixel((0, 0))}"


TOOLS = {t.name: t for t in (slow_echo, explode, hang, paint, measure)}


def run(*steps: dict, conversation: Conversation | None = None, **kw):
    plan = Plan.model_validate({"steps": list(steps)})
    return Executor(TOOLS, **kw).run(plan, conversation or Conversation())


def test_independent_steps_overlap_in_time():
    started = time.perf_counter()
    a, b = run(
        {"id": "s1", "tool": "slow_echo", "args": {"text": "a", "seconds": 0.6}},
        {"id": "s2", "tool": "slow_echo", "args": {"text": "b", "seconds": 0.6}},
    )
    elapsed = time.perf_counter() - started
    assert (a.content, b.content) == ("A", "B")
    assert a.started < b.started + a.seconds and b.started < a.started + b.seconds  # intervals intersect
    assert elapsed < 1.1  # sequential would take 1.2 s


def test_a_chained_step_reads_the_earlier_output():
    s1, s2, s3 = run(
        {"id": "s1", "tool": "slow_echo", "args": {"text": "cat"}},
        {"id": "s2", "tool": "slow_echo", "args": {"text": "a poster of {s1}"}},
        {"id": "s3", "tool": "slow_echo", "args": {"text": "s2"}},
    )
    assert s2.args == {"text": "a poster of CAT"} and s2.content == "A POSTER OF CAT"
    assert s3.content == "A POSTER OF CAT"
    assert s2.started >= s1.started + s1.seconds


def test_an_empty_output_is_read_as_empty_text():
    _, quoted, whole = run({"id": "s1", "tool": "slow_echo", "args": {"text": ""}},
                           {"id": "s2", "tool": "slow_echo", "args": {"text": "[{s1}]"}},
                           {"id": "s3", "tool": "slow_echo", "args": {"text": "s1"}})
    assert (quoted.content, whole.args, whole.content) == ("[]", {"text": ""}, "")


def test_T2_a_failed_step_skips_its_dependents_but_not_its_siblings():
    bad, dependent, sibling = run(
        {"id": "s1", "tool": "explode", "args": {"text": "x"}},
        {"id": "s2", "tool": "slow_echo", "args": {"text": "{s1}"}},
        {"id": "s3", "tool": "slow_echo", "args": {"text": "fine", "seconds": 0.1}},
    )
    assert bad.status == "error" and "boom on x" in (bad.error or "")
    assert bad.error_type == "RuntimeError"
    assert dependent.status == "skipped" and "s1" in (dependent.error or "")
    assert sibling.status == "ok" and sibling.content == "FINE"


def test_T1_a_hanging_tool_times_out_at_its_deadline():
    started = time.perf_counter()
    hung, sibling = run(
        {"id": "s1", "tool": "hang", "args": {"text": "x"}},
        {"id": "s2", "tool": "slow_echo", "args": {"text": "still here"}},
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5 + 0.5, f"returned after {elapsed:.2f} s, deadline was 0.5 s"
    assert hung.status == "timeout" and hung.error_type == "ToolTimeout" and "0.5 s" in (hung.error or "")
    assert sibling.content == "STILL HERE"


def test_T1_default_timeout_applies_to_tools_without_one():
    started = time.perf_counter()
    [result] = run({"id": "s1", "tool": "slow_echo", "args": {"text": "x", "seconds": 5}}, default_timeout=0.3)
    assert result.status == "timeout" and time.perf_counter() - started < 0.8


def test_media_produced_by_a_step_get_an_id_and_feed_a_later_step():
    conversation = Conversation()
    s1, s2 = run(
        {"id": "s1", "tool": "paint", "args": {"color": "red"}},
        {"id": "s2", "tool": "measure", "args": {"image": "s1"}},
        conversation=conversation,
    )
    assert s1.artifact_ids == ["image_1"] and isinstance(conversation.attachments["image_1"], Attachment)
    assert s2.args == {"image": "image_1"}
    assert s2.content == "image_1 8x8 (255, 0, 0)"


def test_max_parallel_bounds_concurrency():
    started = time.perf_counter()
    results = run(
        *[{"id": f"s{i}", "tool": "slow_echo", "args": {"text": "x", "seconds": 0.3}} for i in range(1, 4)],
        max_parallel=1,
    )
    assert all(r.ok for r in results) and time.perf_counter() - started >= 0.9


def test_events_report_each_step_start_and_finish():
    events: list[tuple[str, str]] = []
    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "slow_echo", "args": {"text": "x"}}]})
    Executor(TOOLS).run(plan, Conversation(), on_event=lambda event: events.append((event.type, event.step.id)))
    assert events == [("step_started", "s1"), ("step_finished", "s1")]


def test_R3_the_request_budget_stops_waiting_and_keeps_partial_results():
    import pytest

    from polymodal import BudgetExceeded

    started = time.perf_counter()
    plan = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "slow_echo", "args": {"text": "quick"}},
        {"id": "s2", "tool": "slow_echo", "args": {"text": "slow", "seconds": 10}},
        {"id": "s3", "tool": "slow_echo", "args": {"text": "{s2}"}},
    ]})
    with pytest.raises(BudgetExceeded) as info:
        Executor(TOOLS).run(plan, Conversation(), budget_seconds=0.5)
    assert time.perf_counter() - started < 1.0
    quick, slow, after = info.value.partial
    assert quick.content == "QUICK"
    assert slow.status == "timeout" and "budget" in (slow.error or "")
    assert after.status == "skipped" and "budget" in (after.error or "")


def test_with_a_listener_every_step_is_a_traced_tool_run():
    from langchain_core.callbacks import BaseCallbackHandler

    class ToolRuns(BaseCallbackHandler):
        def __init__(self) -> None:
            self.runs: list[tuple[str, str, str]] = []

        def on_tool_end(self, output, *, run_id, parent_run_id=None, **kwargs) -> None:
            self.runs.append((output.name, output.tool_call_id, output.content))

    listener = ToolRuns()
    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "slow_echo", "args": {"text": "a"}},
                                          {"id": "s2", "tool": "slow_echo", "args": {"text": "{s1}b"}}]})
    first, second = Executor(TOOLS).run(plan, Conversation(), config={"callbacks": [listener]})
    assert (first.content, second.content) == ("A", "AB")
    assert listener.runs == [("slow_echo", "s1", "A"), ("slow_echo", "s2", "AB")]
