"""What one plan step did (:class:`StepResult`): the record the executor fills and everyone reads.

Its own module, below the executor and the events, so that the typed events, the Reply and the
executor can all name it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StepResult", "StepStatus", "attachment_refs"]

StepStatus = Literal["ok", "error", "timeout", "skipped"]


class StepResult(BaseModel):
    """What one step did: its resolved arguments, its output or error, and its timing."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: StepStatus = "skipped"
    content: str | None = None
    """The text output (what fusion and later steps read)."""
    artifact: Any = Field(default=None, exclude=True)
    """The typed output (a transcript, an image Attachment, ...); not serialised."""
    artifact_ids: list[str] = Field(default_factory=list)
    """Ids given to media the step produced (usable by later steps and turns)."""
    error: str | None = None
    error_type: str | None = None
    started: float = 0.0
    """Seconds from the start of the run to the start of this step."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the step produced an output."""
        return self.status == "ok"



def attachment_refs(results: Sequence[StepResult]) -> list[str]:
    """The attachment ids the steps read (string arguments; ids that are not attachments are ignored)."""
    return [item for r in results for value in r.args.values()
            for item in (value if isinstance(value, list) else [value]) if isinstance(item, str)]
