"""ImageGenerator on the tiny Stable Diffusion checkpoint (2 steps, 32x32), loaded through diffusers.

Random weights draw noise, but the noise is real: these tests check determinism per seed, batching,
image-to-image on shared weights, progress reports, the budget, the missing-extra path, and that a
generated image becomes an attachment that a later step and the next turn can use.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, BudgetExceeded, ConfigurationError, MissingDependencyError, Plan
from polymodal.agent.plan import validate_plan
from polymodal.errors import PlanValidationError
from polymodal.media import Modality
from polymodal.tools import Captioner, ImageGenerator, SpeechSynthesizer, Transcriber, model_cache
from polymodal.tools.base import ToolContext, using_context

SMALL = {"width": 32, "height": 32}


@pytest.fixture
def generator(tiny_models) -> ImageGenerator:
    return ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2)


def pixels(attachment: Attachment) -> np.ndarray:
    return np.asarray(attachment.image(), dtype=np.int16)


@pytest.mark.parametrize("bad", [
    {"prompt": ""},
    {"prompt": "a cat", "device": "cuda"},
    {"prompt": "a cat", "trust_remote_code": True},
    {"prompt": "a cat", "width": 33},
    {"prompt": "a cat", "steps": 0},
    {"prompt": "a cat", "seed": -1},
    {"prompt": "a cat", "guidance": 99},
    {"width": 32},
])
def test_schema_rejects_bad_args(generator, bad):
    with pytest.raises(ValidationError):
        generator.args_schema.model_validate(bad)


def test_plan_validation_checks_modalities(generator, tiny_models, media):
    tools = {t.name: t for t in (generator, Captioner(model=str(tiny_models.path("blip-caption"))),
                                 Transcriber(model="unused"), SpeechSynthesizer(model="unused"))}
    audio = {"audio_1": Attachment.from_path(media.wav()).with_id("audio_1")}
    wrong_attachment = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "image_generator", "args": {"prompt": "x", "image": "audio_1"}}]})
    with pytest.raises(PlanValidationError, match=r"steps\[0\] \(s1\)\.args\.image"):
        validate_plan(wrong_attachment, tools, audio)
    text_as_image = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}},
        {"id": "s2", "tool": "image_generator", "args": {"prompt": "x", "image": "s1"}}]})
    with pytest.raises(PlanValidationError, match="step s1 outputs text"):
        validate_plan(text_as_image, tools, audio)
    speech_as_image = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "speech_synthesizer", "args": {"text": "hi"}},
        {"id": "s2", "tool": "captioner", "args": {"image": "s1"}}]})
    with pytest.raises(PlanValidationError, match="step s1 outputs audio"):
        validate_plan(speech_as_image, tools, {})
    chained = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "image_generator", "args": {"prompt": "x"}},
        {"id": "s2", "tool": "captioner", "args": {"image": "s1"}},
        {"id": "s3", "tool": "image_generator", "args": {"prompt": "redraw", "image": "s1"}}]})
    assert validate_plan(chained, tools, {}) is chained
    assert generator.output_modality is Modality.IMAGE and generator.input_modalities == {"image": Modality.IMAGE}


def test_same_seed_same_pixels_and_the_seed_is_reported(generator):
    first = generator.execute(prompt="a red cat", seed=7, **SMALL)
    again = generator.execute(prompt="a red cat", seed=7, **SMALL)
    other = generator.execute(prompt="a red cat", seed=8, **SMALL)
    assert isinstance(first.artifact, Attachment) and first.artifact.kind is Modality.IMAGE
    assert first.artifact.mime_type == "image/png" and (first.artifact.width, first.artifact.height) == (32, 32)
    assert np.array_equal(pixels(first.artifact), pixels(again.artifact))
    assert not np.array_equal(pixels(first.artifact), pixels(other.artifact))
    assert "seed 7" in first.content and "2 steps" in first.content and "a red cat" in first.content
    unseeded = generator.execute(prompt="a red cat", **SMALL)
    assert "seed " in unseeded.content


def test_batch_equals_one_by_one(generator):
    items = [{"prompt": "a red cat", "seed": 1, **SMALL},
             {"prompt": "a blue dog", "seed": 2, "negative_prompt": "blurry", **SMALL},
             {"prompt": "a wide one", "seed": 3, "width": 48, "height": 32}]  # a second pipeline call
    batched = generator.execute_batch(items)
    one_by_one = [generator.execute(**item) for item in items]
    assert [(o.artifact.width, o.artifact.height) for o in batched] == [(32, 32), (32, 32), (48, 32)]
    for b, o in zip(batched, one_by_one, strict=True):
        # Batched matmuls round differently: at most one 8-bit level apart, never a different image.
        assert np.abs(pixels(b.artifact) - pixels(o.artifact)).max() <= 1
    assert not np.array_equal(pixels(batched[0].artifact), pixels(batched[1].artifact))


def test_image_to_image_shares_the_loaded_weights(generator, media):
    model_cache().clear()
    before = model_cache().loads
    source = Attachment.from_path(media.png(size=(40, 24), color=(200, 30, 30)))
    redrawn = generator.execute(prompt="make it blue", image=source, seed=3, strength=0.5)
    again = generator.execute(prompt="make it blue", image=source, seed=3, strength=0.5)
    plain = generator.execute(prompt="make it blue", seed=3, width=40, height=24)
    assert (redrawn.artifact.width, redrawn.artifact.height) == (40, 24)  # the source's size
    assert redrawn.content.startswith("Redrew the image")
    assert np.array_equal(pixels(redrawn.artifact), pixels(again.artifact))
    assert not np.array_equal(pixels(redrawn.artifact), pixels(plain.artifact))
    assert model_cache().loads - before == 1


def test_progress_is_reported_per_step(generator):
    reports: list[tuple[str, float | None]] = []
    with using_context(ToolContext(attachments={}, progress=lambda m, f: reports.append((m, f)))):
        generator.execute(prompt="a cat", seed=1, steps=3, **SMALL)
    assert [f for _, f in reports] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert reports[0][0] == "denoising step 1/3"
    generator.execute(prompt="a cat", seed=1, steps=3, **SMALL)  # no context, no hook: still fine


def test_budget_caps_generated_images(tiny_models):
    generator = ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2, max_images=2)
    with pytest.raises(BudgetExceeded, match="max_images") as caught:
        generator.execute_batch([{"prompt": f"cat {i}", "seed": i, **SMALL} for i in range(3)])
    assert len(caught.value.partial) == 2 and all(isinstance(o.artifact, Attachment) for o in caught.value.partial)
    with pytest.raises(BudgetExceeded) as spent:
        generator.execute(prompt="one more", **SMALL)
    assert spent.value.partial == []
    generator.budget.reset()
    assert generator.execute(prompt="after a reset", **SMALL).artifact is not None


def test_failed_generation_gives_its_budget_back(tmp_path):
    generator = ImageGenerator(model=str(tmp_path / "missing"), max_images=1)
    with pytest.raises(ConfigurationError):
        generator.execute(prompt="x", **SMALL)
    assert generator.budget.used == 0


def test_missing_diffusers_names_the_extra(generator, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'polymodal\[diffusion\]'"):
        generator.execute(prompt="a cat", **SMALL)
    assert generator.budget.used == 0


def test_polymodal_imports_without_diffusers():
    code = ("import sys; sys.modules['diffusers'] = None; import polymodal; "
            "from polymodal.tools import default_tools; "
            "print(sorted(t.name for t in default_tools()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "image_generator" in out.stdout and "speech_synthesizer" in out.stdout


def test_missing_model_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        ImageGenerator(model=str(tmp_path / "nope")).execute(prompt="x", **SMALL)
    with pytest.raises(ConfigurationError, match="some-org/not-downloaded"):
        ImageGenerator(model="some-org/not-downloaded").execute(prompt="x", **SMALL)


def test_generate_then_caption_and_reuse_the_image_next_turn(generator, tiny_models, media):
    captioner = Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)
    plan = json.dumps({"steps": [
        {"id": "s1", "tool": "image_generator", "args": {"prompt": "a poster of a cat", "seed": 5, **SMALL}},
        {"id": "s2", "tool": "captioner", "args": {"image": "s1"}}]})
    follow_up = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_2"}}],
                            "answer": "s1"})
    llm = ScriptedChatModel(responses=[plan, "Here is your poster [s1]: [s2]", follow_up])
    agent = Agent(llm=llm, tools=[generator, captioner])
    reply = agent.chat("draw a poster of a cat and describe it", attachments=[media.png()])
    assert [s.status for s in reply.steps] == ["ok", "ok"]
    assert reply.steps[0].artifact_ids == ["image_2"] and reply.steps[1].args["image"] == "image_2"
    assert [a.id for a in reply.artifacts] == ["image_2"] and reply.artifacts[0].kind is Modality.IMAGE
    direct = captioner.execute(image=reply.artifacts[0])
    assert reply.steps[1].content == direct.content  # the caption is of the generated image
    second = agent.chat("describe the image you made")
    assert "image_2: image/png" in llm.prompt(2)
    assert second.steps[0].ok and second.text == direct.content


def test_no_llm_draw_request_goes_to_the_generator(generator):
    reply = Agent(tools=[generator]).chat("draw an image of a lighthouse")
    assert reply.planner == "defaults" and reply.steps[0].tool == "image_generator" and reply.steps[0].ok
    assert reply.artifacts and reply.artifacts[0].id == "image_1"


def test_R3_the_image_budget_counts_per_request_so_a_long_running_agent_keeps_generating(tiny_models):
    generator = ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2, max_images=1)
    agent = Agent(tools=[generator])
    for i in range(3):  # a server or a batch run: each request may make its one image
        reply = agent.run(f"draw an image of lighthouse number {i}")
        assert reply.steps[0].ok, reply.steps[0].error
    generator.execute(prompt="a direct call", **SMALL)  # outside any request: counted on the instance
    with pytest.raises(BudgetExceeded):
        generator.execute(prompt="one direct call too many", **SMALL)


def test_budget_failure_is_a_recorded_step_error(tiny_models):
    generator = ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2, max_images=1)
    plan = json.dumps({"steps": [{"id": f"s{i}", "tool": "image_generator",
                                  "args": {"prompt": f"cat {i}", **SMALL}} for i in (1, 2)]})
    reply = Agent(llm=ScriptedChatModel(responses=[plan, "one image [s1]"]), tools=[generator],
                  ).chat("two cats")
    statuses = sorted((s.status, s.error_type) for s in reply.steps)
    assert statuses == [("error", "BudgetExceeded"), ("ok", None)]
    assert len(reply.artifacts) == 1


def test_parallel_steps_share_one_pipeline_safely(generator):
    plan = Plan.model_validate({"steps": [
        {"id": f"s{i}", "tool": "image_generator", "args": {"prompt": f"cat {i}", "seed": i, "steps": 2 * i, **SMALL}}
        for i in (1, 2, 3)]})  # different step counts: a shared scheduler would mix their timesteps
    from polymodal.agent.conversation import Conversation
    from polymodal.agent.executor import Executor

    conversation = Conversation()
    results = Executor({"image_generator": generator}, max_parallel=3).run(plan, conversation)
    assert [r.status for r in results] == ["ok"] * 3
    assert sorted(conversation.attachments) == ["image_1", "image_2", "image_3"]
    for result in results:  # the scheduler's per-call state was not shared between concurrent calls
        alone = generator.execute(**plan.steps[int(result.id[1:]) - 1].args)
        assert np.array_equal(pixels(result.artifact), pixels(alone.artifact))


def test_langchain_call_returns_the_image_as_artifact(generator):
    from langchain_core.messages import ToolMessage

    message = generator.invoke({"type": "tool_call", "id": "c1", "name": "image_generator",
                                "args": {"prompt": "a cat", "seed": 1, **SMALL}})
    assert isinstance(message, ToolMessage) and message.status == "success" and "seed 1" in message.content
    assert isinstance(message.artifact, Attachment) and message.artifact.kind is Modality.IMAGE
