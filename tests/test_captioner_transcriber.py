"""Captioner and Transcriber on tiny random checkpoints, loaded through their normal code path.

Outputs of random weights are nonsense, so these tests check what is real: the model class chosen
per family, shapes and batching, timestamps within the audio, chunking past 30 s, a video's sound
track, silence, and clear errors for missing models.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from langchain_core.messages import ToolMessage

from polymodal import Attachment, ConfigurationError, ToolError
from polymodal.tools import Captioner, Transcriber, Transcript, model_cache


@pytest.mark.parametrize("family", ["blip-caption", "vit-gpt2-caption", "blip2-opt", "blip2-t5"])
def test_captioner_loads_each_family_and_batches(tiny_models, media, family):
    captioner = Captioner(model=str(tiny_models.path(family)), max_new_tokens=6)
    images = [Attachment.from_path(media.png(color=c, name=f"{i}.png")) for i, c in enumerate([(255, 0, 0),
                                                                                               (0, 0, 255)])]
    batched = captioner.execute_batch([{"image": image} for image in images])
    one_by_one = [captioner.execute(image=image) for image in images]
    assert [o.content for o in batched] == [o.content for o in one_by_one]
    assert all(isinstance(o.content, str) for o in batched)


def test_captioner_prompt_is_the_start_of_the_caption(tiny_models, media):
    captioner = Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)
    out = captioner.execute(image=Attachment.from_path(media.png()), prompt="a photo of")
    assert out.content.startswith("a photo of")


def test_models_load_once_per_process(tiny_models, media):
    path = str(tiny_models.path("blip-caption"))
    model_cache().clear()
    before = model_cache().loads
    image = Attachment.from_path(media.png())
    for _ in range(3):
        Captioner(model=path, max_new_tokens=2).execute(image=image)
    assert model_cache().loads - before == 1


def test_langchain_call_returns_text_and_artifact(tiny_models, media):
    captioner = Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)
    message = captioner.invoke({"type": "tool_call", "id": "c1", "name": "captioner",
                                "args": {"image": str(media.png())}})
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert message.content == message.artifact


def test_transcriber_timestamps_stay_inside_the_audio(tiny_models, media):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=10)
    out = transcriber.execute(audio=Attachment.from_path(media.wav(seconds=2.0)))
    transcript = out.artifact
    assert isinstance(transcript, Transcript) and transcript.duration == pytest.approx(2.0, abs=0.01)
    assert transcript.segments, "the tiny Whisper checkpoint has timestamp tokens, so segments exist"
    assert all(0 <= s.start <= s.end <= 2.0 for s in transcript.segments)


def test_transcriber_handles_audio_longer_than_one_window_and_batches(tiny_models, media):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=10)
    long = Attachment.from_path(media.wav(name="long.wav", seconds=45.0))
    short = Attachment.from_path(media.wav(name="short.wav", seconds=1.0))
    batched = transcriber.execute_batch([{"audio": long}, {"audio": short}])
    assert batched[0].artifact.duration == pytest.approx(45.0, abs=0.01)
    assert max(s.end for s in batched[0].artifact.segments) > 30.0, "the second window was transcribed"
    assert [b.content for b in batched] == [transcriber.execute(audio=a).content for a in (long, short)]


def test_transcriber_reads_a_video_sound_track(tiny_models, media):
    video = Attachment.from_path(media.video(audio="tone"))
    out = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=5).execute(audio=video)
    assert out.artifact.duration > 0


def test_A7_silence_is_no_speech_without_running_the_model(tiny_models, media):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")))
    silent = Attachment.from_audio(np.zeros(16000, dtype=np.float32), 16000)
    empty = Attachment.from_audio(np.zeros(0, dtype=np.float32), 16000)
    assert [o.content for o in transcriber.execute_batch([{"audio": silent}, {"audio": empty}])] == [
        "(no speech)", "(no speech)"]


def test_T4_missing_model_folder_is_a_configuration_error(media):
    with pytest.raises(ConfigurationError, match="model folder './no/such/blip' does not exist"):
        Captioner(model="./no/such/blip").execute(image=Attachment.from_path(media.png()))


def test_T4_hub_id_offline_fails_fast_with_how_to_fix(media):
    started = time.perf_counter()
    with pytest.raises(ConfigurationError) as info:
        Transcriber(model="some-org/whisper-nonexistent").execute(audio=Attachment.from_path(media.wav()))
    assert time.perf_counter() - started < 5
    assert "some-org/whisper-nonexistent" in str(info.value) and "local folder" in str(info.value)


def test_wrong_modality_in_a_direct_call_is_a_tool_error(tiny_models, media):
    captioner = Captioner(model=str(tiny_models.path("blip-caption")))
    message = captioner.invoke({"type": "tool_call", "id": "c1", "name": "captioner",
                                "args": {"image": str(media.wav())}})
    assert message.status == "error" and "needs image" in message.content
    with pytest.raises(ToolError):
        captioner.handle_tool_error = False
        captioner.invoke({"image": str(media.wav())})
