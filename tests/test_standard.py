"""LangChain's own conformance suites (``langchain-tests``) for every built-in tool, on tiny local models.

The suites read the tool's constructor and an example call from class properties, while our tiny
checkpoints and media come from session fixtures. An autouse fixture hands both to the test
instance before the suite's own ``tool`` fixture reads the properties. The table below is the
only thing to edit when a tool is added: one :class:`ToolCase` per tool, and the unit and
integration classes are generated from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from support.media_files import MediaFactory
from support.tiny_models import TinyModels


@dataclass(frozen=True)
class ToolCase:
    """One tool under the standard suites."""

    tool: str
    """``module:Class``. Tools of branches not merged yet are listed ahead; their modules are absent
    until they land, and ``test_every_default_tool_has_a_standard_case`` keeps the table complete."""
    params: Callable[[TinyModels], dict[str, Any]]
    """Constructor arguments, pointing the tool at a tiny local checkpoint."""
    example: Callable[[MediaFactory], dict[str, Any]]
    """Arguments of an example call (media as file paths, as a direct LangChain call passes them)."""

    def load(self) -> type[BaseTool] | None:
        module, _, name = self.tool.partition(":")
        try:
            return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # the tool exists but one of its own imports is broken: fail loudly
            return None


def _captioner(m: TinyModels) -> Any:
    from polymodal.tools import Captioner

    return Captioner(model=str(m.path("blip-caption")), max_new_tokens=3)


def _transcriber(m: TinyModels) -> Any:
    from polymodal.tools import Transcriber

    return Transcriber(model=str(m.path("whisper-asr")), max_new_tokens=3)


def _agent(m: TinyModels) -> Any:
    from polymodal import Agent

    return Agent(tools=[_captioner(m)])


CASES: list[ToolCase] = [
    ToolCase("polymodal.tools.builtin.captioner:Captioner",
             lambda m: {"model": str(m.path("blip-caption")), "max_new_tokens": 4},
             lambda f: {"image": str(f.png())}),
    ToolCase("polymodal.tools.builtin.transcriber:Transcriber",
             lambda m: {"model": str(m.path("whisper-asr")), "max_new_tokens": 4},
             lambda f: {"audio": str(f.wav(seconds=1.0))}),
    ToolCase("polymodal.tools.builtin.visual_qa:VisualQA",
             lambda m: {"model": str(m.path("blip-vqa")), "max_new_tokens": 4},
             lambda f: {"image": str(f.png()), "question": "what colour is it?"}),
    ToolCase("polymodal.tools.builtin.clip_matcher:ClipMatcher",
             lambda m: {"model": str(m.path("clip"))},
             lambda f: {"images": [str(f.png())], "labels": ["a red square", "a blue circle"]}),
    ToolCase("polymodal.tools.builtin.ocr:OCR",
             lambda m: {},  # the PP-OCR models the rapidocr wheel ships
             lambda f: {"image": str(f.text_image("HELLO"))}),
    ToolCase("polymodal.tools.builtin.emotion:EmotionRecognizer",
             lambda m: {"model": str(m.path("audio-emotion")), "face_model": str(m.path("face-emotion")),
                        "frames": 2},
             lambda f: {"audio": str(f.wav(seconds=1.0))}),
    ToolCase("polymodal.tools.builtin.image_generator:ImageGenerator",
             lambda m: {"model": str(m.path("sd-tiny")), "default_steps": 2},
             lambda f: {"prompt": "a red square", "seed": 1}),
    ToolCase("polymodal.tools.builtin.speech_synthesizer:SpeechSynthesizer",
             lambda m: {"model": str(m.path("speecht5-tts")), "vocoder": str(m.path("speecht5-hifigan")),
                        "minlenratio": 1.0, "maxlenratio": 2.0},
             lambda f: {"text": "Hello there."}),
    ToolCase("polymodal.tools.builtin.video_summarizer:VideoSummarizer",
             lambda m: {"captioner": _captioner(m), "transcriber": _transcriber(m), "max_keyframes": 2},
             lambda f: {"video": str(f.video(audio="tone"))}),
    ToolCase("polymodal.integrations.langchain:AgentTool",  # the whole agent as one tool (no LLM: offline)
             lambda m: {"agent": _agent(m)},
             lambda f: {"request": "describe this", "attachments": [str(f.png())]}),
    ToolCase("polymodal.tools.builtin.frame_grabber:FrameGrabber",
             lambda m: {},
             lambda f: {"video": str(f.video()), "at": 0.5}),
]


@pytest.fixture(scope="session")
def standard_media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(Path(tmp_path_factory.mktemp("standard_media")))


class _OnTinyModels:
    """Answers the suites' properties from ``case`` and the fixtures lent to this instance."""

    case: ClassVar[ToolCase]
    tool_class: ClassVar[type[BaseTool]]

    @pytest.fixture(autouse=True)
    def _lend_fixtures(self, tiny_models: TinyModels, standard_media: MediaFactory) -> None:
        self._models = tiny_models
        self._media = standard_media

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return self.case.params(self._models)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return self.case.example(self._media)


AVAILABLE = {case.tool: tool_class for case in CASES if (tool_class := case.load()) is not None}

for _case in CASES:
    if _case.tool not in AVAILABLE:
        continue
    _class = AVAILABLE[_case.tool]
    for _suite, _kind in ((ToolsUnitTests, "Unit"), (ToolsIntegrationTests, "Integration")):
        _attrs = {"case": _case, "tool_class": _class, "__module__": __name__}
        _cls = type(f"Test{_class.__name__}{_kind}", (_OnTinyModels, _suite), _attrs)
        globals()[_cls.__name__] = _cls


def test_every_default_tool_has_a_standard_case():
    from polymodal.tools import default_tools

    covered = set(AVAILABLE.values())
    missing = [type(t).__name__ for t in default_tools() if type(t) not in covered]
    assert not missing, f"add a ToolCase for {missing}"
