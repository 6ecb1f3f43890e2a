"""The tools an Agent plans with: unique by name, with the agent's writer model lent to those that write.

Its own module so that the Agent's module holds the request path and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

from langchain_core.language_models import BaseChatModel

from polymodal.errors import ConfigurationError
from polymodal.tools.base import Tool

__all__ = ["lend_llm", "tools_by_name"]


def lend_llm(tools: Iterable[Tool], llm: BaseChatModel | None) -> list[Tool]:
    """Give tools that write text with an LLM (``uses_llm = True``) and have none this agent's writer.

    The tool is *copied* with the LLM set, never changed in place: a tool instance may be shared by
    several agents with different LLMs (or be the user's own object), and lending must not leak
    from one agent into another. The copy is shallow, so the models the tool holds stay shared.
    A tool given an LLM explicitly keeps it.
    """
    lent: list[Tool] = []
    for tool in tools:
        if llm is not None and getattr(tool, "uses_llm", False) and getattr(tool, "llm", None) is None:
            tool = tool.model_copy(update={"llm": llm})
        lent.append(tool)
    return lent


def tools_by_name(tools: Iterable[Tool]) -> dict[str, Tool]:
    by_name: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in by_name:
            msg = f"two tools are named {tool.name!r}; give one a different name="
            raise ConfigurationError(msg)
        by_name[tool.name] = tool
    return by_name
