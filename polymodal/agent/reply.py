"""The answer to one request, with everything that produced it (plan, steps, media, cost).

Its own module so that what consumes a Reply (the streamed events, the agent-as-a-tool) can name
it without importing the Agent: no import cycle inside the agent layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage
from pydantic import BaseModel, ConfigDict, Field

from polymodal.agent.plan import Plan
from polymodal.agent.planning import Tier
from polymodal.agent.steps import StepResult
from polymodal.agent.usage import TokenUsage
from polymodal.media import Attachment

__all__ = ["Outcome", "Reply", "reply_message"]

Outcome = Literal["answered", "partial", "failed"]


class Reply(BaseModel):
    """The answer to one request, with everything that produced it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    """The fused answer."""
    plan: Plan
    """The validated plan that ran."""
    steps: list[StepResult] = Field(default_factory=list)
    """Per step: id, tool, args, status, content (text) and artifact (typed), error, timing."""
    artifacts: list[Attachment] = Field(default_factory=list)
    """Media the tools produced this turn (generated images, speech), each with its id."""
    attachment_ids: list[str] = Field(default_factory=list)
    """Ids given to the attachments of this request."""
    planner: Tier = "llm"
    """Which tier planned: "llm", "router" or "defaults"."""
    fusion: str = "llm"
    """How the answer was written: "llm", "template" or "passthrough"."""
    llm_calls: int = 0
    """LLM calls this request cost (planning attempts + fusion)."""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    """Tokens those calls consumed, as the models reported them (0 when no LLM ran)."""
    missing_tools: list[str] = Field(default_factory=list)
    """Tools the request needed that this agent lacks; the text says how to get each. Non-empty: not fully answered."""
    seconds: float = 0.0

    @property
    def outcome(self) -> Outcome:
        """Whether the request was answered: what ``polymodal run`` turns into its exit code.

        - ``"answered"``: every step succeeded (or no step was needed and a language model answered);
        - ``"partial"``: some steps succeeded and some failed, timed out or were skipped: the answer
          is built from what did run;
        - ``"failed"``: no step succeeded, or no tool applied and no language model could answer.

        A request that needed a tool the agent lacks (``missing_tools``) is at best ``"partial"``.
        """
        done = sum(step.ok for step in self.steps)
        if self.missing_tools:
            return "partial" if done else "failed"
        if not self.steps:
            return "failed" if self.fusion == "template" else "answered"
        if done == len(self.steps):
            return "answered"
        return "partial" if done else "failed"

    def __str__(self) -> str:
        return self.text

    def to_record(self, files_dir: Path | None = None) -> dict[str, Any]:
        """The reply as a JSON-ready dict: the one shape batch results and ``polymodal run --json`` write.

        Every step is there with its typed artifact as JSON (a transcript's segments, a match's
        scores) unless the artifact is media. Produced media (``artifacts``) are given by id, kind
        and MIME type; with ``files_dir`` each is also saved there and its ``path`` given.
        """
        artifacts = []
        for attachment in self.artifacts:
            entry: dict[str, Any] = {"id": attachment.id, "kind": attachment.kind.value,
                                     "mime_type": attachment.mime_type}
            if files_dir is not None:
                files_dir.mkdir(parents=True, exist_ok=True)
                suffix = "." + attachment.mime_type.rsplit("/", 1)[-1].replace("mpeg", "mp3").replace("x-wav", "wav")
                entry["path"] = str(attachment.save(files_dir / f"{attachment.id or 'artifact'}{suffix}"))
            artifacts.append(entry)
        steps = []
        for step in self.steps:
            item = step.model_dump(mode="json")
            if isinstance(step.artifact, BaseModel) and not isinstance(step.artifact, Attachment):
                item["artifact"] = step.artifact.model_dump(mode="json")
            steps.append(item)
        return {
            "text": self.text,
            "outcome": self.outcome,
            "planner": self.planner,
            "fusion": self.fusion,
            "llm_calls": self.llm_calls,
            "usage": {**self.usage.model_dump(), "total_tokens": self.usage.total_tokens},
            "missing_tools": list(self.missing_tools),
            "seconds": round(self.seconds, 3),
            "attachment_ids": list(self.attachment_ids),
            "plan": self.plan.model_dump(mode="json"),
            "steps": steps,
            "artifacts": artifacts,
        }

    def to_message(self, *, include_media: bool = False) -> AIMessage:
        """The reply as an ``AIMessage``, for chains and chat UIs that expect messages.

        ``response_metadata`` carries the ids, the tiers and the cost. Generated media stay out of
        the message unless ``include_media`` (then each becomes a base64 content block, which can
        be large).
        """
        metadata = {
            "planner": self.planner,
            "fusion": self.fusion,
            "llm_calls": self.llm_calls,
            "missing_tools": list(self.missing_tools),
            "attachment_ids": list(self.attachment_ids),
            "artifact_ids": [a.id for a in self.artifacts],
            "steps": [{"id": s.id, "tool": s.tool, "status": s.status} for s in self.steps],
        }
        content: Any = self.text
        if include_media and self.artifacts:
            content = [{"type": "text", "text": self.text}, *(a.to_content_block() for a in self.artifacts)]
        usage = {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens,
                 "total_tokens": self.usage.total_tokens}  # LangChain's own field: callbacks and tracers sum it
        return AIMessage(content=content, response_metadata=metadata, usage_metadata=usage)


def reply_message(value: Any) -> AIMessage:
    """``value.to_message()`` for a Reply, or for the final Done event a streamed pipeline hands over."""
    reply = getattr(value, "reply", value)
    if not isinstance(reply, Reply):
        msg = f"expected a Reply, got {type(value).__name__}"
        raise TypeError(msg)
    return reply.to_message()
