"""MultimodalChain in LCEL, polymodal tools inside ``create_agent``, and the two examples, run for real."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel
from langchain_core.utils.function_calling import convert_to_openai_tool
from support.fake_llm import ScriptedChatModel, ToolCallingChatModel

from polymodal import Agent, ConfigurationError
from polymodal.integrations.langchain import MultimodalChain
from polymodal.tools import Captioner, Transcriber, Transcript, default_tools

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CAPTION = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]})


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def captioner(tiny_models) -> Captioner:
    return Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_prompt_chain_parser_sends_the_templated_image_to_the_tools(captioner, media):
    prompt = ChatPromptTemplate.from_messages([("human", [
        {"type": "text", "text": "Answer as JSON for {who}."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,{image}"}}])])
    llm = ScriptedChatModel(responses=[CAPTION, '{"caption": "a square", "cited": "[s1]"}'])
    chain = prompt | MultimodalChain(llm=llm, tools=[captioner]) | JsonOutputParser()
    out = chain.invoke({"who": "a robot", "image": _b64(media.png())})
    assert out == {"caption": "a square", "cited": "[s1]"}
    assert "Answer as JSON for a robot." in llm.prompt(0) and "image_1: image/png 64x48" in llm.prompt(0)


def test_chain_calls_are_independent_and_work_in_parallel_maps(captioner, media):
    agent = Agent(tools=[captioner])  # no LLM: router by modality + template answer, fully offline
    chain = MultimodalChain(agent)
    parallel = RunnableParallel(first=chain, second=chain | StrOutputParser())
    out = parallel.invoke({"input": "describe", "attachments": [str(media.png())]})
    # one attachment, one step: the caption is the whole answer (passthrough)
    assert out["first"] == out["second"] == captioner.invoke({"image": str(media.png())})
    photos = [media.png(name=f"{i}.png", color=color) for i, color in enumerate([(255, 0, 0), (0, 0, 255)])]
    many = chain.batch([{"input": "describe", "attachments": [str(p)]} for p in photos])
    assert many == [captioner.invoke({"image": str(p)}) for p in photos]
    assert agent.conversation.turns == []  # the chain never touches the agent's own conversation


def test_chain_takes_an_agent_or_its_arguments_not_both(captioner):
    with pytest.raises(ConfigurationError, match="not both"):
        MultimodalChain(Agent(tools=[captioner]), tools=[captioner])


def test_default_tools_drop_into_create_agent_as_they_are(tiny_models, media):
    from langchain.agents import create_agent

    schemas = {t.name: convert_to_openai_tool(t)["function"] for t in default_tools()}
    assert schemas["captioner"]["parameters"]["required"] == ["image"]
    assert schemas["transcriber"]["parameters"]["properties"]["audio"]["type"] == "string"
    tools = [Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)]
    model = ToolCallingChatModel(messages=[
        AIMessage(content="", tool_calls=[{"name": "captioner", "args": {"image": str(media.png())}, "id": "a"},
                                          {"name": "captioner", "args": {"image": str(media.wav())}, "id": "b"}]),
        AIMessage(content="done"),
    ])
    state = create_agent(model, tools=tools).invoke({"messages": [HumanMessage("look")]})
    results = {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}
    assert results["a"].status == "success" and results["a"].artifact == results["a"].content
    assert results["b"].status == "error" and "needs image" in results["b"].content  # typed, not a crash
    assert state["messages"][-1].content == "done"


def test_langchain_agent_example_runs(tiny_models, media, capsys):
    example = load_example("langchain_agent")
    state = example.main([str(media.png()), str(media.wav(seconds=1.0)),
                          "--captioner-model", str(tiny_models.path("blip-caption")),
                          "--transcriber-model", str(tiny_models.path("whisper-asr"))])
    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_messages] == ["captioner", "transcriber"]
    assert all(m.status == "success" for m in tool_messages)
    assert isinstance(tool_messages[1].artifact, Transcript)
    assert state["messages"][-1].content.startswith("Here is what I found: captioner said")
    assert "(artifact: Transcript)" in capsys.readouterr().out


def test_multimodal_chain_example_runs(tiny_models, media):
    example = load_example("multimodal_chain")
    folder = str(tiny_models.path("blip-caption"))
    out = example.main([str(media.png()), "--captioner-model", folder])
    assert out["description"] == Captioner(model=folder).invoke({"image": str(media.png())})
    assert out["shout"] == out["description"].upper()


def test_transcriber_artifact_survives_the_tool_message(tiny_models, media):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=4)
    message = transcriber.invoke({"type": "tool_call", "id": "t", "name": "transcriber",
                                  "args": {"audio": str(media.wav())}})
    assert isinstance(message.artifact, Transcript) and message.content == message.artifact.text
