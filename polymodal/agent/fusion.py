"""Write one answer from what the tools found: one LLM call, or none.

No call is made when the plan names one step as the whole answer (``Plan.answer``) and that step
succeeded: the transcript *is* the answer to "what does this voice note say?". Without an LLM,
a template presents each tool's output under what it is. With one, the tool outputs go into the
prompt fenced as quoted data (RELIABILITY P10: a spoken "ignore previous instructions" is
content to report, not an instruction), failures are listed so the model states them, and
citations of steps that never ran are removed from the answer (R4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from polymodal.agent.clauses import asks_for_writing
from polymodal.agent.conversation import ConversationView
from polymodal.agent.plan import Plan
from polymodal.agent.planner import describe_attachments, describe_history, describe_request
from polymodal.agent.steps import StepResult
from polymodal.errors import exception_text
from polymodal.media import Attachment
from polymodal.prompts import render_prompt
from polymodal.prompts.bounds import ERROR_CHARS, clip, result_share
from polymodal.redaction import redact
from polymodal.transient import RetryPolicy, call_with_retry, is_transient

__all__ = ["CitationFilter", "Fusion", "FusionOutcome", "keep_valid_citations", "template_answer"]

# What a reply without a writer model says when the request asked for work on the text (the router's chores).
NO_WRITER_NOTE = ("Summaries, translations and other work on the text need a language model, and none is "
                  "configured (--llm, or Agent(llm=...)), so here are the tools' outputs as they are.")
# one id or a group: [s1], [s1, s9], [s1,s2], [s1; s2] (R4)
_CITATION = re.compile(r"\s?\[\s*(s[0-9]{1,3}(?:\s*[,;]\s*s[0-9]{1,3})*)\s*\]", re.I)
_CITED_ID = re.compile(r"s[0-9]{1,3}", re.I)


@dataclass
class FusionOutcome:
    """The answer and what it cost."""

    text: str
    llm_calls: int = 0
    mode: str = "llm"
    """"passthrough", "template" or "llm"."""
    note: str | None = None
    """Why the answer is not what ``mode`` would normally give (the writer model failed)."""


class Fusion:
    """Writes the reply. ``llm=None`` uses the template, never a model.

    Args:
        llm: the chat model that writes answers.
        retry: how a call that fails transiently (connection reset, timeout, 5xx, rate limit) is
            retried. A call that still fails — or fails for another reason — does not lose the
            tools' work: the answer is then the template, after a note that the writer model failed.
    """

    def __init__(self, llm: BaseChatModel | None = None, *, retry: RetryPolicy | None = None) -> None:
        self.llm = llm
        self.retry = retry or RetryPolicy()

    def answer(
        self,
        request: str,
        plan: Plan,
        results: Sequence[StepResult],
        *,
        conversation: ConversationView,
        config: RunnableConfig | None = None,
        on_token: Callable[[str], None] | None = None,
        images: Sequence[Attachment] = (),
    ) -> FusionOutcome:
        """Answer ``request`` from ``results``.

        Args:
            conversation: the turn's conversation, read-only: its attachments (this turn's
                generated media included) name the sources, its ``history`` and released count
                go into the prompt.
            on_token: when given, the answer is streamed (``llm.stream``) and each text chunk is
                passed here as it arrives; the returned text is the whole answer, with invalid
                citations removed (which streamed chunks cannot be).
            images: attachments to hand the chat model as image content blocks next to the prompt,
                for chat models that read images natively (``Agent(multimodal_llm=True)``).
        """
        attachments = conversation.attachments
        by_id = {r.id: r for r in results}
        direct = by_id.get(plan.answer or "")
        if direct is not None and direct.ok and len([r for r in results if r.ok]) >= 1:
            return FusionOutcome(text=direct.content or "", llm_calls=0, mode="passthrough")
        if self.llm is None:
            text = template_answer(results, attachments)
            if asks_for_writing(request) and any(r.ok for r in results):
                note = NO_WRITER_NOTE
                text = f"{note}\n\n{text}"
                return FusionOutcome(text=text, llm_calls=0, mode="template", note=note)
            return FusionOutcome(text=text, llm_calls=0, mode="template")
        calls = [0]  # the writer's calls so far, kept when it fails: each one cost the request
        try:
            text = self._write(request, results, conversation, config, on_token, images, calls)
        except Exception as exc:  # noqa: BLE001 - any writer failure: the tools' outputs are still the answer
            return self._fallback(exc, results, attachments, llm_calls=calls[0])
        return FusionOutcome(text=keep_valid_citations(text, results), llm_calls=calls[0], mode="llm")

    def _write(
        self,
        request: str,
        results: Sequence[StepResult],
        conversation: ConversationView,
        config: RunnableConfig | None,
        on_token: Callable[[str], None] | None,
        images: Sequence[Attachment],
        calls: list[int] | None = None,
    ) -> str:
        """The writer model's answer; transient failures retried (T6). ``calls[0]`` counts each call
        made, also when the last one fails.

        A streamed answer is retried only while no token has gone out: the listener cannot take
        back what it was sent.
        """
        assert self.llm is not None
        llm = self.llm
        share = result_share(len(results))
        prompt = render_prompt(
            "fusion",
            history=describe_history(conversation.history),
            attachments=describe_attachments(conversation.attachments, released=conversation.released),
            results="\n\n".join(fence_result(r, share) for r in results) or "(no tools were run)",
            request=describe_request(request),
        )
        content: Any = prompt
        if images:
            content = [{"type": "text", "text": prompt}, *(image.to_content_block() for image in images)]
        messages = [HumanMessage(content=content)]
        counted = calls if calls is not None else [0]
        streamed = False

        def write() -> str:
            nonlocal streamed
            counted[0] += 1
            if on_token is None:
                return _text(llm.invoke(messages, config=config).content)
            parts: list[str] = []
            for chunk in llm.stream(messages, config=config):
                piece = _text(chunk.content)
                if piece:
                    parts.append(piece)
                    streamed = True
                    on_token(piece)
            return "".join(parts)

        return call_with_retry(write, self.retry, what="fusion LLM call",
                               retry_if=lambda exc: not streamed and is_transient(exc))

    @staticmethod
    def _fallback(
        exc: Exception, results: Sequence[StepResult], attachments: Mapping[str, Attachment], *, llm_calls: int
    ) -> FusionOutcome:
        """The template answer, after a note saying that (and why) the writer model failed; the failed
        calls still count (``Reply.llm_calls`` is what the request cost)."""
        reason = clip(redact(f"{type(exc).__name__}: {exception_text(exc)}"), 300, "error")
        note = f"The model that writes answers failed ({reason}), so here are the tools' outputs as they are."
        return FusionOutcome(text=f"{note}\n\n{template_answer(results, attachments)}", llm_calls=llm_calls,
                             mode="template", note=note)


def _text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content if isinstance(p, str | dict)]
        return "".join(parts)
    return str(content)


def fence_result(result: StepResult, limit: int | None = None) -> str:
    """One step's result as quoted data, at most ``limit`` characters of it (A9).

    A closing tag inside the data cannot end the fence; a cut output says so inside the fence.
    """
    head = f'<tool_result step="{result.id}" tool="{result.tool}" status="{result.status}">'
    if result.ok:
        body = clip(result.content or "", limit or result_share(1), "tool output")
    else:
        body = f"(no output: {clip(result.error or result.status, ERROR_CHARS, 'error')})"
    body = body.replace("</tool_result", "<\\/tool_result").replace("<tool_result", "<\\tool_result")
    return f"{head}\n{body}\n</tool_result>"


def keep_valid_citations(text: str, results: Sequence[StepResult]) -> str:
    """Remove citations of steps that did not run successfully (R4).

    A single ``[sN]`` is kept or removed whole. A group (``[s1, s9]``, ``[s1,s2]``, ``[s1; s2]``)
    keeps only its ids of steps that succeeded, written ``[s1, s2]``; a group with none left is
    removed with the space before it. Ids are compared in lower case (``[S1]`` cites ``s1``).
    """
    return _clean_citations(text, {r.id for r in results if r.ok})


def _clean_citations(text: str, ok: set[str]) -> str:
    """:func:`keep_valid_citations` given the ids of the steps that succeeded."""

    def keep(match: re.Match[str]) -> str:
        cited = [i.lower() for i in _CITED_ID.findall(match.group(1))]
        valid = list(dict.fromkeys(i for i in cited if i in ok))
        if not valid:
            return ""
        if valid == cited:
            return match.group(0)
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip())]
        return f"{lead}[{', '.join(valid)}]"

    return _CITATION.sub(keep, text)


def template_answer(results: Sequence[StepResult], attachments: Mapping[str, Attachment]) -> str:
    """The answer without an LLM: each output under a heading saying what it is."""
    if not results:
        return "No tool applies to this request, and no language model is configured to answer it directly."
    return "\n\n".join(_section(r, attachments) for r in results)


_ACRONYMS = {"ocr": "OCR", "qa": "QA", "clip": "CLIP", "tts": "TTS", "asr": "ASR", "llm": "LLM"}


def tool_title(name: str) -> str:
    """A tool name as a heading: ``ocr`` -> "OCR", ``visual_qa`` -> "Visual QA", ``clip_matcher`` -> "CLIP matcher"."""
    words = [_ACRONYMS.get(word, word) for word in name.split("_") if word]
    if words and words[0] == words[0].lower():
        words[0] = words[0].capitalize()
    return " ".join(words)


def _section(result: StepResult, attachments: Mapping[str, Attachment]) -> str:
    sources = ", ".join(_sources(result, attachments))
    title = tool_title(result.tool) + (f" of {sources}" if sources else "")
    if result.ok:
        return f"{title}:\n{result.content or '(empty)'}"
    return f"{title}: failed — {result.error or result.status}"


def _sources(result: StepResult, attachments: Mapping[str, Attachment]) -> Iterator[str]:
    for value in result.args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in attachments:
                yield attachments[item].name


class CitationFilter:
    """Streams an answer with the citations :func:`keep_valid_citations` would remove already gone.

    A streamed piece can end inside a citation (``"... loud [s"``, ``"[s1, s"``), so whatever could
    still become one (trailing whitespace, an open ``[`` followed only by ids, commas and spaces) is
    held back until the next piece or :meth:`finish` decides it. The pieces given out join to
    exactly ``keep_valid_citations(whole_answer, results)``.

    Args:
        ok_steps: ids of the steps that ran successfully (their citations stay).
    """

    _PARTIAL = re.compile(r"(?:\s?\[[sS0-9,;\s]{0,200}|\s)\Z")

    def __init__(self, ok_steps: set[str]) -> None:
        self.ok_steps = ok_steps
        self._pending = ""

    def feed(self, piece: str) -> str:
        """Add a streamed piece; return the text that is now certain."""
        self._pending += piece
        match = self._PARTIAL.search(self._pending)
        cut = match.start() if match else len(self._pending)
        certain, self._pending = self._pending[:cut], self._pending[cut:]
        return self._clean(certain)

    def finish(self) -> str:
        """The text still held back, once the stream has ended."""
        rest, self._pending = self._pending, ""
        return self._clean(rest)

    def _clean(self, text: str) -> str:
        return _clean_citations(text, self.ok_steps)
