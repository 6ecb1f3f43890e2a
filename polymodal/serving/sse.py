"""A running turn as OpenAI-shaped server-sent events.

The answer streams as ``chat.completion.chunk`` deltas: first the role, then the answer's text
as the fusion model writes it, with citations of steps that did not run already removed (so the
pieces join to exactly the non-streamed answer), then a last chunk with ``finish_reason`` and
the ``polymodal`` extension, then ``data: [DONE]``. An answer written without a streaming model
(a tool's output passed through, or the template) arrives as one piece.

With ``stream_options.polymodal_events`` the turn's typed events come too, each as a chunk with
no choices and a ``polymodal_event`` object (``{"type": "plan_ready", "plan": ...}``,
``step_started``, ``step_progress``, ``step_finished``): OpenAI's own clients already skip
chunks without choices, which is how OpenAI sends usage.

An error after the stream has started is sent as ``data: {"error": {...}}`` (what the openai SDK
raises on), followed by ``[DONE]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel

from polymodal.agent.events import AnswerToken, Done, StepFinished
from polymodal.agent.fusion import CitationFilter
from polymodal.serving.errors import as_api_error
from polymodal.serving.protocol import ChatCompletionChunk, ChunkChoice, Delta, Usage
from polymodal.serving.service import RunningTurn

__all__ = ["ChunkStream", "sse"]

logger = logging.getLogger("polymodal.serving")


def sse(data: BaseModel | dict[str, object] | str) -> bytes:
    """One server-sent event carrying ``data``."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json(exclude_none=True)
    elif isinstance(data, dict):
        text = json.dumps(data, ensure_ascii=False)
    else:
        text = data
    return f"data: {text}\n\n".encode()


@dataclass
class ChunkStream:
    """How to frame one streamed response."""

    id: str
    model: str
    created: int
    events: bool = False
    usage: bool = False

    def chunk(self, **fields: object) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, model=self.model, created=self.created, **fields)  # type: ignore[arg-type]

    async def frames(self, running: RunningTurn) -> AsyncIterator[bytes]:
        """Every event of the response, ``[DONE]`` included."""
        yield sse(self.chunk(choices=[ChunkChoice(delta=Delta(role="assistant", content=""))]))
        ok_steps: set[str] = set()
        citations: CitationFilter | None = None
        sent = ""
        try:
            async for event in running.events():
                if isinstance(event, AnswerToken):
                    citations = citations or CitationFilter(ok_steps)
                    piece = citations.feed(event.text)
                    if piece:
                        sent += piece
                        yield sse(self.chunk(choices=[ChunkChoice(delta=Delta(content=piece))]))
                    continue
                if isinstance(event, StepFinished) and event.step.ok:
                    ok_steps.add(event.step.id)
                if self.events and not isinstance(event, Done):
                    yield sse(self.chunk(polymodal_event=event.model_dump(mode="json")))
            result = await running.done
        except Exception as exc:
            error = as_api_error(exc)
            if error.status >= 500:
                logger.error("streamed turn failed: %s", exc, exc_info=exc)
            yield sse(error.body())
            yield sse("[DONE]")
            return
        text = result.reply.text  # the held-back tail (if any) is what remains of it
        rest = text[len(sent):] if text.startswith(sent) else ""
        if not text.startswith(sent):
            logger.warning("streamed answer differs from the final text; the final text is in polymodal.text")
        if rest:
            yield sse(self.chunk(choices=[ChunkChoice(delta=Delta(content=rest))]))
        yield sse(self.chunk(choices=[ChunkChoice(delta=Delta(), finish_reason="stop")], polymodal=result.extension()))
        if self.usage:
            yield sse(self.chunk(usage=Usage.of(result.reply)))
        yield sse("[DONE]")
