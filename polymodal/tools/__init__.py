"""The built-in tools, the base classes for writing more, and the shared model cache."""

from __future__ import annotations

from polymodal.tools.base import AudioRef, ImageRef, ImageRefs, ModelTool, Tool, ToolOutput, VideoRef, report_progress
from polymodal.tools.cache import ModelCache, model_cache
from polymodal.tools.captioner import Captioner
from polymodal.tools.clip_matcher import ClipMatcher, ClipScores, LabelScore
from polymodal.tools.dalle import DallEImageGenerator
from polymodal.tools.emotion import EmotionRecognizer, EmotionScores
from polymodal.tools.faces import FaceBox, FaceDetector, HaarFaceDetector
from polymodal.tools.frame_grabber import FrameGrabber
from polymodal.tools.function import AudioInput, FunctionTool, ImageInput, VideoInput, tool
from polymodal.tools.fusion_head import FusionHead
from polymodal.tools.image_generator import ImageGenerator, ImageGeneratorArgs, ImagePromptArgs
from polymodal.tools.mood import Mood, MoodSpan, MoodWindow
from polymodal.tools.ocr import OCR, OCRLine, OCRResult
from polymodal.tools.speech_synthesizer import SpeechSynthesizer
from polymodal.tools.transcriber import Transcriber, Transcript, TranscriptSegment
from polymodal.tools.video_summarizer import Timeline, TimelineSegment, VideoSummarizer
from polymodal.tools.visual_qa import QAPair, VisualAnswers, VisualQA

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
    "model_cache",
    "report_progress",
    "tool",
]


def default_tools() -> list[Tool]:
    """A fresh instance of each built-in tool with its default model (loaded lazily, on first use)."""
    captioner, transcriber = Captioner(), Transcriber()
    tools: list[Tool] = [captioner, transcriber]
    tools += [VisualQA(), ClipMatcher(), OCR(), EmotionRecognizer()]
    tools += [ImageGenerator(), SpeechSynthesizer()]
    # The summarizer holds the *same* captioner and transcriber instances: one config, one cached model each.
    tools += [VideoSummarizer(captioner=captioner, transcriber=transcriber), FrameGrabber()]
    return tools
