"""Agents for Ray actors and Ray Serve replicas: module-level factories a worker can import and call."""

from __future__ import annotations

from polymodal import Agent
from polymodal.tools import Captioner, Transcriber


def tiny_transcriber_agent(model: str) -> Agent:
    """An agent with the tiny Whisper (short answers: a random model never stops by itself)."""
    return Agent(llm=None, tools=[Transcriber(model=model, max_new_tokens=4)])


def tiny_captioner_agent(model: str) -> Agent:
    """An agent with the tiny BLIP captioner (what the Ray Serve replicas of the serve tests build)."""
    return Agent(llm=None, tools=[Captioner(model=model, max_new_tokens=4)])
