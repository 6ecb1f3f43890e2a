"""What the router costs, measured side by side: its backends, per request, and per ``polymodal run``.

1. ``backends``: the router's model in a fresh process, loaded as numpy BERT (the default for a
   local BERT folder such as the packaged MiniLM) vs through sentence-transformers (torch):
   import + load + the first request (which embeds the tool descriptions; the disk cache of those
   embeddings is switched off for these two so both embed them, and on for ``numpy+cache``, what a
   second ``polymodal run`` pays), then the planning CPU time per request over the
   chained-request table, and peak RSS. Every side must plan every request the same way: the
   script checks it. ``numpy-no-head`` is the numpy router without its learned head (cosine
   rules alone): what the head costs per request, as a ratio.
2. ``run``: ``polymodal run`` in a fresh process with the ``offline`` profile, wall time and peak
   RSS, for a voice note (the modality defaults plan it the same way) and a request about a
   sign; with this checkout's router, with no router (``POLYMODAL_ROUTER_MODEL=none``), and with
   the code of another checkout (``--before PATH``, e.g. a worktree of the previous main). The
   printed answers must be equal across the variants that share a planner's decision.

Run from the repository root: ``python bench/router.py [backends] [run] [--before PATH] [--repeats 3]``.
Figures are from a shared machine: compare the columns, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT

MEDIA = ROOT / "examples" / "media"
REQUESTS = [
    ("voice note", "What does this voice note say?", MEDIA / "voice-note.wav"),
    ("sign", "Read the text on this sign", MEDIA / "sign.png"),
]
# One fresh interpreter per measurement: import + load + the first request are what a CLI run pays.
BACKEND_PROBE = r"""
import json, os, resource, sys, time
started, cpu = time.perf_counter(), time.process_time()
from polymodal.agent.conversation import ConversationView
from polymodal.agent import anchors, router as routing
from polymodal.evaluation import load_cases
from polymodal.evaluation.media import placeholder
from polymodal.agent.planner import PlanningRequest
from polymodal.tools import default_tools
backend = sys.argv[1]
if not backend.endswith("+cache"):
    anchors.cached_embeddings = lambda identity, texts, embed: embed(texts)   # both sides embed the descriptions
if backend == "sentence-transformers":
    routing.Router._numpy_model = lambda self: None                       # force the torch path
tools = {t.name: t for t in default_tools()}
router = routing.Router(head=None) if backend == "numpy-no-head" else routing.Router()  # the cosine rules alone
requests = []
for case in load_cases(sys.argv[2]):
    atts = {i: placeholder(k, n).with_id(i) for i, (k, n) in zip(case.attachment_ids, case.attachments)}
    requests.append(PlanningRequest(case.request, ConversationView.of(atts), list(atts)))
plans = [None] * len(requests)
route = router.route(requests[0], tools, decide_close=True)
plans[0] = route.plan.model_dump() if route.plan else None
first_wall, first_cpu = time.perf_counter() - started, time.process_time() - cpu
per_request = []
for _ in range(int(sys.argv[3])):
    for index, request in enumerate(requests):
        tick = time.thread_time()
        route = router.route(request, tools, decide_close=True)
        per_request.append((index, time.thread_time() - tick))
        plans[index] = route.plan.model_dump() if route.plan else None
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first_wall": first_wall, "first_cpu": first_cpu, "per_request": per_request, "plans": plans,
                  "torch": "torch" in sys.modules, "rss_mb": rss_mb}))
"""
RUN_PROBE = r"""
import resource, sys, time
import polymodal
assert polymodal.__file__.startswith(sys.argv.pop(1)), polymodal.__file__   # the checkout under test
started = time.perf_counter()
from polymodal.cli import main
code = main(sys.argv[1:])
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
sys.stderr.write(f"\nPROBE {time.perf_counter() - started:.3f} {rss_mb:.1f}\n")
sys.exit(code)
"""


def environment(code_root: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(code_root), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               POLYMODAL_CACHE=str(cache), TOKENIZERS_PARALLELISM="false", **extra)
    env.pop("POLYMODAL_ROUTER_MODEL", None)
    env.update(extra)
    return env


def backends(args: argparse.Namespace, cache: Path) -> None:
    table = ROOT / "tests" / "support" / "chained_cases.jsonl"
    results = {}
    for backend in ("numpy", "sentence-transformers", "numpy+cache", "numpy-no-head"):
        runs = []
        for _ in range(args.repeats + (backend == "numpy+cache")):  # one more: the first run fills the cache
            done = subprocess.run([sys.executable, "-c", BACKEND_PROBE, backend, str(table), "3"], capture_output=True,
                                  text=True, env=environment(ROOT, cache), cwd=ROOT, timeout=900, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        results[backend] = runs[1:] if backend == "numpy+cache" else runs
    same = results["numpy"][0]["plans"] == results["sentence-transformers"][0]["plans"] == results["numpy+cache"][0][
        "plans"]
    print(f"\nrouter backends (fresh process each, {args.repeats} runs; {len(results['numpy'][0]['plans'])} "
          f"requests x 3 rounds; plans identical: {same})")
    print(f"{'backend':22} {'first request wall s':>21} {'its CPU s':>10} {'peak RSS MB':>12} "
          f"{'CPU ms/request':>15} {'torch imported':>15}")
    for backend, runs in results.items():
        cpu_ms = _cpu_ms(runs)
        print(f"{backend:22} {statistics.median(r['first_wall'] for r in runs):21.2f} "
              f"{statistics.median(r['first_cpu'] for r in runs):10.2f} "
              f"{statistics.median(r['rss_mb'] for r in runs):12.0f} {cpu_ms:15.1f} {str(runs[0]['torch']):>15}")
    head, cosine = (_cpu_ms(results[b]) for b in ("numpy", "numpy-no-head"))
    print(f"the learned head costs {head / cosine:.2f}x the cosine rules alone per request "
          f"({head:.1f} vs {cosine:.1f} CPU ms; numpy-no-head plans by other rules, so it is not in the check)")
    if not same:
        raise SystemExit("the backends planned differently")


def _cpu_ms(runs: list[dict]) -> float:
    per: dict[int, list[float]] = {}
    for run in runs:
        for index, seconds in run["per_request"]:
            per.setdefault(index, []).append(seconds)
    return statistics.median(min(v) for v in per.values()) * 1000  # best of the rounds, median request


def cli_runs(args: argparse.Namespace, cache: Path) -> None:
    variants = [("this checkout", ROOT, {}), ("no router", ROOT, {"POLYMODAL_ROUTER_MODEL": "none"})]
    if args.before:
        variants.insert(0, ("before (--before)", args.before.resolve(), {}))
    print(f"\npolymodal run --profile offline (fresh process each, median of {args.repeats})")
    print(f"{'request':12} {'code':20} {'wall s':>8} {'peak RSS MB':>12}  answer")
    for name, prompt, media in REQUESTS:
        answers = {}
        for label, code_root, extra in variants:
            walls, rss, text = [], [], ""
            for _ in range(args.repeats):
                command = [sys.executable, "-c", RUN_PROBE, str(code_root), "run", prompt, "-a", str(media),
                           "--profile", "offline"]
                done = subprocess.run(command, capture_output=True, text=True, cwd=code_root, timeout=900,
                                      env=environment(code_root, cache, **extra))
                probe = [line for line in done.stderr.splitlines() if line.startswith("PROBE ")][-1].split()
                walls.append(float(probe[1]))
                rss.append(float(probe[2]))
                text = done.stdout.strip()
            answers[label] = text
            print(f"{name:12} {label:20} {statistics.median(walls):8.2f} {statistics.median(rss):12.0f}  "
                  f"{text[:60]!r}")
        if len(set(answers.values())) > 1:
            print(f"  note: answers differ for {name!r}: " + "; ".join(f"{k}: {v[:80]!r}" for k, v in answers.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["backends", "run"], choices=["backends", "run"])
    parser.add_argument("--before", type=Path, help="another checkout of polymodal to compare `polymodal run` with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polymodal-bench-router-") as work:
        cache = Path(work)
        if "backends" in args.parts:
            backends(args, cache)
        if "run" in args.parts:
            whisper = Path(tempfile.gettempdir()) / "polymodal-test-cache"
            cli_runs(args, whisper if (whisper / "whisper-base-ct2").is_dir() else cache)


if __name__ == "__main__":
    main()
