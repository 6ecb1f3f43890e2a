"""Saying what a request needs when the agent lacks the tool for it.

An agent without a captioner (the offline profile has none) that is asked to describe a photo
must not answer with OCR text: the plan leaves that part out, and the reply says which tool the
request needs and how to get one, so a user (and the CLI's exit code) can tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from polymodal.tools.base import Tool

__all__ = ["missing_note", "tool_hint", "with_missing_note"]


@cache
def _builtin() -> dict[str, Tool]:
    from polymodal.tools import default_tools  # built, never loaded: only names and default models are read

    return {tool.name: tool for tool in default_tools()}


def tool_hint(name: str) -> str:
    """How to give an agent the tool ``name``: on the command line, in polymodal.toml, in Python."""
    tool = _builtin().get(name)
    if tool is None:
        return f"register a tool named {name!r} with the agent"
    if "model" not in type(tool).model_fields:
        return f"add `{type(tool).__name__}()` to the agent's tools"
    model = getattr(tool, "model", None)
    spec = model if isinstance(model, str) and model else "MODEL"
    return (f"add it with `--model {name}={spec}` (or `--profile default`) on the command line, "
            f"`[tools.{name}] model = \"{spec}\"` in polymodal.toml, or `{type(tool).__name__}(model=...)` in Python")


def missing_note(names: Sequence[str]) -> str:
    """One paragraph per missing tool: what the request needs and how to get it."""
    return "\n".join(f"Not done: this request needs the {name} tool, which this agent does not have; {tool_hint(name)}."
                     for name in names)


def with_missing_note(answer: str, missing: Sequence[str], *, ran: bool) -> str:
    """The reply text: the answer from what ran, then what could not be done. Nothing ran: the note alone."""
    if not missing:
        return answer
    return f"{answer}\n\n{missing_note(missing)}" if ran else missing_note(missing)
