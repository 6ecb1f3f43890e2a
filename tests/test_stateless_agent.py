"""The caller owns the conversation: ``Agent.run(text, conversation=c)`` keeps nothing on the Agent.

Before, an Agent held its one conversation, so an independent request needed ``agent.fork()``, and
the conversation reached the planner, the executor and fusion in pieces (attachments, released count,
history, a ``register`` callback). Now each gets the one Conversation: the planner and fusion a
read-only view, the executor the conversation itself; and everything a turn reports is one typed
event stream.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel, TypeAdapter

from polymodal import Agent, ImageInput, Plan, tool
from polymodal.agent import Conversation, ConversationView, Step
from polymodal.agent import executor as executor_module
from polymodal.agent.events import AgentEvent, Done, PlanReady, StepFinished, StepProgress, StepStarted
from polymodal.agent.fusion import Fusion
from polymodal.agent.planner import PlanOutcome
from polymodal.tools import report_progress
from polymodal.tools.base import current_context

BOTH_IN_FLIGHT = threading.Barrier(2, timeout=20)


@tool
def size(image: ImageInput) -> str:
    """Say an image's id, size and top-left colour."""
    return f"{image.id} {image.width}x{image.height} {image.image().getpixel((0, 0))}"


@tool
def size_together(image: ImageInput) -> str:
    """Say an image's size, once a second request is in flight too (both turns overlap)."""
    BOTH_IN_FLIGHT.wait()
    report_progress("measured", 1.0)
    return f"{image.id} {image.width}x{image.height} {image.image().getpixel((0, 0))}"


@tool
def scribble(image: ImageInput) -> str:
    """Try to put an attachment into the request's attachments."""
    ctx = current_context()
    assert ctx is not None
    ctx.attachments["image_9"] = image  # type: ignore[index]
    return "wrote"


def png(color: tuple[int, int, int], side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buf, format="PNG")
    return buf.getvalue()


class EachNew:
    """Plans ``tool`` on each new attachment, or on image_1 when there is none (a follow-up turn)."""

    def __init__(self, tool_name: str) -> None:
        self.tool_name = tool_name
        self.seen: list[Any] = []
        self.histories: list[tuple[tuple[str, str], ...]] = []

    def plan(self, request: Any, tools: Any, *, config: Any = None) -> PlanOutcome:
        self.seen.append(request.conversation)
        self.histories.append(tuple(request.history))  # the view is live: what it showed at planning time
        ids = list(request.new_attachment_ids) or ["image_1"]
        steps = [Step(id=f"s{i + 1}", tool=self.tool_name, args={"image": a}) for i, a in enumerate(ids)]
        return PlanOutcome(plan=Plan(steps=steps), tier="defaults")


def test_two_conversations_run_concurrently_on_one_agent_stay_apart():
    agent = Agent(tools=[size_together], planner=EachNew("size_together"))
    red, blue = Conversation(), Conversation()
    replies: dict[str, Any] = {}

    def turn(name: str, conversation: Conversation, image: bytes) -> None:
        replies[name] = agent.run("how big?", [image], conversation=conversation)

    threads = [threading.Thread(target=turn, args=("red", red, png((255, 0, 0), 8))),
               threading.Thread(target=turn, args=("blue", blue, png((0, 0, 255), 16)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [s.content for s in replies["red"].steps] == ["image_1 8x8 (255, 0, 0)"]
    assert [s.content for s in replies["blue"].steps] == ["image_1 16x16 (0, 0, 255)"]
    assert red.attachments["image_1"].width == 8 and blue.attachments["image_1"].width == 16
    assert [t.user for t in red.turns] == ["how big?"] and [t.user for t in blue.turns] == ["how big?"]
    assert agent.conversation.turns == [] and agent.conversation.attachments == {}  # the agent kept nothing


def test_run_without_a_conversation_is_an_independent_request():
    agent = Agent(tools=[size], planner=EachNew("size"))
    agent.chat("how big?", [png((1, 2, 3))])
    reply = agent.run("how big?", [png((9, 9, 9), 4)])
    assert reply.attachment_ids == ["image_1"] and reply.steps[0].content == "image_1 4x4 (9, 9, 9)"
    assert len(agent.conversation.turns) == 1 and len(agent.conversation.attachments) == 1  # chat's, untouched


def test_a_second_agent_continues_the_same_conversation_and_its_ids():
    conversation = Conversation()
    first = Agent(tools=[size], planner=EachNew("size"))
    assert first.run("how big?", [png((255, 0, 0))], conversation=conversation).attachment_ids == ["image_1"]
    second = Agent(tools=[size], planner=EachNew("size"))  # another object: a restarted process, another worker
    reply = second.run("and this one?", [png((0, 255, 0))], conversation=conversation)
    assert reply.attachment_ids == ["image_2"] and reply.steps[0].content == "image_2 8x8 (0, 255, 0)"
    follow_up = second.run("and the first one again?", conversation=conversation)
    assert follow_up.steps[0].content == "image_1 8x8 (255, 0, 0)"
    assert [t.user for t in conversation.turns] == ["how big?", "and this one?", "and the first one again?"]
    assert second.planner.histories[-1] == (("how big?", conversation.turns[0].reply),
                                            ("and this one?", conversation.turns[1].reply))


def test_invoke_and_stream_take_a_conversation_too():
    agent = Agent(tools=[size], planner=EachNew("size"))
    conversation = Conversation()
    agent.invoke({"input": "how big?", "attachments": [png((5, 5, 5))]}, conversation=conversation)
    events = list(agent.stream({"input": "and again?", "attachments": [png((6, 6, 6))]}, conversation=conversation))
    assert events[-1].reply.attachment_ids == ["image_2"] and len(conversation.turns) == 2
    assert agent.conversation.turns == []


def test_the_planner_and_fusion_get_a_view_they_cannot_write_to():
    planner = EachNew("size")
    seen: list[ConversationView] = []

    class Watching(Fusion):
        def answer(self, request: str, plan: Plan, results: Any, *, conversation: ConversationView,
                   **kwargs: Any) -> Any:
            seen.append(conversation)
            return super().answer(request, plan, results, conversation=conversation, **kwargs)

    agent = Agent(tools=[size], planner=planner)
    agent.fusion = Watching()
    conversation = Conversation()
    agent.run("how big?", [png((255, 0, 0))], conversation=conversation)
    for view in (planner.seen[0], seen[0]):
        assert isinstance(view, ConversationView) and list(view.attachments) == ["image_1"]
        assert not hasattr(view, "add") and not hasattr(view, "release_older") and not hasattr(view, "clear")
        with pytest.raises(TypeError):
            view.attachments["image_2"] = conversation.attachments["image_1"]  # type: ignore[index]
        with pytest.raises(TypeError):
            del view.attachments["image_1"]  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="read-only"):
            view.released = 5  # type: ignore[misc]
        with pytest.raises(AttributeError, match="read-only"):
            view._conversation = Conversation()  # type: ignore[misc]
        with pytest.raises(AttributeError):
            view.turns.append(conversation.turns[0])  # type: ignore[attr-defined]
    assert list(conversation.attachments) == ["image_1"] and conversation.released == 0
    assert len(conversation.turns) == 1


def test_a_tool_cannot_write_to_the_attachments_it_is_lent():
    agent = Agent(tools=[scribble], planner=EachNew("scribble"))
    conversation = Conversation()
    reply = agent.run("scribble", [png((1, 1, 1))], conversation=conversation)
    assert reply.steps[0].status == "error" and reply.steps[0].error_type == "TypeError"
    assert list(conversation.attachments) == ["image_1"]


def test_on_event_is_the_one_typed_stream_stream_yields():
    agent = Agent(tools=[size_together], planner=EachNew("size_together"))
    heard: list[Any] = []
    threading.Thread(target=BOTH_IN_FLIGHT.wait).start()  # the tool waits for a second party
    reply = agent.run("how big?", [png((1, 2, 3))], on_event=heard.append)
    adapter: TypeAdapter[Any] = TypeAdapter(AgentEvent)
    assert all(isinstance(event, BaseModel) for event in heard)
    assert [adapter.validate_python(event.model_dump()).type for event in heard] == [e.type for e in heard]
    assert [type(e) for e in heard] == [PlanReady, StepStarted, StepProgress, StepFinished, Done]
    assert heard[-1].reply is reply and heard[2].step_id == "s1" and heard[2].fraction == 1.0
    assert heard[1].step.status == "skipped" and heard[3].step.status == "ok"  # snapshots, not the live record
    threading.Thread(target=BOTH_IN_FLIGHT.wait).start()
    streamed = list(agent.stream({"input": "how big?", "attachments": [png((1, 2, 3))]}, conversation=Conversation()))
    assert [type(e) for e in streamed] == [type(e) for e in heard]
    assert executor_module.StepProgress is StepProgress  # the executor makes the event itself
    classes = {id(m.StepProgress) for name, m in list(sys.modules.items())
               if name.startswith("polymodal") and hasattr(m, "StepProgress")}
    assert classes == {id(StepProgress)}  # one StepProgress in the whole package


def test_the_conversations_page_code_runs_as_written():
    page = (Path(__file__).resolve().parents[1] / "docs" / "conversations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {}
    for block in blocks:  # one namespace: the page's blocks continue each other, as a reader runs them
        exec(compile(block, "conversations page", "exec"), namespace)


def test_a_batch_result_is_the_replys_record_and_the_cli_reads_failures_back_from_it(tmp_path):
    from polymodal.batch import run_batch
    from polymodal.results import failed_ids

    agent = Agent(tools=[size], planner=EachNew("size"))
    (tmp_path / "red.png").write_bytes(png((255, 0, 0)))
    jobs, output = tmp_path / "jobs.jsonl", tmp_path / "out.jsonl"
    jobs.write_text('{"id": "a", "prompt": "how big?", "attachments": ["red.png"]}\n'
                    '{"id": "b", "prompt": "how big?", "attachments": ["missing.png"]}\n'
                    '{"id": "c", "prompt": "how big?", "attachments": ["red.png"]}\n')
    run_batch(agent, jobs, output)
    records = {r["id"]: r for r in map(json.loads, output.read_text().splitlines())}
    expected = agent.run("how big?", [str(tmp_path / "red.png")]).to_record()
    def untimed(record: dict) -> dict:
        steps = [{k: v for k, v in step.items() if k not in ("started", "seconds")} for step in record["steps"]]
        return {**{k: v for k, v in record.items() if k not in ("id", "ok", "seconds")}, "steps": steps}

    for name in ("a", "c"):  # a batch line is the job's id and ok, then exactly what to_record gives
        line = untimed(records[name])
        assert line == untimed(expected)
        assert [s["content"] for s in line["steps"]] == ["image_1 8x8 (255, 0, 0)"]  # each job on a fresh conversation
    assert records["b"]["ok"] is False and records["b"]["error_type"] == "AttachmentError"
    with output.open("a") as fh:
        fh.write('{"id": "d", "ok": fal')  # a torn last line is no record
    assert failed_ids(output) == ["b"]


async def test_arun_answers_two_conversations_at_once_on_the_event_loop():
    agent = Agent(tools=[size_together], planner=EachNew("size_together"))
    red, blue = Conversation(), Conversation()
    first, second = await asyncio.gather(agent.arun("how big?", [png((255, 0, 0))], conversation=red),
                                         agent.arun("how big?", [png((0, 0, 255), 4)], conversation=blue))
    assert first.steps[0].content == "image_1 8x8 (255, 0, 0)" and second.steps[0].content == "image_1 4x4 (0, 0, 255)"
    assert len(red.turns) == len(blue.turns) == 1 and agent.conversation.turns == []
