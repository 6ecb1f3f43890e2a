"""How much untrusted text a prompt may carry, and the note that says when some was cut.

Every prompt polymodal builds (planner, fusion, the planner's re-ask) is bounded (RELIABILITY A9):
a pasted book as the request, a long conversation or a tool's megabyte of OCR text must neither
blow a model's context window nor cost a fortune, and a model that sees only part of a text must
know it (otherwise it answers "the transcript ends with..." from a cut). So each piece is clipped
to its own limit and a note naming it and how much was left out takes the place of the rest.
The limits are characters, not tokens: cheap to apply before any tokenizer is loaded, and about
four characters per token for English.

The tool results of one plan share ``TOOL_RESULTS_CHARS``: each gets an equal share, at most
``TOOL_RESULT_CHARS``. The whole output of every tool stays in ``Reply.steps``: only the prompt is cut.
"""

from __future__ import annotations

__all__ = [
    "ERROR_CHARS",
    "HISTORY_CHARS",
    "HISTORY_TURN_CHARS",
    "REQUEST_CHARS",
    "TOOL_RESULTS_CHARS",
    "TOOL_RESULT_CHARS",
    "clip",
    "result_share",
]

REQUEST_CHARS = 8000
"""The user's request, in the planner's and in the fusion prompt."""
HISTORY_TURN_CHARS = 400
"""Each side (user, assistant) of one earlier turn."""
HISTORY_CHARS = 4000
"""All earlier turns together; the oldest are left out first."""
TOOL_RESULT_CHARS = 6000
"""One tool's output in the fusion prompt."""
TOOL_RESULTS_CHARS = 24000
"""All tool outputs of one plan together."""
ERROR_CHARS = 1000
"""One step's error message, and each problem line of a planner re-ask."""


def clip(text: str, limit: int, what: str = "text") -> str:
    """``text`` if it has at most ``limit`` characters; else its first ``limit`` and a note.

    The note, ``[... <what> cut here: N more characters not shown]``, tells the model that the text
    goes on, so it neither invents an ending nor reads the cut as the end.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [... {what} cut here: {len(text) - limit:,} more characters not shown]"


def result_share(results: int) -> int:
    """Characters each of ``results`` tool outputs may take in one prompt."""
    return min(TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS // max(1, results))
