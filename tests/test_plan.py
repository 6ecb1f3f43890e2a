"""The plan contract: everything DESIGN.md forbids is rejected before any model loads."""

from __future__ import annotations

import pytest

from polymodal import Attachment, PlanValidationError
from polymodal.agent.plan import Plan, Step, references, validate_plan
from polymodal.tools import ClipMatcher, tool
from polymodal.tools.builtin.captioner import Captioner
from polymodal.tools.builtin.transcriber import Transcriber


@tool
def draw(prompt: str) -> str:
    """Generate an image from a text prompt."""
    return prompt


@pytest.fixture
def tools() -> dict:
    # Model tools load nothing until run, so validation needs no checkpoint.
    return {
        "captioner": Captioner(model="/nonexistent/never-loaded"),
        "transcriber": Transcriber(model="/nonexistent/never-loaded"),
        "draw": draw,
    }


@pytest.fixture
def attachments(media) -> dict:
    image = Attachment.from_path(media.png()).with_id("image_1")
    audio = Attachment.from_path(media.wav()).with_id("audio_1")
    return {"image_1": image, "audio_1": audio}


def plan(*steps: dict, **extra) -> Plan:
    return Plan.model_validate({"steps": list(steps), **extra})


def problems(p: Plan, tools, attachments, **kw) -> list[str]:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(p, tools, attachments, **kw)
    return info.value.problems


def test_design_example_is_valid(tools, attachments):
    p = plan(
        {"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}},
        {"id": "s2", "tool": "captioner", "args": {"image": "image_1"}},
        {"id": "s3", "tool": "draw", "args": {"prompt": "a poster of: {s2}"}},
    )
    assert validate_plan(p, tools, attachments) is p
    assert list(references("a poster of: {s2} and {s1}")) == ["s2", "s1"]


def test_empty_plan_is_legal(tools, attachments):
    assert validate_plan(Plan(), tools, attachments).steps == []


def test_P4_unknown_tool_lists_registered_tools(tools, attachments):
    [problem] = problems(plan({"id": "s1", "tool": "shell", "args": {"cmd": "rm -rf /"}}), tools, attachments)
    assert "unknown tool 'shell'" in problem
    assert "captioner, draw, transcriber" in problem


@pytest.mark.parametrize("extra_arg", ["device", "path", "trust_remote_code"])
def test_P5_T8_extra_args_are_forbidden(tools, attachments, extra_arg):
    p = plan({"id": "s1", "tool": "captioner", "args": {"image": "image_1", extra_arg: "x"}})
    [problem] = problems(p, tools, attachments)
    assert f"steps[0] (s1).args.{extra_arg}" in problem


def test_P3_args_that_fail_the_schema_name_the_field(tools, attachments):
    p = plan({"id": "s1", "tool": "captioner", "args": {"prompt": 3}})
    found = problems(p, tools, attachments)
    assert any("args.image" in line and "Field required" in line for line in found)
    assert any("args.prompt" in line for line in found)


def test_P6_unknown_attachment_id_is_rejected_not_read_as_a_path(tools, attachments):
    p = plan({"id": "s1", "tool": "captioner", "args": {"image": "/etc/passwd"}})
    [problem] = problems(p, tools, attachments)
    assert "'/etc/passwd' is not an attachment id" in problem


def test_P8_modality_mismatch_is_rejected(tools, attachments):
    p = plan({"id": "s1", "tool": "captioner", "args": {"image": "audio_1"}})
    [problem] = problems(p, tools, attachments)
    assert "audio_1 is audio, but this argument takes image" in problem


def test_P8_step_output_of_the_wrong_modality_is_rejected(tools, attachments):
    p = plan(
        {"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}},
        {"id": "s2", "tool": "captioner", "args": {"image": "s1"}},
    )
    [problem] = problems(p, tools, attachments)
    assert "step s1 outputs text" in problem


def test_P8_each_item_of_a_media_list_is_checked(tools, attachments):
    p = plan(
        {"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}},
        {"id": "s2", "tool": "clip_matcher", "args": {"images": ["image_1", "s1", "audio_1"], "labels": ["cat"]}},
    )
    clip = ClipMatcher(model="/nonexistent/never-loaded")
    assert problems(p, {**tools, "clip_matcher": clip}, attachments) == [
        "steps[1] (s2).args.images: audio_1 is audio, but this argument takes image",
        "steps[1] (s2).args.images: step s1 outputs text, but clip_matcher needs image here",
    ]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"id": "s1", "tool": "draw", "args": {"prompt": "{s1}"}}], "cannot use its own output"),
        ([{"id": "s1", "tool": "draw", "args": {"prompt": "{s2}"}},
          {"id": "s2", "tool": "draw", "args": {"prompt": "x"}}], "not an earlier step"),
        ([{"id": "s1", "tool": "draw", "args": {"prompt": "{s2}"}},
          {"id": "s2", "tool": "draw", "args": {"prompt": "{s1}"}}], "not an earlier step"),
        ([{"id": "s1", "tool": "draw", "args": {"prompt": "s7"}}], "refers to s7"),
    ],
    ids=["self", "forward", "cycle", "dangling"],
)
def test_P7_bad_references_are_rejected(tools, attachments, steps, expected):
    assert any(expected in line for line in problems(plan(*steps), tools, attachments))


def test_P7_too_many_steps_and_duplicate_ids(tools, attachments):
    steps = [{"id": "s1", "tool": "draw", "args": {"prompt": "x"}}] * 3
    found = problems(plan(*steps), tools, attachments, max_steps=2)
    assert any("more than the limit of 2" in line for line in found)
    assert any("duplicate step id" in line for line in found)


def test_answer_must_name_a_step(tools, attachments):
    p = plan({"id": "s1", "tool": "draw", "args": {"prompt": "x"}}, answer="s2")
    assert problems(p, tools, attachments) == ["answer: 's2' is not a step of this plan"]


def test_P5_step_model_forbids_unknown_keys_and_bad_ids():
    with pytest.raises(ValueError, match="extra"):
        Step.model_validate({"id": "s1", "tool": "draw", "args": {}, "shell": "ls"})
    with pytest.raises(ValueError, match="pattern"):
        Step.model_validate({"id": "image_1", "tool": "draw", "args": {}})


def test_json_schema_is_what_the_planner_publishes():
    schema = Plan.model_json_schema()
    assert schema["properties"]["steps"]["type"] == "array"
    assert "Step" in schema["$defs"]
