"""polymodal: multimodal agents on local models — one planning call, parallel tools, one answer.

    >>> from polymodal import Agent
    >>> agent = Agent(llm=chat_model)                         # doctest: +SKIP
    >>> agent.chat("What is in this photo?", attachments=["photo.jpg"]).text   # doctest: +SKIP
"""

from __future__ import annotations

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
from polymodal.tools import AudioInput, ImageInput, Tool, ToolOutput, VideoInput, tool
from polymodal.tools.video_summarizer import Timeline, VideoSummarizer
from polymodal.transient import RetryPolicy

__version__ = "0.1.0"

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
    "tool",
]
