"""What one turn of a long conversation costs: the default attachment window vs keeping everything.

A conversation gets ``--images`` images, ``--per-turn`` at a time; every turn plans one step on its
first new image (a scripted LLM; a trivial tool). Side by side on two agents:

- window: ``Settings()`` (the default ``recent_attachments``: older attachments released, counted);
- keep-all: ``Settings(recent_attachments=10**9)``, which is how every turn worked before: every
  attachment listed in both prompts and held in memory.

Printed: the planner prompt's length, the attachments (and their bytes) the conversation holds, and
the median turn time over the last 10 turns. Both sides' answers are checked equal.

    python bench/conversation.py [--images 400] [--per-turn 10]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import common  # noqa: F401 - offline environment and the tests' support package on the path
from PIL import Image
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, ImageInput, Settings, tool


@tool
def size(image: ImageInput) -> str:
    """Say an image's size."""
    return f"{image.width}x{image.height}"


def png(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (n % 256, n // 256 % 256, 7)).save(buf, format="PNG")
    return buf.getvalue()


def run(settings: Settings, images: int, per_turn: int) -> dict[str, object]:
    turns = images // per_turn
    responses = []
    for turn in range(turns):
        plan = {"steps": [{"id": "s1", "tool": "size", "args": {"image": f"image_{turn * per_turn + 1}"}}]}
        responses += [json.dumps(plan), "It is [s1]."]
    llm = ScriptedChatModel(responses=responses)
    agent = Agent(llm=llm, tools=[size], settings=settings)
    times, answers = [], []
    for turn in range(turns):
        batch = [png(turn * per_turn + k) for k in range(per_turn)]
        started = time.perf_counter()
        answers.append(agent.chat("sizes?", attachments=batch).text)
        times.append(time.perf_counter() - started)
    held = agent.conversation.attachments.values()
    return {"prompt": len(llm.prompt(2 * (turns - 1))), "held": len(held), "bytes": sum(a.size_bytes for a in held),
            "turn_ms": 1000 * statistics.median(times[-10:]), "first_ms": 1000 * statistics.median(times[:10]),
            "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--per-turn", type=int, default=10)
    args = parser.parse_args()
    sides = {"window": Settings(), "keep-all": Settings(recent_attachments=10**9)}
    results = {name: run(settings, args.images, args.per_turn) for name, settings in sides.items()}
    assert results["window"]["answers"] == results["keep-all"]["answers"], "the two sides answered differently"
    print(f"{args.images} images, {args.per_turn} per turn; at the last turn:")
    print(f"{'side':>9} {'planner prompt chars':>21} {'attachments held':>17} {'bytes held':>11} "
          f"{'first 10 turns ms':>18} {'last 10 turns ms':>17}")
    for name, r in results.items():
        print(f"{name:>9} {r['prompt']:>21,} {r['held']:>17} {r['bytes']:>11,} {r['first_ms']:>18.1f} "
              f"{r['turn_ms']:>17.1f}")


if __name__ == "__main__":
    main()
