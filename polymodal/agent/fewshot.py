"""Worked examples in the LLM planner's prompt, the ones nearest the request by embedding.

A small local LLM plans far better when it sees a few solved requests like the one in front of it
than from the rules alone. Which ones: the examples whose request embeds closest to this one
(MiniLM, the router's encoder, in numpy), at most ``k`` of them and each cut to ``max_chars``, so
the prompt stays bounded however many examples there are. The examples come from whoever builds
this: ``polymodal eval`` passes only its cases' tuning part
(:func:`polymodal.evaluation.fewshot.tuning_examples`), never the held-out part it scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from polymodal.prompts.bounds import clip

__all__ = ["FewShotExamples", "PlanExample"]

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class PlanExample:
    """One solved request: its text and its plan's steps (tool and what each step uses)."""

    request: str
    steps: tuple[tuple[str, tuple[str, ...]], ...]
    """(tool, uses) per step; ``uses`` names attachment ids and earlier steps (``s1``)."""

    def render(self, max_chars: int) -> str:
        plan = [{"id": f"s{i}", "tool": tool, "uses": list(uses)} for i, (tool, uses) in enumerate(self.steps, 1)]
        return f"Request: {clip(' '.join(self.request.split()), max_chars, 'example')}\nSteps: {json.dumps(plan)}"


class FewShotExamples:
    """Picks the ``k`` examples nearest a request and writes them into a planner prompt.

    Args:
        examples: the solved requests to draw from (embedded once, on first use).
        embed: texts -> unit-length rows; default: the router's MiniLM (numpy, no torch).
        k: at most this many examples per prompt.
        max_chars: each example's request is cut to this many characters.
    """

    def __init__(self, examples: Sequence[PlanExample], *, embed: Embed | None = None, k: int = 3,
                 max_chars: int = 300) -> None:
        self.examples = list(examples)
        self.k = max(0, k)
        self.max_chars = max(20, max_chars)
        self._embed = embed
        self._matrix: np.ndarray | None = None

    def nearest(self, text: str) -> list[PlanExample]:
        """The examples nearest ``text``, nearest first (at most ``k``)."""
        if not self.examples or not self.k or not text.strip():
            return []
        embed = self._embedder()
        if self._matrix is None:
            self._matrix = np.asarray(embed([e.request for e in self.examples]), dtype=np.float32)
        scores = self._matrix @ np.asarray(embed([text]), dtype=np.float32)[0]
        return [self.examples[i] for i in np.argsort(-scores, kind="stable")[: self.k]]

    def add_to(self, prompt: str, text: str) -> str:
        """``prompt`` with a "Solved examples" section before its request (unchanged if none fit)."""
        chosen = self.nearest(text)
        if not chosen:
            return prompt
        section = ("## Solved examples (similar requests and the steps they got; plan yours with full args)\n"
                   + "\n\n".join(e.render(self.max_chars) for e in chosen) + "\n\n")
        head, marker, tail = prompt.rpartition("## Request")
        return head + section + marker + tail if marker else prompt + "\n\n" + section

    def _embedder(self) -> Embed:
        if self._embed is None:
            from polymodal.agent.router_model import default_router_model, load_bundle, numpy_folder

            model = default_router_model()
            self._embed = load_bundle(model, None, numpy_folder(model, None)).encoder.embed
        return self._embed
