"""The planner's one call and its bounded re-ask path (RELIABILITY P1-P4), and the no-LLM tier."""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Attachment, PlanningError
from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, PlanningRequest, parse_plan
from polymodal.errors import PlanValidationError
from polymodal.tools.builtin.captioner import Captioner
from polymodal.tools.builtin.transcriber import Transcriber

GOOD = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]})


@pytest.fixture
def tools() -> dict:
    return {"captioner": Captioner(model="/never/loaded"), "transcriber": Transcriber(model="/never/loaded")}


@pytest.fixture
def request_(media) -> PlanningRequest:
    image = Attachment.from_path(media.png()).with_id("image_1")
    audio = Attachment.from_path(media.wav()).with_id("audio_1")
    return PlanningRequest(text="What is in this photo?",
                           conversation=ConversationView.of({"image_1": image, "audio_1": audio}),
                           new_attachment_ids=["image_1", "audio_1"])


def test_one_call_when_the_first_answer_is_valid(tools, request_):
    llm = ScriptedChatModel(responses=[GOOD])
    outcome = LLMPlanner(llm).plan(request_, tools)
    assert outcome.llm_calls == 1 and outcome.tier == "llm"
    assert outcome.plan.steps[0].tool == "captioner"
    prompt = llm.prompt(0)
    # The planner sees metadata and the tool catalogue, never pixels.
    assert "image_1: image/png 64x48" in prompt and "- captioner:" in prompt and "What is in this photo?" in prompt


def test_P1_prose_is_reasked_then_succeeds(tools, request_):
    llm = ScriptedChatModel(responses=["Sure! I would caption the image.", GOOD])
    outcome = LLMPlanner(llm).plan(request_, tools)
    assert outcome.llm_calls == 2
    assert "expected a JSON object, got prose" in llm.prompt(1)


def test_P2_truncated_json_has_its_own_message(tools, request_):
    llm = ScriptedChatModel(responses=[GOOD[:40], GOOD])
    LLMPlanner(llm).plan(request_, tools)
    assert "cut off" in llm.prompt(1) and "token limit" in llm.prompt(1)


def test_P3_bad_args_are_reasked_with_the_field_path(tools, request_):
    bad = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"picture": "image_1"}}]})
    llm = ScriptedChatModel(responses=[bad, GOOD])
    outcome = LLMPlanner(llm).plan(request_, tools)
    assert outcome.llm_calls == 2
    reask = llm.prompt(1)
    assert "steps[0] (s1).args.image" in reask and "steps[0] (s1).args.picture" in reask


def test_P4_unknown_tool_reask_lists_registered_tools(tools, request_):
    bad = json.dumps({"steps": [{"id": "s1", "tool": "shell", "args": {"cmd": "ls"}}]})
    llm = ScriptedChatModel(responses=[bad, GOOD])
    LLMPlanner(llm).plan(request_, tools)
    assert "registered tools: captioner, transcriber" in llm.prompt(1)


def test_P1_gives_up_with_planning_error_carrying_raw_outputs(tools, request_):
    answers = ["no", "still no", "{\"steps\": [{\"id\": \"s1\", \"tool\": \"shell\", \"args\": {}}]}"]
    llm = ScriptedChatModel(responses=answers)
    with pytest.raises(PlanningError) as info:
        LLMPlanner(llm, max_attempts=3).plan(request_, tools)
    error = info.value
    assert not isinstance(error, PlanValidationError)
    assert error.attempts == 3 and error.raw_outputs == answers
    assert "unknown tool 'shell'" in error.last_error


def test_P1_parse_plan_accepts_fences_and_surrounding_prose():
    assert parse_plan(f"Here is the plan:\n```json\n{GOOD}\n```").steps[0].id == "s1"
    assert parse_plan(json.dumps([{"id": "s1", "tool": "t", "args": {}}])).steps[0].tool == "t"


def test_structured_output_is_used_when_the_model_supports_it(tools, request_):
    from langchain_core.language_models import BaseChatModel

    class StructuredModel(ScriptedChatModel):
        def bind_tools(self, *args, **kwargs):  # marks "native tool calling"
            return self

        def with_structured_output(self, schema, *, include_raw=False, **kwargs):
            from langchain_core.runnables import RunnableLambda

            model = self

            def run(messages):
                raw = model.invoke(messages)
                return {"raw": raw, "parsed": json.loads(raw.content), "parsing_error": None}

            return RunnableLambda(run)

    assert StructuredModel.bind_tools is not BaseChatModel.bind_tools
    llm = StructuredModel(responses=[GOOD])
    planner = LLMPlanner(llm)
    assert planner.structured
    assert planner.plan(request_, tools).plan.steps[0].tool == "captioner"


def test_default_planner_routes_by_modality(tools, request_):
    outcome = DefaultPlanner().plan(request_, tools)
    assert outcome.tier == "defaults" and outcome.llm_calls == 0
    assert [(s.tool, s.args) for s in outcome.plan.steps] == [
        ("captioner", {"image": "image_1"}),
        ("transcriber", {"audio": "audio_1"}),
    ]


def test_default_planner_follow_up_uses_the_latest_attachment(tools, request_):
    follow_up = PlanningRequest(text="and what does it say?", conversation=request_.conversation)
    [step] = DefaultPlanner().plan(follow_up, tools).plan.steps
    assert step.args == {"audio": "audio_1"}
