"""A custom tool next to the profile's built-in ones: ``python examples/custom_tool.py``.

``@polymodal.tool`` turns a typed function into a tool (and a LangChain tool): its docstring is
what the planner reads, a parameter typed ``AudioInput`` receives the attachment itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polymodal import Agent, AudioInput, PolymodalError, tool
from polymodal.profiles import build_tools

MEDIA = Path(__file__).resolve().parent / "media"


@tool
def audio_length(audio: AudioInput) -> str:
    """Say how long an audio recording is, in seconds.

    Args:
        audio: the recording.
    """
    return f"{audio.name} lasts {audio.duration or 0:.1f} seconds"


def main() -> int:
    print(audio_length.invoke({"audio": str(MEDIA / "voice-note.wav")}))  # a tool is callable on its own
    agent = Agent(tools=[*build_tools("offline"), audio_length])  # the packaged models plus ours
    reply = agent.chat("What does this voice note say?", [MEDIA / "voice-note.wav"])
    print(reply.text)
    return 0 if reply.outcome == "answered" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:  # e.g. the offline-models extra is not installed: one line says which
        sys.exit(f"error: {exc}")
