"""What tracing costs per request: the framework's CPU time with OpenTelemetry off vs on, side by side.

The measure is ``bench/throughput.py``'s framework cost: ``agent.chat`` with a no-op tool and a
scripted one-call planner, minus the scripted chat model's own time, in CPU ms per request
(``time.process_time``: every thread of the process, the span exporter's included). Three sides,
each in a fresh process, alternating round by round so machine load hits them alike:

- ``off``: this tree, tracing off (the default): no OpenTelemetry import, no span;
- ``on``: this tree, tracing on: the SDK's ``TracerProvider`` with a ``BatchSpanProcessor`` (what
  :func:`polymodal.telemetry.enable` sets up) and an exporter that drops the spans, so the cost
  is making, recording and batching them, without a network;
- ``baseline``: with ``--baseline REV``, the same measure (tracing off) on the code of REV,
  unpacked with ``git archive`` into a temporary folder: the before of "off".

Each side first checks its reply ("hi" from the no-op tool, one LLM call) and reports whether
polymodal was tracing; "on" also reports the spans one request made. (Whether ``opentelemetry``
is in ``sys.modules`` says nothing here: langsmith, which langchain-core brings, imports it
itself when it is installed; tests/test_tracing.py checks polymodal never does while off.)

Run: ``python bench/tracing.py [--rounds 5] [--requests 300] [--baseline main]``.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COST = r'''
import json, os, statistics, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
mode, n = sys.argv[1], int(sys.argv[2])
spans = [0]
if mode == "on":
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, batch):
            spans[0] += len(batch)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    from polymodal import telemetry
    telemetry.enable(provider)
from langchain_core.language_models.fake_chat_models import FakeListChatModel
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
reply = agent.run("say hi")
assert reply.text == "hi" and reply.llm_calls == 1, reply
messages = sent[-1]
per_request = 0
if mode == "on":
    provider.force_flush()
    before = spans[0]
    agent.run("say hi")
    provider.force_flush()
    per_request = spans[0] - before

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

chat = cpu_ms(lambda: agent.run("say hi"))
llm_only = cpu_ms(lambda: llm.invoke(messages))
print(json.dumps({"chat_ms": chat, "llm_ms": llm_only, "framework_ms": chat - llm_only,
                  "tracing": bool(getattr(sys.modules.get("polymodal.telemetry"), "enabled", lambda: False)()),
                  "spans_per_request": per_request}))
'''


def cost(tree: Path, mode: str, n: int) -> dict[str, float]:
    """One fresh process measuring the code in ``tree`` with tracing ``mode`` ("off" or "on")."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    env.pop("POLYMODAL_TRACING", None)
    out = subprocess.run([sys.executable, "-c", COST, mode, str(n)], env=env, capture_output=True, text=True,
                         check=False, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise SystemExit(f"bench: the {mode} side failed on {tree}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def unpack(revision: str, into: Path) -> Path:
    """The code of ``revision`` in a folder of its own (``git archive``: no checkout, no worktree)."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per side, alternating")
    parser.add_argument("--requests", type=int, default=300, help="requests per timed run")
    parser.add_argument("--baseline", help="a git revision to measure (tracing off) as the before")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="polymodal-bench-tracing-"))
    try:
        sides: list[tuple[str, Path, str]] = [("off", ROOT, "off"), ("on", ROOT, "on")]
        if args.baseline:
            sides.insert(0, (f"baseline {args.baseline}", unpack(args.baseline, scratch), "off"))
        samples: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in sides}
        for _ in range(args.rounds):
            for label, tree, mode in sides:
                samples[label].append(cost(tree, mode, args.requests))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def median(label: str) -> float:
        return statistics.median(s["framework_ms"] for s in samples[label])

    print(f"framework CPU ms per request, medians of {args.rounds} alternating runs of {args.requests} "
          "(agent.run minus the scripted LLM)")
    for label, _, _ in sides:
        runs = samples[label]
        spread = max(s["framework_ms"] for s in runs) - min(s["framework_ms"] for s in runs)
        print(f"  {label:<22}{median(label):>8.3f} ms  (spread {spread:.3f}; tracing on: "
              f"{runs[0]['tracing']}; spans per request: {runs[0]['spans_per_request']})")
    print(f"  ratio on / off        {median('on') / median('off'):>8.2f}")
    if args.baseline:
        print(f"  ratio off / baseline  {median('off') / median(f'baseline {args.baseline}'):>8.2f}")


if __name__ == "__main__":
    main()
