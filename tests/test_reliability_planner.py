"""RELIABILITY.md "Planner output" rows (P1-P10): the LLM is untrusted, and often wordy.

Each test is named by the row it keeps (``test_P1_...``). A scripted chat model plays the LLM: these
tests are about what the planner does with its text, not about a model.
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Attachment, PlanningError
from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import LLMPlanner, PlanningRequest, parse_plan, strip_reasoning
from polymodal.errors import PlanValidationError
from polymodal.tools.builtin.captioner import Captioner
from polymodal.tools.builtin.transcriber import Transcriber

GOOD = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}], "answer": "s1"})
UNKNOWN_TOOL = json.dumps({"steps": [{"id": "s1", "tool": "shell", "args": {}}]})


@pytest.fixture
def tools() -> dict:
    return {"captioner": Captioner(model="/never/loaded"), "transcriber": Transcriber(model="/never/loaded")}


@pytest.fixture
def request_(media) -> PlanningRequest:
    image = Attachment.from_path(media.png()).with_id("image_1")
    return PlanningRequest(text="What is in this photo?", conversation=ConversationView.of({"image_1": image}),
                           new_attachment_ids=["image_1"])


def _plan_once(answer: str, tools: dict, request_: PlanningRequest):
    """Plan with an LLM that has exactly one answer: a re-ask would fail the test."""
    llm = ScriptedChatModel(responses=[answer])
    outcome = LLMPlanner(llm, max_attempts=3).plan(request_, tools)
    assert outcome.llm_calls == 1
    return outcome.plan


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(f"<think>The user wants {{a caption}}. Maybe {{\"steps\": []}}? No.</think>\n{GOOD}", id="think"),
        pytest.param(f"<thinking>\nuse the captioner\n</thinking>```json\n{GOOD}\n```", id="thinking-fenced"),
        pytest.param(f"I will caption {{image_1}} with {{captioner}}; set {{s1}} as the answer.\n{GOOD}",
                     id="prose-with-braces"),
        pytest.param(f"the image needs a caption, so</think>\n\n{GOOD}", id="template-opened-think"),
        pytest.param(f"<think>I answer: {GOOD}", id="unclosed-think"),
        pytest.param(f"Draft: {UNKNOWN_TOOL}\nCorrected (shell is not a tool): {GOOD}", id="draft-then-plan"),
        pytest.param(f"{GOOD}\nFor example a plan could also be {UNKNOWN_TOOL}.", id="plan-then-example"),
        pytest.param(f"Plan: {GOOD} -- here [s1] is the caption.", id="brackets-after"),
    ],
)
def test_P1_a_plan_after_reasoning_or_prose_is_found_without_a_reask(answer, tools, request_):
    plan = _plan_once(answer, tools, request_)
    assert [s.tool for s in plan.steps] == ["captioner"] and plan.answer == "s1"


def test_P1_prose_with_braces_but_no_plan_is_reasked_as_invalid_json(tools, request_):
    llm = ScriptedChatModel(responses=["I would use {captioner} on {image_1}.", GOOD])
    outcome = LLMPlanner(llm, max_attempts=3).plan(request_, tools)
    assert outcome.llm_calls == 2
    assert "not valid JSON" in llm.prompt(1)


def test_P1_a_json_value_that_is_not_a_plan_reports_the_plan_like_candidate(tools, request_):
    text = 'Scores: {"captioner": 0.9}. Plan: {"steps": [{"id": "s1", "tool": "captioner", "args": {}}]}'
    with pytest.raises(PlanningError) as info:
        LLMPlanner(ScriptedChatModel(responses=[text]), max_attempts=1).plan(request_, tools)
    assert "args.image: Field required" in info.value.last_error and "captioner: 0.9" not in info.value.last_error
    with pytest.raises(PlanValidationError, match="steps"):  # no candidate has steps: the last one's problem
        parse_plan('{"a": 1} then {"steps": 3}')


def test_P1_reasoning_tags_are_stripped_whole():
    assert strip_reasoning("<think>a {b}</think>x<reasoning>y</reasoning>z").split() == ["x", "z"]
    assert strip_reasoning("prefix</think>rest").strip() == "rest"
    assert strip_reasoning("keep<think>cut off mid-way {").strip() == "keep"


def test_P2_json_cut_off_after_a_preamble_is_still_called_cut_off(tools, request_):
    cut = "<think>short</think>Sure! " + GOOD[: len(GOOD) // 2]
    with pytest.raises(PlanValidationError, match="cut off"):
        parse_plan(cut)
    llm = ScriptedChatModel(responses=[cut, GOOD])
    assert LLMPlanner(llm, max_attempts=2).plan(request_, tools).llm_calls == 2
    assert "token limit" in llm.prompt(1)


def test_P2_cut_off_on_the_last_attempt_says_cut_off_not_the_fragment_it_left(tools, request_):
    two = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}},
                                {"id": "extra", "tool": "captioner", "args": {"image": "image_1"}}]})
    cut = two[: two.index('"tool"', two.index('"extra"'))]  # the first step whole, the second cut off
    llm = ScriptedChatModel(responses=[cut, cut])
    with pytest.raises(PlanningError) as caught:
        LLMPlanner(llm, max_attempts=2).plan(request_, tools)
    assert "cut off" in str(caught.value) and "- id" not in str(caught.value), str(caught.value)


def test_P2_a_wall_of_braces_is_bounded_work():
    with pytest.raises(PlanValidationError):
        parse_plan("{" * 50_000 + "[" * 50_000)
