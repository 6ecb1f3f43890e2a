"""The shipped model profiles and the values a selection is made of (see :mod:`polymodal.profiles`).

Data only: which class each built-in tool is (by import path, so nothing is imported here), which
model each profile gives it, and what a resolved selection holds. Import these names from
:mod:`polymodal.profiles`, which chooses among them and builds the tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROFILES", "TOOL_CLASSES", "Profile", "Selection", "ToolChoice"]

TOOL_CLASSES: dict[str, str] = {
    "captioner": "polymodal.tools.builtin.captioner:Captioner",
    "visual_qa": "polymodal.tools.builtin.visual_qa:VisualQA",
    "transcriber": "polymodal.tools.builtin.transcriber:Transcriber",
    "ocr": "polymodal.tools.builtin.ocr:OCR",
    "clip_matcher": "polymodal.tools.builtin.clip_matcher:ClipMatcher",
    "emotion_recognizer": "polymodal.tools.builtin.emotion:EmotionRecognizer",
    "image_generator": "polymodal.tools.builtin.image_generator:ImageGenerator",
    "speech_synthesizer": "polymodal.tools.builtin.speech_synthesizer:SpeechSynthesizer",
    "video_summarizer": "polymodal.tools.builtin.video_summarizer:VideoSummarizer",
}
"""Tool name -> ``module:Class``. A module that does not define that class is searched for a Tool
subclass whose ``name`` is the tool name, so a renamed class still loads."""


@dataclass(frozen=True)
class Profile:
    """Per tool, the keyword arguments its class is built with (``model=`` and friends)."""

    name: str
    description: str
    tools: Mapping[str, Mapping[str, Any]]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Tools this profile leaves out, and why."""
    router: str | None = None
    """The sentence-embedding model of the router (a folder, a hub id or ``packaged:minilm``); None: the
    Router's own default (the packaged MiniLM when installed, else its hub id); "none": no router."""


PROFILES: dict[str, Profile] = {
    "default": Profile(
        "default",
        "hub checkpoints for a GPU machine with hub access",
        {
            "captioner": {"model": "Salesforce/blip-image-captioning-base"},
            "visual_qa": {"model": "Salesforce/blip-vqa-base"},
            "transcriber": {"model": "openai/whisper-small"},
            "ocr": {},
            "clip_matcher": {"model": "openai/clip-vit-base-patch32"},
            "emotion_recognizer": {},
            "image_generator": {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
            "speech_synthesizer": {"model": "microsoft/speecht5_tts", "vocoder": "microsoft/speecht5_hifigan"},
            "video_summarizer": {},
        },
    ),
    "offline": Profile(
        "offline",
        "real models shipped in PyPI wheels (polymodal[offline-models]); no hub, no GPU needed",
        {
            # backend="auto" picks faster-whisper for this CTranslate2 folder, and transformers for a
            # transformers folder given with --model: naming the backend here would break that override.
            "transcriber": {"model": "packaged:whisper-base"},
            "ocr": {},
        },
        unavailable={name: "no packaged model" for name in TOOL_CLASSES if name not in ("transcriber", "ocr")},
        router="packaged:minilm",
    ),
}


@dataclass
class ToolChoice:
    """What one tool will be built with, and where that came from."""

    name: str
    kwargs: dict[str, Any]
    source: str
    enabled: bool = True
    note: str = ""


@dataclass
class Selection:
    """The resolved profile: every tool's choice, the router model, and why this profile."""

    profile: str
    reason: str
    tools: dict[str, ToolChoice]
    router: str | None
    config_path: Path | None = None
