"""LangChain's own conformance suites (``langchain-tests``) for every built-in tool, on tiny local models.

The suites read the tool's constructor and an example call from class properties, while our tiny
checkpoints and media come from session fixtures. An autouse fixture hands both to the test
instance before the suite's own ``tool`` fixture reads the properties. The table below is the
only thing to edit when a tool is added: one :class:`ToolCase` per tool, and the unit and
integration classes are generated from it.
"""

from __future__ import annotations

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

from polymodal.tools import Captioner, Transcriber


@dataclass(frozen=True)
class ToolCase:
    """One tool under the standard suites."""

    tool: type[BaseTool]
    params: Callable[[TinyModels], dict[str, Any]]
    """Constructor arguments, pointing the tool at a tiny local checkpoint."""
    example: Callable[[MediaFactory], dict[str, Any]]
    """Arguments of an example call (media as file paths, as a direct LangChain call passes them)."""


CASES: list[ToolCase] = [
    ToolCase(Captioner, lambda m: {"model": str(m.path("blip-caption")), "max_new_tokens": 4},
             lambda f: {"image": str(f.png())}),
    ToolCase(Transcriber, lambda m: {"model": str(m.path("whisper-asr")), "max_new_tokens": 4},
             lambda f: {"audio": str(f.wav(seconds=1.0))}),
]


@pytest.fixture(scope="session")
def standard_media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(Path(tmp_path_factory.mktemp("standard_media")))


class _OnTinyModels:
    """Answers the suites' properties from ``case`` and the fixtures lent to this instance."""

    case: ClassVar[ToolCase]

    @pytest.fixture(autouse=True)
    def _lend_fixtures(self, tiny_models: TinyModels, standard_media: MediaFactory) -> None:
        self._models = tiny_models
        self._media = standard_media

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return self.case.tool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return self.case.params(self._models)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return self.case.example(self._media)


for _case in CASES:
    _name = _case.tool.__name__
    for _suite, _kind in ((ToolsUnitTests, "Unit"), (ToolsIntegrationTests, "Integration")):
        _cls = type(f"Test{_name}{_kind}", (_OnTinyModels, _suite), {"case": _case, "__module__": __name__})
        globals()[_cls.__name__] = _cls


def test_every_default_tool_has_a_standard_case():
    from polymodal.tools import default_tools

    covered = {case.tool for case in CASES}
    missing = [type(t).__name__ for t in default_tools() if type(t) not in covered]
    assert not missing, f"add a ToolCase for {missing}"
