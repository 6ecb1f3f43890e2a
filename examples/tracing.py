"""Trace one turn with OpenTelemetry, and read what its LLM call cost in tokens: ``python examples/tracing.py``.

The OCR tool is the offline profile's real one (PP-OCR, packaged); a scripted chat model stands in
for the planner's LLM and reports token usage the way provider models do. The plan's answer is
the OCR step's own text, so no fusion call is made. The spans go to the SDK's in-memory exporter
so that they can be printed here; in production, skip ``enable(provider)`` and set
``POLYMODAL_TRACING=1`` and ``OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318`` instead
(docs/observability.md). Needs ``pip install 'polymodal[otel]'``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from polymodal import Agent, PolymodalError, telemetry
from polymodal.profiles import build_tools

MEDIA = Path(__file__).resolve().parent / "media"
PLAN = '{"steps": [{"id": "s1", "tool": "ocr", "args": {"image": "image_1"}}], "answer": "s1"}'


def main() -> int:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        sys.exit("error: this example needs OpenTelemetry's SDK: pip install 'polymodal[otel]'")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)  # or POLYMODAL_TRACING=1: OTLP/HTTP, as the OTEL_* variables say

    llm = GenericFakeChatModel(messages=iter([
        AIMessage(content=PLAN, usage_metadata={"input_tokens": 310, "output_tokens": 24, "total_tokens": 334}),
    ]))
    ocr = [t for t in build_tools("offline") if t.name == "ocr"]
    try:
        reply = Agent(llm, tools=ocr).run("What does the sign say?", [MEDIA / "sign.png"])
    finally:
        telemetry.disable()

    print(reply.text)
    print(f"tokens: {reply.usage.input_tokens} in, {reply.usage.output_tokens} out ({reply.llm_calls} LLM call)")
    children: dict[int | None, list[Any]] = {}
    for span in exporter.get_finished_spans():
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def show(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            print(f"{'  ' * depth}{span.name}  ({span.attributes.get('gen_ai.operation.name', '')})")
            show(span.context.span_id, depth + 1)

    show(None, 0)
    return 0 if reply.outcome == "answered" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:  # e.g. the offline-models extra is not installed: one line says which
        sys.exit(f"error: {exc}")
