"""The planner and fusion with the three kinds of chat model: plain text, native tool calling, local HF.

Plain-text models are parsed and re-asked (tests/test_planner.py); a model that implements
``bind_tools`` gets LangChain's structured output (a forced ``Plan`` tool call); ``ChatHuggingFace``
over a local pipeline (a tiny random Qwen2) is the tested local path: its output is garbage, so
planning must end in a clean PlanningError after the re-asks, and fusion must still run through it.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage
from support.fake_llm import ScriptedChatModel, ToolCallingChatModel

from polymodal import Agent, PlanningError
from polymodal.agent.conversation import Conversation
from polymodal.agent.events import AnswerToken, Done
from polymodal.agent.planner import LLMPlanner
from polymodal.tools import Captioner

PLAN = {"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]}


@pytest.fixture
def captioner(tiny_models) -> Captioner:
    return Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)


@pytest.fixture(scope="module")
def hf_chat(tiny_models):
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline

    pipeline = HuggingFacePipeline.from_model_id(
        model_id=str(tiny_models.path("qwen2-chat")), task="text-generation",
        pipeline_kwargs={"max_new_tokens": 8, "return_full_text": False},
    )
    return ChatHuggingFace(llm=pipeline)


def test_plain_text_models_are_parsed_not_structured():
    assert LLMPlanner(ScriptedChatModel(responses=[])).structured is False


def test_tool_calling_models_plan_through_structured_output(captioner, media):
    bad = AIMessage(content="", tool_calls=[{"name": "Plan", "id": "c0", "args": {
        "steps": [{"id": "s1", "tool": "captioner", "args": {"picture": "image_1"}}]}}])
    good = AIMessage(content="", tool_calls=[{"name": "Plan", "id": "c1", "args": PLAN}])
    llm = ToolCallingChatModel(messages=[bad, good, AIMessage(content="A caption [s1].")])
    agent = Agent(llm=llm, tools=[captioner])
    assert agent.planner.structured is True  # detected from bind_tools
    reply = agent.invoke({"input": "describe", "attachments": [str(media.png())]})
    assert reply.text == "A caption [s1]." and reply.steps[0].ok and reply.llm_calls == 3
    assert llm.bound_tools and llm.bound_tools[0][0]["title"] == "Plan"  # the Plan schema was the tool
    reask = str(llm.calls[1][-1].content)
    assert reask.startswith("That plan was rejected") and "args.picture" in reask


def test_chat_huggingface_garbage_plans_end_in_planning_error(hf_chat, captioner, media):
    agent = Agent(llm=hf_chat, tools=[captioner])
    with pytest.raises(PlanningError) as info:
        agent.invoke({"input": "what is this?", "attachments": [str(media.png())]})
    assert info.value.attempts == 3 and len(info.value.raw_outputs) == 3
    assert "no valid plan in 3 attempts" in str(info.value)
    assert agent.conversation.turns == []


def test_fusion_runs_and_streams_through_chat_huggingface(hf_chat, captioner, media):
    planner_llm = ScriptedChatModel(responses=[json.dumps(PLAN)] * 2)
    agent = Agent(llm=planner_llm, fusion_llm=hf_chat, tools=[captioner])
    reply = agent.invoke({"input": "describe", "attachments": [str(media.png())]})
    assert reply.fusion == "llm" and reply.llm_calls == 2 and isinstance(reply.text, str)
    events = list(agent.stream({"input": "describe", "attachments": [str(media.png())]}, conversation=Conversation()))
    tokens = [e.text for e in events if isinstance(e, AnswerToken)]
    assert isinstance(events[-1], Done) and len(tokens) >= 2  # the local pipeline streamed token by token
    assert "".join(tokens) == events[-1].reply.text
