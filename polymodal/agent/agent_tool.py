"""The whole Agent as ONE LangChain tool (``request`` + file paths), for a bigger agent to call.

``Agent.as_tool()`` builds it. Each call is an independent request on a fresh conversation, so
calls of the outer agent never see each other's attachments or turns. It lives in the agent layer
because ``Agent.as_tool`` returns it; ``polymodal.integrations.langchain`` re-exports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from polymodal.agent.conversation import Conversation
from polymodal.agent.reply import Reply
from polymodal.errors import PolymodalError

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForToolRun

__all__ = ["AgentTool", "AgentToolArgs"]


class AgentToolArgs(BaseModel):
    """Arguments of the whole agent used as one tool."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(description="what to do with the files, in plain language")
    attachments: list[str] = Field(default_factory=list, description="paths of image, audio or video files")


class AgentTool(BaseTool):
    """A polymodal Agent as one LangChain tool: text answer as content, the Reply as artifact."""

    name: str = "polymodal_agent"
    description: str = (
        "Answer a request about image, audio or video files (describe, transcribe, read, compare, "
        "generate) with specialised local models. Pass the request and the file paths."
    )
    args_schema: type[BaseModel] = AgentToolArgs
    response_format: str = "content_and_artifact"  # type: ignore[assignment]
    handle_tool_error: bool = True  # type: ignore[assignment]
    agent: Any
    """The Agent; each call is a turn of a fresh conversation (the agent's own is not touched)."""

    def _run(
        self, request: str, attachments: list[str] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, Reply]:
        config: RunnableConfig = {"callbacks": run_manager.get_child()} if run_manager else {}
        try:
            reply = self.agent.invoke({"input": request, "attachments": attachments or []}, config,
                                      conversation=Conversation())
        except PolymodalError as exc:  # expected failures become a ToolMessage(status="error")
            raise ToolException(str(exc)) from exc
        return reply.text, reply
