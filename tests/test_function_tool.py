"""Custom tools from typed functions: the schema the planner sees and what the function receives."""

from __future__ import annotations

import pytest
from PIL import Image

from polymodal import Agent, Attachment, AudioInput, ConfigurationError, Modality, tool
from polymodal.tools import FunctionTool


@tool(timeout=5)
def count_colors(image: Image.Image, max_colors: int = 256) -> str:
    """Count the distinct colours in a photo.

    Args:
        image: the photo to inspect.
        max_colors: stop counting past this many.
    """
    return str(min(len(image.getcolors(max_colors) or []), max_colors))


@tool
def loudness(audio: AudioInput) -> tuple[str, float]:
    """Peak level of a sound."""
    peak = float(abs(audio.audio()).max(initial=0.0))
    return f"peak {peak:.2f}", peak


def test_signature_becomes_a_forbid_extra_schema_with_modalities():
    assert isinstance(count_colors, FunctionTool) and count_colors.timeout == 5
    assert count_colors.description == "Count the distinct colours in a photo."
    assert count_colors.input_modalities == {"image": Modality.IMAGE}
    fields = count_colors.args_schema.model_fields
    assert fields["max_colors"].description == "stop counting past this many." and fields["max_colors"].default == 256
    with pytest.raises(ValueError, match="extra"):
        count_colors.args_schema.model_validate({"image": "image_1", "device": "cuda"})
    assert loudness.input_modalities == {"audio": Modality.AUDIO}


def test_pil_parameters_get_decoded_images_and_tuples_become_artifacts(media):
    assert count_colors.execute(image=Attachment.from_path(media.png())).content == "1"
    out = loudness.execute(audio=Attachment.from_path(media.wav()))
    assert out.content == "peak 0.50" and out.artifact == pytest.approx(0.5, abs=0.01)


def test_custom_tools_run_inside_the_agent(media):
    reply = Agent(tools=[count_colors, loudness]).chat("?", attachments=[media.png(), media.wav()])
    # No LLM: the default planner only knows built-in tool names, so nothing is routed to custom tools.
    assert reply.plan.steps == []
    from polymodal.agent.plan import Plan

    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "count_colors", "args": {"image": "image_1"}}]})
    agent = Agent(tools=[count_colors])
    agent.conversation.add(Attachment.from_path(media.png()))
    [result] = agent.executor.run(plan, agent.conversation)
    assert result.ok and result.content == "1"


def test_a_function_without_a_docstring_is_refused():
    def nameless(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="docstring"):
        tool(nameless)


def test_untyped_attachment_parameters_are_refused():
    def f(file: Attachment) -> str:
        """Doc."""
        return ""

    with pytest.raises(ConfigurationError, match="ImageInput, AudioInput or VideoInput"):
        tool(f)


def test_a_tool_subclass_is_the_other_way_to_add_a_tool(media):
    from pydantic import BaseModel, ConfigDict

    from polymodal import Tool, ToolOutput
    from polymodal.tools import ImageRef

    class SizeArgs(BaseModel):
        model_config = ConfigDict(extra="forbid")
        image: ImageRef

    class ImageSize(Tool):
        name: str = "image_size"
        description: str = "Report an image's width and height in pixels."
        args_schema: type[BaseModel] = SizeArgs

        def execute_batch(self, inputs):
            return [ToolOutput(content=f"{i['image'].width}x{i['image'].height}") for i in inputs]

    sizer = ImageSize(timeout=2)
    assert sizer.input_modalities == {"image": Modality.IMAGE}
    assert sizer.invoke({"image": str(media.png(size=(20, 10)))}) == "20x10"


def test_T1_timeout_is_enforced_on_a_direct_langchain_call_too():
    import time

    from polymodal import ToolTimeout

    @tool(timeout=0.3)
    def stuck(text: str) -> str:
        """Never finishes in time."""
        time.sleep(10)
        return text

    started = time.perf_counter()
    message = stuck.invoke({"type": "tool_call", "id": "c1", "name": "stuck", "args": {"text": "x"}})
    assert time.perf_counter() - started < 0.3 + 0.5
    assert message.status == "error" and "timed out after 0.3 s" in message.content
    stuck.handle_tool_error = False
    with pytest.raises(ToolTimeout):
        stuck.invoke({"text": "x"})
