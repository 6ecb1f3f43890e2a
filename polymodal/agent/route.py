"""What the router decided: per clause (:class:`ClauseRoute`) and for the request (:class:`Route`).

Its own module so that the router's rules (:mod:`.router`, :mod:`.route_words`) and what reads
their outcome (the tiers, ``polymodal eval --fit``) share the types without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polymodal.agent.plan import Plan

__all__ = ["ClauseRoute", "Route"]


@dataclass
class ClauseRoute:
    """How one clause scored: every tool it can feed, best first, and what was decided."""

    text: str
    scores: list[tuple[str, float]]
    """(tool name, cosine score) of the possible tools, best first (unavailable ones included)."""
    steps_args: list[dict[str, Any]] = field(default_factory=list)
    """Arguments of the step(s) for the chosen tool (one per attachment it applies to)."""
    confident: bool = False
    chosen: str | None = None
    """The tool this clause goes to: the best score, unless a cue in the words overrode it."""
    cue: str = ""
    """Why the words overrode the scores ("listed options", "document question"), if they did."""
    probabilities: list[tuple[str, float]] = field(default_factory=list)
    """(tool, calibrated probability) from the learned head, most likely first; empty without one."""
    embedding: np.ndarray | None = field(default=None, repr=False)
    """The clause's sentence embedding (what the head read; ``polymodal eval --fit`` learns from it)."""
    guessed: bool = False
    """The head was unsure, no better tier comes next, and the clause went to its most likely tool."""

    @property
    def confidence(self) -> float | None:
        """The head's probability that the chosen tool is right (None: no head, or no tool chosen).

        A clause decided by explicit wording (a cue: "say it out loud") is sure: 1.0.
        """
        if self.cue and self.chosen is not None and self.probabilities:
            return 1.0
        return next((p for name, p in self.probabilities if name == self.chosen), None)

    @property
    def tool(self) -> str | None:
        """The chosen tool, or None when no tool is possible."""
        return self.chosen

    @property
    def margin(self) -> float:
        """How far the best tool is ahead of the runner-up (1.0 when it has none)."""
        if not self.scores:
            return 0.0
        return self.scores[0][1] - self.scores[1][1] if len(self.scores) > 1 else 1.0


@dataclass
class Route:
    """The router's decision: a plan when it is confident, else None and why."""

    plan: Plan | None
    clauses: list[ClauseRoute]
    reason: str
    missing_tools: list[str] = field(default_factory=list)
    """Tools the request needs that the agent lacks (from the router's ``unavailable`` tools)."""
    unsure: list[str] = field(default_factory=list)
    """What the router planned without being sure of it (only when no better tier comes next)."""

    @property
    def confidence(self) -> float | None:
        """The head's probability that every clause went to the right tool (their product), or None."""
        found = [part.confidence for part in self.clauses if part.confidence is not None]
        return float(np.prod(found)) if found else None
