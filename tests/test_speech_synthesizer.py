"""SpeechSynthesizer on tiny random SpeechT5 + HiFi-GAN checkpoints, loaded through their normal classes.

``minlenratio=1.0`` keeps the random decoder from stopping at once; the waveform is noise, but its
length, sample rate, batching, sentence joining and the speaker embedding's effect are all real.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, ConfigurationError, ToolError
from polymodal.media import Modality
from polymodal.tools import SpeechSynthesizer, Transcriber

RATE = 16_000


@pytest.fixture
def tts(tiny_models) -> SpeechSynthesizer:
    return SpeechSynthesizer(model=str(tiny_models.path("speecht5-tts")),
                             vocoder=str(tiny_models.path("speecht5-hifigan")), minlenratio=1.0, maxlenratio=2.0)


def samples(attachment: Attachment) -> np.ndarray:
    return attachment.audio(RATE)


def test_output_is_a_16khz_wav_attachment(tts):
    out = tts.execute(text="Hello world.")
    audio = out.artifact
    assert isinstance(audio, Attachment) and audio.kind is Modality.AUDIO and audio.mime_type == "audio/wav"
    wave = samples(audio)
    assert wave.dtype == np.float32 and wave.size > 0
    assert audio.duration == pytest.approx(wave.size / RATE, abs=1e-3)
    assert np.abs(wave).max() == pytest.approx(0.9, abs=1e-3)  # normalised to the configured peak
    assert out.content.startswith(f"Spoke {wave.size / RATE:.1f} s of speech")
    with audio._open() as fp:  # a real 16 kHz mono WAV file, not just something PyAV can read
        import wave as wavlib

        with wavlib.open(fp) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)


def test_long_text_is_spoken_sentence_by_sentence(tts):
    first, second = "Hello world.", "It is a fine day!"
    tts_raw = tts.model_copy(update={"peak": None, "pause_seconds": 0.25})
    parts = [tts_raw.execute(text=s).artifact for s in (first, second)]
    joined = tts_raw.execute(text=f"{first} {second}").artifact
    pause = int(0.25 * RATE)
    assert samples(joined).size == samples(parts[0]).size + pause + samples(parts[1]).size


def test_over_long_sentence_is_split_to_fit_the_model(tts):
    long = " ".join(["word"] * 60)  # 300 characters: past the tiny model's 64 text positions
    out = tts.execute(text=long)
    assert samples(out.artifact).size > 0


def test_batch_equals_one_by_one(tts):
    texts = ["Hello world. This is a test!", "Another one here. Short.", "Hello world."]
    batched = tts.execute_batch([{"text": t} for t in texts])
    one_by_one = [tts.execute(text=t) for t in texts]
    for b, o in zip(batched, one_by_one, strict=True):
        assert samples(b.artifact).shape == samples(o.artifact).shape
        # Same lengths, same samples up to batched-matmul rounding (0.1 % of full scale after normalising).
        assert np.abs(samples(b.artifact) - samples(o.artifact)).max() <= 1e-3
    assert samples(batched[0].artifact).shape != samples(batched[1].artifact).shape


@pytest.mark.parametrize("suffix,shape", [(".npy", (8,)), (".npy", (1, 8)), (".pt", (8,)), (".pt", (1, 8))])
def test_speaker_embedding_file_changes_the_voice(tts, tmp_path, suffix, shape):
    vector = np.linspace(-1, 1, 8, dtype=np.float32).reshape(shape)
    path = tmp_path / f"speaker{suffix}"
    if suffix == ".npy":
        np.save(path, vector)
    else:
        torch.save(torch.from_numpy(vector), path)
    custom = tts.model_copy(update={"speaker_embedding": str(path)})
    a, b = custom.execute(text="Hello.").artifact, tts.execute(text="Hello.").artifact
    assert not np.array_equal(samples(a), samples(b))


def test_bad_speaker_embedding_is_a_configuration_error(tts, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(5, dtype=np.float32))
    with pytest.raises(ConfigurationError, match=r"wrong\.npy.*shape \(5,\)"):
        tts.model_copy(update={"speaker_embedding": str(wrong)}).execute(text="Hi.")
    with pytest.raises(ConfigurationError, match="does not exist"):
        tts.model_copy(update={"speaker_embedding": str(tmp_path / "none.npy")}).execute(text="Hi.")


def test_missing_vocoder_fails_clearly_instead_of_downloading(tiny_models, tmp_path):
    tts = SpeechSynthesizer(model=str(tiny_models.path("speecht5-tts")), vocoder=str(tmp_path / "no-vocoder"))
    with pytest.raises(ConfigurationError, match="vocoder.*no-vocoder"):
        tts.execute(text="Hi.")
    offline = SpeechSynthesizer(model=str(tiny_models.path("speecht5-tts")))  # the default hub vocoder
    with pytest.raises(ConfigurationError, match="microsoft/speecht5_hifigan"):
        offline.execute(text="Hi.")


def test_schema_and_empty_text(tts):
    with pytest.raises(ValidationError):
        tts.args_schema.model_validate({"text": ""})
    with pytest.raises(ValidationError):
        tts.args_schema.model_validate({"text": "hi", "speaker_embedding": "/etc/passwd"})
    with pytest.raises(ToolError, match="empty"):
        tts.execute(text=" \n ")


def test_speech_chains_into_the_transcriber_and_the_next_turn(tts, tiny_models):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=5)
    plan = json.dumps({"steps": [
        {"id": "s1", "tool": "speech_synthesizer", "args": {"text": "Good morning. See you soon."}},
        {"id": "s2", "tool": "transcriber", "args": {"audio": "s1"}}]})
    follow_up = json.dumps({"steps": [{"id": "s1", "tool": "transcriber", "args": {"audio": "audio_1"}}],
                            "answer": "s1"})
    llm = ScriptedChatModel(responses=[plan, "Here it is [s1]; it says [s2]", follow_up])
    agent = Agent(llm=llm, tools=[tts, transcriber])
    reply = agent.chat("say good morning and check it")
    assert [s.status for s in reply.steps] == ["ok", "ok"]
    assert reply.steps[0].artifact_ids == ["audio_1"] and reply.steps[1].args["audio"] == "audio_1"
    generated = reply.artifacts[0]
    assert generated.kind is Modality.AUDIO and reply.steps[1].artifact.duration == pytest.approx(
        generated.duration, abs=0.01)
    second = agent.chat("transcribe that audio again")
    assert "audio_1: audio/wav" in llm.prompt(2)
    assert second.steps[0].ok and second.text == reply.steps[1].content
