"""The planner contract: what every planner gets (:class:`PlanningRequest`) and gives (:class:`PlanOutcome`).

Its own module so that each planner (the LLM one, the defaults, the router, the tiers) depends on
the contract, not on another planner. A request carries the turn's conversation as a read-only
:class:`~polymodal.agent.conversation.ConversationView`: the planner reads the attachments, the
recent history and the released count from the one conversation, and cannot change it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from langchain_core.runnables import RunnableConfig

from polymodal.agent.conversation import ConversationView
from polymodal.agent.plan import Plan
from polymodal.media import Attachment
from polymodal.tools.base import Tool

__all__ = ["DEFAULT_MAX_STEPS", "PlanOutcome", "Planner", "PlanningRequest", "Tier", "clean_text"]

Tier = Literal["llm", "router", "defaults"]
DEFAULT_MAX_STEPS = 8


@dataclass
class PlanningRequest:
    """What a planner sees: the text, the conversation (read-only), and which attachments are new."""

    text: str
    conversation: ConversationView = field(default_factory=ConversationView.of)
    """The turn's conversation, read-only: its attachments, recent history and released count."""
    new_attachment_ids: Sequence[str] = ()
    max_steps: int = DEFAULT_MAX_STEPS
    """The most steps a plan may have: the agent's ``Settings.max_steps``, which every tier honours."""

    @property
    def attachments(self) -> Mapping[str, Attachment]:
        """The conversation's attachments by id."""
        return self.conversation.attachments

    @property
    def history(self) -> Sequence[tuple[str, str]]:
        """(user text, reply text) of earlier turns, oldest first (as many as the view shows)."""
        return self.conversation.history

    @property
    def released_attachments(self) -> int:
        """Earlier attachments of the conversation no longer available (prompts only count them)."""
        return self.conversation.released


@dataclass
class PlanOutcome:
    """A plan and what it cost to make."""

    plan: Plan
    tier: Tier
    llm_calls: int = 0
    raw_outputs: list[str] = field(default_factory=list)
    reason: str = ""
    """Why this tier planned (the router's scores, or why it handed the request on)."""
    missing_tools: list[str] = field(default_factory=list)
    """Tools the request needs that the agent does not have: the plan leaves those parts out."""
    confidence: float | None = None
    """The router's calibrated probability that its plan's tools are right (None: no learned head)."""


class Planner(Protocol):
    """Anything that turns a request into a plan."""

    def plan(
        self, request: PlanningRequest, tools: Mapping[str, Tool], *, config: RunnableConfig | None = None
    ) -> PlanOutcome:
        """Return a validated plan for ``request``."""
        ...


def clean_text(text: str) -> str:
    """Drop NUL and control characters (keeping newlines and tabs) from untrusted text."""
    return "".join(ch for ch in text if ch in "\n\t" or (ord(ch) >= 32 and ord(ch) != 127))
