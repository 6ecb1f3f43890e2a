"""Is a confidence what it says? Expected calibration error and the reliability diagram's bins.

A router that says 0.9 should be right 9 times in 10 when it says so. Sort the decisions into
equal-width confidence bins; in each, compare the mean confidence with the share that was right.
The expected calibration error (ECE) is the gap, weighted by how many decisions fell in each bin:
0 is perfectly calibrated, and a router that says 0.9 while right half the time scores 0.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Bin", "calibration", "ece", "reliability"]


@dataclass(frozen=True)
class Bin:
    """One bar of a reliability diagram: decisions whose confidence lies in [low, high)."""

    low: float
    high: float
    count: int
    confidence: float
    """Mean confidence of the decisions in the bin (0 when empty)."""
    accuracy: float
    """Share of them that were right (0 when empty)."""


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = 5) -> list[Bin]:
    """The reliability diagram's bins (equal width over [0, 1]; 1.0 falls in the last)."""
    if len(confidences) != len(correct):
        msg = f"{len(confidences)} confidences but {len(correct)} outcomes"
        raise ValueError(msg)
    if bins < 1:
        msg = f"bins must be at least 1, got {bins}"
        raise ValueError(msg)
    filled: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for value, right in zip(confidences, correct, strict=True):
        if not 0.0 <= value <= 1.0:
            msg = f"a confidence must be in [0, 1], got {value}"
            raise ValueError(msg)
        filled[min(int(value * bins), bins - 1)].append((float(value), bool(right)))
    return [Bin(i / bins, (i + 1) / bins, len(items),
                sum(v for v, _ in items) / len(items) if items else 0.0,
                sum(r for _, r in items) / len(items) if items else 0.0)
            for i, items in enumerate(filled)]


def ece(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error, 0..1 (0.0 for no decisions)."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.confidence - b.accuracy) for b in reliability(confidences, correct, bins))


def calibration(cases: Sequence[Any]) -> dict[str, Any]:
    """ECE and reliability bins of the router's confidence over the cases it planned with one.

    ``cases``: :class:`~polymodal.evaluation.run.CaseResult` objects; a case counts as right when
    its planned tools are exactly the gold ones (no false positive, no false negative).
    """
    rated = [c for c in cases if c.confidence is not None and c.tier == "router"]
    confidences = [float(c.confidence) for c in rated]
    right = [c.nodes.fp == 0 and c.nodes.fn == 0 for c in rated]
    return {"rated": len(rated), "ece": round(100 * ece(confidences, right), 1),
            "reliability": [asdict(b) for b in reliability(confidences, right)]}
