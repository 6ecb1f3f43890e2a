"""EmotionRecognizer on tiny random audio- and image-classification checkpoints, and the FusionHead.

Random classifiers give near-uniform, meaningless distributions, so the tests check what must hold
anyway: a video contributes both its frames and its sound track, fusion is the documented
weighted average over aligned labels, batching is exact, and the trainable head learns a separable
toy problem from the tiny models' real embeddings of generated inputs.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, AttachmentError, ConfigurationError, PlanValidationError
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.tools import EmotionRecognizer, EmotionScores, FusionHead
from polymodal.tools.emotion import EmotionArgs, canonical_emotion

RED, BLUE = (220, 30, 30), (30, 30, 220)


@pytest.fixture
def recognizer(tiny_models) -> EmotionRecognizer:
    return EmotionRecognizer(model=str(tiny_models.path("audio-emotion")),
                             face_model=str(tiny_models.path("face-emotion")), frames=3)


def test_a_video_gives_faces_in_frames_and_its_sound_track(recognizer, media):
    video = Attachment.from_path(media.video(scenes=[(RED, 0.6), (BLUE, 0.6)], audio="tone"))
    scores = recognizer.execute(video=video).artifact
    assert isinstance(scores, EmotionScores) and scores.fusion == "average" and scores.frames == 3
    assert scores.audio is not None and scores.face is not None
    assert set(scores.probabilities) == {"angry", "happy", "neutral", "sad"}
    assert sum(scores.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert scores.label == max(scores.probabilities, key=scores.probabilities.__getitem__)
    for label, p in scores.probabilities.items():  # the default fusion: equal-weight average
        assert p == pytest.approx(0.5 * scores.audio[label] + 0.5 * scores.face[label], abs=1e-5)


def test_weights_decide_the_mix(tiny_models, media):
    wav, face = Attachment.from_path(media.wav()), Attachment.from_path(media.png())
    voice_only = EmotionRecognizer(model=str(tiny_models.path("audio-emotion")),
                                   face_model=str(tiny_models.path("face-emotion")), face_weight=0.0)
    scores = voice_only.execute(audio=wav, image=face).artifact
    assert scores.probabilities == pytest.approx(scores.audio, abs=1e-6) and scores.face is not None


def test_batch_equals_one_by_one(recognizer, media):
    inputs = [
        {"video": Attachment.from_path(media.video(scenes=[(RED, 0.5)], audio="tone"))},
        {"audio": Attachment.from_path(media.wav(seconds=0.7))},
        {"audio": Attachment.from_path(media.wav(name="long.wav", seconds=1.6, freq=880.0))},
        {"image": Attachment.from_path(media.png(color=BLUE))},
        {"audio": Attachment.from_path(media.wav(name="c.wav", seconds=1.1)),
         "image": Attachment.from_path(media.jpeg(color=RED))},
    ]
    batched = recognizer.execute_batch(inputs)
    assert [o.artifact.fusion for o in batched] == ["average", "audio", "audio", "face", "average"]
    for item, out in zip(inputs, batched, strict=True):
        single = recognizer.execute(**item).artifact
        assert single.label == out.artifact.label
        assert single.probabilities == pytest.approx(out.artifact.probabilities, abs=1e-5)


def test_a_silent_video_without_sound_track_uses_faces_only(recognizer, media):
    video = Attachment.from_path(media.video(scenes=[(RED, 0.5)], audio=None))
    scores = recognizer.execute(video=video).artifact
    assert scores.fusion == "face" and scores.audio is None and scores.frames == 3


def test_nothing_usable_is_an_attachment_error(tiny_models, media):
    voice_only = EmotionRecognizer(model=str(tiny_models.path("audio-emotion")), face_model=None)
    with pytest.raises(AttachmentError, match="no usable voice"):
        voice_only.execute(image=Attachment.from_path(media.png()))


def test_label_names_are_aligned():
    assert [canonical_emotion(x) for x in ["HAP", "neu", "Anger", "surprised", "calm"]] == [
        "happy", "neutral", "angry", "surprise", "calm"]


def _toy_inputs(media, n: int) -> tuple[list[dict], list[str]]:
    """Two classes: a low tone with a reddish face vs a high tone with a bluish face, jittered."""
    inputs, labels = [], []
    for i in range(n):
        for label, freq, colour in [("calm", 220.0, RED), ("excited", 1760.0, BLUE)]:
            shade = tuple(min(255, c + 6 * i) for c in colour)
            inputs.append({"audio": Attachment.from_path(media.wav(name=f"{label}{i}.wav", seconds=0.4 + 0.1 * i,
                                                                    freq=freq * (1 + 0.02 * i))),
                           "image": Attachment.from_path(media.png(name=f"{label}{i}.png", color=shade))})
            labels.append(label)
    return inputs, labels


def test_fusion_head_learns_a_separable_toy_problem_and_round_trips(recognizer, media, tmp_path):
    inputs, labels = _toy_inputs(media, 6)
    features = recognizer.embeddings(inputs)
    assert features.shape == (12, 16 + 32)  # wav2vec2 hidden 16 + ViT hidden 32
    head = FusionHead(["calm", "excited"], features.shape[1])
    head.fit(features[:8], labels[:8])
    assert head.predict(features[8:]) == labels[8:]  # held-out examples
    folder = head.save(tmp_path / "head")
    loaded = FusionHead.load(folder)
    assert np.allclose(loaded.predict_proba(features), head.predict_proba(features), atol=1e-6)
    with_head = recognizer.model_copy(update={"head": str(folder)})
    scores = with_head.execute(**inputs[9]).artifact
    assert scores.fusion == "head" and scores.label == labels[9] and set(scores.probabilities) == {"calm", "excited"}


def test_fusion_head_errors_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="has no head.json"):
        FusionHead.load(tmp_path / "nothing")
    head = FusionHead(["a", "b"], 4)
    with pytest.raises(ConfigurationError, match=r"shape \(n, 4\)"):
        head.fit(np.zeros((3, 5)), ["a", "b", "a"])
    with pytest.raises(ConfigurationError, match="unknown labels"):
        head.fit(np.zeros((2, 4)), ["a", "c"])


@pytest.mark.parametrize("args", [{}, {"video": "video_1", "image": "image_1"}, {"audio": "audio_1", "text": "x"}],
                         ids=["nothing", "video-and-image", "unknown-arg"])
def test_schema_rejects_bad_args(args):
    with pytest.raises(ValidationError):
        EmotionArgs.model_validate(args)


def test_wrong_modality_is_rejected_at_plan_validation(recognizer, media):
    attachments = {"image_1": Attachment.from_path(media.png()).with_id("image_1"),
                   "audio_1": Attachment.from_path(media.wav()).with_id("audio_1")}
    plan = Plan(steps=[Step(id="s1", tool="emotion_recognizer", args={"audio": "image_1", "video": "audio_1"})])
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan, {"emotion_recognizer": recognizer}, attachments)
    assert any("args.audio: image_1 is image" in p for p in info.value.problems)
    assert any("args.video: audio_1 is audio" in p for p in info.value.problems)


def test_missing_model_folders_are_configuration_errors(tiny_models, media):
    wav = Attachment.from_path(media.wav())
    with pytest.raises(ConfigurationError, match="model folder '/no/such/voice' does not exist"):
        EmotionRecognizer(model="/no/such/voice", face_model=None).execute(audio=wav)
    with pytest.raises(ConfigurationError, match="model folder '/no/such/face' does not exist"):
        EmotionRecognizer(model=str(tiny_models.path("audio-emotion")), face_model="/no/such/face").execute(audio=wav)


def test_agent_asks_how_the_speaker_feels(recognizer, media):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "emotion_recognizer", "args": {"video": "video_1"}}],
                       "answer": "s1"})
    reply = Agent(llm=ScriptedChatModel(responses=[plan]), tools=[recognizer]).chat(
        "How does the person in this clip feel?", attachments=[media.video(audio="tone")])
    step = reply.steps[0]
    assert step.ok and isinstance(step.artifact, EmotionScores) and step.artifact.fusion == "average"
    assert reply.text == step.content and reply.text.startswith(step.artifact.label)


def test_frames_are_sampled_evenly_across_the_video(media):
    from polymodal.tools.emotion import _sample_frames

    video = Attachment.from_path(media.video(scenes=[(RED, 1.0), ((30, 200, 30), 1.0), (BLUE, 1.0)]))
    frames = _sample_frames(video, 3)
    dominant = [int(np.asarray(frame).reshape(-1, 3).mean(0).argmax()) for frame in frames]
    assert dominant == [0, 1, 2]  # red, green, blue: one frame from each third


def test_checkpoints_without_attention_masks_are_never_padded(tiny_models, media, tmp_path):
    # wav2vec2-base emotion checkpoints ship return_attention_mask=False: padding would change their output.
    folder = shutil.copytree(tiny_models.path("audio-emotion"), tmp_path / "no-mask")
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, "return_attention_mask": False}))
    recognizer = EmotionRecognizer(model=str(folder), face_model=None)
    clips = [Attachment.from_path(media.wav(name="short.wav", seconds=0.3)),
             Attachment.from_path(media.wav(name="long.wav", seconds=1.5, freq=660.0))]
    batched = recognizer.execute_batch([{"audio": clip} for clip in clips])
    for clip, out in zip(clips, batched, strict=True):
        assert recognizer.execute(audio=clip).artifact.probabilities == pytest.approx(out.artifact.probabilities,
                                                                                     abs=1e-6)


def test_fusion_head_trains_inside_inference_mode():
    import torch

    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-2, 1, (10, 3)), rng.normal(2, 1, (10, 3))]).astype(np.float32)
    labels = ["low"] * 10 + ["high"] * 10
    head = FusionHead(["low", "high"], 3)
    with torch.inference_mode():  # where a tool's forward runs
        head.fit(features, labels)
    assert head.predict(features) == labels
