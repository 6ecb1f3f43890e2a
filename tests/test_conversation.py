"""What one turn of a long conversation costs: bounded prompts, released bytes, stable ids.

Before, the planner and fusion prompts listed every attachment the conversation ever had (after
400 images a 15.8k-character listing) and the conversation held every file's bytes.
"""

from __future__ import annotations

import gc
import io
import json
import weakref

import pytest
from PIL import Image
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, ImageInput, PlanningError, Settings, tool
from polymodal.agent import Conversation


@tool
def size(image: ImageInput) -> str:
    """Say an image's size."""
    return f"{image.width}x{image.height}"


def png(n: int) -> bytes:
    """A distinct tiny PNG for each ``n``."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (n % 256, n // 256, 7)).save(buf, format="PNG")
    return buf.getvalue()


def listing(prompt: str, heading: str) -> list[str]:
    """The attachment lines of a prompt section."""
    section = prompt.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def plan_on(*ids: str) -> str:
    return json.dumps({"steps": [{"id": f"s{i + 1}", "tool": "size", "args": {"image": a}} for i, a in enumerate(ids)]})


def test_400_images_keep_each_turns_prompts_and_memory_bounded():
    turns, per_turn = 40, 10
    # every turn uses image_1 (so it stays) and the turn's first new image
    responses = []
    for turn in range(turns):
        responses += [plan_on("image_1", f"image_{turn * per_turn + 1}"), "ok"]
    llm = ScriptedChatModel(responses=responses)
    agent = Agent(llm=llm, tools=[size], settings=Settings(recent_attachments=6))
    prompt_sizes = []
    for turn in range(turns):
        reply = agent.chat("sizes?", attachments=[png(turn * per_turn + k) for k in range(per_turn)])
        assert all(step.ok for step in reply.steps), reply.steps
        prompt_sizes.append(len(llm.prompt(2 * turn)))
    assert reply.attachment_ids == [f"image_{i}" for i in range(391, 401)]  # ids are never reused
    planner_lines = listing(llm.prompt(2 * (turns - 1)), "## Attachments in this conversation")
    fusion_lines = listing(llm.prompt(2 * (turns - 1) + 1), "## Attachments")
    for lines in (planner_lines, fusion_lines):
        assert len(lines) == per_turn + 6 + 1, lines
        assert lines[-1] == "- (384 earlier attachments of this conversation no longer available)"
        assert any(line.startswith("- image_1: ") for line in lines)  # used every turn: still there
    assert len(agent.conversation.attachments) == per_turn + 6 and agent.conversation.released == 384
    assert prompt_sizes[-1] < prompt_sizes[2] + 100, prompt_sizes  # flat, not growing per turn


def test_released_attachments_free_their_bytes_and_cannot_be_planned_on():
    llm = ScriptedChatModel(responses=[plan_on("image_1"), "ok", plan_on("image_2"), "ok",
                                       plan_on("image_1")] + [plan_on("image_1")] * 2)
    agent = Agent(llm=llm, tools=[size], settings=Settings(recent_attachments=0))
    agent.chat("size?", attachments=[png(1)])
    first = weakref.ref(agent.conversation.attachments["image_1"])
    agent.chat("and this one?", attachments=[png(2)])
    gc.collect()
    assert first() is None, "the released attachment (and its bytes) is still referenced"
    with pytest.raises(PlanningError, match=r"'image_1' is not an attachment id of this conversation"):
        agent.chat("and the first one again?")


def test_the_same_bytes_after_release_get_a_new_id_and_old_ids_are_not_reused():
    conversation = Conversation()
    first = conversation.add(Attachment.from_bytes(png(1)))
    conversation.add(Attachment.from_bytes(png(2)))
    assert conversation.release_older(1) == ["image_1"]
    again = conversation.add(Attachment.from_bytes(png(1)))
    assert (first.id, again.id) == ("image_1", "image_3")


def test_release_keeps_the_most_recently_used_and_honours_a_byte_cap():
    conversation = Conversation()
    ids = [conversation.add(Attachment.from_bytes(png(n))).id for n in range(5)]
    conversation.touch(["image_1"])
    assert conversation.release_older(2, protect=["image_5"]) == ["image_2", "image_3"]
    assert sorted(conversation.attachments) == ["image_1", "image_4", "image_5"]
    one = conversation.attachments["image_5"].size_bytes
    released = conversation.release_older(5, protect=["image_5"], max_bytes=2 * one + one // 2)
    assert released == ["image_4"] and ids[0] in conversation.attachments
