"""The router's test table and the tool catalogue it routes over (shared by tests and bench/planning.py).

The table was written BEFORE the router was tuned, and is kept as written: its hit rate is
reported honestly rather than made perfect. Each case names the attachments the request comes
with and the tools an ideal planner would pick (a set: order does not matter); ``None`` means no
tool applies and the router should not claim a confident route.

The router reads only each tool's name, description and argument schema: the built-in tools are
constructed with their default models, never run, and load nothing. A tool of the design that is
not merged yet (video_summarizer) is a ``@tool`` stand-in with a description in the same style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polymodal import Attachment, VideoInput, tool
from polymodal.tools import Tool, default_tools


@dataclass(frozen=True)
class RouteCase:
    """One request of the table."""

    text: str
    kinds: tuple[str, ...]
    """Attachment kinds sent with the request, in order: "image", "audio", "video"."""
    expected: frozenset[str] | None
    """The tools an ideal plan uses; None: no tool applies."""


def _case(text: str, kinds: tuple[str, ...], *expected: str) -> RouteCase:
    return RouteCase(text, kinds, frozenset(expected) if expected else None)


ROUTE_CASES: list[RouteCase] = [
    _case("What is in this photo?", ("image",), "captioner"),
    _case("Describe this picture.", ("image",), "captioner"),
    _case("Give me a caption for this image.", ("image",), "captioner"),
    _case("What does this voice note say?", ("audio",), "transcriber"),
    _case("Transcribe the recording.", ("audio",), "transcriber"),
    _case("Write down everything the caller says.", ("audio",), "transcriber"),
    _case("What color is the car?", ("image",), "visual_qa"),
    _case("How many people are standing in the picture?", ("image",), "visual_qa"),
    _case("Read the text on this sign.", ("image",), "ocr"),
    _case("Extract the text from this screenshot.", ("image",), "ocr"),
    _case("Read the handwriting in this note.", ("image",), "ocr"),
    _case("Does the speaker sound angry or happy?", ("audio",), "emotion_recognizer"),
    _case("How does she feel in this recording?", ("audio",), "emotion_recognizer"),
    _case("How did the people in this call feel?", ("video",), "emotion_recognizer"),
    _case("Draw a cat riding a skateboard.", (), "image_generator"),
    _case("Generate a poster of a mountain sunset.", (), "image_generator"),
    _case("Make a picture of a lighthouse in a storm.", (), "image_generator"),
    _case("Read this sentence aloud: the train leaves at nine.", (), "speech_synthesizer"),
    _case("Turn this text into speech: welcome to the museum.", (), "speech_synthesizer"),
    _case("What happens in this video?", ("video",), "video_summarizer"),
    _case("Summarize this clip for me.", ("video",), "video_summarizer"),
    _case("What is said in this video?", ("video",), "transcriber"),
    _case("Transcribe the audio and describe the photo.", ("audio", "image"), "transcriber", "captioner"),
    _case("What does the speaker say, and does she sound sad?", ("audio",), "transcriber", "emotion_recognizer"),
    _case("Is this a photo of a beach or a forest?", ("image",), "clip_matcher"),
    _case("What is the capital of France?", ()),
]


def stand_in_tools() -> list[Tool]:
    """Tools of the design not merged yet, as @tool stand-ins with realistic descriptions."""

    @tool
    def video_summarizer(video: VideoInput) -> str:
        """Summarise a video: what happens over time, from keyframe captions and the spoken sound track. Use it
        for 'what happens in this video', 'summarize this clip'."""
        return "stand-in"

    return [video_summarizer]


def routing_tools() -> dict[str, Tool]:
    """The built-in tools with their real descriptions (never loaded), plus stand-ins for missing ones."""
    tools = {t.name: t for t in default_tools()}
    for stand_in in stand_in_tools():
        tools.setdefault(stand_in.name, stand_in)
    return tools


def case_attachments(case: RouteCase, files: Mapping[str, Path]) -> dict[str, Attachment]:
    """The case's attachments with conversation ids (image_1, audio_1, ...), from one file per kind."""
    attachments: dict[str, Attachment] = {}
    counts: dict[str, int] = {}
    for kind in case.kinds:
        counts[kind] = counts.get(kind, 0) + 1
        ident = f"{kind}_{counts[kind]}"
        attachments[ident] = Attachment.from_path(files[kind]).with_id(ident)
    return attachments
