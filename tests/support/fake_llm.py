"""A scripted chat model for the LLM boundary: planner and fusion tests are about the framework.

It answers from a fixed list, in order, and records every prompt it was sent, so a test can
check what the planner re-asked with or what fusion fenced. It never stands in for a model that
a tool wraps.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Answers ``responses`` in order; ``calls`` holds the messages of each call."""

    responses: list[str]
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if len(self.calls) >= len(self.responses):
            msg = f"ScriptedChatModel ran out of responses after {len(self.calls)} calls"
            raise AssertionError(msg)
        self.calls.append(list(messages))
        text = self.responses[len(self.calls) - 1]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def prompt(self, call: int) -> str:
        """All text sent on call number ``call`` (0-based), joined."""
        return "\n".join(str(m.content) for m in self.calls[call])


class UsageChatModel(ScriptedChatModel):
    """The scripted model, reporting token usage the way provider chat models do.

    Call ``n`` of the script (1-based) reports ``100 + n`` input and 7 output tokens; ``cycle``
    starts the script over once it has run out (a server answering many turns).
    """

    cycle: bool = False

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.cycle and len(self.calls) >= len(self.responses):
            self.calls.clear()
        text = super()._generate(messages, stop, run_manager, **kwargs).generations[0].message.content
        n = len(self.calls)
        usage = {"input_tokens": 100 + n, "output_tokens": 7, "total_tokens": 107 + n}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


class ToolCallingChatModel(BaseChatModel):
    """Answers scripted ``AIMessage``s (tool calls included) in order, and supports ``bind_tools``.

    Because it implements ``bind_tools``, LangChain's default ``with_structured_output`` works on
    it (a forced tool call parsed back), and polymodal's planner detects native tool calling: the
    shape of OpenAI/Anthropic/Ollama chat models, without a network.
    """

    messages: list[AIMessage]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-calling"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        self.bound_tools.append(list(tools))
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if len(self.calls) >= len(self.messages):
            msg = f"ToolCallingChatModel ran out of messages after {len(self.calls)} calls"
            raise AssertionError(msg)
        self.calls.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.messages[len(self.calls) - 1])])
