"""The README's first example, runnable: caption a photo and transcribe a voice note.

    python examples/quickstart.py PHOTO AUDIO [--captioner MODEL] [--transcriber MODEL]

MODEL is a hub id or a local folder. Without an LLM the agent plans by modality and answers with a
template; pass your own LangChain chat model to `Agent(llm=...)` for planned, fused answers.
"""

from __future__ import annotations

import argparse

from polymodal import Agent
from polymodal.tools import Captioner, Transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description="caption a photo and transcribe a voice note")
    parser.add_argument("photo")
    parser.add_argument("audio")
    parser.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--transcriber", default="openai/whisper-base")
    args = parser.parse_args()

    agent = Agent(tools=[Captioner(model=args.captioner), Transcriber(model=args.transcriber)])
    reply = agent.chat("What is in this photo, and what does the voice note say?",
                       attachments=[args.photo, args.audio])
    print(reply.text)
    for step in reply.steps:
        print(f"  {step.id} {step.tool}: {step.status} in {step.seconds:.2f} s")


if __name__ == "__main__":
    main()
