"""Planning with no LLM: one step per new attachment, by its modality and the request's wording.

So polymodal stays useful offline, and the tiered planner has a last tier that always answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from langchain_core.runnables import RunnableConfig

from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.agent.planning import PlanningRequest, PlanOutcome, clean_text
from polymodal.media import Attachment, Modality
from polymodal.tools.base import Tool

__all__ = ["DefaultPlanner"]

_QUESTION = re.compile(r"\?\s*$|^\s*(what|which|who|where|when|why|how|is|are|does|do|can|could|count)\b", re.I)
_TEXTUAL = re.compile(r"\b(read|text|written|writing|words?|say|says|sign|document|receipt|label|letter|screenshot|"
                      r"transcribe|ocr)\b", re.I)
_EMOTION = re.compile(r"\b(emotion|emotions|mood|feel|feels|feeling|angry|happy|sad|tone|upset|excited)\b", re.I)
_GENERATE = re.compile(r"\b(draw|paint|generate|create|make|render|sketch|illustrate)\b.*\b(image|picture|photo|"
                       r"drawing|painting|poster|illustration|logo|art)\b|^\s*(draw|paint|sketch)\b", re.I)


class DefaultPlanner:
    """Plans with no LLM: one step per new attachment, by modality and the request's wording.

    image -> ``visual_qa`` when the request is a question and that tool exists, else
    ``captioner``, else ``ocr`` only when the request is about written text; audio ->
    ``emotion_recognizer`` when it asks about feelings, else ``transcriber``; video ->
    ``video_summarizer`` (else the transcriber); no attachment and "draw/generate ... image" ->
    ``image_generator``. A follow-up question with no new attachment goes to the most recent one.
    When the tool a request needs is not registered, the plan leaves that attachment out and
    ``missing_tools`` names the tool, rather than answering with a tool that does something else.
    """

    def plan(
        self, request: PlanningRequest, tools: Mapping[str, Tool], *, config: RunnableConfig | None = None
    ) -> PlanOutcome:
        ids = list(request.new_attachment_ids)
        if not ids and request.attachments and _QUESTION.search(request.text):
            ids = [list(request.attachments)[-1]]
        steps: list[Step] = []
        missing: list[str] = []
        for attachment_id in ids:
            attachment = request.attachments[attachment_id]
            wants = [self._step_for(attachment, request.text, tools, f"s{len(steps) + 1}")]
            if attachment.kind is Modality.AUDIO and _EMOTION.search(request.text):
                # "does she sound sad?" is for the emotion tool; "what does she say, and ..." wants both
                emotion = self._emotion_step(attachment, tools, f"s{len(steps) + 1}")
                wants = [emotion, *(wants if _TEXTUAL.search(request.text) else [])]
            for want in wants:
                if isinstance(want, Step):
                    steps.append(want.model_copy(update={"id": f"s{len(steps) + 1}"}))
                elif want is not None and want not in missing:
                    missing.append(want)
        if not ids and "image_generator" in tools and _GENERATE.search(request.text):
            steps.append(Step(id="s1", tool="image_generator", args={"prompt": clean_text(request.text)}))
        plan = Plan(steps=steps, answer=steps[0].id if len(steps) == 1 and not missing else None)
        validate_plan(plan, tools, request.attachments, max_steps=request.max_steps)
        return PlanOutcome(plan=plan, tier="defaults", missing_tools=missing)

    @staticmethod
    def _step_for(attachment: Attachment, text: str, tools: Mapping[str, Tool], step_id: str) -> Step | str | None:
        """The step for one attachment, or the name of the missing tool it needs, or None."""
        ref = attachment.id or ""
        if attachment.kind is Modality.IMAGE:
            wanted = "visual_qa" if _QUESTION.search(text) else "captioner"
            if "visual_qa" in tools and wanted == "visual_qa":
                return Step(id=step_id, tool="visual_qa", args={"image": ref, "question": clean_text(text)})
            if "captioner" in tools:
                return Step(id=step_id, tool="captioner", args={"image": ref})
            if "ocr" in tools and _TEXTUAL.search(text):  # reading the text is what was asked
                arg = next((k for k, m in tools["ocr"].input_modalities.items() if m is Modality.IMAGE), "image")
                return Step(id=step_id, tool="ocr", args={arg: ref})
            return wanted
        if attachment.kind is Modality.VIDEO and "video_summarizer" in tools:
            return Step(id=step_id, tool="video_summarizer", args={"video": ref})
        if attachment.kind in (Modality.AUDIO, Modality.VIDEO) and "transcriber" in tools:
            return Step(id=step_id, tool="transcriber", args={"audio": ref})
        return None

    @staticmethod
    def _emotion_step(attachment: Attachment, tools: Mapping[str, Tool], step_id: str) -> Step | str:
        if "emotion_recognizer" not in tools:
            return "emotion_recognizer"
        return Step(id=step_id, tool="emotion_recognizer", args={"audio": attachment.id or ""})
