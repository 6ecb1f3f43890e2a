"""Prompt templates, shipped as text files so they can be read and reviewed as prose.

Templates use ``$name`` placeholders (``string.Template``) rather than ``{name}``, because the
prompts quote JSON, whose braces would otherwise need escaping everywhere.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

__all__ = ["load_prompt", "render_prompt"]


@cache
def load_prompt(name: str) -> Template:
    """The template ``polymodal/prompts/<name>.md``."""
    text = resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render_prompt(name: str, **values: str) -> str:
    """Fill a template; every placeholder must be given (a missing one is a bug, so it raises)."""
    return load_prompt(name).substitute(**values)
