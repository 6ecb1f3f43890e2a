"""polymodal: multimodal agents on local models — one planning call, parallel tools, one answer.

    >>> from polymodal import Agent
    >>> agent = Agent(llm=chat_model)                         # doctest: +SKIP
    >>> agent.chat("What is in this photo?", attachments=["photo.jpg"]).text   # doctest: +SKIP

Names are imported on first use (PEP 562): ``import polymodal`` costs milliseconds, and a script
that needs only the errors, or the command line printing its help, never pays for LangChain's
runnables, PyAV or the tools it does not touch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polymodal._lazy import lazy_attributes

if TYPE_CHECKING:
    from polymodal.agent import Agent, Plan, Reply, Router, Step, StepResult, TieredPlanner
    from polymodal.config import Settings
    from polymodal.errors import (
        AttachmentError,
        BudgetExceeded,
        ConfigurationError,
        MediaLimitError,
        MissingDependencyError,
        PlanningError,
        PlanValidationError,
        PolymodalError,
        ResourceError,
        ToolError,
        ToolTimeout,
    )
    from polymodal.integrations.langchain import MultimodalChain
    from polymodal.media import Attachment, MediaLimits, Modality
    from polymodal.tools import AudioInput, ImageInput, Tool, ToolOutput, VideoInput, mcp_tools, tool
    from polymodal.tools.builtin.video_summarizer import Timeline, VideoSummarizer
    from polymodal.transient import RetryPolicy

__version__ = "0.1.0"

_WHERE: dict[str, str] = {
    **dict.fromkeys(["Agent", "Plan", "Reply", "Router", "Step", "StepResult", "TieredPlanner"], "polymodal.agent"),
    "Settings": "polymodal.config",
    **dict.fromkeys(["AttachmentError", "BudgetExceeded", "ConfigurationError", "MediaLimitError",
                     "MissingDependencyError", "PlanValidationError", "PlanningError", "PolymodalError",
                     "ResourceError", "ToolError", "ToolTimeout"], "polymodal.errors"),
    "MultimodalChain": "polymodal.integrations.langchain",
    **dict.fromkeys(["Attachment", "MediaLimits", "Modality"], "polymodal.media"),
    **dict.fromkeys(["AudioInput", "ImageInput", "Tool", "ToolOutput", "VideoInput", "mcp_tools", "tool"],
                    "polymodal.tools"),
    **dict.fromkeys(["Timeline", "VideoSummarizer"], "polymodal.tools.builtin.video_summarizer"),
    "RetryPolicy": "polymodal.transient",
}

__all__ = [
    "Agent",
    "Attachment",
    "AttachmentError",
    "AudioInput",
    "BudgetExceeded",
    "ConfigurationError",
    "ImageInput",
    "MediaLimitError",
    "MediaLimits",
    "MissingDependencyError",
    "Modality",
    "MultimodalChain",
    "Plan",
    "PlanValidationError",
    "PlanningError",
    "PolymodalError",
    "Reply",
    "ResourceError",
    "RetryPolicy",
    "Router",
    "Settings",
    "Step",
    "StepResult",
    "TieredPlanner",
    "Timeline",
    "Tool",
    "ToolError",
    "ToolOutput",
    "ToolTimeout",
    "VideoInput",
    "VideoSummarizer",
    "__version__",
    "mcp_tools",
    "tool",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
