"""ClipMatcher on a tiny random CLIP checkpoint, loaded through its normal path.

The scores of random weights mean nothing, so the tests check the maths that must hold whatever
the weights: probabilities are softmaxes (rows sum to 1), the similarity is the model's own
(CLIPModel.forward agrees), batching is exact, and rankings follow the scores.
"""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, ConfigurationError, PlanValidationError
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.tools import ClipMatcher, ClipScores
from polymodal.tools.builtin.clip_matcher import ClipMatcherArgs

LABELS = ["a red square", "a blue square", "a cat"]


@pytest.fixture
def matcher(tiny_models) -> ClipMatcher:
    return ClipMatcher(model=str(tiny_models.path("clip")))


@pytest.fixture
def images(media) -> list[Attachment]:
    return [Attachment.from_path(media.png(color=c, name=f"{n}.png")).with_id(f"image_{i + 1}")
            for i, (n, c) in enumerate([("red", (255, 0, 0)), ("blue", (0, 0, 255)), ("green", (0, 200, 0))])]


def test_probabilities_are_softmaxes_and_match_clip_forward(matcher, images):
    scores = matcher.execute(images=images, labels=LABELS, template="{}").artifact
    assert isinstance(scores, ClipScores) and scores.images == ["image_1", "image_2", "image_3"]
    for row in scores.probabilities + scores.image_probabilities:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
    bundle = matcher.bundle()  # CLIPModel's own forward gives the same image->text logits
    inputs = bundle.processor(images=[a.image() for a in images], text=LABELS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = bundle.model(**inputs).logits_per_image.softmax(dim=1)
    assert torch.allclose(torch.tensor(scores.probabilities), expected, atol=1e-5)


def test_batch_equals_one_by_one(matcher, images):
    inputs = [{"images": images[:2], "labels": LABELS}, {"images": [images[2]], "labels": ["a cat", "a dog"]},
              {"images": images, "labels": ["a red square"], "template": "{}"}]
    batched = matcher.execute_batch(inputs)
    for item, out in zip(inputs, batched, strict=True):
        single = matcher.execute(**item).artifact
        assert single.labels == out.artifact.labels and single.images == out.artifact.images
        assert torch.allclose(torch.tensor(single.similarity), torch.tensor(out.artifact.similarity), atol=1e-5)


def test_retrieval_ranks_images_by_score(matcher, images):
    scores = matcher.execute(images=images, labels=LABELS).artifact
    for j, label in enumerate(LABELS):
        column = [scores.similarity[i][j] for i in range(len(images))]
        expected = [scores.images[i] for i in sorted(range(len(images)), key=lambda i: -column[i])]
        assert scores.rank_images(label) == expected
    assert scores.best_label(0) == scores.ranked(0)[0].label == max(
        zip(scores.probabilities[0], LABELS, strict=True))[1]


def test_template_changes_the_texts(matcher, images):
    plain = matcher.execute(images=images[:1], labels=LABELS, template="{}").artifact
    photo = matcher.execute(images=images[:1], labels=LABELS).artifact  # default "a photo of {}."
    assert plain.similarity != photo.similarity


@pytest.mark.parametrize("args", [
    {"images": ["image_1"], "labels": []},
    {"images": [], "labels": ["a"]},
    {"images": ["image_1"], "labels": ["a", "a"]},
    {"images": ["image_1"], "labels": ["a"], "template": "no placeholder"},
    {"images": "image_1", "labels": ["a"]},
    {"images": ["image_1"], "labels": ["a"], "top_k": 3},
], ids=["no-labels", "no-images", "duplicate-labels", "bad-template", "not-a-list", "unknown-arg"])
def test_schema_rejects_bad_args(args):
    with pytest.raises(ValidationError):
        ClipMatcherArgs.model_validate(args)


def test_wrong_modality_is_rejected_at_plan_validation(matcher, media, images):
    attachments = {"image_1": images[0], "audio_1": Attachment.from_path(media.wav()).with_id("audio_1")}
    plan = Plan(steps=[Step(id="s1", tool="clip_matcher", args={"images": ["image_1", "audio_1"], "labels": ["x"]})])
    with pytest.raises(PlanValidationError, match=r"args\.images: audio_1 is audio"):
        validate_plan(plan, {"clip_matcher": matcher}, attachments)


def test_missing_model_folder_is_a_configuration_error(images):
    with pytest.raises(ConfigurationError, match="clip_matcher: model folder '/no/such/clip' does not exist"):
        ClipMatcher(model="/no/such/clip").execute(images=images[:1], labels=["a"])


def test_agent_classifies_with_clip_matcher(matcher, media):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "clip_matcher",
                                  "args": {"images": ["image_1", "image_2"], "labels": ["red", "blue"]}}]})
    llm = ScriptedChatModel(responses=[plan, "The first looks red [s1]."])
    reply = Agent(llm=llm, tools=[matcher]).chat(
        "Which of these is red?", attachments=[media.png(color=(255, 0, 0)), media.jpeg(color=(0, 0, 255))])
    step = reply.steps[0]
    assert step.ok and isinstance(step.artifact, ClipScores) and step.artifact.images == ["image_1", "image_2"]
    assert "best match for 'red'" in step.content and step.content in llm.prompt(1)
