"""EmotionRecognizer on tiny audio- and image-classification checkpoints, and the FusionHead.

Random classifiers give near-uniform, meaningless distributions, so most tests check what must
hold anyway: a video contributes its faces and its sound track, fusion is the documented weighted
average over aligned labels, batching is exact, and the trainable head learns a separable toy
problem from the tiny models' real embeddings of generated inputs.

The timeline tests use generated calls made of a real face (scikit-image's astronaut) and the
"-tuned" tiny classifiers, fine-tuned at build time so that they really tell the two halves of a
call apart: the true-colour face and a 220 Hz tone read happy, the red/blue-swapped face and a
1760 Hz tone read angry, and a grey background reads happy (so a crop of the room is caught).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from support.face_media import Placement, Shot, astronaut_head, call_video
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, AttachmentError, ConfigurationError, MediaLimitError, PlanValidationError
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.tools import EmotionRecognizer, EmotionScores, FusionHead, MoodSpan
from polymodal.tools.builtin.emotion import EmotionArgs, canonical_emotion

RED, BLUE = (220, 30, 30), (30, 30, 220)
CALM, UPSET = 220.0, 1760.0  # the tuned voice classifier: happy, angry


@pytest.fixture
def recognizer(tiny_models) -> EmotionRecognizer:
    return EmotionRecognizer(model=str(tiny_models.path("audio-emotion")),
                             face_model=str(tiny_models.path("face-emotion")), frames=3)


@pytest.fixture(scope="module")
def tuned(tiny_models) -> EmotionRecognizer:
    """Classifiers that tell the calls' halves apart; 1 s windows of 3 frames keep the clips short."""
    return EmotionRecognizer(model=str(tiny_models.path("audio-emotion-tuned")),
                             face_model=str(tiny_models.path("face-emotion-tuned")), window=1.0, frames=3)


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict:
    """The generated calls, made once for the module."""
    folder = tmp_path_factory.mktemp("calls")
    face, swapped = astronaut_head(110), astronaut_head(110, "bgr")
    return {
        # the swapped face glides across the frame for 4 s, then 2 s of an empty room; no sound track
        "moving": call_video(folder, [Shot(4.0, (Placement(swapped, (0, 60), (200, 60)),)), Shot(2.0)],
                             name="moving.mp4", audio=False),
        # 2 s calm (true colours, low tone), then 2 s upset (swapped colours, high tone), same place
        "halves": call_video(folder, [Shot(2.0, (Placement(face, (100, 60)),), CALM),
                                      Shot(2.0, (Placement(swapped, (100, 60)),), UPSET)], name="halves.mp4"),
        # two people side by side, one calm and one upset, silent room
        "two": call_video(folder, [Shot(2.0, (Placement(face, (5, 60)), Placement(swapped, (205, 60))), None)],
                          name="two.mp4", size=(320, 240)),
    }


def rows(timeline: list[MoodSpan], who: str) -> list[tuple[float, float, str, int]]:
    return [(s.start, s.end, s.label, s.windows) for s in timeline if s.who == who]


def test_a_moving_face_is_cropped_where_it_is_and_an_empty_room_says_no_face(tuned, calls):
    out = tuned.execute(video=Attachment.from_path(calls["moving"]))
    scores = out.artifact
    assert [sorted(w.faces) for w in scores.windows] == [["face 1"]] * 4 + [[]] * 2  # one face, followed
    assert [w.label for w in scores.windows] == ["angry"] * 4 + ["no face or voice"] * 2
    assert rows(scores.timeline, "face 1") == [(0.0, 4.0, "angry", 4)]
    assert rows(scores.timeline, "faces") == [(4.0, 6.0, "no face", 2)]
    assert rows(scores.timeline, "voice") == []  # no sound track: no voice rows at all
    assert scores.faces == ["face 1"] and scores.fusion == "face" and scores.frames == 18
    assert scores.notes == ["the video has no sound track: faces only"]
    assert scores.label == "angry" and scores.probabilities["angry"] > 0.8
    assert "angry until 00:04, then no face or voice" in out.content
    assert "No face in view: 00:04-00:06." in out.content

    whole = tuned.model_copy(update={"detect_faces": False}).execute(video=Attachment.from_path(calls["moving"]))
    assert [w.label for w in whole.artifact.windows][4:] == ["happy", "happy"]  # whole frames: the room, classified


def test_a_call_whose_halves_differ_gives_two_merged_spans(tuned, calls):
    out = tuned.execute(video=Attachment.from_path(calls["halves"]))
    scores = out.artifact
    assert [w.label for w in scores.windows] == ["happy", "happy", "angry", "angry"]
    assert [max(w.voice, key=w.voice.get) for w in scores.windows] == ["happy", "happy", "angry", "angry"]
    for who in ("fused", "voice", "face 1"):
        assert rows(scores.timeline, who) == [(0.0, 2.0, "happy", 2), (2.0, 4.0, "angry", 2)], who
    first = next(s for s in scores.timeline if s.who == "fused")
    expected = {k: (scores.windows[0].fused[k] + scores.windows[1].fused[k]) / 2 for k in first.probabilities}
    assert first.probabilities == pytest.approx(expected, abs=1e-6)  # a merged span averages its windows
    assert scores.fusion == "average" and scores.faces == ["face 1"] and scores.duration == pytest.approx(4.0)
    assert "Over time (4 windows of 1 s): happy until 00:02, then angry." in out.content
    assert scores.changes("voice") == "happy until 00:02, then angry"


def test_two_faces_in_one_frame_are_kept_apart(tuned, calls):
    scores = tuned.execute(video=Attachment.from_path(calls["two"])).artifact
    assert scores.faces == ["face 1", "face 2"]
    labels = {who: rows(scores.timeline, who) for who in scores.faces}
    assert sorted(r[0][2] for r in labels.values()) == ["angry", "happy"]  # each person keeps their own mood
    assert all(len(r) == 1 and r[0][:2] == (0.0, 2.0) for r in labels.values())
    assert "the sound has no voice (silent throughout)" in scores.notes
    assert rows(scores.timeline, "voice") == [(0.0, 2.0, "no voice", 2)]


def test_a_photo_and_a_long_recording_give_a_timeline_of_the_voice(tuned, media, tmp_path):
    from support.media_files import tone, write_wav

    sound = np.concatenate([tone(2.0, freq=CALM), tone(1.0, silent=True), tone(2.0, freq=UPSET)])
    wav = Attachment.from_path(write_wav(tmp_path / "note.wav", sound, 16000))
    out = tuned.execute(audio=wav)
    assert rows(out.artifact.timeline, "voice") == [(0.0, 2.0, "happy", 2), (2.0, 3.0, "no voice", 1),
                                                    (3.0, 5.0, "angry", 2)]
    assert out.content.startswith(out.artifact.label) and "happy until 00:02, then no face or voice until 00:03" \
        in out.content
    photo = Attachment.from_image(Image.fromarray(astronaut_head(220)))
    both = tuned.execute(audio=wav, image=photo).artifact  # the photo is the face of every window
    assert [sorted(w.faces) for w in both.windows] == [["face 1"]] * 5 and both.fusion == "average"


def test_limits_are_media_limit_errors_naming_the_setting_before_any_model_loads(calls):
    video = Attachment.from_path(calls["halves"])
    unloadable = EmotionRecognizer(model="/no/such/voice", face_model="/no/such/face")
    with pytest.raises(MediaLimitError, match=r"halves.mp4: is 4 s long, over .* max_duration of 3 s"):
        unloadable.model_copy(update={"max_duration": 3.0}).execute(video=video)
    with pytest.raises(MediaLimitError, match=r"needs 8 windows of 0.5 s, over .* max_windows of 5"):
        unloadable.model_copy(update={"window": 0.5, "max_windows": 5}).execute(video=video)


def test_a_header_that_understates_the_length_still_meets_the_caps(calls):
    from polymodal.tools.builtin.emotion.call_windows import CallSource, FaceSettings, StreamState, iter_windows
    from polymodal.tools.builtin.emotion.mood import WindowGrid

    video = Attachment.from_path(calls["halves"])
    source = CallSource("halves.mp4", audio=video, video=video, duration=1.0)  # the header said 1 s
    with pytest.raises(MediaLimitError, match="halves.mp4: needs more than 2 windows"):
        list(iter_windows(source, WindowGrid(window=1.0, duration=1.0), 2, FaceSettings(None), StreamState(),
                          rate=16000, max_seconds=100.0, max_windows=2))
    with pytest.raises(MediaLimitError, match=r"halves.mp4: runs past 2.5 s"):
        list(iter_windows(source, WindowGrid(window=1.0, duration=1.0), 2, FaceSettings(None), StreamState(),
                          rate=16000, max_seconds=2.5, max_windows=100))


def test_a_file_cut_short_gives_the_timeline_up_to_the_cut(tuned, tmp_path):
    from support.media_files import corrupt_copy

    shots = [Shot(2.0, (Placement(astronaut_head(110), (100, 60)),), CALM),
             Shot(2.0, (Placement(astronaut_head(110, "bgr"), (100, 60)),), UPSET)]
    mkv = call_video(tmp_path, shots, name="call.mkv")  # Matroska: playable up to where it is cut
    cut = Attachment.from_path(corrupt_copy(mkv, tmp_path / "cut.mkv", int(mkv.stat().st_size * 0.5)))
    scores = tuned.execute(video=cut).artifact
    assert 1 <= len(scores.windows) < 4 and scores.windows[0].label == "happy"
    assert any("decoding stopped" in note for note in scores.notes), scores.notes


def test_a_broken_file_is_an_error_naming_it(tuned, calls, tmp_path):
    from support.media_files import corrupt_copy

    broken = corrupt_copy(calls["halves"], tmp_path / "broken.mp4", 2000)  # an MP4 without its index
    with pytest.raises(AttachmentError, match="broken.mp4"):
        Attachment.from_path(broken)
    answer = tuned.invoke({"video": str(broken)})  # a LangChain call: the error comes back as the tool's text
    assert "emotion_recognizer" in answer and "broken.mp4" in answer


def test_whole_frames_without_face_detection_mix_voice_and_frames(tiny_models, media):
    # detect_faces=False: whole frames are classified, as before face detection existed (close-up footage).
    recognizer = EmotionRecognizer(model=str(tiny_models.path("audio-emotion")),
                                   face_model=str(tiny_models.path("face-emotion")), frames=3, detect_faces=False)
    video = Attachment.from_path(media.video(scenes=[(RED, 0.6), (BLUE, 0.6)], audio="tone"))
    scores = recognizer.execute(video=video).artifact
    assert isinstance(scores, EmotionScores) and scores.fusion == "average" and scores.frames == 3
    assert scores.audio is not None and scores.face is not None and scores.faces == ["picture"]
    assert set(scores.probabilities) == {"angry", "happy", "neutral", "sad"}
    assert sum(scores.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert scores.label == max(scores.probabilities, key=scores.probabilities.__getitem__)
    for label, p in scores.probabilities.items():  # the default fusion: equal-weight average
        assert p == pytest.approx(0.5 * scores.audio[label] + 0.5 * scores.face[label], abs=1e-5)
    assert scores.overall.label == scores.label and scores.overall.probabilities == scores.probabilities


def test_a_video_without_faces_says_so_and_uses_the_voice(recognizer, media):
    video = Attachment.from_path(media.video(scenes=[(RED, 0.6), (BLUE, 0.6)], audio="tone"))
    out = recognizer.execute(video=video)
    scores = out.artifact
    assert scores.fusion == "audio" and scores.face is None and scores.frames == 3 and scores.faces == []
    assert scores.notes == ["no face found in any of the 3 sampled frames (the detector finds upright, frontal faces)"]
    assert "Note: no face found" in out.content
    assert [(s.who, s.label) for s in scores.timeline if s.who != "fused"] == [("voice", scores.label),
                                                                             ("faces", "no face")]


def test_weights_decide_the_mix(tiny_models, media):
    wav, face = Attachment.from_path(media.wav()), Attachment.from_path(media.png())
    voice_only = EmotionRecognizer(model=str(tiny_models.path("audio-emotion")),
                                   face_model=str(tiny_models.path("face-emotion")), face_weight=0.0)
    scores = voice_only.execute(audio=wav, image=face).artifact
    assert scores.probabilities == pytest.approx(scores.audio, abs=1e-6) and scores.face is not None


def test_batch_equals_one_by_one(recognizer, media, calls):
    inputs = [
        {"video": Attachment.from_path(calls["halves"])},  # 1 s windows: four of them, batched with the rest
        {"audio": Attachment.from_path(media.wav(seconds=0.7))},
        {"audio": Attachment.from_path(media.wav(name="long.wav", seconds=2.6, freq=880.0))},
        {"image": Attachment.from_path(media.png(color=BLUE))},
        {"audio": Attachment.from_path(media.wav(name="c.wav", seconds=1.1)),
         "image": Attachment.from_path(media.jpeg(color=RED))},
    ]
    small = recognizer.model_copy(update={"window": 1.0, "batch_size": 3})  # batches straddle the inputs
    batched = small.execute_batch(inputs)
    assert [o.artifact.fusion for o in batched] == ["average", "audio", "audio", "face", "average"]
    assert [len(o.artifact.windows) for o in batched] == [4, 1, 3, 1, 1]
    for item, out in zip(inputs, batched, strict=True):
        single = small.execute(**item).artifact
        assert single.label == out.artifact.label
        assert single.probabilities == pytest.approx(out.artifact.probabilities, abs=1e-5)
        for one, many in zip(single.windows, out.artifact.windows, strict=True):
            assert one.fused == pytest.approx(many.fused, abs=1e-5)


def test_a_video_without_faces_or_sound_is_an_attachment_error(recognizer, media):
    video = Attachment.from_path(media.video(name="mute.mp4", scenes=[(RED, 0.5)], audio=None))
    with pytest.raises(AttachmentError, match=r"mute.mp4: has no usable voice and no face: no sound track, no face"):
        recognizer.execute(video=video)


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


def test_fusion_head_learns_a_separable_toy_problem_and_round_trips(recognizer, media, calls, tmp_path):
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
    # in a call, the head fuses each window where both a voice and a face are there
    call = with_head.model_copy(update={"window": 1.0}).execute(video=Attachment.from_path(calls["halves"])).artifact
    assert [w.fusion for w in call.windows] == ["head"] * 4 and call.fusion == "head"
    assert all(set(w.fused) == {"calm", "excited"} and set(w.voice) == {"angry", "happy", "neutral", "sad"}
               for w in call.windows)


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


def test_agent_asks_how_the_people_in_a_call_felt(tuned, calls):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "emotion_recognizer", "args": {"video": "video_1"}}],
                       "answer": "s1"})
    reply = Agent(llm=ScriptedChatModel(responses=[plan]), tools=[tuned]).chat(
        "How did the people in this call feel, and when did it change?", attachments=[calls["halves"]])
    step = reply.steps[0]
    assert step.ok and isinstance(step.artifact, EmotionScores) and step.artifact.fusion == "average"
    assert [(s.start, s.end, s.who, s.label) for s in step.artifact.timeline if s.who == "fused"] == [
        (0.0, 2.0, "fused", "happy"), (2.0, 4.0, "fused", "angry")]
    assert step.artifact.overall.label == step.artifact.label
    assert reply.text == step.content and reply.text.startswith(step.artifact.label)
    assert "happy until 00:02, then angry" in reply.text


def test_frames_are_sampled_evenly_across_each_window(media):
    from polymodal.tools.builtin.emotion.mood import WindowGrid
    from polymodal.tools.builtin.keyframes import Sampling, frames_at

    video = Attachment.from_path(media.video(scenes=[(RED, 1.0), ((30, 200, 30), 1.0), (BLUE, 1.0)]))
    grid = WindowGrid(window=1.5, duration=video.duration)
    picked = list(frames_at(video, grid.sample_times(2), Sampling()))
    assert [round(t, 3) for t, _ in picked] == [0.375, 1.125, 1.875, 2.625]  # two per 1.5 s window, centred
    dominant = [int(frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(0).argmax()) for _, frame in picked]
    assert dominant == [0, 1, 1, 2]  # red, green, green, blue: each time gets the frame shown then


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
