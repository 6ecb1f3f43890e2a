"""Independent runs stay independent: ``as_tool()`` calls, and batch runs resumed over earlier output.

``Agent.as_tool()`` promises a fresh conversation per call (an outer agent's calls must not see
each other's files or turns), and ``polymodal batch`` promises an exit code that says whether any
job in the output failed, including jobs recorded by an earlier run that this run skipped.
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel
from typer.testing import CliRunner

from polymodal import Agent, ImageInput, tool
from polymodal.commands import app

EMPTY = json.dumps({"steps": []})


@tool
def size(image: ImageInput) -> str:
    """Report an image's id and size."""
    return f"{image.id} {image.width}x{image.height}"


def test_as_tool_starts_a_fresh_conversation_per_call(media):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "size", "args": {"image": "image_1"}}], "answer": "s1"})
    llm = ScriptedChatModel(responses=[plan, plan])
    agent = Agent(llm=llm, tools=[size])
    outer = agent.as_tool()
    first = outer.invoke({"request": "how big is the first photo?", "attachments": [str(media.png(size=(20, 10)))]})
    second = outer.invoke({"request": "and this one?", "attachments": [str(media.png(size=(30, 15), name="b.png"))]})
    assert (first, second) == ("image_1 20x10", "image_1 30x15")  # ids start again: nothing carried over
    second_prompt = llm.prompt(1)
    assert "first photo" not in second_prompt and "(first turn)" in second_prompt
    assert "photo.png" not in second_prompt and "b.png" in second_prompt
    assert agent.conversation.turns == [] and agent.conversation.attachments == {}


@pytest.fixture
def batch_files(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "prompt": "hello"}\n{"id": "b", "prompt": "hello again"}\n')
    return jobs, tmp_path / "results.jsonl"


def run_batch(jobs, output):
    return CliRunner().invoke(app, ["batch", str(jobs), "-o", str(output), "--profile", "default"],
                              env={"POLYMODAL_ROUTER_MODEL": "none"})


def test_batch_exit_code_counts_failures_recorded_by_an_earlier_run(batch_files):
    jobs, output = batch_files
    output.write_text('{"id": "a", "ok": false, "error": "x.wav: corrupt"}\n{"id": "b", "ok": true, "text": "hi"}\n')
    result = run_batch(jobs, output)  # both ids are done: nothing runs now
    assert "skipping 2 job(s)" in result.stderr
    assert result.exit_code == 1, result.output
    assert "a" in result.stderr.split("have errors:")[-1]


def test_batch_exit_code_is_zero_when_every_recorded_job_succeeded(batch_files):
    jobs, output = batch_files
    output.write_text('{"id": "a", "ok": true, "text": "hi"}\n{"id": "b", "ok": true, "text": "hi"}\n')
    result = run_batch(jobs, output)
    assert "skipping 2 job(s)" in result.stderr
    assert result.exit_code == 0, result.output
