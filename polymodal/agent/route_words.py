"""The router's word rules: what a clause's wording decides on top of the scores.

The embedding (and the learned head) pick a tool by meaning; a few decisions are plain wording
that no score should overrule: explicit cues for one tool ("say it out loud", "a dog, a cat or
a rabbit"), which scene-setting sentences belong to an ask, and whether one step's output may
be the whole reply. Pure text and tool metadata: no model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from polymodal.agent.clauses import Clause, asks_for_picture, asks_for_speech, labels, mentions_document
from polymodal.tools.base import Tool

__all__ = ["answers_alone", "context_before", "cue"]

_SAYS = re.compile(r"\b(say|says|said|read|written|write|text|words|transcri\w*)\b", re.I)
_CHOOSERS = ("visual_qa", "captioner")  # what a listed-options or document question is taken away from


def context_before(clauses: Sequence[Clause], index: int) -> str:
    """The scene-setting clauses right before clause ``index`` (since the previous ask)."""
    found: list[str] = []
    for clause in reversed(clauses[:index]):
        if clause.ask:
            break
        found.insert(0, clause.text)
    return " ".join(found)


def cue(clause: str, best: str, fills: Mapping[str, list[dict[str, Any]]]) -> tuple[str, str]:
    """The words can overrule close scores: each cue is explicit wording for one tool.

    Spoken output ("say it out loud") goes to speech; listed options ("a dog, a cat or a rabbit")
    to CLIP; a question about written text (a receipt's total, "read the label") to OCR; "make a
    new picture" to image generation. A cue applies only when its tool can take the clause.
    """
    if "speech_synthesizer" in fills and asks_for_speech(clause):
        return "speech_synthesizer", "spoken output"
    if "clip_matcher" in fills and best in (*_CHOOSERS, "clip_matcher") and labels(clause):
        return "clip_matcher", "listed options"
    if "ocr" in fills and best in (*_CHOOSERS, "ocr", "speech_synthesizer") and mentions_document(clause):
        return "ocr", "written text"
    if "image_generator" in fills and asks_for_picture(clause):
        return "image_generator", "a picture to make"
    return best, ""


def answers_alone(tool: Tool, clause: str) -> bool:
    """May this one step's output be the whole reply (no fusion)?

    Not when a reader tool (OCR, the transcriber) is asked a question about what it read ("what
    is the total on this receipt?"): the fusion step must answer from the text.
    """
    if not tool.direct_answer:
        return False
    question = clause.rstrip().endswith("?") or bool(re.match(r"^\s*(what|which|who|when|where|how|why)\b", clause,
                                                                   re.I))
    return not (tool.name in ("ocr", "transcriber") and question and not _SAYS.search(clause))
