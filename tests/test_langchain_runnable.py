"""The Agent as a LangChain Runnable: invoke/batch/stream/astream_events, config, and content-block input.

A scripted chat model plays the LLM (the boundary). Steps that need real outputs run the tiny
captioner; steps that only probe the plumbing (concurrency, progress, failures, generated images)
are ``@tool`` functions, which is what a user's custom tool is.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, AttachmentError, ImageInput, Reply, tool
from polymodal.agent.events import (
    AnswerToken,
    Done,
    PlanReady,
    StepFinished,
    StepProgress,
    StepStarted,
)
from polymodal.errors import ConfigurationError
from polymodal.integrations.langchain import parse_agent_input
from polymodal.media import MediaLimits
from polymodal.tools import Captioner, Transcriber, report_progress

CAPTION = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]})


def plan_of(*tools: str, answer: str | None = None) -> str:
    steps = [{"id": f"s{i}", "tool": name, "args": {"image": "image_1"}} for i, name in enumerate(tools, 1)]
    return json.dumps({"steps": steps, "answer": answer})


@pytest.fixture
def captioner(tiny_models) -> Captioner:
    return Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)


class Recorder(BaseCallbackHandler):
    """Records what callbacks receive: event names, tool payloads, tags and metadata."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.payloads: list[Any] = []
        self.tool_tags: list[list[str]] = []
        self.tool_metadata: list[dict[str, Any]] = []
        self.custom: list[tuple[str, Any]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self.events.append(("chain_start", kwargs.get("name") or ""))
        self.payloads.append(inputs)

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self.events.append(("chain_end", ""))
        self.payloads.append(outputs)

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.events.append(("tool_start", serialized.get("name", "")))
        self.tool_tags.append(list(kwargs.get("tags") or []))
        self.tool_metadata.append(dict(kwargs.get("metadata") or {}))
        self.payloads.append(kwargs.get("inputs"))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.events.append(("tool_end", getattr(output, "status", "")))
        self.payloads.append(output)

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("tool_error", type(error).__name__))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom.append((name, data))


# ----------------------------------------------------------------- invoke --------------
def test_invoke_is_chat_on_the_same_conversation(captioner, media):
    follow_up = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}],
                            "answer": "s1"})
    llm = ScriptedChatModel(responses=[CAPTION, "A square [s1].", follow_up])
    agent = Agent(llm=llm, tools=[captioner])
    first = agent.invoke({"input": "What is this?", "attachments": [str(media.png())]})
    assert isinstance(first, Reply) and first.text == "A square [s1]." and first.attachment_ids == ["image_1"]
    second = agent.invoke("And again?")
    assert second.steps[0].ok and "image_1: image/png" in llm.prompt(2)
    assert len(agent.conversation.turns) == 2


async def test_ainvoke_and_messages_view(captioner, media):
    llm = ScriptedChatModel(responses=[CAPTION, "Red [s1]."] * 2)
    agent = Agent(llm=llm, tools=[captioner])
    reply = await agent.ainvoke({"input": "what?", "attachments": [str(media.png())]})
    message = reply.to_message()
    assert isinstance(message, AIMessage) and message.content == "Red [s1]."
    assert message.response_metadata["steps"] == [{"id": "s1", "tool": "captioner", "status": "ok"}]
    as_message = agent.as_messages().invoke({"input": "what?", "attachments": [str(media.png())]})
    assert isinstance(as_message, AIMessage) and as_message.content == "Red [s1]."


# ---------------------------------------------------------- content blocks --------------
def _b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


IMAGE_SHAPES = {
    "v1-base64": lambda d: {"type": "image", "base64": d, "mime_type": "image/png"},
    "v0-source-type": lambda d: {"type": "image", "source_type": "base64", "data": d, "mime_type": "image/png"},
    "openai-image-url": lambda d: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{d}"}},
    "openai-image-url-str": lambda d: {"type": "image_url", "image_url": f"data:image/png;base64,{d}"},
    "anthropic-source": lambda d: {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                               "data": d}},
    "v1-file": lambda d: {"type": "file", "base64": d, "mime_type": "image/png", "filename": "photo.png"},
    "openai-file": lambda d: {"type": "file", "file": {"file_data": f"data:image/png;base64,{d}",
                                                       "filename": "photo.png"}},
}


@pytest.mark.parametrize("shape", sorted(IMAGE_SHAPES))
def test_every_image_block_shape_decodes_to_the_same_attachment(media, shape):
    png = media.png()
    block = IMAGE_SHAPES[shape](_b64(png))
    request = parse_agent_input(HumanMessage(content=[{"type": "text", "text": "what is it?"}, block]))
    by_path = parse_agent_input({"input": "what is it?", "attachments": [str(png)]})
    assert request.text == by_path.text == "what is it?"
    assert [(a.kind, a.sha256, a.width) for a in request.attachments] == [
        (a.kind, a.sha256, a.width) for a in by_path.attachments]


@pytest.mark.parametrize("shape", ["v1", "openai-input-audio", "dict-of-blocks"])
def test_audio_blocks_decode_to_the_wav(media, shape):
    wav = media.wav()
    data = _b64(wav)
    block = ({"type": "audio", "base64": data, "mime_type": "audio/wav"} if shape != "openai-input-audio"
             else {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
    value = ({"input": [{"type": "text", "text": "transcribe"}, block]} if shape == "dict-of-blocks"
             else [HumanMessage(content=["transcribe", block])])
    request = parse_agent_input(value)
    assert request.text == "transcribe"
    assert [a.sha256 for a in request.attachments] == [parse_agent_input({"input": "", "attachments":
                                                                          [str(wav)]}).attachments[0].sha256]


def test_video_blocks_and_the_whole_conversation_of_messages(media):
    video, png = media.video(), media.png()
    messages = [HumanMessage(content=[{"type": "text", "text": "look"},
                                      {"type": "image", "base64": _b64(png), "mime_type": "image/png"}]),
                AIMessage(content="ok"),
                HumanMessage(content=[{"type": "text", "text": "and this?"},
                                      {"type": "video", "base64": _b64(video), "mime_type": "video/mp4"}])]
    request = parse_agent_input(messages)
    assert request.text == "and this?"  # the last human message is the request
    assert [a.kind.value for a in request.attachments] == ["image", "video"]


def test_bad_inputs_are_typed_errors(media):
    with pytest.raises(AttachmentError, match="allow_urls"):
        parse_agent_input(HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png?token=x"}]))
    with pytest.raises(AttachmentError, match="text"):
        parse_agent_input(HumanMessage(content=[{"type": "image", "base64": base64.b64encode(b"hello").decode(),
                                                 "mime_type": "image/png"}]))
    with pytest.raises(ConfigurationError, match="agent input"):
        parse_agent_input(42)
    with pytest.raises(ConfigurationError, match="'input'"):
        parse_agent_input({"query": "x"})
    with pytest.raises(AttachmentError, match="outside"):
        parse_agent_input({"input": "x", "attachments": [str(media.png())]},
                          MediaLimits(allowed_roots=(media.folder / "nowhere",)))


# ------------------------------------------------------------------ batch --------------
def _probe_tool(delay: float = 0.0):
    state = {"now": 0, "peak": 0, "lock": threading.Lock()}

    @tool
    def probe(image: ImageInput) -> str:
        """Probe an image (records how many calls overlap)."""
        with state["lock"]:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(delay)
        with state["lock"]:
            state["now"] -= 1
        return f"{image.width}x{image.height} {image.getpixel((0, 0)) if hasattr(image, 'getpixel') else ''}"

    return probe, state


def test_batch_items_are_independent_requests(media):
    probe, _state = _probe_tool()
    agent = Agent(llm=ScriptedChatModel(responses=[plan_of("probe", answer="s1")] * 3), tools=[probe])
    inputs = [{"input": "size?", "attachments": [str(media.png(name=f"{i}.png", size=(10 + i, 10)))]}
              for i in range(3)]
    replies = agent.batch(inputs)
    assert [r.text.split()[0] for r in replies] == ["10x10", "11x10", "12x10"]
    assert all(r.attachment_ids == ["image_1"] for r in replies)  # each had a conversation of its own
    assert agent.conversation.turns == [] and agent.conversation.attachments == {}


@pytest.mark.parametrize(("limit", "expect_parallel"), [(1, False), (4, True)])
def test_batch_honours_max_concurrency(media, limit, expect_parallel):
    probe, state = _probe_tool(delay=0.3)
    agent = Agent(llm=ScriptedChatModel(responses=[plan_of("probe", answer="s1")] * 4), tools=[probe])
    agent.batch([{"input": "size?", "attachments": [str(media.png())]}] * 4, config={"max_concurrency": limit})
    assert (state["peak"] > 1) is expect_parallel and state["peak"] <= limit


async def test_abatch_honours_max_concurrency_and_returns_exceptions(media):
    probe, state = _probe_tool(delay=0.2)
    agent = Agent(llm=ScriptedChatModel(responses=[plan_of("probe", answer="s1")] * 3), tools=[probe])
    good = {"input": "size?", "attachments": [str(media.png())]}
    out = await agent.abatch([good, {"input": "x", "attachments": [str(media.folder / "missing.png")]}, good],
                             config={"max_concurrency": 1}, return_exceptions=True)
    assert isinstance(out[0], Reply) and isinstance(out[1], AttachmentError) and isinstance(out[2], Reply)
    assert state["peak"] == 1


# ----------------------------------------------------------------- stream --------------
def test_stream_yields_typed_events_in_order_with_answer_tokens(captioner, media):
    @tool
    def broken(image: ImageInput) -> str:
        """Always fails."""
        raise RuntimeError("boom")

    llm = GenericFakeChatModel(messages=iter([AIMessage(content=plan_of("captioner", "broken")),
                                              AIMessage(content="It shows a square [s1]; reading failed.")]))
    agent = Agent(llm=llm, tools=[captioner, broken])
    events = list(agent.stream({"input": "describe", "attachments": [str(media.png())]}))
    kinds = [type(e) for e in events]
    assert kinds[0] is PlanReady and kinds[-1] is Done
    started = [e.step.id for e in events if isinstance(e, StepStarted)]
    finished = {e.step.id: e.step for e in events if isinstance(e, StepFinished)}
    assert sorted(started) == ["s1", "s2"] and finished["s1"].ok and finished["s2"].status == "error"
    assert "boom" in (finished["s2"].error or "")
    for step_id in started:  # each step starts before it finishes
        start = next(i for i, e in enumerate(events) if isinstance(e, StepStarted) and e.step.id == step_id)
        end = next(i for i, e in enumerate(events) if isinstance(e, StepFinished) and e.step.id == step_id)
        assert start < end
    tokens = [e.text for e in events if isinstance(e, AnswerToken)]
    last_step = max(i for i, e in enumerate(events) if isinstance(e, StepFinished))
    first_token = min(i for i, e in enumerate(events) if isinstance(e, AnswerToken))
    assert len(tokens) > 3 and first_token > last_step  # the fusion model streamed, after the tools
    assert "".join(tokens) == events[-1].reply.text == "It shows a square [s1]; reading failed."


def test_chat_with_on_event_streams_the_same_events_on_the_callers_thread(captioner, media):
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=plan_of("captioner")),
                                              AIMessage(content="It shows a square [s1].")]))
    agent = Agent(llm=llm, tools=[captioner])
    seen: list[tuple[Any, str]] = []
    reply = agent.chat("describe", [str(media.png())], stream_answer=True,
                       on_event=lambda event: seen.append((event, threading.current_thread().name)))
    events = [event for event, _ in seen]
    assert isinstance(events[0], PlanReady) and isinstance(events[-1], Done) and events[-1].reply is reply
    assert [type(e) for e in events if isinstance(e, (StepStarted, StepFinished))] == [StepStarted, StepFinished]
    tokens = [e.text for e in events if isinstance(e, AnswerToken)]
    assert len(tokens) > 3 and "".join(tokens) == reply.text == "It shows a square [s1]."
    here = threading.current_thread().name  # no thread of its own: plan, tokens and done come on this one
    assert {thread for event, thread in seen if isinstance(event, (PlanReady, AnswerToken, Done))} == {here}


def test_stream_reraises_a_planning_failure_after_no_events(captioner, media):
    agent = Agent(llm=ScriptedChatModel(responses=["prose"] * 3), tools=[captioner])
    events = []
    with pytest.raises(Exception, match="no valid plan"):
        for event in agent.stream({"input": "what?", "attachments": [str(media.png())]}):
            events.append(event)
    assert events == []


async def test_astream_events_show_tools_llm_progress_and_typed_chunks(media):
    @tool
    def frames(image: ImageInput) -> str:
        """Read frames, reporting progress."""
        for i in (1, 2):
            report_progress(f"frame {i}/2", i / 2)
        return "two frames"

    llm = ScriptedChatModel(responses=[plan_of("frames"), "Two frames [s1]."])
    agent = Agent(llm=llm, tools=[frames])
    seen = [e async for e in agent.astream_events({"input": "read", "attachments": [str(media.png())]},
                                                  version="v2", config={"tags": ["outer"]})]
    names = [(e["event"], e["name"]) for e in seen]
    assert names[0] == ("on_chain_start", "Agent") and names[-1] == ("on_chain_end", "Agent")
    for expected in [("on_chat_model_start", "ScriptedChatModel"), ("on_tool_start", "frames"),
                     ("on_tool_end", "frames")]:
        assert expected in names
    progress = [e["data"] for e in seen if e["event"] == "on_custom_event" and e["name"] == "polymodal_progress"]
    assert progress == [{"step_id": "s1", "tool": "frames", "message": f"frame {i}/2", "fraction": i / 2}
                        for i in (1, 2)]
    chunks = [e["data"]["chunk"] for e in seen if e["event"] == "on_chain_stream"]
    assert any(isinstance(c, StepProgress) and c.fraction == 1.0 for c in chunks)
    assert isinstance(chunks[-1], Done) and chunks[-1].reply.text == "Two frames [s1]."
    tool_start = next(e for e in seen if e["event"] == "on_tool_start")
    assert "outer" in tool_start["tags"]


def test_progress_reaches_chat_on_event_and_direct_tool_callbacks(media):
    @tool
    def frames(image: ImageInput) -> str:
        """Read frames, reporting progress."""
        report_progress("frame 1/1", 1.0)
        return "one frame"

    seen: list[Any] = []
    agent = Agent(llm=ScriptedChatModel(responses=[plan_of("frames", answer="s1")]), tools=[frames])
    agent.chat("read", attachments=[str(media.png())], on_event=seen.append)
    assert [type(event) for event in seen] == [PlanReady, StepStarted, StepProgress, StepFinished, Done]
    assert [event.type for event in seen] == ["plan_ready", "step_started", "step_progress", "step_finished", "done"]
    assert seen[2].message == "frame 1/1" and seen[2].step_id == "s1"
    recorder = Recorder()  # a direct LangChain call: no step, the custom event goes to the tool run
    frames.invoke({"image": str(media.png())}, config={"callbacks": [recorder]})
    assert recorder.custom == [("polymodal_progress", {"step_id": None, "tool": "frames",
                                                       "message": "frame 1/1", "fraction": 1.0})]
    frames.invoke({"image": str(media.png())})  # no callbacks at all: still fine


# -------------------------------------------------------------- callbacks --------------
def test_callbacks_tags_and_metadata_reach_tool_runs_including_errors(captioner, media):
    @tool
    def crashes(image: ImageInput) -> str:
        """Crashes with a library error."""
        raise RuntimeError("segfault-ish")

    @tool
    def refuses(image: ImageInput) -> str:
        """Fails the polymodal way."""
        from polymodal import ToolError

        raise ToolError("refuses", "cannot read this")

    recorder = Recorder()
    llm = ScriptedChatModel(responses=[plan_of("captioner", "crashes", "refuses"), "Only a caption [s1]."])
    agent = Agent(llm=llm, tools=[captioner, crashes, refuses])
    reply = agent.invoke({"input": "do all", "attachments": [str(media.png())]},
                         config={"callbacks": [recorder], "tags": ["t1"], "metadata": {"user": "u1"},
                                 "run_name": "photo-agent"})
    assert [s.status for s in reply.steps] == ["ok", "error", "error"]
    assert recorder.events[0] == ("chain_start", "photo-agent")
    assert sorted(name for kind, name in recorder.events if kind == "tool_start") == ["captioner", "crashes",
                                                                                       "refuses"]
    assert ("tool_error", "RuntimeError") in recorder.events  # an unexpected exception
    assert ("tool_end", "error") in recorder.events  # a ToolError becomes ToolMessage(status="error")
    assert ("tool_end", "success") in recorder.events
    assert all("t1" in tags for tags in recorder.tool_tags)
    assert all(meta.get("user") == "u1" for meta in recorder.tool_metadata)


def _walk(value: Any, depth: int = 0):
    """Every leaf of a payload, looking inside pydantic models, messages and containers."""
    yield value
    if depth > 12:
        return
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, depth + 1)


def test_no_raw_media_bytes_in_callback_payloads(media):
    @tool
    def painter(image: ImageInput) -> Image.Image:
        """Paint a new 256x256 image."""
        return Image.new("RGB", (256, 256), (10, 200, 30))

    recorder = Recorder()
    llm = ScriptedChatModel(responses=[plan_of("painter"), "Painted [s1]."])
    agent = Agent(llm=llm, tools=[painter])
    png_b64 = _b64(media.png(size=(200, 200)))
    message = HumanMessage(content=[{"type": "text", "text": "paint"},
                                    {"type": "image", "base64": png_b64, "mime_type": "image/png"}])
    reply = agent.invoke(message, config={"callbacks": [recorder]})
    assert reply.artifacts and reply.artifacts[0].kind.value == "image"  # the image was produced...
    tool_output = next(p for p in recorder.payloads if isinstance(p, ToolMessage))
    assert isinstance(tool_output.artifact, Attachment) and tool_output.artifact.width == 256  # ...as an Attachment
    for payload in recorder.payloads:
        for leaf in _walk(payload):
            assert not isinstance(leaf, bytes | bytearray | memoryview | Image.Image), type(leaf)
            assert not (isinstance(leaf, str) and len(leaf) > 2000), leaf[:80]
        assert len(json.dumps(dumpd(payload), default=str)) < 20_000
    assert png_b64[:200] not in repr(recorder.payloads)
    with_media = reply.to_message(include_media=True).content  # bytes only when asked for
    assert with_media[1]["type"] == "image" and base64.b64decode(with_media[1]["base64"]) == reply.artifacts[
        0].read_bytes()
    assert reply.to_message().content == "Painted [s1]."


# ------------------------------------------------------------------ as_tool -------------
def test_agent_as_one_tool(captioner, media):
    llm = ScriptedChatModel(responses=[CAPTION, "A photo [s1]."] * 2)
    agent_tool = Agent(llm=llm, tools=[captioner]).as_tool(name="look")
    assert agent_tool.name == "look" and set(agent_tool.args) == {"request", "attachments"}
    message = agent_tool.invoke({"type": "tool_call", "id": "c1", "name": "look",
                                 "args": {"request": "what?", "attachments": [str(media.png())]}})
    assert isinstance(message, ToolMessage) and message.content == "A photo [s1]."
    assert isinstance(message.artifact, Reply) and message.artifact.attachment_ids == ["image_1"]
    failed = agent_tool.invoke({"type": "tool_call", "id": "c2", "name": "look",
                                "args": {"request": "what?", "attachments": [str(media.folder / "nope.png")]}})
    assert failed.status == "error" and "no such file" in failed.content


# ------------------------------------------------------------ multimodal LLM ------------
def test_multimodal_llm_gets_the_images_as_blocks_and_the_planner_never_does(captioner, media):
    png = media.png()
    llm = ScriptedChatModel(responses=[json.dumps({"steps": []}), "A green square."])
    agent = Agent(llm=llm, tools=[captioner], multimodal_llm=True)
    reply = agent.invoke({"input": "what colour?", "attachments": [str(png)]})
    assert reply.text == "A green square." and reply.plan.steps == []
    planner_content = llm.calls[0][0].content
    assert isinstance(planner_content, str) and _b64(png)[:100] not in planner_content
    blocks = llm.calls[1][0].content
    assert blocks[0]["type"] == "text" and blocks[1] == {"type": "image", "base64": _b64(png),
                                                         "mime_type": "image/png"}
    text_only = ScriptedChatModel(responses=[json.dumps({"steps": []}), "ok"])
    Agent(llm=text_only, tools=[captioner]).invoke({"input": "what colour?", "attachments": [str(png)]})
    assert isinstance(text_only.calls[1][0].content, str)


# ------------------------------------------- long real tools (when their branches have landed) --
async def test_diffusion_progress_in_astream_events_and_no_image_bytes_in_callbacks(tiny_models, media):
    from polymodal.tools.builtin.image_generator import ImageGenerator

    generator = ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=3)
    plan = json.dumps({"steps": [{"id": "s1", "tool": "image_generator", "args": {"prompt": "a red square",
                                                                                 "seed": 1}}]})
    recorder = Recorder()
    agent = Agent(llm=ScriptedChatModel(responses=[plan, "Here it is [s1]."]), tools=[generator])
    seen = [e async for e in agent.astream_events("draw a red square", version="v2",
                                                  config={"callbacks": [recorder]})]
    progress = [e["data"] for e in seen if e["event"] == "on_custom_event" and e["name"] == "polymodal_progress"]
    assert len(progress) == 3 and all(p["tool"] == "image_generator" for p in progress)
    assert [name for name, _ in recorder.custom] == ["polymodal_progress"] * 3  # handlers see it too
    reply = seen[-1]["data"]["output"].reply
    assert reply.artifacts and reply.artifacts[0].kind.value == "image"
    image_b64 = base64.b64encode(reply.artifacts[0].read_bytes()).decode()
    serialised = json.dumps([dumpd(p) for p in recorder.payloads], default=str) + repr(recorder.payloads) + repr(
        [e["data"] for e in seen if e["event"] != "on_chain_end"])
    assert len(image_b64) > 200 and image_b64[100:300] not in serialised  # the generated image's bytes are nowhere
    assert any(isinstance(p, ToolMessage) and isinstance(p.artifact, Attachment) for p in recorder.payloads)
    for payload in recorder.payloads:
        for leaf in _walk(payload):
            assert not isinstance(leaf, bytes | bytearray | memoryview | Image.Image), type(leaf)
        assert len(json.dumps(dumpd(payload), default=str)) < 20_000


def test_video_summarizer_progress_reaches_the_stream(tiny_models, media):
    from polymodal.tools.builtin.video_summarizer import VideoSummarizer

    summarizer = VideoSummarizer(
        captioner=Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=3),
        transcriber=Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=3), max_keyframes=2)
    plan = json.dumps({"steps": [{"id": "s1", "tool": "video_summarizer", "args": {"video": "video_1"}}],
                       "answer": "s1"})
    agent = Agent(llm=ScriptedChatModel(responses=[plan]), tools=[summarizer])
    events = list(agent.stream({"input": "summarise", "attachments": [str(media.video(audio="tone"))]}))
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert progress and all(p.step_id == "s1" and p.tool == "video_summarizer" for p in progress)
    assert isinstance(events[-1], Done) and events[-1].reply.steps[0].ok
