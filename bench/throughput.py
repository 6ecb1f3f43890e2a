"""Throughput on one machine, side by side: how close the request path gets to the model's ceiling.

1. **Batch runner.** N single-image caption jobs through :func:`polymodal.batch.run_batch`:
   ``sequential`` (one job at a time, micro-batching off: the runner as it was), ``concurrent``
   (``--concurrency 8`` with micro-batching), and the ``ceiling``: the captioner's own
   ``execute_batch`` over the same images (the model's batched throughput, no request path at all).
   Models are loaded before timing; captions are checked equal on all three sides.
2. **Concurrent chats.** 16 threads each calling ``agent.chat`` once (captioner) vs the same 16
   requests one by one; and a lone request with micro-batching on vs off (what ``max_wait_ms`` costs).
3. **Framework cost.** ``agent.chat`` with a no-op tool and a scripted one-call planner, minus the
   scripted chat model's own time: what polymodal itself costs per request (CPU ms). With
   ``--baseline REV`` the same measure runs on a checkout of REV too, alternating, for before/after.

Sizes: ``tiny`` (the test bed's tiny BLIP, whose captions vary with the image: Python-overhead
bound, where batching shows most) and ``base`` (random weights in the shape of BLIP base with
384x384 inputs: real-size compute; on a 2-core CPU a batch of 8 is only ~1.3x one-by-one, so the
gain is small and honest here — on a GPU the same code batches for real).

Run: ``python bench/throughput.py [--size tiny|base|both] [--jobs 64] [--baseline REV]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, build_base_blip

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _noise_images(folder: Path, n: int, side: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def batch_runner(model: str, images: list[Path], work: Path, concurrency: int) -> dict[str, Any]:
    """Sequential runner vs concurrent runner with micro-batching vs the model's batched ceiling."""
    from polymodal import Agent, Attachment
    from polymodal.batch import run_batch
    from polymodal.tools import Captioner

    jobs = work / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": p.stem, "prompt": "caption", "attachments": [str(p)]}) + "\n"
                            for p in images))
    plain = Captioner(model=model, max_new_tokens=20, micro_batching=False)
    shared = Captioner(model=model, max_new_tokens=20)
    plain.execute(image=Attachment.from_path(images[0]))  # load once; both share the cached model

    def run(tool: Captioner, jobs_concurrency: int, name: str) -> tuple[float, dict[str, str]]:
        output = work / f"{name}.jsonl"
        seconds, _ = _timed(lambda: run_batch(Agent(llm=None, tools=[tool]), jobs, output,
                                              concurrency=jobs_concurrency))
        records = [json.loads(line) for line in output.read_text().splitlines()]
        return seconds, {r["id"]: r["steps"][0]["content"] for r in records}

    t_seq, seq = run(plain, 1, "sequential")
    t_con, con = run(shared, concurrency, "concurrent")
    attachments = [Attachment.from_path(p) for p in images]
    t_ceiling, outputs = _timed(lambda: plain.execute_batch([{"image": a} for a in attachments]))
    ceiling = {p.stem: o.content for p, o in zip(images, outputs, strict=True)}
    if not (seq == con == ceiling):
        raise SystemExit("captions differ between the sequential, concurrent and ceiling runs")
    return {"jobs": len(images), "sequential_s": t_seq, "concurrent_s": t_con, "ceiling_s": t_ceiling,
            "concurrent_vs_sequential": t_seq / t_con, "concurrent_vs_ceiling": t_con / t_ceiling}


def concurrent_chats(model: str, images: list[Path], threads: int = 16) -> dict[str, Any]:
    """16 threads calling agent.chat at once vs the same requests one by one; lone-request cost."""
    from polymodal import Agent
    from polymodal.tools import Captioner

    shared = Captioner(model=model, max_new_tokens=20)
    plain = Captioner(model=model, max_new_tokens=20, micro_batching=False)
    agent, plain_agent = Agent(llm=None, tools=[shared]), Agent(llm=None, tools=[plain])
    chosen = images[:threads]
    plain_agent.fork().chat("caption", [str(chosen[0])])  # load

    def one_by_one() -> list[str]:
        return [plain_agent.fork().chat("caption", [str(p)]).steps[0].content or "" for p in chosen]

    def together() -> list[str]:
        barrier = threading.Barrier(len(chosen))

        def ask(p: Path) -> str:
            barrier.wait()
            return agent.fork().chat("caption", [str(p)]).steps[0].content or ""

        with ThreadPoolExecutor(len(chosen)) as pool:
            return list(pool.map(ask, chosen))

    t_one, want = _timed(one_by_one)
    t_together, got = _timed(together)
    if got != want:
        raise SystemExit("concurrent chats answered differently from one-by-one chats")
    lone_on = statistics.median(_timed(lambda: agent.fork().chat("caption", [str(chosen[0])]))[0] for _ in range(9))
    lone_off = statistics.median(_timed(lambda: plain_agent.fork().chat("caption", [str(chosen[0])]))[0]
                                 for _ in range(9))
    return {"requests": len(chosen), "one_by_one_rps": len(chosen) / t_one, "concurrent_rps": len(chosen) / t_together,
            "speedup": t_one / t_together, "lone_ms_batcher_on": lone_on * 1000, "lone_ms_batcher_off": lone_off * 1000,
            "max_wait_ms": shared.default_max_wait_ms}


FRAMEWORK_COST = r'''
import json, os, statistics, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
import polymodal
from polymodal import Agent

@polymodal.tool
def noop(text: str) -> str:
    """Return the text unchanged."""
    return text

plan = '{"steps": [{"id": "s1", "tool": "noop", "args": {"text": "hi"}}], "answer": "s1"}'
llm = FakeListChatModel(responses=[plan])
agent = Agent(llm=llm, tools=[noop])
sent = []
original = llm._generate
def recording(messages, *args, **kwargs):
    sent.append(messages)
    return original(messages, *args, **kwargs)
object.__setattr__(llm, "_generate", recording)
reply = agent.fork().chat("say hi")
assert reply.text == "hi" and reply.llm_calls == 1, reply
messages = sent[-1]
n = int(sys.argv[1])

def cpu_ms(fn):
    for _ in range(50):
        fn()
    runs = []
    for _ in range(7):
        started = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - started) / n * 1000)
    return statistics.median(runs)

chat = cpu_ms(lambda: agent.fork().chat("say hi"))
llm_only = cpu_ms(lambda: llm.invoke(messages))
print(json.dumps({"chat_ms": chat, "llm_ms": llm_only, "framework_ms": chat - llm_only}))
'''


def framework_cost(tree: Path, n: int) -> dict[str, float]:
    """CPU ms per request of ``agent.chat`` (no-op tool, scripted planner) run from the code in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", FRAMEWORK_COST, str(n)], env=env, capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def framework_table(baseline: str | None, rounds: int, n: int) -> list[tuple[str, dict[str, float]]]:
    trees: list[tuple[str, Path]] = [("this tree", ROOT)]
    scratch = None
    if baseline:
        scratch = Path(tempfile.mkdtemp(prefix="polymodal-baseline-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(scratch / "tree"), baseline],
                       check=True, capture_output=True)
        trees.insert(0, (f"baseline {baseline}", scratch / "tree"))
    try:
        samples: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
        for _ in range(rounds):  # alternate, so machine load hits both sides alike
            for label, tree in trees:
                samples[label].append(framework_cost(tree, n))
        return [(label, {key: statistics.median(s[key] for s in runs) for key in runs[0]} | {
            "spread_ms": max(s["framework_ms"] for s in runs) - min(s["framework_ms"] for s in runs)})
            for label, runs in samples.items()]
    finally:
        if scratch is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch / "tree")],
                           capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "base", "both"], default="tiny")
    parser.add_argument("--jobs", type=int, default=64, help="caption jobs for the batch-runner measure")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--baseline", help="a git revision to measure the framework cost of too (before/after)")
    parser.add_argument("--rounds", type=int, default=3, help="framework-cost runs per tree (alternating)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["runner", "chats", "framework"])
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(tempfile.mkdtemp(prefix="polymodal-bench-"))
    try:
        sizes = ["tiny", "base"] if args.size == "both" else [args.size]
        for size in sizes:
            if size == "tiny":
                model, side = str(TinyModels(work / "models").path("blip-caption-varied")), 64
            else:
                model, side = str(build_base_blip(work)), 384
            for folder in (f"images-{size}", f"runner-{size}"):
                (work / folder).mkdir()
            images = _noise_images(work / f"images-{size}", args.jobs, side)
            if "runner" not in args.skip:
                r = batch_runner(model, images, work / f"runner-{size}", args.concurrency)
                print(f"[{size}] batch runner, {r['jobs']} caption jobs: sequential {r['sequential_s']:.2f} s, "
                      f"concurrency {args.concurrency} {r['concurrent_s']:.2f} s, ceiling {r['ceiling_s']:.2f} s | "
                      f"concurrent/sequential {r['concurrent_vs_sequential']:.2f}x, "
                      f"concurrent/ceiling {r['concurrent_vs_ceiling']:.2f} (1.00 = the model's own batched speed)")
            if "chats" not in args.skip:
                c = concurrent_chats(model, images)
                print(f"[{size}] {c['requests']} concurrent agent.chat: {c['concurrent_rps']:.1f} req/s vs one by one "
                      f"{c['one_by_one_rps']:.1f} req/s ({c['speedup']:.2f}x); lone request "
                      f"{c['lone_ms_batcher_on']:.1f} ms with the batcher vs {c['lone_ms_batcher_off']:.1f} ms "
                      f"without (max_wait_ms {c['max_wait_ms']:g})")
        if "framework" not in args.skip:
            for label, row in framework_table(args.baseline, args.rounds, 300):
                print(f"framework cost per request ({label}): {row['framework_ms']:.3f} CPU ms "
                      f"(spread {row['spread_ms']:.3f}; agent.chat {row['chat_ms']:.3f} - scripted LLM "
                      f"{row['llm_ms']:.3f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
