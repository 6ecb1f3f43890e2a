"""VisualQA on tiny random BLIP VQA and BLIP-2 (OPT and T5) checkpoints through its normal loading path.

Random weights answer nonsense, so the tests check what is real: the family picked from the config,
several questions as one batched generate, batch == one-by-one, the prompt stripped from decoder-only
answers, schema and plan validation, and clear errors for missing models.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, ConfigurationError, PlanValidationError
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.tools import VisualAnswers, VisualQA
from polymodal.tools.builtin.visual_qa import VisualQAArgs

FAMILIES = ["blip-vqa", "blip2-opt", "blip2-t5", "idefics3-chat"]


def _vqa(tiny_models, family: str) -> VisualQA:
    # A random T5 may generate only <pad> (""): forbid it so every family yields real tokens (OFFLINE.md).
    extra: dict = {"min_new_tokens": 2, "suppress_tokens": [0]} if family == "blip2-t5" else {}
    if family == "idefics3-chat":
        extra = {"min_new_tokens": 2}  # a random LM may hit <end_of_utterance> at once
    return VisualQA(model=str(tiny_models.path(family)), max_new_tokens=4, generate_kwargs=extra)


@pytest.mark.parametrize("family", FAMILIES)
def test_several_questions_are_one_batch_equal_to_one_by_one(tiny_models, media, family):
    vqa = _vqa(tiny_models, family)
    red = Attachment.from_path(media.png(color=(255, 0, 0), name="red.png"))
    blue = Attachment.from_path(media.png(color=(0, 0, 255), name="blue.png"))
    questions = ["what colour is it?", "is there a large square in the middle of the picture?"]
    batched = vqa.execute_batch([{"image": red, "questions": questions}, {"image": blue, "question": "what is it?"}])
    singles = [vqa.execute(image=red, question=q).content for q in questions]
    singles.append(vqa.execute(image=blue, question="what is it?").content)
    answers = batched[0].artifact
    assert isinstance(answers, VisualAnswers) and [p.question for p in answers.pairs] == questions
    assert answers.answers + [batched[1].content] == singles
    assert all(a.strip() for a in singles), "every family produced a non-empty answer"
    assert batched[0].content == "\n".join(f"Q: {q}\nA: {a}" for q, a in zip(questions, singles[:2], strict=True))


@pytest.mark.parametrize("family", ["blip2-opt", "idefics3-chat"])
def test_decoder_only_answers_do_not_echo_the_prompt(tiny_models, media, family):
    vqa = _vqa(tiny_models, family)
    answer = vqa.execute(image=Attachment.from_path(media.png()), question="what colour?")
    assert "colour" not in answer.content and "Answer:" not in answer.content and "Assistant" not in answer.content
    assert len(answer.content) <= 4 * vqa.max_new_tokens  # the answer only: at most max_new_tokens byte tokens


def test_chat_vlms_get_the_chat_template_with_the_image(tiny_models, media):
    vqa = _vqa(tiny_models, "idefics3-chat")
    bundle = vqa.bundle()
    assert bundle.family == "chat" and type(bundle.model).__name__ == "Idefics3ForConditionalGeneration"
    encoded = vqa.encode(bundle, vqa.prepare([{"image": Attachment.from_path(media.png()), "question": "why?"}]))
    prompt = bundle.processor.tokenizer.decode(encoded["input_ids"][0])
    assert prompt.startswith("<|im_start|>User:<fake_token_around_image>")
    assert prompt.endswith("why?<end_of_utterance>\nAssistant:")
    assert "pixel_values" in encoded


def test_questions_go_through_generate_together(tiny_models, media, monkeypatch):
    vqa = _vqa(tiny_models, "blip-vqa")
    bundle = vqa.bundle()
    batch_sizes = []
    original = bundle.model.generate
    monkeypatch.setattr(bundle.model, "generate", lambda **kw: batch_sizes.append(len(kw["input_ids"])) or
                        original(**kw))
    vqa.execute(image=Attachment.from_path(media.png()), questions=["a?", "b?", "c?"])
    assert batch_sizes == [3]


@pytest.mark.parametrize("args", [
    {"image": "image_1"},
    {"image": "image_1", "question": "a?", "questions": ["b?"]},
    {"image": "image_1", "questions": []},
    {"image": "image_1", "questions": ["ok?", " "]},
    {"image": "image_1", "question": "a?", "colour": "red"},
], ids=["no-question", "both", "empty-list", "blank-question", "unknown-arg"])
def test_schema_rejects_bad_args(args):
    with pytest.raises(ValidationError):
        VisualQAArgs.model_validate(args)


def test_wrong_modality_is_rejected_at_plan_validation(tiny_models, media):
    audio = Attachment.from_path(media.wav()).with_id("audio_1")
    plan = Plan(steps=[Step(id="s1", tool="visual_qa", args={"image": "audio_1", "question": "what?"})])
    with pytest.raises(PlanValidationError, match=r"steps\[0\] \(s1\)\.args\.image: audio_1 is audio"):
        validate_plan(plan, {"visual_qa": _vqa(tiny_models, "blip-vqa")}, {"audio_1": audio})


def test_missing_model_folder_is_a_configuration_error(media):
    with pytest.raises(ConfigurationError, match="visual_qa: model folder './no/such/vqa' does not exist"):
        VisualQA(model="./no/such/vqa").execute(image=Attachment.from_path(media.png()), question="what?")


def test_agent_routes_a_question_to_visual_qa(tiny_models, media):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "visual_qa",
                                  "args": {"image": "image_1", "questions": ["what colour?", "how many?"]}}],
                       "answer": "s1"})
    llm = ScriptedChatModel(responses=[plan])
    reply = Agent(llm=llm, tools=[_vqa(tiny_models, "blip-vqa")]).chat(
        "What colour is it, and how many are there?", attachments=[media.png()])
    step = reply.steps[0]
    assert step.ok and step.tool == "visual_qa" and reply.fusion == "passthrough"
    assert isinstance(step.artifact, VisualAnswers) and len(step.artifact.pairs) == 2
    assert reply.text == step.content and "Q: what colour?" in reply.text
