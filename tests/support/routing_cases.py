"""The router's test table and the tool catalogue it routes over (shared by tests and bench/planning.py).

The table was written BEFORE the router was tuned, and is kept as written: its hit rate is
reported honestly rather than made perfect. Each case names the attachments the request comes
with and the tools an ideal planner would pick (a set: order does not matter); ``None`` means no
tool applies and the router should not claim a confident route.

The tools not yet merged into this branch (visual_qa, ocr, ...) are stand-ins made with
``@tool`` whose descriptions are written the way the real tools describe themselves: the router
reads only name, description and modalities, never runs them, and loads none of their models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polymodal import Attachment, AudioInput, ImageInput, VideoInput, tool
from polymodal.tools import Captioner, Tool, Transcriber


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
    """The tools being built on other branches, as @tool stand-ins with realistic descriptions."""

    @tool
    def visual_qa(image: ImageInput, question: str) -> str:
        """Answer a question about an image: details, colours, counts, positions, what someone is doing.
        Use it for 'what color is the car', 'how many people are there', 'is the door open'."""
        return "stand-in"

    @tool
    def ocr(image: ImageInput) -> str:
        """Read printed or handwritten text in an image (OCR). Use it for 'what does the sign say', 'read the
        text in this screenshot', 'extract the text from this receipt'."""
        return "stand-in"

    @tool
    def clip_matcher(image: ImageInput, labels: list[str]) -> str:
        """Score how well an image matches each of a few text labels (zero-shot classification with CLIP).
        Use it for 'is this a cat or a dog', 'which of these labels fits the photo'."""
        return "stand-in"

    @tool
    def emotion_recognizer(audio: AudioInput) -> str:
        """Recognise the emotion in a voice (angry, happy, neutral, sad) from an audio clip or a video's sound
        track. Use it for 'how does the speaker feel', 'does she sound angry'."""
        return "stand-in"

    @tool
    def image_generator(prompt: str) -> str:
        """Generate a new image from a text description (Stable Diffusion). Use it for 'draw a cat',
        'create a poster of ...', 'make a picture of ...'."""
        return "stand-in"

    @tool
    def speech_synthesizer(text: str) -> str:
        """Turn text into spoken audio (text to speech). Use it for 'read this aloud', 'say ... in a voice',
        'make an audio clip that says ...'."""
        return "stand-in"

    @tool
    def video_summarizer(video: VideoInput) -> str:
        """Summarise a video: what happens over time, from keyframe captions and the spoken sound track. Use it
        for 'what happens in this video', 'summarize this clip'."""
        return "stand-in"

    return [visual_qa, ocr, clip_matcher, emotion_recognizer, image_generator, speech_synthesizer, video_summarizer]


def routing_tools() -> dict[str, Tool]:
    """The nine tools of the design, by name: the real captioner and transcriber (never loaded) + stand-ins."""
    tools: list[Tool] = [Captioner(model="/never/loaded"), Transcriber(model="/never/loaded"), *stand_in_tools()]
    return {t.name: t for t in tools}


def case_attachments(case: RouteCase, files: Mapping[str, Path]) -> dict[str, Attachment]:
    """The case's attachments with conversation ids (image_1, audio_1, ...), from one file per kind."""
    attachments: dict[str, Attachment] = {}
    counts: dict[str, int] = {}
    for kind in case.kinds:
        counts[kind] = counts.get(kind, 0) + 1
        ident = f"{kind}_{counts[kind]}"
        attachments[ident] = Attachment.from_path(files[kind]).with_id(ident)
    return attachments
