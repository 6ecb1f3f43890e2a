"""Token usage of a turn's LLM calls (planner and fusion), and a ``chat {model}`` span per call.

One LangChain callback handler per turn, added to the config given to the planner and the fusion
writer (never to the steps': a listener there would make every step a traced LangChain run). It
reads what the chat model reports (``usage_metadata`` on the message, else the provider's
``token_usage``), so ``Reply.usage`` and the server's ``usage`` are the model's own counts, summed
over every call of the turn, retries included; a turn with no LLM call counts 0.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from polymodal import telemetry
from polymodal.telemetry import stats

__all__ = ["TokenUsage", "UsageMeter"]


class TokenUsage(BaseModel):
    """Tokens the LLM calls of one turn consumed, as the models reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageMeter(BaseCallbackHandler):
    """Sums the token counts of the chat model calls it sees; opens their spans while tracing."""

    raise_error = False
    run_inline = True  # on the calling thread: the chat span's parent is the planner's or the turn's span

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self._lock = threading.Lock()
        self._spans: dict[UUID, Any] = {}

    def attach(self, config: RunnableConfig | None) -> RunnableConfig:
        """``config`` with this meter among its callbacks (a copy; the caller's stays as it was)."""
        out: RunnableConfig = dict(config or {})  # type: ignore[assignment]
        callbacks = out.get("callbacks")
        if callbacks is None:
            out["callbacks"] = [self]
        elif isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            manager.add_handler(self, inherit=True)
            out["callbacks"] = manager
        else:
            out["callbacks"] = [*callbacks, self]
        return out

    def usage(self) -> TokenUsage:
        return TokenUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        tracer = telemetry.tracer()
        if tracer is None:
            return
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = (meta.get("ls_model_name") or params.get("model") or params.get("model_name")
                 or (serialized or {}).get("name") or "llm")
        attributes = telemetry._clean({  # noqa: SLF001 - the same cleaning as every span
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "gen_ai.provider.name": meta.get("ls_provider"),
        })
        self._spans[run_id] = tracer.start_span(f"chat {model}", attributes=attributes)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        tokens_in, tokens_out = _counts(response)
        with self._lock:
            self.input_tokens += tokens_in
            self.output_tokens += tokens_out
        stats.observe_tokens(tokens_in, tokens_out)
        current = self._spans.pop(run_id, None)
        if current is not None:
            current.set_attribute("gen_ai.usage.input_tokens", tokens_in)
            current.set_attribute("gen_ai.usage.output_tokens", tokens_out)
            current.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        current = self._spans.pop(run_id, None)
        if current is not None:
            from opentelemetry.trace import Status, StatusCode

            current.record_exception(error)
            current.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}"))
            current.end()


def _counts(response: LLMResult) -> tuple[int, int]:
    """(input, output) tokens of one call: the messages' ``usage_metadata``, else ``token_usage``."""
    tokens_in = tokens_out = 0
    found = False
    for generations in response.generations:
        for generation in generations:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if usage:
                found = True
                tokens_in += int(usage.get("input_tokens") or 0)
                tokens_out += int(usage.get("output_tokens") or 0)
    if not found:
        reported = (response.llm_output or {}).get("token_usage") or {}
        tokens_in = int(reported.get("prompt_tokens") or 0)
        tokens_out = int(reported.get("completion_tokens") or 0)
    return tokens_in, tokens_out
