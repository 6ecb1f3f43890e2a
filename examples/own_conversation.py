"""Own the conversation: one Agent, stateless ``run`` calls, ids that continue across agents.

    python examples/own_conversation.py [PHOTO] [AUDIO] [--profile NAME]

``agent.run(text, files, conversation=c)`` answers one turn of ``c`` and keeps nothing on the
Agent: the caller owns ``c``, so a second Agent object (another worker, a restarted process)
continues it with the same ids, and ``agent.run(text, files)`` alone is an independent request on a
fresh conversation. See docs/conversations.md. With no arguments it uses examples/media and the
profile ``polymodal run`` would pick (offline on a machine with no hub). A model that cannot be had
ends the script with one line saying how to provide it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import PolymodalError
from polymodal.agent import Conversation
from polymodal.profiles import build_agent

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> int:
    parser = argparse.ArgumentParser(description="one conversation, owned by the caller, over two agents")
    parser.add_argument("photo", nargs="?", default=str(MEDIA / "sign.png"))
    parser.add_argument("audio", nargs="?", default=str(MEDIA / "voice-note.wav"))
    parser.add_argument("--profile", help="default or offline (default: chosen for this machine)")
    args = parser.parse_args()

    agent = build_agent(args.profile)
    conversation = Conversation()  # yours: store it, hand it to another worker, continue it later
    first = agent.run("Read the text on this sign", [args.photo], conversation=conversation)
    print(f"turn 1 {first.attachment_ids}: {first.text}")

    other = build_agent(args.profile)  # another Agent object continues the same conversation
    second = other.run("What does this voice note say?", [args.audio], conversation=conversation)
    print(f"turn 2 {second.attachment_ids}: {second.text}")
    again = other.run("Read the text on this sign", [args.photo], conversation=conversation)
    print(f"turn 3 {again.attachment_ids}: the same bytes keep their id")

    alone = agent.run("What does this voice note say?", [args.audio])  # no conversation: an independent request
    print(f"independent {alone.attachment_ids}; the conversation has {len(conversation.turns)} turns, "
          f"the agents none of their own ({len(agent.conversation.turns)}, {len(other.conversation.turns)})")
    return 0 if all(r.outcome == "answered" for r in (first, second, again, alone)) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
