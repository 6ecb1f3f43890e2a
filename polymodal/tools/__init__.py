"""The built-in tools, the base classes for writing more, and the shared model cache."""

from __future__ import annotations

from polymodal.tools.base import AudioRef, ImageRef, ImageRefs, ModelTool, Tool, ToolOutput, VideoRef
from polymodal.tools.cache import ModelCache, model_cache
from polymodal.tools.captioner import Captioner
from polymodal.tools.frame_grabber import FrameGrabber
from polymodal.tools.function import AudioInput, FunctionTool, ImageInput, VideoInput, tool
from polymodal.tools.transcriber import Transcriber, Transcript, TranscriptSegment
from polymodal.tools.video_summarizer import Timeline, TimelineSegment, VideoSummarizer

__all__ = [
    "AudioInput",
    "AudioRef",
    "Captioner",
    "FrameGrabber",
    "FunctionTool",
    "ImageInput",
    "ImageRef",
    "ImageRefs",
    "ModelCache",
    "ModelTool",
    "Timeline",
    "TimelineSegment",
    "Tool",
    "ToolOutput",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "VideoInput",
    "VideoRef",
    "VideoSummarizer",
    "default_tools",
    "model_cache",
    "tool",
]


def default_tools() -> list[Tool]:
    """A fresh instance of each built-in tool with its default model (loaded lazily, on first use)."""
    captioner, transcriber = Captioner(), Transcriber()
    # The summarizer holds the *same* captioner and transcriber instances: one config, one cached model each.
    return [captioner, transcriber, VideoSummarizer(captioner=captioner, transcriber=transcriber), FrameGrabber()]
