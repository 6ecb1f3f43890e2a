"""One image, four tools in one plan: captioner, visual_qa, clip_matcher and ocr run in parallel.

The scripted chat model plans and fuses (the LLM boundary); every tool runs its real model (tiny
random checkpoints, and rapidocr's packaged PP-OCR models). Also a chain: OCR's text feeds a
visual_qa question through a ``{s1}`` reference.
"""

from __future__ import annotations

import json

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal import Agent
from polymodal.tools import OCR, Captioner, ClipMatcher, ClipScores, OCRResult, VisualAnswers, VisualQA

pytest.importorskip("rapidocr", reason="the ocr extra is not installed: pip install 'polymodal[ocr]'")


@pytest.fixture
def four_tools(tiny_models) -> list:
    return [Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=5),
            VisualQA(model=str(tiny_models.path("blip-vqa")), max_new_tokens=5),
            ClipMatcher(model=str(tiny_models.path("clip"))),
            OCR()]


def test_four_tools_on_one_image_run_in_parallel_and_reach_fusion(four_tools, media):
    plan = json.dumps({"steps": [
        {"id": "s1", "tool": "captioner", "args": {"image": "image_1"}},
        {"id": "s2", "tool": "visual_qa", "args": {"image": "image_1", "questions": ["what colour?", "is it a sign?"]}},
        {"id": "s3", "tool": "clip_matcher", "args": {"images": ["image_1"], "labels": ["a sign", "a cat"]}},
        {"id": "s4", "tool": "ocr", "args": {"image": "image_1"}},
    ]})
    llm = ScriptedChatModel(responses=[plan, "A sign [s1] reading HELLO [s4]."])
    events: list[tuple[str, str]] = []
    reply = Agent(llm=llm, tools=four_tools).chat(
        "What is this, what does it say, and is it a sign?", attachments=[media.text_image("HELLO", font_size=28)],
        on_event=lambda event: events.append((event.type, getattr(getattr(event, "step", None), "id", ""))))
    assert [s.tool for s in reply.steps] == ["captioner", "visual_qa", "clip_matcher", "ocr"]
    assert all(s.ok for s in reply.steps), [s.error for s in reply.steps]
    started = [i for i, (event, _) in enumerate(events) if event == "step_started"]
    finished = [i for i, (event, _) in enumerate(events) if event == "step_finished"]
    assert len(started) == 4 and max(started) < min(finished), f"all four ran at once: {events}"
    by_id = {s.id: s for s in reply.steps}
    assert isinstance(by_id["s2"].artifact, VisualAnswers) and isinstance(by_id["s3"].artifact, ClipScores)
    assert isinstance(by_id["s4"].artifact, OCRResult) and "HELLO" in by_id["s4"].content
    fusion_prompt = llm.prompt(1)
    for step in reply.steps:
        assert f'<tool_result step="{step.id}" tool="{step.tool}" status="ok">\n{step.content}' in fusion_prompt
    assert reply.text == "A sign [s1] reading HELLO [s4]."


def test_ocr_text_feeds_a_visual_question(four_tools, media):
    plan = json.dumps({"steps": [
        {"id": "s1", "tool": "ocr", "args": {"image": "image_1"}},
        {"id": "s2", "tool": "visual_qa", "args": {"image": "image_1", "question": "why does the sign say {s1}?"}},
    ], "answer": "s2"})
    reply = Agent(llm=ScriptedChatModel(responses=[plan]), tools=four_tools).chat(
        "Why does the sign say that?", attachments=[media.text_image("EXIT", font_size=28)])
    ocr_step, vqa_step = reply.steps
    assert ocr_step.ok and vqa_step.ok and "EXIT" in ocr_step.content
    assert vqa_step.artifact.pairs[0].question == f"why does the sign say {ocr_step.content}?"
