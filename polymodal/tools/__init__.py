"""The built-in tools, the base classes for writing more, and the shared model cache."""

from __future__ import annotations

from polymodal.tools.base import AudioRef, ImageRef, ImageRefs, ModelTool, Tool, ToolOutput, VideoRef, report_progress
from polymodal.tools.cache import ModelCache, model_cache
from polymodal.tools.captioner import Captioner
from polymodal.tools.dalle import DallEImageGenerator
from polymodal.tools.function import AudioInput, FunctionTool, ImageInput, VideoInput, tool
from polymodal.tools.image_generator import ImageGenerator, ImageGeneratorArgs, ImagePromptArgs
from polymodal.tools.speech_synthesizer import SpeechSynthesizer
from polymodal.tools.transcriber import Transcriber, Transcript, TranscriptSegment

__all__ = [
    "AudioInput",
    "AudioRef",
    "Captioner",
    "DallEImageGenerator",
    "FunctionTool",
    "ImageGenerator",
    "ImageGeneratorArgs",
    "ImageInput",
    "ImagePromptArgs",
    "ImageRef",
    "ImageRefs",
    "ModelCache",
    "ModelTool",
    "SpeechSynthesizer",
    "Tool",
    "ToolOutput",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "VideoInput",
    "VideoRef",
    "default_tools",
    "model_cache",
    "report_progress",
    "tool",
]


def default_tools() -> list[Tool]:
    """A fresh instance of each built-in tool with its default model (loaded lazily, on first use)."""
    tools: list[Tool] = [Captioner(), Transcriber()]
    tools += [ImageGenerator(), SpeechSynthesizer()]
    return tools
