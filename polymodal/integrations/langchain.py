"""polymodal inside LangChain: message content blocks in, the agent as a tool, and MultimodalChain.

One import for LangChain users. :func:`parse_agent_input` (content blocks of every shape
langchain-core accepts -> validated attachments) and :class:`AgentTool` (the whole agent as one
tool) live in the agent layer, because ``Agent.invoke`` and ``Agent.as_tool`` use them and the
agent never imports a layer above it; they are re-exported here.

:class:`MultimodalChain` is the LCEL piece LangChain itself lacks: text plus attachments in, the
answer string out, so ``prompt | MultimodalChain(...) | parser`` composes like any chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig

from polymodal.agent.agent_tool import AgentTool
from polymodal.agent.inputs import AgentRequest, attachments_from_content, parse_agent_input
from polymodal.errors import ConfigurationError

if TYPE_CHECKING:
    from polymodal.agent.agent import Agent

__all__ = ["AgentRequest", "AgentTool", "MultimodalChain", "attachments_from_content", "parse_agent_input"]


class MultimodalChain(Runnable[Any, str]):
    """Text + attachments in, the answer string out: an LCEL chain over a polymodal Agent.

    Input is anything :func:`parse_agent_input` reads (so a prompt template's output works:
    ``prompt | MultimodalChain(agent) | StrOutputParser()``). Each call is an independent request
    on a fresh conversation, as a chain should be: the same input gives the same kind of answer,
    and concurrent calls (``batch``, ``RunnableParallel``) do not share ids or turns.

    Args:
        agent: the Agent to run; or build one from ``llm``/``tools``/``**agent_kwargs``.
    """

    def __init__(self, agent: Agent | None = None, *, llm: Any = None, tools: Any = None, **agent_kwargs: Any) -> None:
        if agent is None:
            from polymodal.agent.agent import Agent

            agent = Agent(llm=llm, tools=tools, **agent_kwargs)
        elif llm is not None or tools is not None or agent_kwargs:
            msg = "MultimodalChain takes either an agent or the arguments to build one, not both"
            raise ConfigurationError(msg)
        self.agent = agent
        self.name = "MultimodalChain"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        request = self.agent.parse_input(input)
        answer: Any = self._answer  # langchain-core's types do not model the extra keyword argument
        return self._call_with_config(answer, request.summary(), config, run_type="chain", request=request)

    def _answer(self, _summary: Any, config: RunnableConfig, *, request: AgentRequest) -> str:
        return self.agent.run(request.text, request.attachments, config=config).text  # a fresh conversation
