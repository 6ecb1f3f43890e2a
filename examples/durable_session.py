"""A conversation stored between turns: commit it to a sqlite session store, "restart", continue it.

    python examples/durable_session.py [AUDIO] [--store sqlite:///PATH.db] [--profile NAME]

What ``polymodal serve`` does with every session turn, by hand: ``encode`` the Conversation
(a versioned JSON record plus its media as blobs named by SHA-256), ``commit_turn`` it in one
transaction, and later (another process, after a restart) ``load`` and ``decode`` it, every byte
checked again, and go on with the same ids: the follow-up question is about ``audio_1`` without
attaching it again. See docs/sessions.md. With no --store it uses a temporary sqlite file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from polymodal.media import DEFAULT_LIMITS
from polymodal.profiles import build_agent
from polymodal.sessions import StoredSession, decode, encode, open_store

MEDIA = Path(__file__).resolve().parent / "media"
SESSION = "sess_example_durable_0001"


def main() -> int:
    parser = argparse.ArgumentParser(description="a conversation committed to a session store and continued")
    parser.add_argument("audio", nargs="?", default=str(MEDIA / "voice-note.wav"))
    parser.add_argument("--store", help="a session store URL (default: a temporary sqlite file)")
    parser.add_argument("--profile", help="default or offline (default: chosen for this machine)")
    args = parser.parse_args()
    url = args.store or f"sqlite:///{Path(tempfile.mkdtemp()) / 'sessions.db'}"

    agent = build_agent(args.profile)
    store = open_store(url)
    session = StoredSession(id=SESSION, created=time.time())
    store.delete(SESSION)
    store.create(SESSION, encode(session), now=time.time())
    first = agent.run("What does this voice note say?", [args.audio], conversation=session.conversation)
    store.commit_turn(SESSION, 0, encode(session), now=time.time(), turns=1)
    print(f"turn 1 {first.attachment_ids}: {first.text}")
    store.close()  # the process could end here: the turn is on disk

    reopened = open_store(url)
    stored = reopened.load(SESSION)
    assert stored is not None
    restored = decode(SESSION, stored.encoded.record, stored.encoded.blobs, limits=DEFAULT_LIMITS)
    second = agent.run("What did it say again?", conversation=restored.conversation)  # nothing attached
    print(f"turn 2, restored (version {stored.version}, {stored.encoded.size:,} bytes): "
          f"{[s.args for s in second.steps]}: {second.text}")
    reopened.close()
    return 0 if first.outcome == second.outcome == "answered" else 1


if __name__ == "__main__":
    raise SystemExit(main())
