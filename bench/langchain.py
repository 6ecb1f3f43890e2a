"""Overhead of the LangChain Runnable interface: ``agent.invoke`` (and ``stream``) vs ``agent.chat``.

Same scripted request both ways: a scripted chat model plans one step and writes the answer, so
the time is the framework's own (planning call, executor thread, fusion call, callbacks). Two
tools: a trivial function tool (overhead is most visible) and the tiny random BLIP captioner
(a real model call, still tiny). Calls are interleaved so drift hits both sides equally, and
the three ways are checked to give the same answer first (exit 1 otherwise).

    python bench/langchain.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import require_equal, work_folder  # noqa: E402
from support.fake_llm import ScriptedChatModel  # noqa: E402
from support.media_files import MediaFactory  # noqa: E402
from support.tiny_models import TinyModels  # noqa: E402

from polymodal import Agent, ImageInput, tool  # noqa: E402
from polymodal.tools import Captioner  # noqa: E402


@tool
def size(image: ImageInput) -> str:
    """Say an image's size."""
    return f"{image.width}x{image.height}"


def scripted(tool_name: str, rounds: int) -> ScriptedChatModel:
    plan = json.dumps({"steps": [{"id": "s1", "tool": tool_name, "args": {"image": "image_1"}}]})
    return ScriptedChatModel(responses=[plan, "It is [s1]."] * (rounds + 5))


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def compare(label: str, make_tool: Callable[[], Any], photo: str, rounds: int) -> None:
    agents = {way: Agent(llm=scripted(make_tool().name, rounds), tools=[make_tool()]) for way in
              ("chat", "invoke", "stream")}
    ways: dict[str, Callable[[], Any]] = {
        "chat": lambda: agents["chat"].chat("what?", attachments=[photo]),
        "invoke": lambda: agents["invoke"].invoke({"input": "what?", "attachments": [photo]}),
        "stream": lambda: list(agents["stream"].stream({"input": "what?", "attachments": [photo]})),
    }
    answers = {way: fn() for way, fn in ways.items()}  # also the warm-up: model load, first-call imports
    texts = {way: getattr(answer[-1] if isinstance(answer, list) else answer, "reply", answer).text
             for way, answer in answers.items()}
    require_equal(f"{label}: invoke / stream vs chat", [texts["invoke"], texts["stream"]], [texts["chat"]] * 2)
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, fn in ways.items():
            times[way].append(timed(fn))
    base = statistics.median(times["chat"])
    print(f"\n{label} ({rounds} rounds, median per request)")
    for way, samples in times.items():
        median = statistics.median(samples)
        print(f"  {way:<7} {median * 1000:8.2f} ms   ratio to chat {median / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with work_folder() as root:
        photo = str(MediaFactory(root).png())
        blip = str(TinyModels(root / "models").path("blip-caption"))
        compare("trivial function tool", lambda: size, photo, args.rounds)
        compare("tiny BLIP captioner", lambda: Captioner(model=blip, max_new_tokens=4), photo, args.rounds)


if __name__ == "__main__":
    main()
