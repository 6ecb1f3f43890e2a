"""Agents for batch runs in Ray actors: module-level factories an actor can import and call."""

from __future__ import annotations

from polymodal import Agent
from polymodal.tools import Transcriber


def tiny_transcriber_agent(model: str) -> Agent:
    """An agent with the tiny Whisper (short answers: a random model never stops by itself)."""
    return Agent(llm=None, tools=[Transcriber(model=model, max_new_tokens=4)])
