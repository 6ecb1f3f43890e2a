"""The built-in tools, the base classes for writing more, and the shared model cache."""

from __future__ import annotations

from polymodal.tools.base import AudioRef, ImageRef, ImageRefs, ModelTool, Tool, ToolOutput, VideoRef
from polymodal.tools.cache import ModelCache, model_cache
from polymodal.tools.captioner import Captioner
from polymodal.tools.clip_matcher import ClipMatcher, ClipScores, LabelScore
from polymodal.tools.emotion import EmotionRecognizer, EmotionScores
from polymodal.tools.function import AudioInput, FunctionTool, ImageInput, VideoInput, tool
from polymodal.tools.fusion_head import FusionHead
from polymodal.tools.ocr import OCR, OCRLine, OCRResult
from polymodal.tools.transcriber import Transcriber, Transcript, TranscriptSegment
from polymodal.tools.visual_qa import QAPair, VisualAnswers, VisualQA

__all__ = [
    "AudioInput",
    "AudioRef",
    "Captioner",
    "ClipMatcher",
    "ClipScores",
    "EmotionRecognizer",
    "EmotionScores",
    "FunctionTool",
    "FusionHead",
    "ImageInput",
    "ImageRef",
    "ImageRefs",
    "LabelScore",
    "ModelCache",
    "ModelTool",
    "OCR",
    "OCRLine",
    "OCRResult",
    "QAPair",
    "Tool",
    "ToolOutput",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "VideoInput",
    "VideoRef",
    "VisualAnswers",
    "VisualQA",
    "default_tools",
    "model_cache",
    "tool",
]


def default_tools() -> list[Tool]:
    """A fresh instance of each built-in tool with its default model (loaded lazily, on first use)."""
    tools: list[Tool] = [Captioner(), Transcriber()]
    tools += [VisualQA(), ClipMatcher(), OCR(), EmotionRecognizer()]
    return tools
