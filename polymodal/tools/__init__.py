"""The built-in tools, the base classes for writing more, and the shared model cache.

Names are imported on first use (PEP 562, see :mod:`polymodal._lazy`), so ``from polymodal.tools
import Transcriber`` loads the transcriber's module and not the others (diffusers, CLIP, OpenCV...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polymodal._lazy import lazy_attributes

if TYPE_CHECKING:
    from polymodal.runtime.cache import ModelCache, model_cache
    from polymodal.tools.base import (
        AudioRef,
        ImageRef,
        ImageRefs,
        ModelTool,
        Tool,
        ToolOutput,
        VideoRef,
        report_progress,
    )
    from polymodal.tools.builtin.captioner import Captioner
    from polymodal.tools.builtin.clip_matcher import ClipMatcher, ClipScores, LabelScore
    from polymodal.tools.builtin.dalle import DallEImageGenerator
    from polymodal.tools.builtin.emotion import EmotionRecognizer, EmotionScores
    from polymodal.tools.builtin.emotion.faces import FaceBox, FaceDetector, HaarFaceDetector
    from polymodal.tools.builtin.emotion.fusion_head import FusionHead
    from polymodal.tools.builtin.emotion.mood import Mood, MoodSpan, MoodWindow
    from polymodal.tools.builtin.frame_grabber import FrameGrabber
    from polymodal.tools.builtin.image_generator import ImageGenerator, ImageGeneratorArgs, ImagePromptArgs
    from polymodal.tools.builtin.ocr import OCR, OCRLine, OCRResult
    from polymodal.tools.builtin.speech_synthesizer import SpeechSynthesizer
    from polymodal.tools.builtin.transcriber import Transcriber, Transcript, TranscriptSegment
    from polymodal.tools.builtin.video_summarizer import Timeline, TimelineSegment, VideoSummarizer
    from polymodal.tools.builtin.visual_qa import QAPair, VisualAnswers, VisualQA
    from polymodal.tools.function import AudioInput, FunctionTool, ImageInput, VideoInput, tool
    from polymodal.tools.mcp_client import MCPConnection, MCPTool, mcp_tools

_WHERE: dict[str, str] = {
    **dict.fromkeys([
        "AudioRef", "ImageRef", "ImageRefs", "ModelTool", "Tool", "ToolOutput", "VideoRef", "report_progress"
    ], "polymodal.tools.base"),
    **dict.fromkeys(["ModelCache", "model_cache"], "polymodal.runtime.cache"),
    **dict.fromkeys(["Captioner"], "polymodal.tools.builtin.captioner"),
    **dict.fromkeys(["ClipMatcher", "ClipScores", "LabelScore"], "polymodal.tools.builtin.clip_matcher"),
    **dict.fromkeys(["DallEImageGenerator"], "polymodal.tools.builtin.dalle"),
    "EmotionRecognizer": "polymodal.tools.builtin.emotion.recognizer",
    "EmotionScores": "polymodal.tools.builtin.emotion.scores",
    **dict.fromkeys(["FaceBox", "FaceDetector", "HaarFaceDetector"], "polymodal.tools.builtin.emotion.faces"),
    **dict.fromkeys(["FrameGrabber"], "polymodal.tools.builtin.frame_grabber"),
    **dict.fromkeys(["AudioInput", "FunctionTool", "ImageInput", "VideoInput", "tool"], "polymodal.tools.function"),
    **dict.fromkeys(["FusionHead"], "polymodal.tools.builtin.emotion.fusion_head"),
    **dict.fromkeys(["ImageGenerator", "ImageGeneratorArgs", "ImagePromptArgs"],
                    "polymodal.tools.builtin.image_generator"),
    **dict.fromkeys(["MCPConnection", "MCPTool", "mcp_tools"], "polymodal.tools.mcp_client"),
    **dict.fromkeys(["Mood", "MoodSpan", "MoodWindow"], "polymodal.tools.builtin.emotion.mood"),
    **dict.fromkeys(["OCR", "OCRLine", "OCRResult"], "polymodal.tools.builtin.ocr"),
    **dict.fromkeys(["SpeechSynthesizer"], "polymodal.tools.builtin.speech_synthesizer"),
    **dict.fromkeys(["Transcriber", "Transcript", "TranscriptSegment"], "polymodal.tools.builtin.transcriber"),
    **dict.fromkeys(["Timeline", "TimelineSegment", "VideoSummarizer"], "polymodal.tools.builtin.video_summarizer"),
    **dict.fromkeys(["QAPair", "VisualAnswers", "VisualQA"], "polymodal.tools.builtin.visual_qa"),
}

__all__ = [
    "AudioInput",
    "AudioRef",
    "Captioner",
    "ClipMatcher",
    "ClipScores",
    "DallEImageGenerator",
    "EmotionRecognizer",
    "EmotionScores",
    "FaceBox",
    "FaceDetector",
    "FrameGrabber",
    "FunctionTool",
    "FusionHead",
    "HaarFaceDetector",
    "ImageGenerator",
    "ImageGeneratorArgs",
    "ImageInput",
    "ImagePromptArgs",
    "ImageRef",
    "ImageRefs",
    "LabelScore",
    "MCPConnection",
    "MCPTool",
    "ModelCache",
    "ModelTool",
    "Mood",
    "MoodSpan",
    "MoodWindow",
    "OCR",
    "OCRLine",
    "OCRResult",
    "QAPair",
    "SpeechSynthesizer",
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
    "VisualAnswers",
    "VisualQA",
    "default_tools",
    "mcp_tools",
    "model_cache",
    "report_progress",
    "tool",
]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())


def default_tools() -> list[Tool]:
    """A fresh instance of each built-in tool with its default model (loaded lazily, on first use)."""
    from polymodal.tools.builtin.captioner import Captioner
    from polymodal.tools.builtin.clip_matcher import ClipMatcher
    from polymodal.tools.builtin.emotion import EmotionRecognizer
    from polymodal.tools.builtin.frame_grabber import FrameGrabber
    from polymodal.tools.builtin.image_generator import ImageGenerator
    from polymodal.tools.builtin.ocr import OCR
    from polymodal.tools.builtin.speech_synthesizer import SpeechSynthesizer
    from polymodal.tools.builtin.transcriber import Transcriber
    from polymodal.tools.builtin.video_summarizer import VideoSummarizer
    from polymodal.tools.builtin.visual_qa import VisualQA

    captioner, transcriber = Captioner(), Transcriber()
    tools: list[Tool] = [captioner, transcriber]
    tools += [VisualQA(), ClipMatcher(), OCR(), EmotionRecognizer()]
    tools += [ImageGenerator(), SpeechSynthesizer()]
    # The summarizer holds the *same* captioner and transcriber instances: one config, one cached model each.
    tools += [VideoSummarizer(captioner=captioner, transcriber=transcriber), FrameGrabber()]
    return tools
